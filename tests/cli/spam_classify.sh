#!/usr/bin/env bash
# Encoders on the SpamAssassin mails, end to end through the CLI: masked-LM
# pretraining, then a classifier fine-tuned from that checkpoint
# (train.init_from) that must beat the majority-class baseline on the test
# split; routing by class lands in routing.json and the report.
source "$(dirname "$0")/lib.bash"
common=(--set out_dir="$WORK/runs" --quiet)
$MOE train --config configs/tiny-spam.json --set name=mlm --set train.task=mlm \
  --set train.steps=30 --set train.eval_every=15 "${common[@]}" >"$WORK/mlm.out"
mlm=$(ls -d "$WORK"/runs/mlm-*)
$PY - "$mlm" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
ev = [r for r in rows if r["kind"] == "eval"]
assert len(ev) >= 2 and all("val_accuracy" in r for r in ev), ev
assert ev[-1]["val_loss"] < ev[0]["val_loss"], [r["val_loss"] for r in ev]
print("mlm val loss", [round(r["val_loss"], 3) for r in ev], "masked acc", ev[-1]["val_accuracy"])
PY
$MOE train --config configs/tiny-spam.json --set name=cls \
  --set train.init_from="$mlm/checkpoints/latest" "${common[@]}" >"$WORK/cls.out"
run=$(ls -d "$WORK"/runs/cls-*)
$PY - "$run" <<'PY'
import json, sys
run = sys.argv[1]
r = json.load(open(run + "/results.json"))
t = r["test"]
conf = t["confusion"]
n = sum(map(sum, conf))
support = [sum(row) for row in conf]
majority_acc = max(support) / n
# the majority class's F1 over C classes (the others score 0)
m = support.index(max(support))
majority_f1 = 2 * support[m] / (support[m] + n) / len(support)
print(f"test accuracy {t['accuracy']:.4f} (majority {majority_acc:.4f}), "
      f"macro-F1 {t['macro_f1']:.4f} (majority {majority_f1:.4f}), {n} mails")
assert t["accuracy"] > majority_acc + 0.02, "no better than always predicting the majority"
assert t["macro_f1"] > majority_f1 + 0.1
assert [c["label"] for c in t["per_class"]] == ["ham", "spam"], t["per_class"]
cfg = json.load(open(run + "/config.json"))
assert cfg["model"]["n_classes"] == 2 and cfg["model"]["vocab_size"] == 260, cfg["model"]
rt = json.load(open(run + "/routing.json"))
s = rt["subsets"]
assert s["kind"] == "class" and s["labels"] == ["easy_ham", "hard_ham", "spam"], s["labels"]
for l in range(3):
    assert abs(sum(s["fraction"][l][0]) - 1) < 1e-6
assert rt["sample"]["tokens"][0] == "[CLS]", rt["sample"]["tokens"][:3]
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
ev = [x for x in rows if x["kind"] == "eval"]
assert all("val_macro_f1" in x and "val_accuracy" in x for x in ev), ev
PY
[ -s "$run/report.html" ] || fail "no report for the classifier run"
# the wrong model for the task: a clear error
expect_fail "decoder on classify" $MOE train --config configs/tiny-spam.json \
  --set model.bidirectional=false "${common[@]}"
expect_err "needs an encoder"
expect_fail "bad init_from" $MOE train --config configs/tiny-spam.json \
  --set train.init_from="$WORK/nowhere" "${common[@]}"
expect_err "nowhere"
echo "1 passed, 0 failed"
