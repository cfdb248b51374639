#!/usr/bin/env bash
# Ctrl-C stops after the current step, writes a checkpoint and results, and
# the run resumes from there.
source "$(dirname "$0")/lib.bash"
$MOE train --config configs/tiny.json --set out_dir="$WORK/runs" --set train.steps=100000 \
  --set train.sched.kind=constant --set train.eval_every=0 --set train.sample_tokens=0 \
  --quiet >"$WORK/out" 2>&1 &
pid=$!
for _ in $(seq 100); do  # wait until training has logged a few steps
  sleep 0.1
  f=$(ls "$WORK"/runs/*/metrics.jsonl 2>/dev/null || true)
  [ -n "$f" ] && [ "$(grep -c '"train"' "$f")" -ge 2 ] && break
done
kill -INT $pid
wait $pid || fail "interrupted training exited non-zero: $(cat "$WORK/out")"
run=$(ls -d "$WORK"/runs/tiny-*)
[ "$(json_get "$run/results.json" "j['stop_reason']")" = interrupted ] || fail "stop_reason"
steps=$(json_get "$run/results.json" "j['steps']")
[ -d "$run/checkpoints/step-$(printf %06d "$steps")" ] || fail "no checkpoint at step $steps"
$MOE train --resume "$run/checkpoints/latest" --set train.steps=$((steps + 3)) --quiet >/dev/null
[ "$(json_get "$run/results.json" "j['steps']")" = $((steps + 3)) ] || fail "resume did not continue"
echo "1 passed, 0 failed"
