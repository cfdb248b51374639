#!/usr/bin/env bash
# Serving beyond the byte-level decoder, on real data through the CLI: a
# models folder holding an mlp_moe classifier trained on iris and a small
# encoder spam classifier. The iris model answers raw feature rows (the
# server recovers the training split's normalisation) as well as it did in
# training: all 150 flowers of sklearn's file, batched into one request,
# must be classified at least 90% right. The spam model answers texts with
# a label and class probabilities, and its routing trace starts with [CLS].
# Generation on a classifier is refused with 400 naming the model.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/serve_lib.bash"
iris_csv=/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv

$MOE train --config configs/mlp-moe-iris.json --set name=iris --set train.epochs=300 \
  --set out_dir="$WORK/runs" --quiet >/dev/null 2>&1 || fail "iris training failed"
$MOE train --config configs/tiny-spam.json --set name=spam --set train.steps=30 \
  --set out_dir="$WORK/runs" --quiet >/dev/null 2>&1 || fail "spam training failed"
mkdir -p "$WORK/models"
mv "$WORK"/runs/iris-* "$WORK/models/iris"
mv "$WORK"/runs/spam-* "$WORK/models/spam"

KEY=$(random_key)
export MOE_API_KEYS="fam:infer:$KEY"
serve_start --models "$WORK/models" --state-dir "$WORK/state"
code=$(api GET /v1/models)
[ "$code" = 200 ] || fail "GET /v1/models: $code $(cat "$WORK/resp")"
$PY - "$WORK/resp" <<'PY'
import json, sys
m = {x["name"]: x for x in json.load(open(sys.argv[1]))["models"]}
assert sorted(m) == ["iris", "spam"], sorted(m)
assert m["iris"]["family"] == "mlp_moe" and m["iris"]["input"] == "rows", m["iris"]
assert m["iris"]["n_features"] == 4 and m["iris"]["n_classes"] == 3, m["iris"]
assert m["iris"]["rows_normalized_by_server"] is True, m["iris"]
assert m["spam"]["family"] == "transformer" and m["spam"]["task"] == "classify", m["spam"]
assert m["spam"]["input"] == "text", m["spam"]
PY

# every flower of the file, raw, in one request
body=$($PY - "$iris_csv" <<'PY'
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1])))[1:]
print(json.dumps({"model": "iris", "rows": [[float(v) for v in r[:4]] for r in rows]}))
PY
)
code=$(curl -sS -o "$WORK/resp" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' --data "$body" "$URL/v1/infer")
[ "$code" = 400 ] || fail "150 rows (over --max-inputs 64) should be 400, got $code"
grep -q '"field":"rows"' "$WORK/resp" || fail "the 400 does not name rows: $(cat "$WORK/resp")"
$PY - "$iris_csv" "$URL" "$KEY" <<'PY'
import csv, json, sys, urllib.request
path, url, key = sys.argv[1:]
rows = list(csv.reader(open(path)))[1:]
x = [[float(v) for v in r[:4]] for r in rows]
y = [int(r[4]) for r in rows]
right = 0
for i in range(0, len(x), 50):  # 50 rows a request (under --max-inputs)
    req = urllib.request.Request(url + "/v1/infer", json.dumps({"model": "iris", "rows": x[i:i+50]}).encode(),
                                 {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    out = json.load(urllib.request.urlopen(req))["outputs"]
    assert len(out) == len(x[i:i+50])
    for o, t in zip(out, y[i:i+50]):
        assert abs(sum(o["probs"]) - 1) < 1e-6, o
        assert o["class"] == max(range(3), key=lambda c: o["probs"][c]), o
        right += o["class"] == t
acc = right / len(x)
assert acc >= 0.9, f"served iris accuracy {acc:.3f} < 0.9: is the normalisation applied?"
print(f"served iris accuracy {acc:.3f}")
PY

code=$(api POST /v1/infer '{"model": "spam", "text": ["Dear friend, claim your FREE prize now!!!", "Meeting moved to 3pm, see agenda attached."], "trace": true}')
[ "$code" = 200 ] || fail "spam infer: $code $(cat "$WORK/resp")"
$PY - "$WORK/resp" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["task"] == "classify" and len(r["outputs"]) == 2, r
for o in r["outputs"]:
    assert o["label"] in ("ham", "spam"), o
    assert len(o["probs"]) == 2 and abs(sum(o["probs"]) - 1) < 1e-6, o
    toks = o["trace"]["tokens"]
    assert toks[0]["text"] == "[CLS]", toks[0]
    assert all(len(t["layers"]) == 1 and len(t["layers"][0]["experts"]) == 2 for t in toks), toks[1]
PY
code=$(api POST /v1/generate '{"model": "spam", "prompt": "Hello"}')
[ "$code" = 400 ] || fail "generate on a classifier: $code"
grep -q '"field":"model"' "$WORK/resp" || fail "the 400 does not name model: $(cat "$WORK/resp")"
code=$(api POST /v1/infer '{"model": "iris", "rows": [[1, 2, 3]]}')
[ "$code" = 400 ] || fail "a row of 3 numbers for iris: $code"

serve_stop
echo "1 passed, 0 failed"
