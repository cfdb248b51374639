#!/usr/bin/env bash
# The spec's efficiency case, measured: MoE models against dense models of
# the same active FLOPs and of the same parameters, on the spam classifier
# and on the Bible language model. Trains each config (same steps, same
# data, same seed) and prints a markdown table from each run's
# model_info.json and results.json. BENCHMARKS.md records a run of it.
# Usage: scripts/efficiency.sh [BUILD_DIR] [spam|lm|all]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
which=${2:-all}
out=runs/efficiency
mkdir -p "$out"
train() { # config -> its new run directory
  "$build/moe" train --config "$1" --set out_dir="$out" --quiet >/dev/null
  ls -d "$out/$(basename "$1" .json)"-2* | tail -n1 # -2: the timestamp, so spam-dense is not spam-dense-wide
}
table() { # quality_key run...
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
key, runs = sys.argv[1], sys.argv[2:]
rows = []
for r in runs:
    info, res = json.load(open(r + "/model_info.json")), json.load(open(r + "/results.json"))
    q = res["test"]["macro_f1"] if key == "test_macro_f1" else res["best_val_loss"]
    rows.append((info["name"], info["params"], info["active_params"],
                 info["flops_per_token_active"], q, res["tokens_per_s"], res["elapsed_s"]))
base = rows[0][3]
print(f"| model | params | active params | forward FLOPs/token | vs first | {key} | train tok/s | time s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for n, p, a, f, q, tps, t in rows:
    print(f"| {n} | {p:,} | {a:,} | {f/1e6:.2f} M | {f/base:.2f}x | {q:.4f} | {tps:,.0f} | {t:.0f} |")
PY
}
study() { # title quality_key config...
  local title=$1 key=$2 runs=()
  shift 2
  for c in "$@"; do runs+=("$(train "$c")"); done
  echo "### $title"
  table "$key" "${runs[@]}"
}
if [ "$which" = spam ] || [ "$which" = all ]; then
  study "Spam classification (test split)" test_macro_f1 \
    configs/spam-moe.json configs/spam-dense.json configs/spam-dense-wide.json
fi
if [ "$which" = lm ] || [ "$which" = all ]; then
  study "Bible language model (validation loss, nats/byte)" best_val_loss \
    configs/bible-moe.json configs/bible-dense.json configs/bible-dense-wide.json
fi
