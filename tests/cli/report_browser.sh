#!/usr/bin/env bash
# A real short training, then its report: every file a finished run leaves
# (docs/monitoring.md) reaches the page with its numbers unchanged, and the
# page renders in Chromium with every chart its data calls for. Screenshot:
# $MOE_BUILD_DIR/test-output/report.png.
source "$(dirname "$0")/lib.bash"
: "${MOE_BUILD_DIR:?}"
command -v node >/dev/null || fail "node is needed (scripts/install-deps.sh)"
[ -d node_modules/playwright-core ] || fail "node_modules missing: run npm ci in $(pwd)"
$MOE train --config configs/tiny.json --set out_dir="$WORK/runs" --quiet >"$WORK/train.out"
run=$(ls -d "$WORK"/runs/tiny-*)
printed=$($MOE report "$run")
[ "$printed" = "$run/report.html" ] || fail "moe report printed '$printed'"
$PY tests/report_numbers.py "$run/report.html" "$run"
# what a finished run on the Bible must give the page (configs/tiny.json:
# 2 MoE layers of 4 experts, 60 steps, logged every 5, evaluated every 20)
$PY - "$run/report.html" <<'PY'
import json, math, re, sys
html = open(sys.argv[1], encoding="utf-8").read()
d = json.loads(re.search(r'<script type="application/json" id="moe-data">(.*?)</script>', html, re.S).group(1))
for k in ("train", "eval", "routing", "model_info", "results", "config"):
    assert k in d, f"data.{k} missing: the run directory lacks its file or lines"
assert [l["step"] for l in d["train"]] == list(range(5, 61, 5)), [l["step"] for l in d["train"]]
assert [l["step"] for l in d["eval"]] == [0, 20, 40, 60], [l["step"] for l in d["eval"]]
for l in d["train"]:
    for k in ("train_loss", "learning_rate", "router_temperature", "expert_fraction", "load_cv",
              "load_max_over_mean", "router_entropy"):
        assert k in l, f"train line at step {l['step']} lacks {k}"
    assert sorted(l["expert_fraction"]) == ["0", "1"], l["expert_fraction"]
    for layer, f in l["expert_fraction"].items():
        assert sorted(f) == ["0", "1", "2", "3"], f
        assert abs(sum(f.values()) - 1) < 1e-6, (l["step"], layer, f)
r = d["routing"]
assert r["layers"] == [0, 1] and r["n_experts"] == 4 and r["top_k"] == 2, r
s = r["subsets"]
assert s["kind"] == "topic" and len(s["labels"]) >= 2, s.get("labels")
assert len(s["fraction"]) == len(s["labels"]) and len(s["fraction"][0]) == 2
assert all(abs(sum(s["fraction"][l][i]) - 1) < 1e-6 for l in range(len(s["labels"])) for i in range(2))
t = r["sample"]
assert len(t["tokens"]) > 0 and len(t["expert"]) == 2 and len(t["expert"][0]) == len(t["tokens"])
m = d["model_info"]
assert m["n_experts"] == 4 and m["top_k"] == 2 and m["moe_layers"] == [0, 1], m
assert m["active_params"] < m["params"] == d["results"]["params"], m
assert m["flops_per_token_active"] < m["flops_per_token_dense"], m
print(f"{len(d['train'])} train lines, {len(d['eval'])} evaluations, topics {s['labels']}")
PY
shot=$MOE_BUILD_DIR/test-output/report.png
mkdir -p "$(dirname "$shot")"
node tests/browser/report_check.mjs "$run/report.html" "$shot" > "$WORK/browser.out" \
  || { cat "$WORK/browser.out"; fail "the report does not render"; }
cat "$WORK/browser.out"
for c in loss lr util-L0 util-L1 balance entropy gate-L0 gate-L1 hist-L0 hist-L1 tokens; do
  grep -qw -- "$c" <(grep '^charts:' "$WORK/browser.out") || fail "no chart $c"
done
echo "1 passed, 0 failed"
