#!/usr/bin/env bash
# moe train --metrics-port: the exposition passes `promtool check metrics`,
# and a real Prometheus server scraping the training reads back routing
# metrics through its HTTP API.
source "$(dirname "$0")/lib.bash"
for tool in promtool prometheus; do
  command -v $tool >/dev/null || fail "$tool missing: run scripts/install-deps.sh (Debian's prometheus)"
done
free_port() { $PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
fetch() { $PY -c "import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" "$1"; }

$MOE train --config configs/tiny.json --set out_dir="$WORK/runs" --set train.steps=100000 \
  --set train.eval_every=0 --set train.checkpoint_every=0 --set train.sample_tokens=0 \
  --metrics-port 0 --quiet >"$WORK/train.out" 2>"$WORK/train.err" &
train_pid=$!
prom_pid=
cleanup() {
  kill -INT $train_pid 2>/dev/null || true
  [ -n "$prom_pid" ] && kill $prom_pid 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

port=
for _ in $(seq 100); do
  port=$(sed -n 's#^metrics: http://127.0.0.1:\([0-9]*\)/metrics$#\1#p' "$WORK/train.err")
  [ -n "$port" ] && break
  kill -0 $train_pid 2>/dev/null || { cat "$WORK/train.err" >&2; fail "training exited early"; }
  sleep 0.2
done
[ -n "$port" ] || fail "no 'metrics: http://127.0.0.1:PORT/metrics' line on stderr"

# the exposition, once training has logged a step, passes promtool
for _ in $(seq 100); do
  fetch "http://127.0.0.1:$port/metrics" >"$WORK/metrics.txt"
  grep -q '^moe_expert_fraction{layer="1",expert="3"}' "$WORK/metrics.txt" && break
  sleep 0.2
done
grep -q '^moe_expert_fraction{layer="1",expert="3"}' "$WORK/metrics.txt" ||
  fail "no per-expert routing metric in: $(head -c 2000 "$WORK/metrics.txt")"
promtool check metrics <"$WORK/metrics.txt" || fail "promtool check metrics rejected the exposition"
for name in moe_train_loss moe_grad_norm moe_learning_rate moe_tokens_per_second moe_load_cv \
            moe_router_entropy moe_step_seconds_bucket moe_alerts_total moe_memory_rss_bytes; do
  grep -q "^$name" "$WORK/metrics.txt" || fail "$name missing from /metrics"
done
code=$($PY -c "import sys,urllib.request,urllib.error
try: urllib.request.urlopen(sys.argv[1], timeout=5); print(200)
except urllib.error.HTTPError as e: print(e.code)" "http://127.0.0.1:$port/nothing")
[ "$code" = 404 ] || fail "GET /nothing answered $code, want 404"

# a real Prometheus scrapes it every second
pport=$(free_port)
cat >"$WORK/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: moe
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$WORK/prom.log" 2>&1 &
prom_pid=$!
ok=
for _ in $(seq 120); do
  if fetch "http://127.0.0.1:$pport/api/v1/query?query=moe_expert_fraction" >"$WORK/q.json" 2>/dev/null &&
     $PY - "$WORK/q.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "success"
series = r["data"]["result"]
assert len(series) == 8, len(series)  # 2 MoE layers x 4 experts
by_layer = {}
for s in series:
    m = s["metric"]
    assert m["job"] == "moe" and m["__name__"] == "moe_expert_fraction"
    v = float(s["value"][1])
    assert 0 <= v <= 1, v
    by_layer.setdefault(m["layer"], {})[m["expert"]] = v
assert sorted(by_layer) == ["0", "1"], by_layer
for layer, shares in by_layer.items():
    assert sorted(shares) == ["0", "1", "2", "3"], shares
    assert abs(sum(shares.values()) - 1) < 1e-6, shares  # one scrape: shares of one step
PY
  then ok=1; break; fi
  kill -0 $prom_pid 2>/dev/null || { cat "$WORK/prom.log" >&2; fail "prometheus exited"; }
  sleep 0.5
done
[ -n "$ok" ] || { cat "$WORK/q.json" >&2; tail -5 "$WORK/prom.log" >&2; fail "Prometheus never returned the routing metric"; }
# a counter Prometheus can rate(): tokens seen grows between scrapes
rate_ok=
for _ in $(seq 20); do
  fetch "http://127.0.0.1:$pport/api/v1/query?query=rate(moe_tokens_total%5B5s%5D)" >"$WORK/rate.json"
  $PY -c "import json,sys; r=json.load(open(sys.argv[1]))['data']['result']; assert r and float(r[0]['value'][1]) > 0, r" \
    "$WORK/rate.json" 2>/dev/null && { rate_ok=1; break; }
  sleep 0.5
done
[ -n "$rate_ok" ] || fail "rate(moe_tokens_total[5s]) is not positive: $(cat "$WORK/rate.json")"

# the port in use: a clear error
expect_fail "port in use" $MOE train --config configs/tiny.json --set out_dir="$WORK/runs2" \
  --metrics-port "$port" --quiet
expect_err "port $port"
echo "1 passed, 0 failed"
