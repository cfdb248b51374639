#!/usr/bin/env bash
# make install's layout: headers, shared and static library, pkg-config file;
# an outside program (examples/minimal.c) builds against it and runs.
source "$(dirname "$0")/lib.bash"
: "${MOE_BUILD_DIR:?}"
cmake --install "$MOE_BUILD_DIR" --prefix "$WORK/prefix" >/dev/null
pc=$(find "$WORK/prefix" -name libmoe.pc | head -n1)
[ -n "$pc" ] || fail "no libmoe.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
[ -f "$WORK/prefix/include/moe/moe.h" ] || fail "headers not installed"
[ -x "$WORK/prefix/bin/moe" ] || fail "moe not installed"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror ${MOE_EXTRA_CFLAGS:-} examples/minimal.c $(pkg-config --cflags --libs libmoe) \
  -o "$WORK/minimal"
LD_LIBRARY_PATH=$(pkg-config --variable=libdir libmoe) "$WORK/minimal" > "$WORK/out"
grep -q "abcd -> abcdefghabcd" "$WORK/out" || { cat "$WORK/out"; fail "the example did not learn"; }
if [ -f node_modules/plotly.js-dist-min/plotly.min.js ]; then
  cmp -s node_modules/plotly.js-dist-min/plotly.min.js "$WORK/prefix/share/libmoe/plotly.min.js" \
    || fail "plotly.min.js not installed into share/libmoe"
fi
for c in "" train eval generate bench report data; do
  $MOE $c --help > /dev/null || fail "moe $c --help"
done
echo "1 passed, 0 failed"
