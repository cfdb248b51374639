#!/usr/bin/env bash
# Run HERE (the build machine, which reaches Debian's archive) before a GPU
# session: downloads the .debs the kernels-only build needs on the GPU
# machine, which can fetch nothing (OpenBLAS with OpenMP and its libgfortran,
# cmocka, cJSON). About 13 MB into build-gpu-deps/debs/ (git-ignored); pass that
# folder to the device tool's `carry`, then run scripts/gpu/check.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=build-gpu-deps/debs
mkdir -p "$dest"
cd "$dest"
apt-get download libopenblas0-openmp libopenblas-openmp-dev libopenblas-dev libgfortran5 \
  libcmocka0 libcmocka-dev libcjson1 libcjson-dev
ls -la
