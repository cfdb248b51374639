#!/usr/bin/env bash
# A short training on the Bible text: run directory layout, validation loss
# falls, metrics carry routing, eval and generate work on the checkpoint.
source "$(dirname "$0")/lib.bash"
$MOE train --config configs/tiny.json --set out_dir="$WORK/runs" --quiet >"$WORK/train.out"
run=$(ls -d "$WORK"/runs/tiny-*)
for f in config.json metrics.jsonl results.json routing.json model_info.json \
         checkpoints/latest/model.safetensors \
         checkpoints/latest/optimizer.safetensors checkpoints/latest/train.json \
         checkpoints/latest/config.json checkpoints/best/model.safetensors; do
  [ -e "$run/$f" ] || fail "missing $f in $run"
done
# validation loss: first evaluation vs last, and well below uniform (ln 256 = 5.55)
$PY - "$run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ev = [r["val_loss"] for r in rows if r["kind"] == "eval"]
tr = [r for r in rows if r["kind"] == "train"]
assert len(ev) >= 3, ev
assert ev[0] > 5 and ev[-1] < ev[0] - 1.5 and ev[-1] < 3.5, f"validation loss did not fall: {ev}"
frac = tr[-1]["expert_fraction"]
assert sorted(frac) == ["0", "1"] and sorted(frac["0"]) == ["0", "1", "2", "3"], frac
assert abs(sum(frac["0"].values()) - 1) < 1e-6, frac
for k in ("train_loss", "grad_norm", "learning_rate", "tokens_per_second", "load_cv",
          "router_entropy", "aux_loss", "router_grad_norm", "memory_rss_bytes", "train_epoch"):
    assert k in tr[-1], k
assert tr[-1]["train_step"] == tr[-1]["step"] == 60
assert tr[-1]["tokens_total"] == 60 * 8 * 64, tr[-1]["tokens_total"]  # steps x batch x seq_len
print("val losses", ev)
PY
[ "$(json_get "$run/results.json" "j['stop_reason']")" = completed ] || fail "stop_reason"
[ "$(json_get "$run/results.json" "j['steps']")" = 60 ] || fail "steps"
grep -q "^sample:" "$WORK/train.out" || fail "no sample printed"
# eval: JSON with quality and cost
$MOE eval --checkpoint "$run/checkpoints/latest" --batches 2 --out "$WORK/eval.json" \
  --prometheus "$WORK/eval.prom" >/dev/null
promtool check metrics <"$WORK/eval.prom" || fail "promtool rejects moe eval --prometheus"
grep -q "^moe_eval_val_loss $(json_get "$WORK/eval.json" "repr(j['val_loss'])")\$" "$WORK/eval.prom" ||
  fail "eval.prom val loss differs from eval.json: $(grep val_loss "$WORK/eval.prom")"
$PY - "$WORK/eval.json" "$run/results.json" <<'PY'
import json, sys
e, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for k in ("val_loss", "val_ppl", "params", "active_params", "train_flops_per_token",
          "forward_flops_per_token", "all_experts_forward_flops_per_token",
          "active_over_dense_flops", "latency_ms_per_token_p50", "latency_ms_per_token_p99",
          "tokens_per_s_batch1", "tokens_per_s_large_batch", "generate_ms_per_token"):
    assert k in e, k
assert e["task"] == "lm" and 0 < e["active_over_dense_flops"] < 1, e
assert e["latency_ms_per_token_p50"] <= e["latency_ms_per_token_p99"], e
assert e["active_params"] < e["params"]
assert abs(e["val_loss"] - r["final_val_loss"]) < 0.3, (e["val_loss"], r["final_val_loss"])
PY
# generate: greedy is deterministic and continues the prompt
a=$($MOE generate --checkpoint "$run/checkpoints/latest" --prompt "And God said" --tokens 40 --temperature 0)
b=$($MOE generate --checkpoint "$run/checkpoints/latest" --prompt "And God said" --tokens 40 --temperature 0)
[ "$a" = "$b" ] || fail "greedy generation differs between runs"
case "$a" in "And God said"*) ;; *) fail "generation does not start with the prompt: $a" ;; esac
# moe route on a decoder: bytes in, experts per byte out
$MOE route --checkpoint "$run/checkpoints/latest" --text "And God said" >"$WORK/route.json"
json_get "$WORK/route.json" "''.join(t['text'] for t in j['tokens'])" | grep -qx "And God said" ||
  fail "moe route tokens differ from the text"
[ "$(json_get "$WORK/route.json" "len(j['tokens'][0]['layers'])")" = 2 ] || fail "route layers"
# the report refreshes during training; without plotly.js training still
# completes and says why the report is missing
[ -s "$run/report.html" ] || fail "no report.html after training"
grep -q "^report: $run/report.html" "$WORK/train.out" || fail "report path not printed"
MOE_PLOTLY_JS=/nonexistent/plotly.min.js $MOE train --config configs/tiny.json \
  --set out_dir="$WORK/noplotly" --set train.steps=5 --set train.eval_every=0 \
  --set train.sched.warmup_steps=0 --set train.sample_tokens=0 --quiet >/dev/null 2>"$WORK/err" ||
  fail "training failed without plotly.js"
expect_err "report.html not written"
expect_err "MOE_PLOTLY_JS"
echo "1 passed, 0 failed"
