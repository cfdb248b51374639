#!/usr/bin/env bash
# Installs the Debian packages libmoe needs, only when some are missing.
# Usage: scripts/install-deps.sh [--with-torch]
#   --with-torch  also install python3-torch (the PyTorch reference for tests/bench)
set -euo pipefail

pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev libcjson-dev clang-format cppcheck
      libcmocka-dev bible-kjv)
if [ "${1:-}" = "--with-torch" ]; then
  pkgs+=(python3-torch python3-numpy)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
