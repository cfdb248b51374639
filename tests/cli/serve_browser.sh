#!/usr/bin/env bash
# The dashboard `moe serve` serves at GET /, driven in headless Chromium: a
# tiny model is trained and served, then tests/browser/serve_dashboard.mjs
# enters a train-scope key, sees the model, starts a job from the "tiny"
# preset and follows its loss curve and expert utilization, cancels it,
# runs one inference with token chips and one generation, checks the
# keyboard path and WCAG AA contrast. Screenshot:
# $MOE_BUILD_DIR/test-output/dashboard.png.
source "$(dirname "$0")/lib.bash"
: "${MOE_BUILD_DIR:?}"
command -v node >/dev/null || fail "node is needed (scripts/install-deps.sh)"
[ -d node_modules/playwright-core ] || fail "node_modules missing: run npm ci in $(pwd)"

$MOE train --config configs/tiny.json --set out_dir="$WORK/runs" --set train.steps=20 \
  --set train.eval_every=0 --set train.sample_tokens=0 --quiet >"$WORK/train.out"
run=$(ls -d "$WORK"/runs/tiny-*)
[ -d "$run/checkpoints/best" ] || fail "training left no $run/checkpoints/best"

key=$($PY -c 'import secrets; print(secrets.token_hex(32))')
server_pid=
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

MOE_API_KEYS="dash:train:$key" $MOE serve --port 0 --port-file "$WORK/port" \
  --state-dir "$WORK/state" --configs-dir configs --data-dir . \
  --model "tiny=$run/checkpoints/best" 2>"$WORK/serve.err" &
server_pid=$!
for _ in $(seq 300); do
  [ -s "$WORK/port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$WORK/serve.err" >&2; fail "moe serve exited"; }
  sleep 0.1
done
[ -s "$WORK/port" ] || { cat "$WORK/serve.err" >&2; fail "moe serve wrote no port file in 30 s"; }
port=$(cat "$WORK/port")
url="http://127.0.0.1:$port/"

# the page and its files are there without a key, under the CSP
curl -sS -D "$WORK/head" -o "$WORK/index.html" "$url" || fail "GET / failed"
grep -qi '^content-type: text/html' "$WORK/head" || fail "GET / is not text/html"
grep -qi "^content-security-policy:.*default-src 'self'" "$WORK/head" || fail "GET / has no CSP"
for f in dashboard.js dashboard.css plotly.min.js; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' "${url}static/$f")
  [ "$code" = 200 ] || fail "GET /static/$f: $code"
done

shot=$MOE_BUILD_DIR/test-output/dashboard.png
mkdir -p "$(dirname "$shot")"
rm -f "$shot"
DASH_TIMEOUT_S=150 timeout 170 node tests/browser/serve_dashboard.mjs "$url" "$key" tiny "$shot" \
  >"$WORK/browser.out" 2>&1 || { cat "$WORK/browser.out"; tail -20 "$WORK/serve.err" >&2; fail "the dashboard test failed"; }
cat "$WORK/browser.out"
[ -s "$shot" ] || fail "no screenshot at $shot"

# the job the page started is on the server, ended as the page said
$PY - "$WORK/state" <<'PY'
import json, pathlib, sys
jobs = sorted(pathlib.Path(sys.argv[1], "jobs").glob("*/job.json"))
assert len(jobs) == 1, f"want the one job the page started, found {jobs}"
j = json.loads(jobs[0].read_text())
assert j.get("state") in ("cancelled", "completed"), j.get("state")
print(f"job {jobs[0].parent.name}: {j.get('state')}")
PY
stop_server
echo "1 passed, 0 failed"
