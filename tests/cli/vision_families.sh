#!/usr/bin/env bash
# The CNN families (seed 000 cnn_moe, seed 001 deepmoe) end to end through
# the CLI on a small Fashion-MNIST cut (the first 600 training and 200 test
# images of Debian's idx files, rewritten as idx files): epochs, the annealed
# gate temperature, expert analysis and gate sparsity in analysis.jsonl and
# results.json, DeepMoE's frozen phase, the best weights restored (moe eval
# of the best checkpoint, batch-norm statistics included, gives the same
# test accuracy), and a resumed run that replays the same losses.
source "$(dirname "$0")/lib.bash"
common=(--set out_dir="$WORK/runs" --set data.path="$WORK/fm" --quiet)
$PY - "$WORK/fm" <<'PY'
import gzip, os, struct, sys
src, out = "/usr/share/datasets/fashion-mnist", sys.argv[1]
os.makedirs(out)
for split, n in (("train", 600), ("t10k", 200)):
    with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        pixels = f.read(n * rows * cols)
    with gzip.open(f"{out}/{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", magic, n, rows, cols) + pixels)
    with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz") as f:
        magic, count = struct.unpack(">II", f.read(8))
        labels = f.read(n)
    with gzip.open(f"{out}/{split}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", magic, n) + labels)
PY

small_cnn=(--set model.cnn.channels=8,16 --set model.cnn.expert_channels=16 --set model.cnn.gate_hidden=16)
$MOE train --config configs/cnn-moe-fmnist.json --set name=cnn "${small_cnn[@]}" \
  --set train.epochs=6 --set train.batch_size=32 --set train.sched.warmup_steps=5 \
  --set train.max_seconds=0 --set obs.analysis_every=2 --set model.temperature_schedule=linear \
  --set train.log_every=1 \
  "${common[@]}" >"$WORK/cnn.out" 2>"$WORK/cnn.err"
run=$(ls -d "$WORK"/runs/cnn-*)
$PY - "$run" <<'PY'
import json, sys
run = sys.argv[1]
r = json.load(open(run + "/results.json"))
assert r["family"] == "cnn_moe", r
t = r["test"]
print(f"cnn_moe on 540 images: test accuracy {t['accuracy']:.3f} over {t['total']}")
assert t["total"] == 200 and t["accuracy"] > 0.3, t
ea = r["expert_analysis"]
assert len(ea["accuracy"]) == 3 and len(ea["accuracy"][0]) == 10, ea
assert ea["classes"][0] == "T-shirt/top" and sum(ea["support"]) == 200, ea
# the gate weights of each example sum to 1 over the experts
for c in range(10):
    if ea["support"][c]:
        assert abs(sum(ea["gate"][e][c] for e in range(3)) - 1) < 1e-4, ea["gate"]
lines = [json.loads(l) for l in open(run + "/analysis.jsonl")]
val = [a for a in lines if a["split"] == "val"]
assert [a["epoch"] for a in val][:3] == [2, 4, 6], [a["epoch"] for a in val]
assert lines[-1]["split"] == "test"
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
train = [x for x in rows if x["kind"] == "train"]
temps = [x["router_temperature"] for x in train]
# linear 2.0 -> 0.5 over 6 epochs, per epoch: 2.0, 1.75, ..., 0.75
assert abs(temps[0] - 2.0) < 1e-6 and abs(temps[-1] - 0.75) < 1e-6, temps
assert all(b <= a for a, b in zip(temps, temps[1:])), temps
terms = {k for x in train for k in x.get("loss_term", {})}
assert terms == {"entropy", "balance_kl", "correlation", "min_gate"}, terms
# one evaluation before training and one after each epoch (eval_every 1)
ev = [x["step"] for x in rows if x["kind"] == "eval"]
spe = len(train) // 6
assert ev == [k * spe for k in range(7)], (ev, spe)
PY
# the best checkpoint (batch-norm statistics included) scores what results.json says
$MOE eval --checkpoint "$run/checkpoints/best" --out "$WORK/eval.json" >/dev/null
$PY - "$WORK/eval.json" "$run" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2] + "/results.json"))
assert e["test"]["confusion"] == r["test"]["confusion"], (e["test"]["confusion"], r["test"]["confusion"])
assert e["flops_per_example_active"] == e["flops_per_example_dense"] > 0, e
assert e["latency_ms_per_example_p50"] > 0 and e["examples_per_s_large_batch"] > 0, e
assert len(e["test_expert_analysis"]["accuracy"]) == 3, e
print("moe eval of best:", e["test"]["accuracy"], "latency p50 ms", e["latency_ms_per_example_p50"])
PY
$MOE bootstrap --checkpoint "$run/checkpoints/best" --resamples 50 >/dev/null

# resume from the epoch-3 checkpoint: the same losses after it
rc=(--config configs/cnn-moe-fmnist.json "${small_cnn[@]}" --set train.epochs=4 --set train.batch_size=64
    --set train.sched.warmup_steps=5 --set train.max_seconds=0 --set train.checkpoint_every=2
    --set train.log_every=1 --set data.augment_pad=2 --set data.path="$WORK/fm" --quiet)
$MOE train "${rc[@]}" --set name=full --set out_dir="$WORK/resume" >/dev/null 2>&1
full=$(ls -d "$WORK"/resume/full-*)
ck=$(ls -d "$full"/checkpoints/step-* | head -1)
at=$(basename "$ck" | sed 's/step-0*//')
losses() { $PY -c "import json,sys; print(' '.join(repr(r['train_loss']) for r in map(json.loads, open(sys.argv[1])) if r['kind']=='train' and int(r['step'])>int(sys.argv[2])))" "$1" "$2"; }
cp -r "$full" "$WORK/resumed"
$PY -c "import json,sys; [print(l, end='') for l in open(sys.argv[1]) if json.loads(l)['step'] <= int(sys.argv[2])]" \
  "$full/metrics.jsonl" "$at" > "$WORK/resumed/metrics.jsonl"
$MOE train --resume "$WORK/resumed/checkpoints/$(basename "$ck")" --quiet >/dev/null 2>&1
want=$(losses "$full/metrics.jsonl" "$at"); got=$(losses "$WORK/resumed/metrics.jsonl" "$at")
[ -n "$want" ] || fail "no losses after step $at"
[ "$want" = "$got" ] || fail "resumed cnn_moe run differs after step $at: want [$want] got [$got]"

# DeepMoE: gate sparsity, and the frozen last epoch (CE only, embedding unchanged)
small_dm=(--set model.deepmoe.channels=8,16 --set model.deepmoe.emb_dim=16)
$MOE train --config configs/seed001-deepmoe.json --set name=dm "${small_dm[@]}" --set train.epochs=3 \
  --set model.deepmoe.freeze_epochs=1 --set train.sched.milestones=2 --set train.checkpoint_every=1 \
  --set train.log_every=1 "${common[@]}" >"$WORK/dm.out" 2>"$WORK/dm.err"
dm=$(ls -d "$WORK"/runs/dm-*)
$PY - "$dm" <<'PY'
import json, struct, sys
run = sys.argv[1]
r = json.load(open(run + "/results.json"))
g = r["gate_sparsity"]
assert r["family"] == "deepmoe" and len(g["layers"]) == 4, g
assert 0 <= g["skippable_fraction"] <= 1 and g["gated_conv_flops"] > 0, g
print(f"deepmoe: test accuracy {r['test']['accuracy']:.3f}, zero gates {g['zero_fraction']:.3f}, "
      f"skippable {g['skippable_fraction']:.3f}")
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
train = [x for x in rows if x["kind"] == "train"]
spe = len(train) // 3
# in the last epoch the auxiliary terms are off: the loss is CE alone
assert all(x["train_aux"] == 0 for x in train[2 * spe:]), [x["train_aux"] for x in train[2 * spe:]]
assert all(x["train_aux"] > 0 for x in train[:2 * spe]), "aux should be on before the frozen phase"

def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items() if k != "__metadata__"}

import glob
steps = sorted(glob.glob(run + "/checkpoints/step-*"))
a, b = tensors(steps[-2] + "/model.safetensors"), tensors(steps[-1] + "/model.safetensors")
emb = [k for k in a if k.startswith("embed")]
assert emb, sorted(a)
assert all(a[k] == b[k] for k in emb), "the embedding network moved in the frozen epoch"
assert any(a[k] != b[k] for k in a if k not in emb), "nothing trained in the frozen epoch"
PY
echo "ok"
