#!/usr/bin/env bash
# Bad input gets a clear error (what, where, what to do), a non-zero exit, and
# loses nothing: configs, data, checkpoints, NaN losses.
source "$(dirname "$0")/lib.bash"
T=(--config configs/tiny.json --set out_dir="$WORK/runs" --quiet)

expect_fail "mistyped key" $MOE train "${T[@]}" --set model.n_layers=3
expect_err 'unknown key "model.n_layers"'; expect_err 'did you mean "model.n_layer"'
expect_err "valid keys in \"model\": family, vocab_size"
echo '{"model": {"n_layer": "four"}}' > "$WORK/type.json"
expect_fail "wrong type" $MOE train --config "$WORK/type.json"
expect_err '"model.n_layer" expects an integer, found string "four"'
echo '{"model": {"n_layer": 4,}}' > "$WORK/syntax.json"
expect_fail "malformed JSON" $MOE train --config "$WORK/syntax.json"
expect_err "malformed JSON at line 1, column"
expect_fail "missing config" $MOE train --config "$WORK/none.json"
expect_err "cannot open"
expect_fail "k > E" $MOE train "${T[@]}" --set model.moe.top_k=5
expect_err "model.moe.top_k (5) must not exceed model.moe.n_experts (4)"
expect_fail "heads" $MOE train "${T[@]}" --set model.n_head=5
expect_err "model.d_model (64) must be divisible by model.n_head (5)"
expect_fail "missing data file" $MOE train "${T[@]}" --set data.source=file --set data.path="$WORK/nope.txt"
expect_err "data.path $WORK/nope.txt: No such file or directory"
expect_fail "bible missing" env PATH=/nonexistent "$MOE" train "${T[@]}"
expect_err "install Debian's bible-kjv package"
[ ! -d "$WORK/runs" ] || [ -z "$(ls "$WORK/runs")" ] || fail "a failed start left a run directory"
expect_fail "unknown option" $MOE train --config configs/tiny.json --bogus
expect_err "moe train: unrecognized option '--bogus'"
expect_fail "bad number" $MOE generate --checkpoint x --prompt a --tokens abc
expect_err "--tokens wants an integer in [0, 1000000], got 'abc'"
expect_fail "missing value" $MOE train --config
expect_err "option '--config' requires an argument"

# NaN loss: training stops with a message naming the last good checkpoint,
# which still loads.
expect_fail "diverging run" $MOE train "${T[@]}" --set train.optim.kind=sgd \
  --set train.optim.lr=1000 --set train.grad_clip=0 --set train.checkpoint_every=1 \
  --set train.eval_every=0 --set train.sched.warmup_steps=0
expect_err "training stopped. The last good checkpoint is"
good=$(grep -o "$WORK/runs/[^ ]*/checkpoints/step-[0-9]*" "$WORK/err" | head -n1)
[ -n "$good" ] || fail "no checkpoint named in: $(cat "$WORK/err")"
$MOE generate --checkpoint "$good" --prompt "In" --tokens 4 --temperature 0 >/dev/null ||
  fail "the last good checkpoint does not load"

# Checkpoints: truncated and corrupted files are refused with the reason.
$MOE train "${T[@]}" --set train.steps=2 --set train.eval_every=0 --set train.sample_tokens=0 --set train.sched.warmup_steps=0 \
  --set name=ok >/dev/null
ck=$(ls -d "$WORK"/runs/ok-*)/checkpoints/latest
cp -rL "$ck" "$WORK/trunc"
truncate -s 5000 "$WORK/trunc/model.safetensors"
expect_fail "truncated checkpoint" $MOE eval --checkpoint "$WORK/trunc"
expect_err "truncated"
cp -rL "$ck" "$WORK/corrupt"
printf 'X' | dd of="$WORK/corrupt/model.safetensors" bs=1 seek=12 conv=notrunc 2>/dev/null
expect_fail "corrupted checkpoint" $MOE generate --checkpoint "$WORK/corrupt" --prompt "In"
expect_err "model.safetensors"
expect_fail "resume from truncated" $MOE train --resume "$WORK/trunc" --quiet
expect_err "truncated"
expect_fail "not a checkpoint" $MOE eval --checkpoint "$WORK"
expect_err "no config.json"
$MOE eval --checkpoint "$ck" --batches 1 >/dev/null || fail "the intact checkpoint no longer loads"
# the seed families: data, task and schedule must fit the family
expect_fail "cnn on a table" $MOE train --config configs/cnn-moe-fmnist.json --set data.source=csv \
  --set data.path=data/wine_soft.csv
expect_err "needs images"
expect_fail "transformer on images" $MOE train --config configs/tiny.json --set data.source=fashion-mnist
expect_err "set model.family"
expect_fail "distribution without soft labels" $MOE train --config configs/mlp-moe-iris.json \
  --set train.task=distribution
expect_err "data.prob_columns"
expect_fail "soft labels for classify" $MOE train --config configs/seed002-mlp-moe.json \
  --set train.task=classify --set out_dir="$WORK/runs"
expect_err "train.task \"distribution\""
expect_fail "evaluations never come" $MOE train --config configs/cnn-moe-fmnist.json --set train.eval_every=100
expect_err "counts epochs"
expect_fail "freeze longer than training" $MOE train --config configs/seed001-deepmoe.json \
  --set model.deepmoe.freeze_epochs=40
expect_err "freeze_epochs"
expect_fail "a missing table" $MOE train --config configs/mlp-moe-iris.json --set data.path="$WORK/none.csv" \
  --set out_dir="$WORK/runs"
expect_err "none.csv"
expect_fail "a table column that is not there" $MOE train --config configs/mlp-moe-iris.json \
  --set data.label_column=colour --set out_dir="$WORK/runs"
expect_err "colour"
echo "1 passed, 0 failed"
