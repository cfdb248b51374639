#!/usr/bin/env bash
# --device and --precision on moe train and moe bench: each value reaches the
# config, bad values and configs the GPU does not train are refused with a
# message naming the key, and on a machine without a GPU (CI) asking for cuda
# fails before a run directory is made, saying why.
source "$(dirname "$0")/lib.bash"
tiny=(--config configs/tiny.json --set out_dir="$WORK/runs" --quiet)

$MOE train "${tiny[@]}" --device cuda --precision fp32 --print-config >"$WORK/cfg.json"
[ "$(json_get "$WORK/cfg.json" "j['train']['device'] + ' ' + j['train']['precision']")" = "cuda fp32" ] ||
  fail "--device/--precision did not reach the config: $(grep -E 'device|precision' "$WORK/cfg.json")"
$MOE train "${tiny[@]}" --print-config >"$WORK/cfg.json"
[ "$(json_get "$WORK/cfg.json" "j['train']['device']")" = cpu ] || fail "default device is not cpu"

expect_fail "--device tpu" "$MOE" train "${tiny[@]}" --device tpu
expect_err "train.device"
expect_err "tpu"
expect_fail "--precision fp16" "$MOE" bench --config configs/tiny.json --device cuda --precision fp16
expect_err "train.precision"

# configs the GPU does not train: refused by name, before any GPU is touched
# (a build without the backend, such as the sanitizer build, says that instead)
built=$("$MOE" devices | $PY -c "import json,sys; print(json.load(sys.stdin)['cuda']['built'])")
refused() { # refused "what" "expected message with the backend" args...
  local what=$1 msg=$2; shift 2
  expect_fail "$what" "$@"
  if [ "$built" = True ]; then expect_err "$msg"; else expect_err "built without the CUDA backend"; fi
}
refused "cuda with sgd" "train.optim.kind must be adamw" \
  "$MOE" train "${tiny[@]}" --device cuda --set train.optim.kind=sgd
refused "cuda with dropout" "model.dropout" \
  "$MOE" train "${tiny[@]}" --device cuda --set model.dropout=0.1
refused "cuda with an encoder task" "train.task lm" "$MOE" train --config configs/tiny-spam.json \
  --set out_dir="$WORK/runs" --quiet --device cuda

gpus=$("$MOE" devices | $PY -c "import json,sys; print(len(json.load(sys.stdin)['cuda']['gpus']))")
if [ "$gpus" = 0 ]; then
  why=$("$MOE" devices | $PY -c "import json,sys; print(json.load(sys.stdin)['cuda']['no_gpu_because'])")
  expect_fail "train on a missing GPU" "$MOE" train "${tiny[@]}" --device cuda
  grep -qE "no CUDA device|built without the CUDA backend" "$WORK/err" ||
    { cat "$WORK/err" >&2; fail "the error does not say why there is no GPU"; }
  [ ! -e "$WORK/runs" ] || [ -z "$(ls -A "$WORK/runs")" ] ||
    fail "a failed --device cuda left a run directory: $(ls "$WORK/runs")"
  expect_fail "bench on a missing GPU" "$MOE" bench --config configs/tiny.json --steps 3 --device cuda
  grep -qE "no CUDA device|built without the CUDA backend" "$WORK/err" ||
    { cat "$WORK/err" >&2; fail "bench: the error does not say why there is no GPU"; }
  echo "ok: no GPU here ($why); cuda refused with the reason"
else
  "$MOE" bench --config configs/tiny.json --steps 4 --device cuda >"$WORK/bench.json"
  json_get "$WORK/bench.json" "j['device'] != 'cpu' and j['tok_per_s'] > 0" | grep -qx True ||
    fail "bench --device cuda: $(cat "$WORK/bench.json")"
  echo "ok: $gpus GPU(s); bench ran on $(json_get "$WORK/bench.json" "j['device']")"
fi
# the CPU bench names its device too
"$MOE" bench --config configs/tiny.json --steps 3 >"$WORK/cpu.json"
[ "$(json_get "$WORK/cpu.json" "j['device'] + ' ' + j['precision']")" = "cpu fp32" ] ||
  fail "cpu bench: $(cat "$WORK/cpu.json")"

# The whole --device cuda path (trainer, GPU transformer, MoE layers, sync
# for evaluation and checkpoints, resume) on the EMULATED device (build/moe-emu:
# the CUDA launchers replaced by host code, docs/cuda.md): it proves the wiring
# on every machine, not the kernels. fp32, so it must follow the CPU run.
[ -x "${MOE_EMU:-}" ] || { echo "no moe-emu: skipping the emulated run"; exit 0; }
short=(--config configs/tiny.json --set train.steps=12 --set train.eval_every=6
  --set train.checkpoint_every=6 --set train.log_every=3 --set train.sample_tokens=8 --quiet
  --set model.moe.capacity_factor=0) # dropless: a decode step and a window route alike
"$MOE" train "${short[@]}" --set out_dir="$WORK/cpu" >/dev/null
"$MOE_EMU" train "${short[@]}" --set out_dir="$WORK/emu" --device cuda --precision fp32 >/dev/null
cpu=$(ls -d "$WORK"/cpu/tiny-*) emu=$(ls -d "$WORK"/emu/tiny-*)
for f in checkpoints/latest/model.safetensors checkpoints/best/model.safetensors report.html; do
  [ -e "$emu/$f" ] || fail "emulated cuda run lacks $f"
done
$PY - "$cpu" "$emu" <<'PY'
import json, sys
def curve(run, kind, key):
    return [r[key] for r in map(json.loads, open(run + "/metrics.jsonl")) if r["kind"] == kind]
cpu, emu = sys.argv[1], sys.argv[2]
res = json.load(open(emu + "/results.json"))
assert "emulat" in res["device"] and "fp32" in res["device"], res["device"]
for kind, key in (("train", "train_loss"), ("eval", "val_loss")):
    a, b = curve(cpu, kind, key), curve(emu, kind, key)
    assert len(a) == len(b) and len(a) >= 3, (kind, a, b)
    worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
    assert worst < 1e-4, f"{key}: cpu {a} vs emulated cuda {b} (worst relative {worst:.2e})"
    print(f"{key}: cpu and emulated cuda agree to {worst:.1e} over {len(a)} points")
frac = [r for r in map(json.loads, open(emu + "/metrics.jsonl")) if r["kind"] == "train"][-1]
assert abs(sum(frac["expert_fraction"]["0"].values()) - 1) < 1e-6, frac["expert_fraction"]
PY
# resume on the device from the checkpoint the device run wrote
"$MOE_EMU" train --resume "$emu/checkpoints/step-000006" --set train.steps=12 --quiet \
  --device cuda --precision fp32 >/dev/null
"$MOE_EMU" bench --config configs/tiny.json --steps 3 --device cuda >"$WORK/emu_bench.json"
json_get "$WORK/emu_bench.json" "'emulat' in j['device'] and j['tok_per_s'] > 0" | grep -qx True ||
  fail "emulated bench: $(cat "$WORK/emu_bench.json")"
# moe eval --device cuda: the same validation windows give the CPU's loss
ev=(--checkpoint "$cpu/checkpoints/latest" --batches 2 --large-batch 8 --latency-seqs 4)
if [ "$gpus" = 0 ]; then
  expect_fail "eval on a missing GPU" "$MOE" eval "${ev[@]}" --device cuda
  grep -qE "no CUDA device|built without the CUDA backend" "$WORK/err" ||
    { cat "$WORK/err" >&2; fail "eval: the error does not say why there is no GPU"; }
fi
"$MOE" eval "${ev[@]}" >"$WORK/eval_cpu.json"
"$MOE_EMU" eval "${ev[@]}" --device cuda --precision fp32 >"$WORK/eval_emu.json"
$PY - "$WORK/eval_cpu.json" "$WORK/eval_emu.json" <<'PY'
import json, sys
cpu, emu = (json.load(open(f)) for f in sys.argv[1:3])
assert abs(cpu["val_loss"] - emu["val_loss"]) < 1e-5 * cpu["val_loss"], (cpu["val_loss"], emu["val_loss"])
assert "emulat" in emu["device"] and emu["tokens_per_s_large_batch"] > 0, emu
assert emu["generate_ms_per_token"] is None and emu["latency_ms_per_token_p50"] > 0, emu
print(f"eval --device cuda (emulated): val_loss {emu['val_loss']:.6f}, cpu {cpu['val_loss']:.6f}")
PY
# moe generate --device cuda: greedy decoding past the 64-token window (so
# the window slides) gives the CPU's text
gen=(--checkpoint "$cpu/checkpoints/latest" --prompt "In the beginning" --tokens 90 --temperature 0)
"$MOE" generate "${gen[@]}" >"$WORK/gen_cpu.txt"
"$MOE_EMU" generate "${gen[@]}" --device cuda --precision fp32 >"$WORK/gen_emu.txt"
cmp -s "$WORK/gen_cpu.txt" "$WORK/gen_emu.txt" ||
  fail "generate --device cuda differs: cpu '$(cat "$WORK/gen_cpu.txt")' emulated '$(cat "$WORK/gen_emu.txt")'"
[ "$(wc -c <"$WORK/gen_cpu.txt")" -eq $((16 + 90 + 1)) ] || fail "generated length"
expect_fail "generate --device tpu" "$MOE" generate "${gen[@]}" --device tpu
expect_err "--device is cpu or cuda"
echo "ok: emulated cuda training follows the CPU"
# bf16 on the emulated device: the same wiring with bf16 storage; the curve
# stays near the CPU's (bf16 rounding, not a bug, is the difference)
"$MOE_EMU" train "${short[@]}" --set out_dir="$WORK/emu16" --device cuda >/dev/null
$PY - "$cpu" "$(ls -d "$WORK"/emu16/tiny-*)" <<'PY'
import json, sys
def curve(run):
    return [r["val_loss"] for r in map(json.loads, open(run + "/metrics.jsonl")) if r["kind"] == "eval"]
a, b = curve(sys.argv[1]), curve(sys.argv[2])
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
assert len(a) == len(b) and worst < 3e-2, f"bf16: cpu {a} vs emulated cuda {b}"
assert "bf16" in json.load(open(sys.argv[2] + "/results.json"))["device"]
print(f"bf16 val_loss: within {worst:.1e} of the CPU run")
PY
