#!/usr/bin/env bash
# The GPU MoE layer against PyTorch on the same GPU, one run: build/bench_moe_gpu
# (libmoe, bench/bench_moe_gpu.c) then bench/torch_moe_gpu.py (the anchor
# script, copied from ../shared/anchors), and a table of the ratios.
#   scripts/gpu/bench_layer.sh [build-dir]
# Writes bench_moe_gpu.json, torch_moe_gpu.json and torch_moe_gpu.log into
# $OUT (default: the build directory). A failed PyTorch run (no torch, no
# torch._grouped_mm) still prints the libmoe side.
set -euo pipefail
build=${1:-build}
out=${OUT:-$build}
mkdir -p "$out"
ours=$out/bench_moe_gpu.json
theirs=$out/torch_moe_gpu.json

echo "== libmoe: $build/bench_moe_gpu" >&2
"$build/bench_moe_gpu" > "$ours"
echo "== PyTorch: bench/torch_moe_gpu.py (log: $out/torch_moe_gpu.log)" >&2
rm -f "$theirs"
if ! OUT="$out" python3 bench/torch_moe_gpu.py > "$out/torch_moe_gpu.log" 2>&1; then
    echo "PyTorch run failed; its log ends:" >&2
    tail -n 5 "$out/torch_moe_gpu.log" >&2
fi

python3 - "$ours" "$theirs" <<'PY'
import json, os, sys
ours = json.load(open(sys.argv[1]))
theirs = json.load(open(sys.argv[2])) if os.path.exists(sys.argv[2]) else None
print(f"\n{ours['gpu']}: bf16 GEMM ceiling {ours['bf16_gemm_tflops']} TFLOP/s (libmoe/cuBLAS)"
      + (f", {theirs['bf16_gemm_tflops']} (torch {theirs['torch']})" if theirs else ""))
# the anchor script's copy_gbs divides bytes per ms by 1e9 (TB/s); ours is GB/s
trow = {r["name"]: r for r in theirs["results"]} if theirs else {}
def cell(r, v, key):
    return r[v][key] if r and v in r else float("nan")
hdr = (f"{'shape':13} {'':18} {'fwd TFLOP/s':>11} {'f+b TFLOP/s':>11} {'train tok/s':>12}"
       f" {'libmoe/this':>11}")
print(hdr)
for r in ours["results"]:
    t = trow.get(r["name"])
    rows = [("libmoe", r, "libmoe"), ("libmoe dense", r, "dense_same_active"),
            ("torch grouped_mm", t, "grouped_mm"), ("torch loop", t, "loop"),
            ("torch dense", t, "dense_same_active")]
    ref = r["libmoe"]["train_tok_per_s"]
    for i, (label, src, v) in enumerate(rows):
        tok = cell(src, v, "train_tok_per_s") or float("nan")
        print(f"{r['name'] if i == 0 else '':13} {label:18} {cell(src, v, 'fwd_tflops'):>11.1f}"
              f" {cell(src, v, 'fwdbwd_tflops'):>11.1f} {tok:>12.0f} {ref / tok:>10.2f}x")
    dense = r["dense_same_active"]["train_tok_per_s"]
    share = f"{100 * ref / dense:.0f}%" if dense else "n/a"
    print(f"{'':13} rows {r['rows']}, dropped {r['dropped']}, busiest expert {r['max_load']:.2f}x"
          f" its balanced share; libmoe at {share} of its dense ceiling (fwd+bwd)")
PY
