#!/usr/bin/env bash
# Installs what libmoe needs, only what is missing: Debian packages, then the
# npm packages of package-lock.json into node_modules/ (plotly.js for
# reports, the SpamAssassin mails, GPT-2's BPE files, playwright-core for
# the browser test).
# Usage: scripts/install-deps.sh [--with-torch]
#   --with-torch  also what the tests need: python3-torch (the PyTorch
#                 reference), python3-sklearn (metric references), prometheus
#                 (promtool and a real server), chromium (the browser tests),
#                 curl and wrk (the server's tests and load test) and clang
#                 (libFuzzer, for fuzzing the request parser)
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev libcjson-dev libmicrohttpd-dev
      libpcre2-dev libgmime-3.0-dev zlib1g-dev libcsv-dev libssl-dev clang-format cppcheck libcmocka-dev
      bible-kjv dataset-fashion-mnist)
if [ "${1:-}" = "--with-torch" ]; then
  pkgs+=(python3-torch python3-numpy python3-sklearn prometheus chromium curl wrk clang)
fi
command -v npm >/dev/null || pkgs+=(nodejs npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm ci only when package-lock.json changed since the last install
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "install-deps: npm ci (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
fi
