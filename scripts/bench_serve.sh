#!/usr/bin/env bash
# The serving load test: `moe serve` on loopback under wrk at 1, 8 and 64
# connections, with request batching (the default) and with batch-1 serving
# (--max-batch 1), each for a bounded time. Prints a table (requests/s,
# p50/p99 latency, error rate) and writes build/bench_serve.json.
# Usage: scripts/bench_serve.sh [build] [seconds per point]
# The model: configs/bible-moe.json's network (4 layers, 8 experts top-2,
# byte-level), trained for a few steps (speed does not depend on the weights
# beyond routing); each request is LEN bytes of Genesis, for LEN in 128 and
# 16 (long requests are compute-bound already; short ones show the per-request
# overhead that batching shares).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
secs=${2:-10}
moe=$build/moe
out=$build/bench_serve.json
work=$(mktemp -d /tmp/moe-bench-serve.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
command -v wrk >/dev/null || { echo "bench_serve: wrk is needed (scripts/install-deps.sh --with-torch)" >&2; exit 1; }

echo "bench_serve: training the model (a few steps)" >&2
"$moe" train --config configs/bible-moe.json --set out_dir="$work/runs" --set train.steps=20 --set train.sched.warmup_steps=2 \
  --set train.eval_every=0 --set train.sample_tokens=0 --set train.checkpoint_every=0 --quiet >/dev/null
ckpt=$(ls -d "$work"/runs/bible-moe-*/checkpoints/latest)

key=$(openssl rand -hex 24)
export MOE_API_KEYS="bench:infer:$key" MOE_BENCH_KEY=$key
genesis=$(bible -f "Gen1:1-2" | tr '\n' ' ')
: >"$out"

serve() { # serve <max batch>: starts the server, waits for its port
  rm -f "$work/port"
  "$moe" serve --model bible="$ckpt" --port 0 --port-file "$work/port" --state-dir "$work/state" \
    --max-batch "$1" --threads 8 --max-queue 4096 2>"$work/serve.err" &
  pid=$!
  for _ in $(seq 300); do [ -s "$work/port" ] && return; sleep 0.1; done
  cat "$work/serve.err" >&2; echo "bench_serve: the server did not start" >&2; exit 1
}

for mode in ${MODES:-batch1 batched}; do
  if [ $mode = batched ]; then serve 32; else serve 1; fi
  port=$(cat "$work/port")
  for len in 128 16; do
    export MOE_BENCH_BODY="{\"model\":\"bible\",\"text\":\"${genesis:0:$len}\"}"
    curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      -d "$MOE_BENCH_BODY" "http://127.0.0.1:$port/v1/infer" >/dev/null
    wrk -t1 -c1 -d2s -s scripts/serve/infer.lua "http://127.0.0.1:$port/v1/infer" >/dev/null # warm up
    for c in 1 8 64; do
      t=$((c < 2 ? c : 2))
      line=$(wrk -t"$t" -c"$c" -d"${secs}s" --timeout 10s -s scripts/serve/infer.lua \
        "http://127.0.0.1:$port/v1/infer" | tail -n 1)
      echo "{\"mode\":\"$mode\",\"tokens\":$len,\"connections\":$c,\"seconds\":$secs,\"wrk\":$line}" |
        tee -a "$out" >&2
    done
  done
  kill -TERM "$pid"; wait "$pid" || true; pid=
done

/usr/bin/python3 - "$out" <<'PY'
import json, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\nmoe serve under wrk, {datetime.date.today()}, POST /v1/infer")
print(f"{'tokens':>6} {'mode':8} {'conns':>5} {'req/s':>8} {'tok/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
for r in sorted(rows, key=lambda r: (-r["tokens"], r["mode"], r["connections"])):
    w = r["wrk"]
    n = w["requests"]
    err = sum(v for k, v in w.items() if k.startswith("errors_"))
    rps = n / (w["duration_us"] / 1e6)
    print(f"{r['tokens']:>6} {r['mode']:8} {r['connections']:>5} {rps:>8.1f} {rps*r['tokens']:>8.0f} {w['p50_us']/1e3:>8.2f} "
          f"{w['p99_us']/1e3:>8.2f} {100*err/max(n,1):>6.2f}%")
PY
