#!/usr/bin/env bash
# Same seed, same run; a resumed run continues the same loss curve; another
# seed gives another run.
source "$(dirname "$0")/lib.bash"
common=(--config configs/tiny.json --set train.steps=20 --set train.log_every=1
        --set train.checkpoint_every=10 --set train.eval_every=10 --set train.sample_tokens=0
        --quiet)
losses() { $PY -c "import json,sys; print(' '.join(str(r['train_loss']) for r in map(json.loads, open(sys.argv[1])) if r['kind']=='train' and int(r['step'])>int(sys.argv[2])))" "$1" "${2:-0}"; }
$MOE train "${common[@]}" --set out_dir="$WORK/a" >/dev/null
$MOE train "${common[@]}" --set out_dir="$WORK/b" >/dev/null
$MOE train "${common[@]}" --set out_dir="$WORK/c" --set train.seed=7 >/dev/null
a=$(ls -d "$WORK"/a/tiny-*); b=$(ls -d "$WORK"/b/tiny-*); c=$(ls -d "$WORK"/c/tiny-*)
[ "$(losses "$a/metrics.jsonl")" = "$(losses "$b/metrics.jsonl")" ] || fail "same seed, different losses"
[ "$(losses "$a/metrics.jsonl")" != "$(losses "$c/metrics.jsonl")" ] || fail "other seed, same losses"
# resume a copy of run a from its step-10 checkpoint: steps 11..20 must match
cp -r "$a" "$WORK/resumed"
grep -v '"step":1[1-9],\|"step":20,' "$a/metrics.jsonl" > "$WORK/resumed/metrics.jsonl"
$MOE train --resume "$WORK/resumed/checkpoints/step-000010" --quiet >/dev/null
want=$(losses "$a/metrics.jsonl" 10); got=$(losses "$WORK/resumed/metrics.jsonl" 10)
[ -n "$want" ] || fail "no losses after step 10"
[ "$want" = "$got" ] || fail "resumed losses differ: want [$want] got [$got]"
echo "1 passed, 0 failed"
