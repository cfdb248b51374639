#!/usr/bin/env bash
# moe report on fabricated run directories (tests/fixtures/make_run_dir.py,
# docs/monitoring.md formats): the page holds plotly.js and the data block,
# its numbers are the files' (report_numbers.py), it renders in Chromium
# with exactly the charts the data calls for (report_check.mjs), missing
# files leave their sections out, and bad input gives errors naming the path.
source "$(dirname "$0")/lib.bash"
: "${MOE_BUILD_DIR:?}"
command -v node >/dev/null || fail "node is needed (scripts/install-deps.sh)"
[ -d node_modules/playwright-core ] || fail "node_modules missing: run npm ci in $(pwd)"
MAKE_RUN=tests/fixtures/make_run_dir.py
SHOTS=$MOE_BUILD_DIR/test-output
mkdir -p "$SHOTS"

# check_page RUN PAGE: plotly and the data block are inlined; numbers equal
check_page() {
  [ -s "$2" ] || fail "no report at $2"
  grep -q '^\* plotly.js v' "$2" || fail "$2: plotly.js is not inlined"
  grep -q '<script type="application/json" id="moe-data">' "$2" || fail "$2: no data block"
  $PY tests/report_numbers.py "$2" "$1"
}

# A finished Bible run: every section. The page path is printed.
$PY $MAKE_RUN "$WORK/full"
printed=$($MOE report "$WORK/full")
[ "$printed" = "$WORK/full/report.html" ] || fail "moe report printed '$printed'"
check_page "$WORK/full" "$WORK/full/report.html"
ls "$WORK/full" | grep -q 'tmp' && fail "a temporary file was left in $WORK/full"
# generated text holding "</script>" must not end the data block early
grep -qF 'God created <\/script>' "$WORK/full/report.html" || fail "</ not escaped in the data"
node tests/browser/report_check.mjs "$WORK/full/report.html" "$SHOTS/report_fixture.png" \
  > "$WORK/browser.out" || { cat "$WORK/browser.out"; fail "the full report does not render"; }
for c in loss lr util-L1 util-L3 balance entropy gate-L1 gate-L3 hist-L1 hist-L3 tokens; do
  grep -q "^charts:.* $c\b" <(sed 's/^charts:/charts: /' "$WORK/browser.out") || fail "no chart $c"
done

# --out, before or after RUN_DIR
$MOE report --out "$WORK/a.html" "$WORK/full" >/dev/null
$MOE report "$WORK/full" --out "$WORK/b.html" >/dev/null
check_page "$WORK/full" "$WORK/a.html"
check_page "$WORK/full" "$WORK/b.html"

# Class labels: expert accuracy and the parallel coordinates of expert outputs.
$PY $MAKE_RUN "$WORK/class" --variant class
$MOE report "$WORK/class" >/dev/null
check_page "$WORK/class" "$WORK/class/report.html"
node tests/browser/report_check.mjs "$WORK/class/report.html" "$SHOTS/report_fixture_class.png" \
  > "$WORK/browser.out" || { cat "$WORK/browser.out"; fail "the class report does not render"; }
grep -q "expert-accuracy" "$WORK/browser.out" || fail "no expert accuracy heatmap"
grep -q "distribution" "$WORK/browser.out" || fail "no parallel coordinates"
for c in expert-class-accuracy expert-class-gate gate-zero-by-layer gate-zero-over-time; do
  grep -q "$c" "$WORK/browser.out" || fail "no chart $c (analysis.jsonl)"
done

# Only train and eval lines: no routing, alert or summary files, so no
# routing sections, no alert markers; the curves and the routing stats stay.
$PY $MAKE_RUN "$WORK/minimal" --variant minimal
$MOE report "$WORK/minimal" >/dev/null
check_page "$WORK/minimal" "$WORK/minimal/report.html"
node tests/browser/report_check.mjs "$WORK/minimal/report.html" "$SHOTS/report_fixture_minimal.png" \
  > "$WORK/browser.out" || { cat "$WORK/browser.out"; fail "the minimal report does not render"; }
charts=$(grep '^charts:' "$WORK/browser.out")
[ "$charts" = "charts: loss lr util-L1 util-L3 balance entropy" ] || fail "minimal report: $charts"

# Still training: no results.json, a half-written last line (skipped).
$PY $MAKE_RUN "$WORK/running" --variant running
$MOE report "$WORK/running" >/dev/null
check_page "$WORK/running" "$WORK/running/report.html"

# The numbers check can fail: a number changed in the file after the report.
# line 3 is the second train line (line 1: the step-0 evaluation)
sed -i '3s/"grad_norm": \([0-9]\)/"grad_norm": 9\1/' "$WORK/full/metrics.jsonl"
expect_fail "a changed number" $PY tests/report_numbers.py "$WORK/full/report.html" "$WORK/full"
expect_err "data.train[1].grad_norm: 1.1151949224415327 in the report, 91.11519492244153 in the file"

# Bad input: each error names the path and says what is expected.
expect_fail "missing folder" $MOE report "$WORK/nope"
expect_err "$WORK/nope does not exist; expected a run directory"
expect_fail "a file" $MOE report "$WORK/class/config.json"
expect_err "$WORK/class/config.json is not a directory"
mkdir "$WORK/empty"
expect_fail "no metrics.jsonl" $MOE report "$WORK/empty"
expect_err "$WORK/empty/metrics.jsonl not found"
cp -r "$WORK/class" "$WORK/bad"
rm "$WORK/bad/report.html"
sed -i '5s/^{/{{/' "$WORK/bad/metrics.jsonl"
expect_fail "malformed line" $MOE report "$WORK/bad"
expect_err "$WORK/bad/metrics.jsonl line 5: not a JSON object"
sed -i '5s/^{{/{/' "$WORK/bad/metrics.jsonl"
sed -i '7s/"kind": "[a-z]*", //' "$WORK/bad/metrics.jsonl"
expect_fail "line without kind" $MOE report "$WORK/bad"
expect_err "$WORK/bad/metrics.jsonl line 7: no string \"kind\""
cp "$WORK/class/metrics.jsonl" "$WORK/bad/metrics.jsonl"
sed -i '2s/^{/[/' "$WORK/bad/analysis.jsonl"
expect_fail "malformed analysis line" $MOE report "$WORK/bad"
expect_err "$WORK/bad/analysis.jsonl line 2: not a JSON object"
cp "$WORK/class/analysis.jsonl" "$WORK/bad/analysis.jsonl"
printf '{"step": 600, "layers": [1, 3' > "$WORK/bad/routing.json"
expect_fail "malformed routing.json" $MOE report "$WORK/bad"
expect_err "$WORK/bad/routing.json: not a JSON object"
[ -e "$WORK/bad/report.html" ] && fail "a report was written from bad input"
expect_fail "no RUN_DIR" $MOE report
expect_err "RUN_DIR is required"
expect_fail "two run dirs" $MOE report "$WORK/full" "$WORK/class"
expect_err "unexpected argument '$WORK/class'"
expect_fail "unwritable --out" $MOE report "$WORK/full" --out "$WORK/no/such/dir/r.html"
expect_err "cannot create $WORK/no/such/dir/r.html"

# plotly.js lookup: MOE_PLOTLY_JS first, and a clear error when it is wrong.
expect_fail "bad MOE_PLOTLY_JS" env MOE_PLOTLY_JS="$WORK/none.js" $MOE report "$WORK/full"
expect_err "MOE_PLOTLY_JS=$WORK/none.js cannot be read"
echo '/* a stand-in plotly.js */' > "$WORK/plotly.js"
MOE_PLOTLY_JS="$WORK/plotly.js" $MOE report "$WORK/full" --out "$WORK/c.html" >/dev/null
grep -q 'a stand-in plotly.js' "$WORK/c.html" || fail "MOE_PLOTLY_JS was not used"
# ... then the installed copy next to the program, before the source tree's.
mkdir -p "$WORK/prefix/bin" "$WORK/prefix/share/libmoe"
cp "$MOE" "$WORK/prefix/bin/moe"
echo '/* an installed plotly.js */' > "$WORK/prefix/share/libmoe/plotly.min.js"
"$WORK/prefix/bin/moe" report "$WORK/full" --out "$WORK/d.html" >/dev/null
grep -q 'an installed plotly.js' "$WORK/d.html" || fail "share/libmoe/plotly.min.js was not used"
echo "screenshots: $SHOTS/report_fixture*.png"
echo "1 passed, 0 failed"
