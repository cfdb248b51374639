#!/usr/bin/env bash
# conv2d forward + backward, libmoe and PyTorch side by side on the shapes the
# CNN families use (batch 64): BENCHMARKS.md, "Vision ops". Usage:
# scripts/bench_conv.sh [BUILD]   (run on a quiet machine; nothing else busy)
set -euo pipefail
BUILD=${1:-build}
for shape in 64,1,28,28,32,3,1,1,1 64,32,14,14,64,3,1,1,1 64,64,7,7,128,3,1,1,1 \
             64,128,3,3,128,3,1,1,128 64,128,3,3,128,1,1,0,1; do
  OMP_NUM_THREADS=2 "$BUILD/conv2d_step" "$shape"
  /usr/bin/python3 bench/conv2d_torch.py "$shape"
done
