#!/bin/sh
# Regenerates tests/fixtures/tok/ with HuggingFace tokenizers (Rust, through the npm binding
# @anush008/tokenizers): the three tokenizer.json files, golden.jsonl and decode.jsonl, then
# re-checks the library behaviours README.md documents. Needs node >= 18 and npm (registry access
# for the first npm ci). Output is deterministic: a rerun leaves git diff empty.
#
#   tests/reference/tok/regen.sh            from anywhere
#   FULL=1 tests/reference/tok/regen.sh     also scan every code point (probe.js --full, ~1 min)
set -eu
cd "$(dirname "$0")"
OUT=../../fixtures/tok
if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund
else
    npm install --no-audit --no-fund --save-exact
fi
# All three tokenizer variants are built in a temporary folder; only the base
# file is committed (the C test derives the NFC variant by editing its
# normalizer, and the tiny tokenizer covers the ["a", "b"] merge format).
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
node make_tokenizer.js "$TMP"
node make_golden.js "$TMP"
if [ "${FULL:-0}" = 1 ]; then node probe.js --full "$TMP"; else node probe.js "$TMP"; fi
cp "$TMP/gpt2-openflamingo.tokenizer.json" "$TMP/golden.jsonl" "$TMP/decode.jsonl" "$OUT/"
rm -f "$OUT/gpt2-nfc.tokenizer.json" "$OUT/gpt2-merges-pairs.tokenizer.json"
