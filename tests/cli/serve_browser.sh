#!/usr/bin/env bash
# The dashboard `moe serve` serves at GET /, driven in headless Chromium: a
# tiny model is trained and served, then tests/browser/serve_dashboard.mjs
# enters a train-scope key, sees the model, starts a job from the "tiny"
# preset and follows its loss curve and expert utilization, cancels it,
# runs one inference with token chips and one generation, checks the
# keyboard path and WCAG AA contrast. Screenshot:
# $MOE_BUILD_DIR/test-output/dashboard.png.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/serve_lib.bash"
: "${MOE_BUILD_DIR:?}"
command -v node >/dev/null || fail "node is needed (scripts/install-deps.sh)"
[ -d node_modules/playwright-core ] || fail "node_modules missing: run npm ci in $(pwd)"

trap 'exit 1' INT TERM

model=$(serve_tiny_model)
key=$(random_key)
MOE_API_KEYS="dash:train:$key" serve_start --state-dir "$WORK/state" --configs-dir configs \
  --data-dir . --model "tiny=$model"
url="$URL/"

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
  >"$WORK/browser.out" 2>&1 || { cat "$WORK/browser.out"; tail -20 "$WORK/server.log" >&2; fail "the dashboard test failed"; }
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
serve_stop
echo "1 passed, 0 failed"
