#!/bin/sh
# Prints the versions of the tools and libraries nd builds with, and the GPU if any.
show() { printf '%-10s %s\n' "$1" "$2"; }
show cc "$(${CC:-cc} --version 2>/dev/null | head -n1)"
show nvcc "$( (command -v nvcc || ls /usr/local/cuda/bin/nvcc) >/dev/null 2>&1 && { nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version; } | tail -n1 || echo 'not found')"
show lua "$(lua5.4 -v 2>/dev/null || echo 'not found')"
show openblas "$(dpkg-query -W -f='${Version}' libopenblas-dev 2>/dev/null || echo 'not found')"
show libpng "$(pkg-config --modversion libpng 2>/dev/null || echo 'not found')"
show readline "$(dpkg-query -W -f='${Version}' libreadline-dev 2>/dev/null || echo 'not found')"
show busted "$(busted --version 2>/dev/null || echo 'not found')"
show gpu "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'none')"
[ -x build/bin/nd ] && show nd "$(build/bin/nd -e 'print(nd.version or "?", "threads " .. nd.getnumthreads())' 2>&1)"
exit 0
