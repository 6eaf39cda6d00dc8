#!/bin/sh
# Installs the Debian packages nd needs when some are missing (apt-get; sudo when not root).
pkgs="liblua5.4-dev lua5.4 libopenblas-dev libpng-dev libreadline-dev lua-busted zlib1g-dev pkg-config"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "nd: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
