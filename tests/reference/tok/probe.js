#!/usr/bin/env node
// Experiments behind the claims in README.md about HuggingFace tokenizers (Rust, via
// @anush008/tokenizers). Each claim is asserted, so a different library version that behaves
// differently fails here instead of silently changing the golden files.
//
//   node probe.js [--full] [DIR]     (DIR: where the tokenizer.json files are; default ../../fixtures/tok)
//
// --full also scans every code point (about 30 s): the pre-tokenizer's \p{L} / \p{N} / \s
// against node's own Unicode tables, and the NFC normalizer against String.prototype.normalize.
'use strict';

const path = require('path');
const assert = require('assert');
const { Tokenizer } = require('@anush008/tokenizers');

const args = process.argv.slice(2);
const FULL = args.includes('--full');
const DIR = path.resolve(args.find((a) => !a.startsWith('--')) || path.join(__dirname, '..', '..', 'fixtures', 'tok'));
const A = Tokenizer.fromFile(path.join(DIR, 'gpt2-openflamingo.tokenizer.json'));
const N = Tokenizer.fromFile(path.join(DIR, 'gpt2-nfc.tokenizer.json'));
const enc = async (tk, s, opt) => (await tk.encode(s, null, opt)).getIds();
const E = (tk, s) => enc(tk, s, { addSpecialTokens: false });
const pieces = (s) => A.getPreTokenizer().preTokenizeString(s).map((p) => p[0]);
const same = (a, b) => assert.deepStrictEqual(a, b);
const hex = (c) => 'U+' + c.toString(16).toUpperCase().padStart(4, '0');

function ranges(l) {
  if (!l.length) return '';
  const r = [];
  let s = l[0], p = l[0];
  const put = () => r.push(s === p ? hex(s) : `${hex(s)}..${hex(p)}`);
  for (const x of l.slice(1)) { if (x === p + 1) { p = x; continue; } put(); s = p = x; }
  put();
  return r.join(' ');
}

async function main() {
  // 1. encode defaults: addSpecialTokens defaults to true (it only matters with a post-processor
  //    that adds tokens; ByteLevel adds none, so the ids are the same either way here).
  const tj = JSON.parse(require('fs').readFileSync(path.join(DIR, 'gpt2-openflamingo.tokenizer.json'), 'utf8'));
  tj.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [50256], tokens: ['<|endoftext|>'] } },
  };
  const T = Tokenizer.fromString(JSON.stringify(tj));
  same(await enc(T, 'hi'), [50256, 5303]);
  same(await enc(T, 'hi', {}), [50256, 5303]);
  same(await enc(T, 'hi', { addSpecialTokens: false }), [5303]);
  same(await enc(A, 'hi <image>'), await E(A, 'hi <image>'));
  console.log('encode(text[, pair, {addSpecialTokens = true, isPretokenized = false}]); decode(ids, skipSpecialTokens) has no default');

  // 2. Lone surrogates: N-API converts the JS string to UTF-8 first, each lone surrogate
  //    (each unpaired UTF-16 unit) becoming U+FFFD; the library never sees them.
  for (const s of ['a\ud800b', '\udc00', 'x\ude00\ud83d', '\ud83d\ud83d\ude00']) {
    same(await E(A, s), await E(A, s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')));
  }
  console.log('lone surrogates: each becomes U+FFFD before the library sees the text');

  // 3. Pre-tokenizer regex: Oniguruma, Unicode 16.0 tables.
  const isL = (c) => pieces('a' + c).length === 1;
  const isN = (c) => pieces('1' + c).length === 1;
  assert(isL('\u{105c0}') && isL('\u{1e5d0}') && isL('\u{16d43}'));  // Todhri, Ol Onal, Kirat Rai: letters new in 16.0
  assert(isN('\u{10d40}'));                                         // Garay digit zero, 16.0
  assert(!isL('\u{10940}') && !isL('\u{323b0}') && !isL('\ua7ce')); // Sidetic, CJK Ext J, Latin: new in 17.0
  same(pieces('a\u0085\u0085b').length, 4);   // U+0085 is \s
  same(pieces('a\ufeff\ufeffb').length, 3);   // U+FEFF is not \s (JavaScript's \s says it is)
  same(pieces('a\u001c\u001cb').length, 3);   // U+001C..U+001F are not \s (Python's str.isspace says they are)
  console.log('pre-tokenizer: \\p{L}/\\p{N} are Unicode 16.0 (letters new in 16.0 are letters, 17.0 ones are not); \\s = White_Space (U+0085 yes, U+FEFF/U+001C-1F/U+200B/U+180E no)');

  // 4. NFC: old tables. Unicode 13/16 compositions are not made; combining classes are Unicode 9's.
  const nfc = (s) => N.getNormalizer().normalizeString(s);
  same(nfc('e\u0301'), '\u00e9');
  same(nfc('\u1100\u1161\u11a8'), '\uac01');
  same(nfc('\u{11935}\u{11930}'), '\u{11935}\u{11930}'); // U+11938 DIVES AKURU VOWEL SIGN O (13.0): not composed
  same(nfc('\u{1611e}\u{1611e}'), '\u{1611e}\u{1611e}'); // Gurung Khema (16.0): not composed
  same(nfc('a\u1df6\u0301'), 'a\u1df6\u0301');           // U+1DF6 (10.0, ccc 232): treated as ccc 0, no reorder
  same(nfc('a\u0301\u1df6'), '\u00e1\u1df6');
  same('a\u1df6\u0301'.normalize('NFC'), '\u00e1\u1df6'); // what current Unicode does
  console.log('NFC: compositions added in Unicode 13.0 and 16.0 are missing; combining classes are those of Unicode 9.0');

  // 5. Added tokens (normalized: false) are matched on the raw text before the normalizer;
  //    segments are normalized on their own. '>' + U+0338 would compose to U+226F under NFC.
  same(nfc('<image>\u0338'), '<image\u226f');
  same(await E(N, '<image>\u0338'), [50258, 136, 116]);        // <image> found, U+0338 left alone
  same(await E(N, 'e\u0301<image>e\u0301'), [2634, 50258, 2634]);
  same(await E(N, 'x>\u0338y'), await E(A, 'x\u226fy'));     // no added token: NFC applies
  const tj2 = JSON.parse(require('fs').readFileSync(path.join(DIR, 'gpt2-nfc.tokenizer.json'), 'utf8'));
  tj2.added_tokens.forEach((t) => { t.normalized = true; });
  const T2 = Tokenizer.fromString(JSON.stringify(tj2));
  same(await E(T2, '<image>\u0338'), [27, 9060, 35705, 107]);   // normalized: true -> matched after NFC: not found
  console.log('added tokens with normalized:false are split off before NFC; with normalized:true they are matched after it');

  // 6. decode: byte-level tokens are concatenated, then converted like Rust's
  //    String::from_utf8_lossy (one U+FFFD per maximal invalid subpart); the special tokens'
  //    text joins the byte stream, so they also cut characters.
  // ids 127 and 102 are the byte tokens of C3 and A9
  same(await A.decode([127, 102], false), '\u00e9');
  same(await A.decode([127, 50258, 102], false), '\ufffd<image>\ufffd');
  same(await A.decode([127, 50258, 102], true), '\u00e9');     // skipped specials do not cut
  same(await A.decode([124, 222], false), '\ufffd\ufffd');      // C0 80: overlong, 2 x U+FFFD
  same(await A.decode([172, 238, 222], false), '\ufffd');       // F0 90 80: truncated, 1 x U+FFFD
  // ids the vocabulary lacks are dropped silently; the binding converts JS numbers to u32
  // (-1 -> 4294967295 dropped, 2**32+5 -> 5, 1.5 -> 1)
  same(await A.decode([15496, 50260, 995], false), 'Hello world');
  same(await A.decode([15496, -1], false), 'Hello');
  same(await A.decode([15496, 2 ** 32 + 5], false), 'Hello&');
  same(await A.decode([15496, 1.5], false), 'Hello"');
  console.log('decode: from_utf8_lossy over the whole byte stream (maximal subparts); unknown ids dropped; ids coerced to u32');

  if (!FULL) return;

  // Full scans.
  const jsClass = (c) => (/\p{L}/u.test(c) ? 'L' : /\p{N}/u.test(c) ? 'N' : /\s/u.test(c) ? 'S' : 'P');
  const libClass = (c) => (isL(c) ? 'L' : isN(c) ? 'N' : pieces('!' + c).length === 1 ? 'P' : 'S');
  const d = {};
  for (let c = 0; c <= 0x10ffff; c++) {
    if (c >= 0xd800 && c < 0xe000) continue;
    const s = String.fromCodePoint(c);
    const a = jsClass(s), b = libClass(s);
    if (a !== b) (d[`node ${a} / library ${b}`] = d[`node ${a} / library ${b}`] || []).push(c);
  }
  console.log(`\npre-tokenizer classes vs node ${process.versions.unicode} (L letter, N number, S \\s, P other):`);
  for (const [k, l] of Object.entries(d)) console.log(`  ${k}: ${l.length} code points: ${ranges(l)}`);

  const nd = { composition: [], reorder: [] };
  const batch = (strs) => { const r = nfc(strs.join('\n')).split('\n'); assert(r.length === strs.length); return r; };
  let chunk = [], cps = [];
  const flushC = () => { batch(chunk).forEach((r, i) => { if (r !== chunk[i].normalize('NFC')) nd.composition.push(cps[i]); }); chunk = []; cps = []; };
  for (let c = 0; c <= 0x10ffff; c++) {
    if ((c >= 0xd800 && c < 0xe000) || c === 10) continue;
    const s = String.fromCodePoint(c);
    for (const t of [s, s.normalize('NFD')]) { chunk.push(t); cps.push(c); }
    if (chunk.length >= 8192) flushC();
  }
  flushC();
  const flushR = () => { batch(chunk).forEach((r, i) => { if (r !== chunk[i].normalize('NFC')) nd.reorder.push(cps[i]); }); chunk = []; cps = []; };
  for (let c = 0; c <= 0x10ffff; c++) {
    if ((c >= 0xd800 && c < 0xe000) || c === 10) continue;
    for (const m of ['\u0334', '\u0316', '\u0301', '\u0345']) { chunk.push('a' + String.fromCodePoint(c) + m); cps.push(c); }
    if (chunk.length >= 8192) flushR();
  }
  flushR();
  console.log(`NFC vs node ${process.versions.unicode}:`);
  console.log(`  X or NFD(X) normalizes differently: ${ranges([...new Set(nd.composition)])}`);
  console.log(`  'a' + X + mark normalizes differently (combining class of X unknown or different): ${ranges([...new Set(nd.reorder)])}`);
}

main().catch((e) => {
  console.error('probe.js:', e && e.stack ? e.stack : e);
  process.exit(1);
});
