#!/usr/bin/env bash
# SIGTERM while inference requests are in flight and a training job runs:
# the requests (more than the HTTP threads, batched together) complete
# with 200, a kept-alive connection sees /healthz say "stopping" (503), the
# job checkpoints and becomes "interrupted", the process exits 0; after a
# restart the job is resumable and resumes.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/serve_lib.bash"
bg=()
trap 'serve_kill; for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

model=$(serve_tiny_model)
KEY=$(random_key)
export MOE_API_KEYS="ops:train:$KEY"
state="$WORK/state"

# a long batch window, waited for every batch, keeps the inferences in
# flight for a second
start_server() {
  serve_start --model tiny="$model" --state-dir "$state" --data-dir . --configs-dir configs \
    --threads 2 --max-batch 64 --batch-window-ms 1500 --batch-window-always
}
# wait_exit PID SECONDS: its exit status in $rc, or fail
wait_exit() {
  for _ in $(seq $(($2 * 20))); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$1" 2>/dev/null && fail "moe serve still runs $2 s after SIGTERM"
  rc=0
  wait "$1" || rc=$?
}

start_server
body='{"config": "tiny", "name": "long", "set": {"train.steps": 100000, "train.eval_every": 0,
  "train.sample_tokens": 0, "train.checkpoint_every": 5, "train.log_every": 1}}'
code=$(api POST /v1/train "$body")
[ "$code" = 202 ] || fail "POST /v1/train: $code $(cat "$WORK/resp")"
id=$(json_get "$WORK/resp" "j['id']")
jobdir="$state/jobs/$id"
for _ in $(seq 600); do
  [ -d "$jobdir/run/checkpoints/latest" ] && break
  sleep 0.05
done
[ -d "$jobdir/run/checkpoints/latest" ] || fail "no checkpoint after 30 s: $(cat "$WORK/server.log")"

# a kept-alive connection, to ask /healthz during the shutdown (new ones are refused)
$PY - "$PORT" "$WORK" <<'PY' &
import http.client, json, os, sys, time
port, work = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
c.request("GET", "/healthz"); r = c.getresponse(); first = (r.status, json.loads(r.read()))
open(f"{work}/keepalive.ready", "w").close()
while not os.path.exists(f"{work}/keepalive.go"):
    time.sleep(0.01)
c.request("GET", "/healthz"); r = c.getresponse(); second = (r.status, json.loads(r.read()))
json.dump({"before": first, "during": second}, open(f"{work}/keepalive.json", "w"))
PY
bg+=($!)
keepalive=$!
for _ in $(seq 200); do [ -e "$WORK/keepalive.ready" ] && break; sleep 0.05; done

# six inferences, then SIGTERM while they wait in the batch window
for i in 1 2 3 4 5 6; do
  curl -sS -o "$WORK/infer$i.json" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' -d "{\"model\": \"tiny\", \"text\": \"request $i\"}" \
    "$URL/v1/infer" >"$WORK/code$i" &
  bg+=($!)
done
for _ in $(seq 200); do
  curl -sS -H "Authorization: Bearer $KEY" "$URL/metrics" >"$WORK/m.txt"
  n=$(sed -n 's/^moe_serve_inflight_requests \([0-9]*\).*/\1/p' "$WORK/m.txt")
  [ "${n:-0}" -ge 7 ] && break # six inferences and this scrape
  sleep 0.02
done
[ "${n:-0}" -ge 7 ] || fail "the inferences never were in flight together (inflight $n)"
kill -TERM "$SERVE_PID"
sleep 0.2
touch "$WORK/keepalive.go"
wait_exit "$SERVE_PID" 60
SERVE_PID=""
[ "$rc" = 0 ] || fail "moe serve exited $rc after SIGTERM: $(cat "$WORK/server.log")"
for i in 1 2 3 4 5 6; do
  wait "${bg[$i]}" 2>/dev/null || true
  [ "$(cat "$WORK/code$i")" = 200 ] || fail "in-flight request $i got $(cat "$WORK/code$i"): $(cat "$WORK/infer$i.json")"
  json_get "$WORK/infer$i.json" "j['outputs'][0]" >/dev/null || fail "request $i: $(cat "$WORK/infer$i.json")"
done
# two HTTP threads, yet the six were merged: waiting requests hold no thread
maxbatch=$(for i in 1 2 3 4 5 6; do json_get "$WORK/infer$i.json" "j['batch_size']"; done | sort -n | tail -1)
[ "$maxbatch" -ge 3 ] || fail "with --threads 2 the largest batch was $maxbatch; want >= 3"
wait "$keepalive" || fail "the kept-alive connection failed"
json_get "$WORK/keepalive.json" "j" >/dev/null || fail "no keep-alive result"
[ "$(json_get "$WORK/keepalive.json" "(j['before'][0], j['before'][1]['status'])")" = "(200, 'ok')" ] ||
  fail "healthz before: $(cat "$WORK/keepalive.json")"
[ "$(json_get "$WORK/keepalive.json" "(j['during'][0], j['during'][1]['status'])")" = "(503, 'stopping')" ] ||
  fail "healthz while stopping: $(cat "$WORK/keepalive.json")"
grep -q "moe serve: stopped" "$WORK/server.log" || fail "no 'stopped' line: $(cat "$WORK/server.log")"

# the job checkpointed and is interrupted, on disk and after a restart
[ "$(json_get "$jobdir/job.json" "(j['state'], j['resumable'])")" = "('interrupted', True)" ] ||
  fail "job.json after SIGTERM: $(cat "$jobdir/job.json")"
step=$(json_get "$jobdir/job.json" "j['progress']['step']")
start_server
code=$(api GET "/v1/jobs/$id")
[ "$code" = 200 ] || fail "GET /v1/jobs/$id after restart: $code"
[ "$(json_get "$WORK/resp" "(j['state'], j['resumable'])")" = "('interrupted', True)" ] ||
  fail "after restart: $(cat "$WORK/resp")"
code=$(api POST "/v1/jobs/$id/resume")
[ "$code" = 202 ] || fail "resume: $code $(cat "$WORK/resp")"
now=0
for _ in $(seq 600); do
  api GET "/v1/jobs/$id" >/dev/null
  now=$(json_get "$WORK/resp" "j['progress']['step'] if j['state'] == 'running' else -1")
  [ "$now" -gt "$step" ] && break
  sleep 0.05
done
[ "$now" -gt "$step" ] || fail "the resumed job did not go past step $step: $(cat "$WORK/resp")"
code=$(api DELETE "/v1/jobs/$id")
[ "$code" = 200 ] || fail "cancel: $code $(cat "$WORK/resp")"
serve_stop 60
state_now=$(json_get "$jobdir/job.json" "j['state']")
case $state_now in cancelled | interrupted) ;; *) fail "job after cancel and stop: $state_now" ;; esac
echo "serve_shutdown: ok (job stopped at step $step, resumed past it)"
