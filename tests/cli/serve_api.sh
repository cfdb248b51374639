#!/usr/bin/env bash
# moe serve end to end: every endpoint with curl, and every error path
# (missing, wrong and under-scoped keys, malformed and mistyped JSON, unknown
# fields, oversize bodies, wrong content type, unknown models, path
# traversal in model names and job ids, unknown paths, wrong methods, a
# cancel of a finished job). Then the audit log has one line per request
# with the right statuses and no key material, /metrics counts exactly the
# requests made, and /openapi.json is the document in the source tree.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/serve_lib.bash"

model=$(serve_tiny_model)

# two keys from `moe key new`: the keys file holds their hashes only
$MOE key new --id reader --scope infer >"$WORK/k1"
$MOE key new --id trainer --scope train >"$WORK/k2"
IK=$(sed -n 1p "$WORK/k1")
TK=$(sed -n 1p "$WORK/k2")
[ ${#IK} = 64 ] || fail "moe key new printed a key of ${#IK} characters, want 64"
{ echo "# test keys"; sed -n 2p "$WORK/k1"; sed -n 2p "$WORK/k2"; } >"$WORK/keys"
grep -q "$IK" "$WORK/keys" && fail "the keys file holds a key in clear"
WRONG=$(echo "$IK" | tr 0-9a-f 1-9a-f0)

# plotly.js is served when one can be found (npm ci), else /static/plotly.min.js is 404
plotly_status=404
if [ -n "${MOE_PLOTLY_JS:-}" ] && [ -r "$MOE_PLOTLY_JS" ]; then
  plotly_status=200
elif [ -r node_modules/plotly.js-dist-min/plotly.min.js ]; then
  export MOE_PLOTLY_JS=$PWD/node_modules/plotly.js-dist-min/plotly.min.js
  plotly_status=200
else
  export MOE_PLOTLY_JS=/nonexistent/plotly.min.js
fi

MAX_BODY=65536
unset MOE_API_KEYS
serve_start --model tiny="$model" --keys "$WORK/keys" --state-dir "$WORK/state" --data-dir . \
  --configs-dir configs --max-body $MAX_BODY --threads 2
BASE=$URL
grep -q "moe serve: listening on http://127.0.0.1:$PORT" "$WORK/server.log" ||
  fail "no 'listening on' line: $(cat "$WORK/server.log")"

# call LABEL KEYID WANT METHOD PATH [curl args]: one request; the status must
# be WANT; body in $WORK/body, headers in $WORK/headers. LABEL and KEYID are
# what the metrics and the audit log must say about it.
EXPECT="$WORK/expect.txt"
: >"$EXPECT"
JSON=(-H 'Content-Type: application/json')
AI=(-H "Authorization: Bearer $IK")
AT=(-H "Authorization: Bearer $TK")
call() {
  local label=$1 keyid=$2 want=$3 method=$4 path=$5 code
  shift 5
  code=$(curl -sS --path-as-is -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' \
    -X "$method" "$@" "$BASE$path") || fail "$method $path: curl failed"
  echo "$label $method $code $keyid" >>"$EXPECT"
  [ "$code" = "$want" ] || fail "$method $path: status $code, want $want: $(head -c 600 "$WORK/body")"
  grep -qi '^X-Content-Type-Options: nosniff' "$WORK/headers" || fail "$method $path: no nosniff"
  grep -qi "^Content-Security-Policy: default-src 'self'" "$WORK/headers" || fail "$method $path: no CSP"
  if [ "${path:0:3}" = /v1 ]; then
    grep -qi '^Cache-Control: no-store' "$WORK/headers" || fail "$method $path: /v1 must be no-store"
  fi
  if [ "$code" -ge 400 ]; then # every error: {"error": {"status", "field", "message"}}
    $PY - "$WORK/body" "$code" <<'PY' || fail "$method $path: bad error body: $(cat "$WORK/body")"
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert e["status"] == int(sys.argv[2]) and isinstance(e["field"], str) and e["message"], e
PY
  fi
}
field() { json_get "$WORK/body" "$1"; }
expect_field() { # expect_field EXPR WANT
  local got
  got=$(field "$1")
  [ "$got" = "$2" ] || fail "$1 is '$got', want '$2': $(head -c 600 "$WORK/body")"
}

# ---- every endpoint -------------------------------------------------------
call /healthz - 200 GET /healthz
expect_field "j['status']" ok
expect_field "j['models']" 1

call /v1/models reader 200 GET /v1/models "${AI[@]}"
expect_field "[m['name'] for m in j['models']]" "['tiny']"
expect_field "j['models'][0]['n_experts']" 4

call /v1/infer reader 200 POST /v1/infer "${AI[@]}" "${JSON[@]}" \
  -d '{"model": "tiny", "text": "In the beginning", "top": 3}'
expect_field "(j['model'], j['task'], len(j['outputs']), len(j['outputs'][0]['next']))" \
  "('tiny', 'lm', 1, 3)"
expect_field "j['outputs'][0]['n_tokens'] == 16 and j['usage']['tokens'] >= 16" True

call /v1/infer reader 200 POST /v1/infer "${AI[@]}" "${JSON[@]}" \
  -d '{"model": "tiny", "text": ["a b", "c d e"]}'
expect_field "len(j['outputs'])" 2

call /v1/infer trainer 200 POST /v1/infer "${AT[@]}" "${JSON[@]}" \
  -d '{"model": "tiny", "tokens": [72, 105, 33], "trace": true}'
expect_field "len(j['outputs'][0]['trace']['tokens'])" 3
expect_field "len(j['outputs'][0]['trace']['tokens'][0]['layers'])" 2

# X-API-Key works as well as Authorization
call /v1/generate reader 200 POST /v1/generate -H "X-API-Key: $IK" "${JSON[@]}" \
  -d '{"model": "tiny", "prompt": "Once", "max_tokens": 8, "seed": 3, "temperature": 0.5}'
expect_field "len(j['tokens']) <= 8 and j['usage']['completion_tokens'] == len(j['tokens'])" True
expect_field "isinstance(j['text'], str)" True

body='{"config": "tiny", "name": "api-test", "set": {"train.steps": 6, "train.eval_every": 0,
  "train.sample_tokens": 0, "train.checkpoint_every": 3, "train.log_every": 1}}'
call /v1/train trainer 202 POST /v1/train "${AT[@]}" "${JSON[@]}" -d "$body"
JOB=$(field "j['id']")
expect_field "j['state']" queued
state=
for _ in $(seq 600); do # up to 60 s
  call "/v1/jobs/{id}" reader 200 GET "/v1/jobs/$JOB" "${AI[@]}"
  state=$(field "j['state']")
  case $state in completed | failed | cancelled | interrupted) break ;; esac
  sleep 0.1
done
[ "$state" = completed ] || fail "job $JOB ended '$state': $(cat "$WORK/body")"
expect_field "j['progress']['step']" 6
expect_field "len(j['history']) > 0" True

call /v1/jobs reader 200 GET /v1/jobs "${AI[@]}"
expect_field "[x['id'] for x in j['jobs']] == ['$JOB'] and 'history' not in j['jobs'][0]" True

call "/v1/jobs/{id}" trainer 409 DELETE "/v1/jobs/$JOB" "${AT[@]}"           # already ended
call "/v1/jobs/{id}/resume" trainer 409 POST "/v1/jobs/$JOB/resume" "${AT[@]}" # completed

call /openapi.json - 200 GET /openapi.json
cmp -s "$WORK/body" src/serve/assets/openapi.json || fail "/openapi.json differs from the source"
expect_field "j['openapi'][:3]" 3.0
call / - 200 GET /
grep -qi '^Content-Type: text/html' "$WORK/headers" || fail "GET / is not HTML"
$PY - "$WORK/body" <<'PY' || fail "GET / has inline script (the CSP forbids it)"
import re, sys
page = open(sys.argv[1]).read()
for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S | re.I):
    assert "src=" in attrs and not body.strip(), attrs
assert not re.search(r"\son[a-z]+\s*=", page, re.I), "inline event handler"
PY
call /static/dashboard.js - 200 GET /static/dashboard.js
grep -qi '^Content-Type: text/javascript' "$WORK/headers" || fail "dashboard.js content type"
call /static/dashboard.css - 200 GET /static/dashboard.css
grep -qi '^Content-Type: text/css' "$WORK/headers" || fail "dashboard.css content type"
call /static/plotly.min.js - $plotly_status GET /static/plotly.min.js

# ---- keys ------------------------------------------------------------------
call /v1/models - 401 GET /v1/models
grep -qi '^WWW-Authenticate: Bearer' "$WORK/headers" || fail "401 without WWW-Authenticate: Bearer"
call /v1/models - 401 GET /v1/models -H "Authorization: Bearer $WRONG"
call /v1/models - 401 GET /v1/models -H "Authorization: Basic $IK"
# a proxy's Basic credentials do not hide X-API-Key; a wrong Bearer still decides
call /v1/models reader 200 GET /v1/models -H "Authorization: Basic dXNlcjpwdw==" -H "X-API-Key: $IK"
call /v1/models - 401 GET /v1/models -H "Authorization: Bearer $WRONG" -H "X-API-Key: $IK"
call /v1/infer - 401 POST /v1/infer -H "X-API-Key: ${IK:0:32}" "${JSON[@]}" -d '{"model":"tiny","text":"a"}'
call /v1/train reader 403 POST /v1/train "${AI[@]}" "${JSON[@]}" -d '{"config": "tiny"}'
call "/v1/jobs/{id}" reader 403 DELETE "/v1/jobs/$JOB" "${AI[@]}"
call "/v1/jobs/{id}/resume" reader 403 POST "/v1/jobs/$JOB/resume" "${AI[@]}"
call /metrics - 401 GET /metrics

# ---- bodies ----------------------------------------------------------------
call /v1/infer reader 400 POST /v1/infer "${AI[@]}" "${JSON[@]}" -d '{"model": "tiny", "text": '
call /v1/infer reader 400 POST /v1/infer "${AI[@]}" "${JSON[@]}" -d '{"model": 5, "text": "a"}'
expect_field "j['error']['field']" model
call /v1/infer reader 400 POST /v1/infer "${AI[@]}" "${JSON[@]}" -d '{"model": "tiny", "text": 5}'
expect_field "j['error']['field']" text
call /v1/infer reader 400 POST /v1/infer "${AI[@]}" "${JSON[@]}" \
  -d '{"model": "tiny", "text": "a", "bogus": 1}'
expect_field "j['error']['field']" bogus
call /v1/generate reader 400 POST /v1/generate "${AI[@]}" "${JSON[@]}" \
  -d '{"model": "tiny", "prompt": "a", "max_tokens": "many"}'
expect_field "j['error']['field']" max_tokens
call /v1/infer reader 400 POST /v1/infer "${AI[@]}" "${JSON[@]}" -d '[1, 2]'
call /v1/infer reader 400 POST /v1/infer "${AI[@]}" "${JSON[@]}"  # no body at all
call /v1/train trainer 400 POST /v1/train "${AT[@]}" "${JSON[@]}" -d '{"config": "../../etc/passwd"}'
call /v1/infer reader 415 POST /v1/infer "${AI[@]}" -H 'Content-Type: text/plain' \
  -d '{"model": "tiny", "text": "a"}'
call /v1/infer reader 415 POST /v1/infer "${AI[@]}" -d '{"model": "tiny", "text": "a"}'
call /v1/infer reader 200 POST /v1/infer "${AI[@]}" -H 'Content-Type: Application/JSON; charset=utf-8' \
  -d '{"model": "tiny", "text": "a"}'
head -c $((MAX_BODY + 1)) /dev/zero | tr '\0' ' ' >"$WORK/big.json"
call /v1/infer reader 413 POST /v1/infer "${AI[@]}" "${JSON[@]}" --data-binary @"$WORK/big.json"
call /v1/infer reader 413 POST /v1/infer "${AI[@]}" "${JSON[@]}" -H 'Transfer-Encoding: chunked' \
  --data-binary @"$WORK/big.json"
# endpoints without a JSON body keep none: any body is refused before it is read
call / - 413 GET / -H 'Content-Type: text/plain' -d 'x'
expect_field "j['error']['message']" "GET / takes no body; send the request without one"
call /healthz - 413 GET /healthz -H 'Transfer-Encoding: chunked' -d 'hello'
call /static/dashboard.js - 413 GET /static/dashboard.js --data-binary @"$WORK/big.json"
call /v1/jobs reader 413 GET /v1/jobs "${AI[@]}" "${JSON[@]}" -d '{}'
call /v1/jobs - 401 GET /v1/jobs "${JSON[@]}" -d '{}' # the key first
call /healthz - 200 GET /healthz -H 'Content-Length: 0'
# a body just under the limit is read (and then rejected as JSON, not for its size)
head -c $((MAX_BODY - 1)) /dev/zero | tr '\0' ' ' >"$WORK/fits.json"
call /v1/infer reader 400 POST /v1/infer "${AI[@]}" "${JSON[@]}" --data-binary @"$WORK/fits.json"

# ---- names and paths ---------------------------------------------------------
call /v1/infer reader 404 POST /v1/infer "${AI[@]}" "${JSON[@]}" -d '{"model": "nope", "text": "a"}'
expect_field "j['error']['field']" model
call /v1/infer reader 400 POST /v1/infer "${AI[@]}" "${JSON[@]}" -d '{"model": "../x", "text": "a"}'
expect_field "j['error']['field']" model
call /v1/generate reader 400 POST /v1/generate "${AI[@]}" "${JSON[@]}" \
  -d '{"model": "/etc/passwd", "prompt": "a"}'
call "/v1/jobs/{id}" reader 404 GET /v1/jobs/j-999999-nothing "${AI[@]}"
# traversal: rejected by the router, before any key check or file access
call unmatched - 404 GET "/v1/jobs/..%2F..%2Fetc%2Fpasswd" "${AI[@]}"
call unmatched - 404 GET "/v1/jobs/../../etc/passwd" "${AI[@]}"
call "/v1/jobs/{id}" - 404 GET "/v1/jobs/%2e%2e" "${AI[@]}"
call "/v1/jobs/{id}" - 404 GET "/v1/jobs/.hidden" "${AI[@]}"
call "/v1/jobs/{id}" - 404 DELETE "/v1/jobs/%2e%2e" "${AT[@]}"
call "/v1/jobs/{id}/resume" - 404 POST "/v1/jobs/..%00/resume" "${AT[@]}"
long=$(head -c 3000 /dev/zero | tr '\0' a)
call "/v1/jobs/{id}" - 404 GET "/v1/jobs/$long" "${AI[@]}"
call unmatched - 404 GET /v1/nothing "${AI[@]}"
call unmatched - 404 GET /v1/models/ "${AI[@]}"
call unmatched - 404 GET /static/../../etc/passwd
call unmatched - 404 GET /static/report.js
call /v1/infer - 405 PUT /v1/infer "${AI[@]}"
grep -qi '^Allow: POST' "$WORK/headers" || fail "405 without Allow: POST"
call "/v1/jobs/{id}" - 405 POST /v1/jobs/abc "${AT[@]}"
grep -qi '^Allow: GET, DELETE' "$WORK/headers" || fail "405 without Allow: GET, DELETE"
call /healthz - 405 DELETE /healthz
call "/v1/jobs/{id}/resume" - 405 GET /v1/jobs/abc/resume "${AI[@]}"

# ---- /metrics: exactly the requests above ------------------------------------
call /metrics reader 200 GET /metrics "${AI[@]}"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$WORK/headers" || fail "/metrics content type"
cp "$WORK/body" "$WORK/metrics.txt"
if command -v promtool >/dev/null; then
  promtool check metrics <"$WORK/metrics.txt" || fail "promtool check metrics rejected /metrics"
fi
$PY - "$EXPECT" "$WORK/metrics.txt" <<'PY' || fail "/metrics does not count the requests made"
import collections, re, sys
want = collections.Counter()
lines = open(sys.argv[1]).read().split("\n")[:-1]
for line in lines[:-1]:  # the scrape itself is counted after it is answered
    label, method, code, _ = line.split(" ")
    want[(label, method, code)] += 1
got = {}
auth_failures = None
for line in open(sys.argv[2]):
    m = re.match(r'moe_serve_requests_total\{endpoint="([^"]*)",method="([^"]*)",status="(\d+)"\} (\S+)', line)
    if m:
        got[m.groups()[:3]] = float(m.group(4))
    if line.startswith("moe_serve_auth_failures_total "):
        auth_failures = float(line.split()[1])
    if line.startswith("moe_serve_inflight_requests "):
        assert float(line.split()[1]) == 1, line  # the scrape itself
diff = {k: (want.get(k, 0), got.get(k, 0)) for k in set(want) | set(got) if want.get(k, 0) != got.get(k, 0)}
assert not diff, f"(want, got) per series: {diff}"
n401 = sum(v for (l, m, c), v in want.items() if c in ("401", "403"))
assert auth_failures == n401, (auth_failures, n401)
text = open(sys.argv[2]).read()
assert 'moe_serve_request_seconds_count{endpoint="/v1/infer"}' in text
PY

# ---- the audit log: one line per request, no key material --------------------
audit="$WORK/state/audit.jsonl"
n=$(wc -l <"$EXPECT")
for _ in $(seq 100); do [ "$(wc -l <"$audit")" -ge "$n" ] && break; sleep 0.05; done
[ "$(stat -c %a "$audit")" = 600 ] || fail "audit.jsonl is not 0600"
for k in "$IK" "$TK" "$WRONG" "${IK:0:32}"; do
  grep -qF "$k" "$audit" && fail "the audit log holds key material"
  grep -qF "$k" "$WORK/server.log" && fail "the server log holds key material"
done
$PY - "$EXPECT" "$audit" <<'PY' || fail "the audit log does not match the requests"
import collections, json, sys
want = collections.Counter(tuple(l.split(" ")) for l in open(sys.argv[1]).read().split("\n") if l)
got = collections.Counter()
for line in open(sys.argv[2]):
    a = json.loads(line)
    assert set(a) == {"time", "key_id", "method", "endpoint", "status", "tokens", "latency_ms",
                      "remote", "detail"}, a
    assert a["remote"] == "127.0.0.1" and a["latency_ms"] >= 0 and a["time"].endswith("Z"), a
    if a["endpoint"] == "/v1/infer" and a["status"] == 200:
        assert a["tokens"] > 0, a
    got[(a["endpoint"], a["method"], str(a["status"]), a["key_id"])] += 1
diff = {k: (want.get(k, 0), got.get(k, 0)) for k in set(want) | set(got) if want.get(k, 0) != got.get(k, 0)}
assert not diff, f"(want, got) per (endpoint, method, status, key): {diff}"
PY

# ---- a clean stop ----------------------------------------------------------------
serve_stop
echo "serve_api: $(wc -l <"$EXPECT") requests checked"
