#!/usr/bin/env node
// Builds HuggingFace-format tokenizer.json files for GPT-2 + OpenFlamingo's added tokens
// from gpt-3-encoder's encoder.json and vocab.bpe (GPT-2's own files), then loads each one
// with HuggingFace tokenizers (Rust, through @anush008/tokenizers) to prove it is valid.
//
//   node make_tokenizer.js [OUTDIR]      (default: ../../fixtures/tok)
//
// Writes:
//   gpt2-openflamingo.tokenizer.json   normalizer null, merges as "a b" strings
//   gpt2-nfc.tokenizer.json            the same with normalizer {"type": "NFC"} (GPT-NeoX-20B style)
//   gpt2-merges-pairs.tokenizer.json   the same as the first, merges as ["a", "b"] pairs
'use strict';

const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@anush008/tokenizers');
const gpt3enc = require('gpt-3-encoder');

const HERE = __dirname;
const OUT = path.resolve(process.argv[2] || path.join(HERE, '..', '..', 'fixtures', 'tok'));
const ENC_DIR = path.dirname(require.resolve('gpt-3-encoder/package.json'));

// OpenFlamingo (src/factory.py): add_special_tokens({"additional_special_tokens":
// ["<|endofchunk|>", "<image>"]}) then add_special_tokens({"pad_token": "<PAD>"}).
// transformers' fast tokenizers turn special tokens into AddedToken(normalized=False,
// special=True, lstrip=False, rstrip=False, single_word=False), ids appended after the vocab.
// <|endoftext|> (50256) is already in GPT-2's vocab and is listed in added_tokens as special.
const ADDED = [
  ['<|endoftext|>', 50256],
  ['<|endofchunk|>', 50257],
  ['<image>', 50258],
  ['<PAD>', 50259],
];

function loadVocab() {
  const vocab = JSON.parse(fs.readFileSync(path.join(ENC_DIR, 'encoder.json'), 'utf8'));
  const entries = Object.entries(vocab).sort((a, b) => a[1] - b[1]);
  entries.forEach(([, id], i) => {
    if (id !== i) throw new Error(`encoder.json ids are not 0..n-1 (at ${i}: ${id})`);
  });
  if (entries.length !== 50257) throw new Error(`expected 50257 vocab entries, got ${entries.length}`);
  if (vocab['<|endoftext|>'] !== 50256) throw new Error('<|endoftext|> is not 50256');
  return entries;
}

function loadMerges() {
  const lines = fs.readFileSync(path.join(ENC_DIR, 'vocab.bpe'), 'utf8').split('\n');
  if (!lines[0].startsWith('#version')) throw new Error('vocab.bpe: no #version header');
  const merges = [];
  for (const line of lines.slice(1)) {
    if (line === '') continue; // trailing newline
    const parts = line.split(' ');
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw new Error(`vocab.bpe: bad line ${JSON.stringify(line)}`);
    merges.push(parts);
  }
  if (merges.length !== 50000) throw new Error(`expected 50000 merges, got ${merges.length}`);
  return merges;
}

function byteLevel(extra) {
  return Object.assign({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, extra || {});
}

// Field order follows what tokenizers (Rust) writes with Tokenizer::save.
function build(vocabEntries, merges, { normalizer, mergesAsPairs }) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ADDED.map(([content, id]) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer,
    pre_tokenizer: byteLevel(),
    post_processor: byteLevel(),
    decoder: byteLevel(),
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: vocabEntries, // serialized in id order below
      merges: mergesAsPairs ? merges : merges.map((p) => p.join(' ')),
    },
  };
}

// Compact but diffable: one vocab entry / merge per line would double the size, so the
// vocab and merges are each on one line, everything else indented.
function serialize(tok) {
  const j = (v) => JSON.stringify(v);
  const m = tok.model;
  const vocab = '{' + m.vocab.map(([t, id]) => `${j(t)}:${id}`).join(',') + '}';
  const lines = [];
  lines.push('{');
  for (const k of ['version', 'truncation', 'padding']) lines.push(`  ${j(k)}: ${j(tok[k])},`);
  lines.push('  "added_tokens": [');
  lines.push(tok.added_tokens.map((a) => '    ' + j(a)).join(',\n'));
  lines.push('  ],');
  for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) lines.push(`  ${j(k)}: ${j(tok[k])},`);
  lines.push('  "model": {');
  for (const k of Object.keys(m)) {
    if (k === 'vocab' || k === 'merges') continue;
    lines.push(`    ${j(k)}: ${j(m[k])},`);
  }
  lines.push(`    "vocab": ${vocab},`);
  lines.push(`    "merges": ${j(m.merges)}`);
  lines.push('  }');
  lines.push('}');
  const s = lines.join('\n') + '\n';
  JSON.parse(s); // sanity
  return s;
}

async function check(file) {
  const tk = Tokenizer.fromFile(file); // throws if the library rejects the file
  const v = tk.getVocabSize(true);
  if (v !== 50260) throw new Error(`${file}: vocab size with added tokens ${v}, expected 50260`);
  for (const [content, id] of ADDED) {
    if (tk.tokenToId(content) !== id) throw new Error(`${file}: ${content} -> ${tk.tokenToId(content)}`);
  }
  // Expected ids: gpt-3-encoder's own (independent, pure JS) GPT-2 encoder on the pieces
  // between the added tokens, which must be split off whole.
  const enc = await tk.encode('Hello world<image> caf\u00e9<|endofchunk|>', null, { addSpecialTokens: false });
  const ids = enc.getIds();
  const want = [...gpt3enc.encode('Hello world'), 50258, ...gpt3enc.encode(' caf\u00e9'), 50257];
  if (j(ids) !== j(want)) throw new Error(`${file}: encode gave ${j(ids)}, want ${j(want)}`);
  return tk;
}
const j = (v) => JSON.stringify(v);

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const vocab = loadVocab();
  const merges = loadMerges();

  const variants = [
    ['gpt2-openflamingo.tokenizer.json', { normalizer: null, mergesAsPairs: false }],
    ['gpt2-nfc.tokenizer.json', { normalizer: { type: 'NFC' }, mergesAsPairs: false }],
    ['gpt2-merges-pairs.tokenizer.json', { normalizer: null, mergesAsPairs: true }],
  ];
  for (const [name, opt] of variants) {
    const file = path.join(OUT, name);
    fs.writeFileSync(file, serialize(build(vocab, merges, opt)));
    await check(file);
    console.log(`wrote ${path.relative(process.cwd(), file)} (${fs.statSync(file).size} bytes), loaded OK`);
  }

  // The three must tokenize identically apart from the normalizer; a quick cross-check.
  const [a, , c] = variants.map(([n]) => Tokenizer.fromFile(path.join(OUT, n)));
  const probe = 'The quick brown fox, 12345 \u00e9t\u00e9 \u4f60\u597d \ud83d\ude00 it\'s <PAD>';
  const ea = (await a.encode(probe, null, { addSpecialTokens: false })).getIds();
  const ec = (await c.encode(probe, null, { addSpecialTokens: false })).getIds();
  if (j(ea) !== j(ec)) throw new Error('string-merges and pair-merges files disagree');
}

main().catch((e) => {
  console.error('make_tokenizer.js:', e && e.stack ? e.stack : e);
  process.exit(1);
});
