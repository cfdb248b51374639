#!/usr/bin/env bash
# make bench: libmoe and its PyTorch twin (bench/torch_twin.py, the model of
# ../shared/anchors/torch_moe_cpu.py) side by side in one run, on the same
# machine and thread count. Prints a table and writes build/bench.json.
set -euo pipefail
build=${1:-build}
threads=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads
moe=$build/moe
out=$build/bench.json
: > "$out"
run() { echo "$1" | tee -a "$out" >&2; }

run "$("$build/sgemm_peak" 1024)"
run "$("$moe" bench --config configs/bench-moe.json --set train.threads="$threads")"
run "$(/usr/bin/python3 bench/torch_twin.py moe "$threads")"
run "$("$moe" bench --config configs/bench-dense.json --set train.threads="$threads")"
run "$(/usr/bin/python3 bench/torch_twin.py dense "$threads")"

/usr/bin/python3 - "$out" "$threads" <<'PY'
import json, sys, platform, datetime
rows = {r["name"]: r for r in map(json.loads, open(sys.argv[1]))}
peak = rows["sgemm"]["gflops"]
print(f"\nlibmoe vs PyTorch, {sys.argv[2]} threads, {datetime.date.today()}, sgemm peak {peak} GFLOP/s")
print(f"{'model':8} {'libmoe tok/s':>13} {'torch tok/s':>12} {'ratio':>6} {'libmoe RSS MB':>14} {'torch RSS MB':>13} {'libmoe GFLOP/s':>15} {'% of sgemm':>10}")
for m in ("moe", "dense"):
    a, b = rows[f"bench-{m}"], rows[f"torch-{m}"]
    print(f"{m:8} {a['tok_per_s']:>13.0f} {b['tok_per_s']:>12.0f} {a['tok_per_s']/b['tok_per_s']:>6.2f} "
          f"{a['peak_rss_mb']:>14.1f} {b['peak_rss_mb']:>13.1f} {a['gflops']:>15.1f} {100*a['gflops']/peak:>9.0f}%")
PY
