#!/usr/bin/env bash
# Seed 002 end to end through the CLI on the tables Debian's python3-sklearn
# ships: an mlp_moe classifier on iris (hard labels) must beat the majority
# class on the test split, with results.json's metrics equal to
# sklearn.metrics on the same predictions; a distribution model on
# data/wine_soft.csv (soft labels, row weights) must beat the uniform
# distribution; moe eval, moe bootstrap and moe search run on them; and
# data/wine_soft.csv is what scripts/data/wine_soft.py writes.
source "$(dirname "$0")/lib.bash"
common=(--set out_dir="$WORK/runs" --quiet)

$PY scripts/data/wine_soft.py "$WORK/wine_soft.csv"
cmp "$WORK/wine_soft.csv" data/wine_soft.csv || fail "data/wine_soft.csv differs from its script's output"

$MOE train --config configs/mlp-moe-iris.json --set name=iris --set train.epochs=300 \
  "${common[@]}" >"$WORK/iris.out"
run=$(ls -d "$WORK"/runs/iris-*)
$PY - "$run" <<'PY'
import json, sys
from sklearn import metrics
run = sys.argv[1]
r = json.load(open(run + "/results.json"))
t = r["test"]
conf = t["confusion"]
# the predictions behind the confusion matrix, rebuilt, scored by sklearn
y, p = [], []
for i, row in enumerate(conf):
    for j, n in enumerate(row):
        y += [i] * n
        p += [j] * n
acc = metrics.accuracy_score(y, p)
pr, rc, f1, _ = metrics.precision_recall_fscore_support(y, p, average="macro", zero_division=0)
for mine, ref, name in [(t["accuracy"], acc, "accuracy"), (t["macro_f1"], f1, "macro_f1"),
                        (t["macro_precision"], pr, "macro_precision"), (t["macro_recall"], rc, "macro_recall")]:
    assert abs(mine - ref) < 1e-12, (name, mine, ref)
majority = max(map(sum, conf)) / len(y)
print(f"iris test accuracy {acc:.3f} over {len(y)} flowers (majority {majority:.3f})")
assert acc > majority + 0.3, "mlp_moe on iris no better than the majority class"
assert [c["label"] for c in t["per_class"]] == ["setosa", "versicolor", "virginica"], t["per_class"]
assert r["family"] == "mlp_moe" and r["flops_per_example_active"] <= r["flops_per_example_dense"], r
lines = [json.loads(l) for l in open(run + "/analysis.jsonl")]
ea = lines[-1]["expert_analysis"]
assert lines[-1]["split"] == "test" and len(ea["accuracy"]) == 3 and len(ea["accuracy"][0]) == 3, lines[-1]
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
train = [x for x in rows if x["kind"] == "train"]
assert any("loss_term" in x for x in train), "no loss_term in metrics.jsonl"
routing = json.load(open(run + "/routing.json"))
assert len(routing["distribution"]["experts"][0]) == 3, routing
PY

# eval and bootstrap on the best checkpoint
$MOE eval --checkpoint "$run/checkpoints/best" --out "$WORK/eval.json" >/dev/null
json_get "$WORK/eval.json" 'j["family"], j["flops_per_example_active"], j["latency_ms_per_example_p50"], j["test"]["accuracy"]'
$MOE bootstrap --checkpoint "$run/checkpoints/best" --resamples 100 --out "$WORK/boot.json" >/dev/null
$PY - "$WORK/boot.json" "$run" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2] + "/results.json"))
a = b["accuracy"]
assert b["resamples"] == 100 and b["split"] == "test", b
assert a["ci95_low"] <= a["value"] <= a["ci95_high"] and a["ci95_low"] < a["ci95_high"], a
assert abs(a["value"] - r["test"]["accuracy"]) < 1e-12, (a, r["test"]["accuracy"])
print("bootstrap accuracy", a)
PY
expect_fail "bootstrap of a missing checkpoint" $MOE bootstrap --checkpoint /nonexistent
expect_err "checkpoint"

# the distribution task: soft labels and row weights
$MOE train --config configs/seed002-mlp-moe.json --set name=soft --set train.epochs=300 \
  "${common[@]}" >"$WORK/soft.out"
soft=$(ls -d "$WORK"/runs/soft-*)
$PY - "$soft" <<'PY'
import json, math, sys
run = sys.argv[1]
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
ev = [x for x in rows if x["kind"] == "eval"]
uniform = math.log(3)
print("wine_soft val loss", ev[0]["val_loss"], "->", min(x["val_loss"] for x in ev), "(uniform", uniform, ")")
assert min(x["val_loss"] for x in ev) < 0.5 * uniform, "no better than predicting the uniform mix"
r = json.load(open(run + "/results.json"))
assert r["test"]["accuracy"] > 0.8, r["test"]
PY

# a grid search ranked on validation; the test split is refused as an objective
$MOE search --config configs/mlp-moe-iris.json --grid model.moe.n_experts=2,3 \
  --grid model.moe.top_k=1,2 --set train.epochs=40 --set out_dir="$WORK/search" \
  --objective final_val_accuracy --maximize --quiet --out "$WORK/search.json" >/dev/null
$PY - "$WORK/search.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
runs = s["runs"]
assert len(runs) == 4 and all("objective" in r for r in runs), runs
best = max(range(4), key=lambda i: runs[i]["objective"])
assert runs[s["best"]]["objective"] == runs[best]["objective"], s
print("search:", [(r["params"], round(r["objective"], 3)) for r in runs], "best", s["best_params"])
PY
expect_fail "objective on the test split" $MOE search --config configs/mlp-moe-iris.json \
  --grid model.moe.top_k=1,2 --objective test.accuracy
expect_err "test split"
expect_fail "a bad grid value" $MOE search --config configs/mlp-moe-iris.json \
  --grid model.moe.top_k=1,9 --set out_dir="$WORK/bad"
expect_err "top_k"
# resuming a dense run replays the same batches: mini-batches of 16 over 90
# training rows (6 steps an epoch, a shuffled order per epoch, noisy router)
rc=(--config configs/mlp-moe-iris.json --set train.batch_size=16 --set train.epochs=6
    --set train.checkpoint_every=3 --set train.log_every=1 --set train.early_stop_metric=
    --set train.restore_best=false --quiet)
$MOE train "${rc[@]}" --set name=full --set out_dir="$WORK/resume" >/dev/null 2>&1
full=$(ls -d "$WORK"/resume/full-*)
ck=$(ls -d "$full"/checkpoints/step-* | head -1)
at=$(basename "$ck" | sed 's/step-0*//')
losses() { $PY -c "import json,sys; print(' '.join(repr(r['train_loss']) for r in map(json.loads, open(sys.argv[1])) if r['kind']=='train' and int(r['step'])>int(sys.argv[2])))" "$1" "$2"; }
cp -r "$full" "$WORK/resumed"
$PY - "$full/metrics.jsonl" "$at" > "$WORK/resumed/metrics.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    if json.loads(l)["step"] <= int(sys.argv[2]):
        print(l, end="")
PY
$MOE train --resume "$WORK/resumed/checkpoints/$(basename "$ck")" --quiet >/dev/null 2>&1
want=$(losses "$full/metrics.jsonl" "$at"); got=$(losses "$WORK/resumed/metrics.jsonl" "$at")
[ -n "$want" ] || fail "no losses after step $at"
[ "$want" = "$got" ] || fail "resumed dense run differs after step $at: want [$want] got [$got]"

# top-1 with renormalisation: the router gets no gradient from the task loss
# (seed 002's trap): said at the start, and per step once nothing trains it
$MOE train --config configs/mlp-moe-iris.json --set name=top1 --set model.moe.top_k=1 \
  --set model.moe.cv_coef=0 --set train.epochs=5 "${common[@]}" >"$WORK/top1.out" 2>"$WORK/top1.err"
grep -q "gives the router no gradient" "$WORK/top1.err" || fail "no top-1 warning: $(cat "$WORK/top1.err")"
grep -q "router received no gradient" "$WORK/top1.err" || fail "no per-step no-gradient alert"
echo "ok"
