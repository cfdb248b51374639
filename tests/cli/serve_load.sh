#!/usr/bin/env bash
# Load on loopback, bounded in time: wrk drives /v1/infer over 64
# connections for a few seconds. Under 1% of the answers may fail (errors:
# sockets, timeouts, non-2xx), the server stays healthy, and the requests
# really were batched (moe_serve_batch_size saw forwards of more than one
# request), and promtool accepts the exposition. No timing is asserted: throughput and latency are benchmarks
# (scripts/bench_serve.sh, BENCHMARKS.md).
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/serve_lib.bash"
command -v wrk >/dev/null || fail "wrk is needed (scripts/install-deps.sh --with-torch)"

model=$(serve_tiny_model)
export MOE_BENCH_KEY=$(random_key)
export MOE_API_KEYS="load:infer:$MOE_BENCH_KEY"
export MOE_BENCH_BODY='{"model": "tiny", "text": "In the beginning God created the heaven and the earth."}'
serve_start --model tiny="$model" --state-dir "$WORK/state" --threads 4

wrk -t2 -c64 -d"${MOE_LOAD_SECONDS:-3}s" --timeout 20s -s scripts/serve/infer.lua "$URL/v1/infer" \
  >"$WORK/wrk.out" || fail "wrk failed: $(cat "$WORK/wrk.out")"
tail -n 1 "$WORK/wrk.out" >"$WORK/wrk.json"
$PY - "$WORK/wrk.json" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))
n = w["requests"]
errors = sum(v for k, v in w.items() if k.startswith("errors_"))
assert n >= 64, f"only {n} requests completed: {w}"
assert errors <= 0.01 * n, f"{errors} errors in {n} requests (over 1%): {w}"
print(f"{n} requests, {errors} errors")
PY

code=$(curl -s -o "$WORK/health" -w '%{http_code}' "$URL/healthz")
[ "$code" = 200 ] || fail "/healthz after the load: $code $(cat "$WORK/health")"
curl -sf -H "Authorization: Bearer $MOE_BENCH_KEY" "$URL/metrics" >"$WORK/metrics" ||
  fail "GET /metrics failed"
promtool check metrics <"$WORK/metrics" || fail "promtool rejects the server's /metrics"
$PY - "$WORK/metrics" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def value(pattern):
    m = re.search(pattern, text, re.M)
    assert m, f"no line matches {pattern}"
    return float(m.group(1))
forwards = value(r'^moe_serve_batch_size_count\{model="tiny"\} (\S+)$')
single = value(r'^moe_serve_batch_size_bucket\{model="tiny",le="1"\} (\S+)$')
requests = value(r'^moe_serve_requests_total\{endpoint="/v1/infer",method="POST",status="200"\} (\S+)$')
assert forwards > single, f"no forward merged two requests ({forwards} forwards, all of one)"
assert requests > forwards, f"{requests} answers from {forwards} forwards: nothing was batched"
print(f"{requests:.0f} answers from {forwards:.0f} forwards")
PY
serve_stop
echo "1 passed, 0 failed"
