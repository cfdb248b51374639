#!/usr/bin/env bash
# Run ON THE GPU MACHINE (docs/cuda.md, "Checking on a GPU"), from the
# repository root, with build-gpu-deps/ carried over (scripts/gpu/fetch-deps.sh):
#   scripts/gpu/check.sh [tests|sanitize|bench|all]   (default: all)
# tests:    builds the kernels-only tree and runs the GPU tests (ctest -L cuda)
# sanitize: compute-sanitizer memcheck and racecheck on every GPU test
# bench:    the MoE layer beside PyTorch (scripts/gpu/bench_layer.sh) and the
#           whole model beside Hugging Face (scripts/gpu/bench_model.sh)
# Logs and JSON go to $OUT (the device tool brings that folder back).
set -uo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}
OUT=${OUT:-build-gpu/out}
mkdir -p "$OUT"
rc=0
log() { printf '\n== %s\n' "$*" | tee -a "$OUT/summary.txt"; }

log "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv \
  2>&1 | tee -a "$OUT/summary.txt"
nvcc --version | tail -2 | tee -a "$OUT/summary.txt"

root=build-gpu-deps/root
if [ ! -d "$root/usr" ]; then
  ls build-gpu-deps/debs/*.deb >/dev/null 2>&1 || {
    echo "build-gpu-deps/debs/ is missing: run scripts/gpu/fetch-deps.sh here and carry build-gpu-deps"
    exit 2
  }
  mkdir -p "$root"
  for deb in build-gpu-deps/debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$root"
    else # ar + tar: a .deb is an ar archive holding data.tar.*
      tmp=$(mktemp -d) && (cd "$tmp" && ar x "$OLDPWD/$deb") && tar -xf "$tmp"/data.tar.* -C "$root"
      rm -rf "$tmp"
    fi
  done
fi

log "build (kernels only)"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B build-gpu "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMOE_KERNELS_ONLY=ON \
  -DMOE_DEPS_PREFIX="$PWD/$root" >"$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }

if [ "$what" = tests ] || [ "$what" = all ]; then
  log "GPU tests"
  ctest --test-dir build-gpu -L cuda --output-on-failure -j 1 >"$OUT/ctest.log" 2>&1 || rc=1
  grep -E "Test +#|tests passed|rel.err" "$OUT/ctest.log" | tail -60 | tee -a "$OUT/summary.txt"
fi
if [ "$what" = sanitize ] || [ "$what" = all ]; then
  for tool in memcheck racecheck; do
    log "compute-sanitizer $tool"
    for t in build-gpu/test_cuda_*; do
      [ -x "$t" ] || continue
      if compute-sanitizer --tool "$tool" --error-exitcode 9 "$t" >"$OUT/$tool-$(basename "$t").log" 2>&1; then
        echo "$(basename "$t"): clean" | tee -a "$OUT/summary.txt"
      else
        rc=1
        echo "$(basename "$t"): FAILED (see $tool-$(basename "$t").log)" | tee -a "$OUT/summary.txt"
        grep -m 5 -E "=========.*(Invalid|race|Error)" "$OUT/$tool-$(basename "$t").log" | tee -a "$OUT/summary.txt"
      fi
    done
  done
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  log "MoE layer benchmark beside PyTorch"
  OUT="$OUT" scripts/gpu/bench_layer.sh build-gpu 2>&1 | tee -a "$OUT/summary.txt" || rc=1
  log "whole-model benchmark beside Hugging Face"
  OUT="$OUT" scripts/gpu/bench_model.sh build-gpu 2>&1 | tee -a "$OUT/summary.txt" || rc=1
fi
log "exit $rc"
exit $rc
