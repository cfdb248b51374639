#!/usr/bin/env bash
# Encoders on the SpamAssassin mails, end to end through the CLI: masked-LM
# pretraining, then a classifier fine-tuned from that checkpoint
# (train.init_from) that must beat the majority-class baseline on the test
# split; routing by class lands in routing.json and the report.
source "$(dirname "$0")/lib.bash"
common=(--set out_dir="$WORK/runs" --quiet)
$MOE train --config configs/tiny-spam.json --set name=mlm --set train.task=mlm --set model.n_classes=0 \
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
# moe eval on the classifier: quality from its run's task, cost and speed
$MOE eval --checkpoint "$run/checkpoints/latest" --large-batch 32 --latency-seqs 16 \
  --out "$WORK/eval.json" --prometheus "$WORK/eval.prom" >/dev/null
promtool check metrics <"$WORK/eval.prom" || fail "promtool rejects the classifier's metrics"
$PY - "$WORK/eval.json" "$run/results.json" <<'PY'
import json, sys
e, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert e["task"] == "classify", e
# the same final model and split: the same test report as training wrote
assert e["test"]["confusion"] == r["test"]["confusion"], (e["test"], r["test"])
assert abs(e["val_macro_f1"] - r["final_val_macro_f1"]) < 1e-9
for k in ("latency_ms_per_token_p50", "latency_ms_per_token_p90", "latency_ms_per_token_p99",
          "tokens_per_s_batch1", "tokens_per_s_large_batch", "active_over_dense_flops"):
    assert e[k] > 0, k
assert e["large_batch"] == 32 and "generate_ms_per_token" not in e
PY
# moe route: a per-token routing trace of any text, with the class probabilities
$MOE route --checkpoint "$run/checkpoints/latest" --text "FREE money!!! Click here now" \
  --out "$WORK/route.json" >/dev/null
$PY - "$WORK/route.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
toks = r["tokens"]
assert toks[0]["text"] == "[CLS]" and len(toks) == 1 + len("FREE money!!! Click here now"), toks[:2]
assert "".join(t["text"] for t in toks[1:]) == "FREE money!!! Click here now"
for t in toks:
    assert len(t["layers"]) == 1
    l = t["layers"][0]
    assert len(l["experts"]) == 2 and all(0 <= e < 4 for e in l["experts"]), l
    assert abs(sum(l["weights"]) - 1) < 1e-5 and all(l["kept"]), l
assert abs(sum(r["class_probs"]) - 1) < 1e-9 and r["predicted_class"] in (0, 1)
PY
# the wrong model for the task: a clear error
expect_fail "decoder on classify" $MOE train --config configs/tiny-spam.json \
  --set model.bidirectional=false "${common[@]}"
expect_err "needs an encoder"
expect_fail "bad init_from" $MOE train --config configs/tiny-spam.json \
  --set train.init_from="$WORK/nowhere" "${common[@]}"
expect_err "nowhere"
echo "1 passed, 0 failed"
