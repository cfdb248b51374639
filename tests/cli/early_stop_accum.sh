#!/usr/bin/env bash
# Early stopping on validation loss, and gradient accumulation through the CLI.
source "$(dirname "$0")/lib.bash"
# min_delta larger than any improvement: stops after `patience` evaluations
$MOE train --config configs/tiny.json --set out_dir="$WORK/es" --quiet \
  --set train.early_stop_metric=val_loss --set train.patience=2 --set train.min_delta=100 \
  --set train.eval_every=5 --set train.steps=60 --set train.sample_tokens=0 >/dev/null
r=$(ls -d "$WORK"/es/tiny-*)/results.json
[ "$(json_get "$r" "j['stop_reason']")" = early_stop ] || fail "no early stop: $(cat "$r")"
[ "$(json_get "$r" "j['steps']")" = 10 ] || fail "early stop at the wrong step: $(cat "$r")"
# accumulation: 2 micro-batches of 4 train like one batch of 8 (loss falls, tokens/step doubled)
$MOE train --config configs/tiny.json --set out_dir="$WORK/acc" --quiet --set train.batch_size=4 \
  --set train.grad_accum=2 --set train.steps=30 --set train.sample_tokens=0 >/dev/null
r=$(ls -d "$WORK"/acc/tiny-*)/results.json
$PY -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['final_val_loss'] < 4.0, j" "$r"
echo "1 passed, 0 failed"
