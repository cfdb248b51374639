#!/usr/bin/env bash
# Alerts fire on real training: a top-1 router with renormalised weights and
# no auxiliary loss gets no gradient; tight thresholds make imbalance,
# starvation and loss spikes fire. Each is a metrics.jsonl line, a stderr
# line and a count in alerts_total. A diverging run logs a nonfinite alert.
# Without a terminal the progress line degrades to plain lines.
source "$(dirname "$0")/lib.bash"
$MOE train --config configs/tiny.json --set out_dir="$WORK/runs" --set train.steps=40 \
  --set train.eval_every=20 --set train.sample_tokens=0 --set model.moe.top_k=1 \
  --set model.moe.switch_coef=0 --set obs.imbalance_max=0.01 --set obs.starve_ratio=0.9 \
  --set obs.starve_steps=2 --set obs.loss_window=5 --set obs.spike_sigma=0.5 \
  >"$WORK/out" 2>"$WORK/err"
run=$(ls -d "$WORK"/runs/tiny-*)
$PY - "$run/metrics.jsonl" "$WORK/err" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
err = open(sys.argv[2]).read()
alerts = [r for r in rows if r["kind"] == "alert"]
kinds = {a["alert"] for a in alerts}
for k in ("no_router_grad", "imbalance", "starved", "loss_spike"):
    assert k in kinds, f"no {k} alert in {sorted(kinds)}"
for a in alerts:
    assert a["message"] in err, f"alert not on stderr: {a['message']}"
    assert "alert: " + a["message"] in err
# the config's top-1 trap is said once at step 0, about no particular layer
start = [a for a in alerts if a["step"] == 0]
assert len(start) == 1 and "gives the router no gradient" in start[0]["message"], start
assert start[0]["alert"] == "no_router_grad" and "layer" not in start[0], start
# layer alerts name a layer; starvation an expert too
assert all(a["layer"] in (0, 1) for a in alerts if a["alert"] != "loss_spike" and a["step"] > 0)
assert all(0 <= a["expert"] < 4 for a in alerts if a["alert"] == "starved")
assert all(a["value"] > a["threshold"] for a in alerts if a["alert"] in ("imbalance", "loss_spike"))
# alerts_total (lines carry the series updated since the line before; the
# latest value of each) counts the alert lines
total = {}
for r in rows:
    total.update(r.get("alerts_total", {}))
for k in kinds:
    n = sum(1 for a in alerts if a["alert"] == k)
    assert total[k] == n, (k, total[k], n)
last = [r for r in rows if r["kind"] == "train"][-1]
assert last["router_grad_norm"]["0"] == 0, last["router_grad_norm"]
# not a terminal: the progress line is plain lines, one per log step
lines = [l for l in err.split("\n") if l.startswith("step ")]
assert len(lines) == 40 // 5, lines
assert "\r" not in err and "| epoch " in lines[0] and "| alerts " in lines[0], lines[0]
print(sorted(kinds))
PY

# NaN: the nonfinite alert is logged before training stops
expect_fail "diverging run" $MOE train --config configs/tiny.json --set out_dir="$WORK/nan" \
  --set train.optim.kind=sgd --set train.optim.lr=1000 --set train.grad_clip=0 \
  --set train.eval_every=0 --set train.sched.warmup_steps=0 --quiet
expect_err "alert: step"
grep -q '"alert":"nonfinite"' "$WORK"/nan/tiny-*/metrics.jsonl || fail "no nonfinite alert line"
echo "1 passed, 0 failed"
