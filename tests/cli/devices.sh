#!/usr/bin/env bash
# moe devices: one JSON object that agrees with the build (CMakeCache) and
# with the machine (nvidia-smi): either GPUs are listed, or the reason why not.
source "$(dirname "$0")/lib.bash"
"$MOE" devices >"$WORK/d.json" || fail "moe devices exited non-zero"
json_get "$WORK/d.json" "j['cpu']['threads'] >= 1" | grep -qx True || fail "cpu.threads"
built=$(json_get "$WORK/d.json" "j['cuda']['built']")
# What CMake decided (nvcc found, not the sanitizer build): the binary must agree.
if grep -q '^MOE_CUDA_BUILT:INTERNAL=ON' "$MOE_BUILD_DIR/CMakeCache.txt"; then
  [ "$built" = True ] || fail "nvcc was found at configure time but cuda.built is $built"
  json_get "$WORK/d.json" "j['cuda']['architectures'] != '' and '.' in j['cuda']['runtime']" |
    grep -qx True || fail "architectures/runtime missing: $(cat "$WORK/d.json")"
else
  [ "$built" = False ] || fail "no CUDA in this build but cuda.built is $built"
fi
n=$(json_get "$WORK/d.json" "len(j['cuda']['gpus'])")
if [ "$n" = 0 ]; then
  json_get "$WORK/d.json" "len(j['cuda']['no_gpu_because']) > 10" | grep -qx True ||
    fail "no GPU listed and no reason given: $(cat "$WORK/d.json")"
elif ! command -v nvidia-smi >/dev/null; then
  fail "GPUs listed on a machine without nvidia-smi: $(cat "$WORK/d.json")"
fi
if [ "$built" = True ] && command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; then
  [ "$n" -ge 1 ] || fail "nvidia-smi lists a GPU but moe devices lists none: $(cat "$WORK/d.json")"
fi
expect_fail "an extra argument" "$MOE" devices extra
expect_err "unexpected argument 'extra'"
echo "ok: built=$built gpus=$n"
