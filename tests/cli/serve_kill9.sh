#!/usr/bin/env bash
# A training job survives its server being killed with SIGKILL: job.json is
# whole (written atomically), the restarted server reports the job
# "interrupted" and resumable, its checkpoint loads, and resuming it through
# the API runs it to completion. Then SIGTERM stops the server cleanly.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/serve_lib.bash"

model=$(serve_tiny_model)
KEY=$(random_key)
export MOE_API_KEYS="trainer:train:$KEY"
state="$WORK/state"

start_server() {
  serve_start --model tiny="$model" --state-dir "$state" --data-dir . --configs-dir configs \
    --max-jobs 1
}

job_field() { json_get "$WORK/resp" "$1"; }

start_server
# 120 steps, a checkpoint every 5: long enough to kill mid-run, short enough to finish
body='{"config": "tiny", "name": "kill9", "set": {"train.steps": 120, "train.eval_every": 0,
  "train.sample_tokens": 0, "train.checkpoint_every": 5, "train.log_every": 1,
  "train.sched.kind": "constant", "obs.report_every": 0}}'
code=$(api POST /v1/train "$body")
[ "$code" = 202 ] || fail "POST /v1/train: $code $(cat "$WORK/resp")"
id=$(job_field "j['id']")
[ "$(job_field "j['state']")" = queued ] || fail "a new job is not queued: $(cat "$WORK/resp")"
jobdir="$state/jobs/$id"

for _ in $(seq 600); do # the first checkpoint, within 30 s
  [ -d "$jobdir/run/checkpoints/latest" ] && break
  sleep 0.05
done
[ -d "$jobdir/run/checkpoints/latest" ] || fail "no checkpoint after 30 s: $(cat "$WORK/server.log")"
serve_kill

# what the dead server left: a whole job.json that still says running
[ "$(json_get "$jobdir/job.json" "j['state']")" = running ] ||
  fail "job.json after kill -9: $(cat "$jobdir/job.json")"

start_server
code=$(api GET "/v1/jobs/$id")
[ "$code" = 200 ] || fail "GET /v1/jobs/$id after restart: $code $(cat "$WORK/resp")"
[ "$(job_field "j['state']")" = interrupted ] || fail "not interrupted: $(cat "$WORK/resp")"
[ "$(job_field "j['resumable']")" = True ] || fail "not resumable: $(cat "$WORK/resp")"
ckpt=$(job_field "j['checkpoint']")
[ "$ckpt" = "jobs/$id/run/checkpoints/latest" ] || fail "checkpoint: $ckpt"
code=$(api GET /v1/jobs)
[ "$code" = 200 ] || fail "GET /v1/jobs: $code"
[ "$(job_field "[x['state'] for x in j['jobs'] if x['id'] == '$id']")" = "['interrupted']" ] ||
  fail "the list disagrees: $(cat "$WORK/resp")"

# the checkpoint the API names loads
$MOE eval --checkpoint "$state/$ckpt" --batches 1 --latency-seqs 2 --large-batch 2 \
  >"$WORK/eval.json" 2>"$WORK/err" || fail "moe eval of $ckpt: $(cat "$WORK/err")"
json_get "$WORK/eval.json" "j['val_loss']" >/dev/null || fail "eval JSON: $(cat "$WORK/eval.json")"

# a train-scope key resumes it; it continues from its checkpoint and completes
code=$(api POST "/v1/jobs/$id/resume")
[ "$code" = 202 ] || fail "resume: $code $(cat "$WORK/resp")"
code=$(api POST "/v1/jobs/$id/resume")
[ "$code" = 409 ] || fail "a second resume of a running job: $code $(cat "$WORK/resp")"
for _ in $(seq 1200); do # up to 120 s
  api GET "/v1/jobs/$id" >/dev/null
  state_now=$(job_field "j['state']")
  case $state_now in completed | failed | cancelled | interrupted) break ;; esac
  sleep 0.1
done
[ "$state_now" = completed ] || fail "resumed job ended $state_now: $(cat "$WORK/resp")"
[ "$(job_field "j['progress']['step']")" = 120 ] || fail "steps: $(cat "$WORK/resp")"

# SIGTERM: a clean exit
serve_stop
echo "1 passed, 0 failed"
