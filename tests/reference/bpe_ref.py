"""A small, independent byte-level BPE encoder/decoder for HuggingFace
tokenizer.json files of the GPT-2 / GPT-NeoX kind (docs/SPEC-openflamingo.md
section 10), and a tiny BPE trainer used to make tests/fixtures/tiny.tokenizer.json.
Written from the algorithm, not from flamingo.c or from HF tokenizers' code.

    tok = Tokenizer.from_file("tiny.tokenizer.json")
    ids = tok.encode("<image>Output:")
    text = tok.decode(ids)

Steps of encode(text):
  1. added tokens (all of OpenFlamingo's are normalized=false) are split out of
     the raw text first: scanning left to right, at the leftmost position where
     any added token matches, the longest one matching there is taken;
  2. each remaining segment is normalized (null or NFC), split with GPT-2's
     regex (the `regex` module, Unicode categories), every byte of each piece
     mapped through GPT-2's bytes-to-unicode table;
  3. each piece is BPE-merged: repeatedly the adjacent pair with the lowest
     merge rank (leftmost on ties) is merged, until no pair has a rank;
  4. the resulting symbols are looked up in the vocab.
"""
import json
import unicodedata

import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_SPLIT = regex.compile(GPT2_PATTERN)


def bytes_to_unicode():
    """GPT-2's table: byte -> printable character. Bytes 33-126, 161-172 and
    174-255 map to themselves, the other 68 bytes to U+0100 onwards in order."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def pretokenize(text):
    """GPT-2 regex split, each piece as its byte-level symbol string."""
    return ["".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8")) for piece in _SPLIT.findall(text)]


def bpe_merge(symbols, ranks):
    """symbols: list of str; ranks: dict (left, right) -> rank. Lowest rank
    first, leftmost occurrence first among equal ranks, one merge at a time."""
    symbols = list(symbols)
    while len(symbols) > 1:
        best, best_i = None, -1
        for i in range(len(symbols) - 1):
            r = ranks.get((symbols[i], symbols[i + 1]))
            if r is not None and (best is None or r < best):
                best, best_i = r, i
        if best is None:
            break
        symbols[best_i:best_i + 2] = [symbols[best_i] + symbols[best_i + 1]]
    return symbols


class Tokenizer:
    def __init__(self, tj):
        model = tj["model"]
        if model.get("type", "BPE") != "BPE":
            raise ValueError("not a BPE tokenizer")
        self.vocab = dict(model["vocab"])
        self.ranks = {}
        for r, m in enumerate(model["merges"]):
            pair = tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
            if len(pair) != 2:
                raise ValueError(f"bad merge {m!r}")
            self.ranks.setdefault(pair, r)
        self.added = {a["content"]: a["id"] for a in tj.get("added_tokens", [])}
        self.added_normalized = {a["content"] for a in tj.get("added_tokens", []) if a.get("normalized")}
        if self.added_normalized:
            raise NotImplementedError("added tokens with normalized=true")
        norm = tj.get("normalizer")
        self.nfc = False
        if norm is not None:
            if norm.get("type") != "NFC":
                raise NotImplementedError(f"normalizer {norm}")
            self.nfc = True
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        for t, i in self.added.items():
            self.id_to_token[i] = t

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    @classmethod
    def from_str(cls, text):
        return cls(json.loads(text))

    def __len__(self):
        return max(self.id_to_token) + 1

    def token_id(self, content):
        return self.added[content] if content in self.added else self.vocab[content]

    def split_added(self, text):
        """-> list of (is_added, str): leftmost, then longest, added-token match."""
        out, i, start = [], 0, 0
        toks = sorted(self.added, key=len, reverse=True)
        while i < len(text):
            hit = None
            for t in toks:                       # longest first
                if t and text.startswith(t, i):
                    hit = t
                    break
            if hit is None:
                i += 1
                continue
            if start < i:
                out.append((False, text[start:i]))
            out.append((True, hit))
            i += len(hit)
            start = i
        if start < len(text):
            out.append((False, text[start:]))
        return out

    def encode_plain(self, text):
        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        ids = []
        for piece in pretokenize(text):
            for sym in bpe_merge(list(piece), self.ranks):
                ids.append(self.vocab[sym])
        return ids

    def encode(self, text):
        ids = []
        for is_added, seg in self.split_added(text):
            ids.extend([self.added[seg]] if is_added else self.encode_plain(seg))
        return ids

    def decode_bytes(self, ids):
        out = bytearray()
        added_ids = set(self.added.values())
        for i in ids:
            t = self.id_to_token[int(i)]
            if int(i) in added_ids:              # added tokens decode to their content
                out += t.encode("utf-8")
            else:                                # ByteLevel decoder: symbols back to bytes
                out += bytes(CHAR_TO_BYTE[c] for c in t)
        return bytes(out)

    def decode(self, ids):
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


# ----------------------------------------------------------------------------------------
# A tiny byte-level BPE trainer (for the test tokenizer only).

def train_merges(corpus, n_merges):
    """Classic BPE training over GPT-2-pretokenized words: at each step the most
    frequent adjacent pair (ties: the lexicographically smallest pair) is merged.
    Pairs whose merge would cross no boundary are all that exist here (pieces
    come from the GPT-2 regex). -> list of (left, right)."""
    words = {}
    for piece in pretokenize(corpus):
        words[piece] = words.get(piece, 0) + 1
    seqs = {w: list(w) for w in words}
    merges = []
    while len(merges) < n_merges:
        counts = {}
        for w, n in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + n
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return merges


def tokenizer_json(merges, added, specials_in_vocab=()):
    """A HuggingFace tokenizer.json (GPT-2 structure) as a dict: ids 0-255 the
    byte symbols in byte order, then one id per merge result (in merge order),
    then the added tokens.  specials_in_vocab: added tokens also listed in the
    model's vocab (as GPT-2 lists <|endoftext|>)."""
    vocab = {BYTE_TO_CHAR[b]: b for b in range(256)}
    for a, b in merges:
        if a + b not in vocab:                  # two merges may make the same symbol
            vocab[a + b] = len(vocab)
    added_tokens = []
    for content in added:
        i = len(vocab) + len(added_tokens)
        added_tokens.append({"id": i, "content": content, "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True})
    for a in added_tokens:
        if a["content"] in specials_in_vocab:
            vocab[a["content"]] = a["id"]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens,
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges],
        },
    }
