# Shared by the CLI tests: a scratch folder, assertions with clear messages.
set -euo pipefail
: "${MOE:?MOE must point at the built moe binary}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/moe-cli-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PY=/usr/bin/python3

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_fail "what" cmd...: the command must exit non-zero; its stderr in $WORK/err
expect_fail() {
  local what=$1; shift
  if "$@" >"$WORK/out" 2>"$WORK/err"; then fail "$what: command succeeded"; fi
}
# expect_err "substring": the last expect_fail's stderr must contain it
expect_err() {
  grep -qF -- "$1" "$WORK/err" || { cat "$WORK/err" >&2; fail "stderr lacks: $1"; }
}
# json_get FILE EXPR: evaluates a Python expression over the JSON object j
json_get() { $PY -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
