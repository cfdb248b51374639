#!/usr/bin/env bash
# Fuzzes the request parsers (src/serve/request.c) with libFuzzer under
# ASan and UBSan for a bounded time; any crash, leak or UB report fails.
# MOE_FUZZ_SECONDS (default 20) sets the time.
source "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v clang >/dev/null || fail "clang is not installed (scripts/install-deps.sh --with-torch)"
clang -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 \
  -I "$ROOT/include" -I "$ROOT/src" \
  "$ROOT/tests/fuzz/fuzz_request.c" "$ROOT/src/serve/request.c" "$ROOT/src/serve/serve_common.c" \
  "$ROOT/src/io/utf8.c" "$ROOT/src/core/status.c" -lcjson -lm -o "$WORK/fuzz_request" 2>"$WORK/cc.log" ||
  { cat "$WORK/cc.log" >&2; fail "cannot build the fuzz harness"; }
mkdir -p "$WORK/corpus"
cp "$ROOT"/tests/fuzz/corpus/*.json "$WORK/corpus/"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if ! "$WORK/fuzz_request" -max_total_time="${MOE_FUZZ_SECONDS:-20}" -max_len=4096 \
  -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$WORK/corpus" >"$WORK/fuzz.log" 2>&1; then
  tail -60 "$WORK/fuzz.log" >&2
  fail "the fuzzer found a crash, leak or UB (log above)"
fi
if grep -qE "runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)" "$WORK/fuzz.log"; then
  grep -E -A20 "runtime error:|ERROR:" "$WORK/fuzz.log" | head -60 >&2
  fail "sanitizer report in the fuzz log"
fi
grep -q "Done [0-9]* runs" "$WORK/fuzz.log" || { tail -20 "$WORK/fuzz.log" >&2; fail "the fuzzer did not finish"; }
echo "fuzz_request: $(grep -o 'Done [0-9]* runs' "$WORK/fuzz.log")"
