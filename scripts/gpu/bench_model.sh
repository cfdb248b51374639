#!/usr/bin/env bash
# The whole GPU model against Hugging Face on the same GPU, one run:
# build/bench_model_gpu (bench/bench_model_gpu.c, Mixtral architecture,
# 1.19 B parameters) then bench/hf_mixtral_gpu.py (the anchor, copied from
# ../shared/anchors), and the ratio of training tokens/s (issue 7's target:
# at least 2x HF with grouped_mm).
#   OUT=dir scripts/gpu/bench_model.sh [build-dir]
set -euo pipefail
build=${1:-build}
out=${OUT:-$build}
mkdir -p "$out"
echo "== libmoe: $build/bench_model_gpu" >&2
"$build/bench_model_gpu" >"$out/bench_model_gpu.json"
echo "== Hugging Face: bench/hf_mixtral_gpu.py (log: $out/hf_mixtral_gpu.log)" >&2
rm -f "$out/hf_mixtral_gpu.json"
OUT="$out" python3 bench/hf_mixtral_gpu.py >"$out/hf_mixtral_gpu.log" 2>&1 ||
  { echo "the Hugging Face run failed; its log ends:" >&2; tail -n 5 "$out/hf_mixtral_gpu.log" >&2; }
python3 - "$out/bench_model_gpu.json" "$out/hf_mixtral_gpu.json" <<'PY'
import json, os, sys
ours = json.load(open(sys.argv[1]))
print(f"libmoe on {ours['gpu']}: {ours['params']/1e9:.2f} B parameters, {ours['precision']}, "
      f"batch {ours['batch']} x {ours['seq']}: {ours['train_step_ms']:.1f} ms/step, "
      f"{ours['train_tok_per_s']:.0f} tok/s, {ours['train_tflops']:.1f} TFLOP/s")
if not os.path.exists(sys.argv[2]):
    sys.exit(0)
hf = json.load(open(sys.argv[2]))
for impl, r in hf["results"].items():
    if "train_tok_per_s" in r:
        print(f"HF {impl:10}: {r['train_tok_per_s']:>8} tok/s -> libmoe is "
              f"{ours['train_tok_per_s'] / r['train_tok_per_s']:.2f}x")
    else:
        print(f"HF {impl:10}: {r.get('error', 'no result')}")
PY
