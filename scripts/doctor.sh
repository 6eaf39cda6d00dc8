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
show gpu "$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null || echo 'none')"
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
show cuda_arch "$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .' | sed 's/^/sm_/' | grep . || echo 'sm_90 (default: no GPU to read)')"
cudnn_h=$(ls "$CUDA_HOME"/include/cudnn_version.h /usr/include/cudnn_version.h /usr/include/x86_64-linux-gnu/cudnn_version*.h 2>/dev/null | head -n1)
show cudnn "$([ -n "$cudnn_h" ] && awk '/define CUDNN_MAJOR/{a=$3}/define CUDNN_MINOR/{b=$3}/define CUDNN_PATCHLEVEL/{c=$3}END{print a"."b"."c}' "$cudnn_h" || echo 'headers not found')"
show cublas "$(ls "$CUDA_HOME"/lib64/libcublas.so.* 2>/dev/null | head -n1 | sed 's/.*libcublas.so.//' | grep . || echo 'not found')"
ND=${ND_BIN:-build/bin/nd}
[ -x "$ND" ] && show nd "$("$ND" -e 'print(nd.version or "?", "threads " .. nd.getnumthreads())' 2>&1)"
[ -x "$ND" ] && show nd.cuda "$("$ND" -e 'local ok, why = nd.cuda.available(); if ok then local i = nd.cuda.deviceInfo(); print(string.format("available: %d GPU(s), cuda:0 %s, compute %.1f, %.0f GiB", nd.cuda.deviceCount(), i.name, i.capability, i.memory / 2^30)) else print("not available: " .. why) end' 2>&1)"
exit 0
