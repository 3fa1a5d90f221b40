"""Text of the synthetic world: canonical captions, question-answer pairs, OpenFlamingo chunks,
and the byte-level BPE tokenizer trained on them.

Every answer is lowercase, without trailing punctuation, so that exact match is fair.

Caption: the objects grouped by (colour, shape); groups sorted by count (most first), then by
colour name, then by shape name (alphabetical); one group is "a/an {colour} {shape}" or
"{two|three|four} {colour} {shapes}"; two groups are joined by " and ", more by ", " with
" and " before the last:  "two red circles and a blue star",
"a black cross, a blue square and an orange star".

Questions (a question is asked only where its answer is unambiguous):
  color     "What color is the star?"                    the shape occurs once -> "blue"
  shape     "What shape is the red object?"              the colour occurs once -> "circle"
  count     "How many circles are there?", "How many red objects are there?",
            "How many objects are there?"                -> "zero" ... "four"
  presence  "Is there a green square?"                   -> "yes" / "no" (half each)
  position  "Is the red circle left of the star?"        -> "yes" / "no"
            "What is above the blue square?"             -> "{colour} {shape}" of the one object there
            Relations: left of, right of, above, below, between object centres (x right, y down).
            A pair is asked about only when its centres differ by more than POS_MARGIN of the
            image side on that axis; a "What is ..." question only when exactly one object lies
            on that side and every other object is clearly on the other side.
  An object is named "the {shape}" when its shape is unique in the image, else
  "the {colour} {shape}" when that pair is unique; otherwise it is not asked about.

Chunks are OpenFlamingo's formats:
  <image>Output:{caption}<|endofchunk|>
  <image>Question:{question} Short answer:{answer}<|endofchunk|>
"""
import collections
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import bpe_ref  # noqa: E402
import world  # noqa: E402

NUM = ["zero", "one", "two", "three", "four"]
QTYPES = ["caption", "color", "shape", "count", "position", "presence"]
POS_MARGIN = 0.08
RELS = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}  # axis, sign
MEDIA, EOC, EOS, PAD = "<image>", "<|endofchunk|>", "<|endoftext|>", "<PAD>"


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def caption(objs):
    groups = collections.Counter((o["color"], o["shape"]) for o in objs)
    items = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
    parts = []
    for (c, s), n in items:
        parts.append(f"{article(c)} {c} {s}" if n == 1 else f"{NUM[n]} {c} {world.PLURALS[s]}")
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _refs(objs):
    """object index -> how to name it ("the star" / "the red star"), for nameable objects."""
    shapes = collections.Counter(o["shape"] for o in objs)
    pairs = collections.Counter((o["color"], o["shape"]) for o in objs)
    out = {}
    for i, o in enumerate(objs):
        if shapes[o["shape"]] == 1:
            out[i] = f"the {o['shape']}"
        elif pairs[(o["color"], o["shape"])] == 1:
            out[i] = f"the {o['color']} {o['shape']}"
    return out


def _coord(o, axis):
    return o["x"] if axis == 0 else o["y"]


def q_color(objs, rng, colour_word="color"):
    shapes = collections.Counter(o["shape"] for o in objs)
    cand = [o for o in objs if shapes[o["shape"]] == 1]
    if not cand:
        return None
    o = cand[int(rng.integers(len(cand)))]
    return f"What {colour_word} is the {o['shape']}?", o["color"]


def q_shape(objs, rng):
    colours = collections.Counter(o["color"] for o in objs)
    cand = [o for o in objs if colours[o["color"]] == 1]
    if not cand:
        return None
    o = cand[int(rng.integers(len(cand)))]
    return f"What shape is the {o['color']} object?", o["shape"]


def q_count(objs, rng):
    k = rng.random()
    if k < 0.5:
        if rng.random() < 0.12:
            present = {o["shape"] for o in objs}
            s = [s for s in world.SHAPES if s not in present][int(rng.integers(len(world.SHAPES) - len(present)))]
        else:
            s = objs[int(rng.integers(len(objs)))]["shape"]
        n = sum(o["shape"] == s for o in objs)
        return f"How many {world.PLURALS[s]} are there?", NUM[n]
    if k < 0.8:
        c = objs[int(rng.integers(len(objs)))]["color"]
        n = sum(o["color"] == c for o in objs)
        return f"How many {c} objects are there?", NUM[n]
    return "How many objects are there?", NUM[len(objs)]


def q_count_pair(objs, rng):
    """How many objects of one colour and shape (a caption's count words): training only."""
    pairs = sorted({(o["color"], o["shape"]) for o in objs})
    if rng.random() < 0.15:      # an absent pair that shares its colour or its shape with one present
        c, s = pairs[int(rng.integers(len(pairs)))]
        if rng.random() < 0.5:
            c = [k for k in world.COLOR_NAMES if (k, s) not in pairs][int(rng.integers(len(world.COLOR_NAMES) - sum(p[1] == s for p in pairs)))]
        else:
            s = [k for k in world.SHAPES if (c, k) not in pairs][int(rng.integers(len(world.SHAPES) - sum(p[0] == c for p in pairs)))]
    else:       # an object's pair: pairs of two or more objects come up more often
        o = objs[int(rng.integers(len(objs)))]
        c, s = o["color"], o["shape"]
    n = sum(o["color"] == c and o["shape"] == s for o in objs)
    return f"How many {c} {world.PLURALS[s]} are there?", NUM[n]


def q_presence(objs, rng):
    pairs = {(o["color"], o["shape"]) for o in objs}
    if rng.random() < 0.5:
        c, s = sorted(pairs)[int(rng.integers(len(pairs)))]
        ans = "yes"
    else:
        absent = [(c, s) for c in world.COLOR_NAMES for s in world.SHAPES if (c, s) not in pairs]
        colours = {c for c, _ in pairs}
        shapes = {s for _, s in pairs}
        hard = [(c, s) for c, s in absent if c in colours or s in shapes]
        pool = hard if hard and rng.random() < 0.7 else absent
        c, s = pool[int(rng.integers(len(pool)))]
        ans = "no"
    return f"Is there {article(c)} {c} {s}?", ans


def q_position(objs, rng, yes_no_only=False):
    refs = _refs(objs)
    if len(objs) < 2 or not refs:
        return None
    rels = list(RELS)
    if not yes_no_only and rng.random() < 0.5:
        # "What is <rel> <ref>?"
        opts = []
        for j, ref in refs.items():
            for rel in rels:
                axis, sign = RELS[rel]
                d = [(_coord(o, axis) - _coord(objs[j], axis)) * sign for o in objs]
                side = [i for i in range(len(objs)) if i != j and d[i] > POS_MARGIN]
                clear = all(d[i] > POS_MARGIN or d[i] < -POS_MARGIN for i in range(len(objs)) if i != j)
                if len(side) == 1 and clear:
                    o = objs[side[0]]
                    opts.append((f"What is {rel} {ref}?", f"{o['color']} {o['shape']}"))
        if opts:
            return opts[int(rng.integers(len(opts)))]
    if len(refs) < 2:
        return None
    opts = {"yes": [], "no": []}
    for i, ri in refs.items():
        for j, rj in refs.items():
            if i == j:
                continue
            for rel in rels:
                axis, sign = RELS[rel]
                d = (_coord(objs[i], axis) - _coord(objs[j], axis)) * sign
                if abs(d) > POS_MARGIN:
                    q = f"Is {ri} {rel} {rj}?"
                    opts["yes" if d > 0 else "no"].append(q)
    ans = "yes" if rng.random() < 0.5 else "no"
    if not opts[ans]:
        ans = "no" if ans == "yes" else "yes"
    if not opts[ans]:
        return None
    q = opts[ans][int(rng.integers(len(opts[ans])))]
    return q, ans


def question(objs, qtype, rng, colour_word="color"):
    """-> (question, answer) of the type, or None when the scene has no unambiguous one."""
    if qtype == "color":
        return q_color(objs, rng, colour_word)
    if qtype == "shape":
        return q_shape(objs, rng)
    if qtype == "count":
        return q_count(objs, rng)
    if qtype == "count_pair":
        return q_count_pair(objs, rng)
    if qtype == "presence":
        return q_presence(objs, rng)
    if qtype == "position":
        return q_position(objs, rng)
    if qtype == "position_yn":
        return q_position(objs, rng, yes_no_only=True)
    raise ValueError(qtype)


def prompt_and_answer(objs, qtype, rng, colour_word="color"):
    """-> (prompt without the answer, answer) in OpenFlamingo's format, or None."""
    if qtype == "caption":
        return f"{MEDIA}Output:", caption(objs)
    qa = question(objs, qtype, rng, colour_word)
    if qa is None:
        return None
    return f"{MEDIA}Question:{qa[0]} Short answer:", qa[1]


# ---------------------------------------------------------------------------------------
# The tokenizer

N_MERGES = 400
ADDED = [EOS, EOC, MEDIA, PAD]


def corpus(seed, n_scenes):
    rng = np.random.default_rng([seed, 7])
    lines = []
    for k in range(n_scenes):
        objs = world.sample_objects(rng)
        for qt in QTYPES:
            pa = prompt_and_answer(objs, qt, rng, "colour" if k % 8 == 0 else "color")
            if pa:
                lines.append(pa[0] + pa[1] + EOC)
    # the words of every shape, colour and number, also where the scenes happen to miss them
    lines.append(" ".join(world.SHAPES + list(world.PLURALS.values()) + world.COLOR_NAMES + NUM))
    return "\n".join(lines)


def make_tokenizer_json(seed):
    """GPT-NeoX-style byte-level BPE tokenizer.json, merges learned on the synthetic text."""
    text = corpus(seed, 3000)
    # the added tokens are split out before BPE, so they are not part of the training text
    for t in ADDED:
        text = text.replace(t, "\n")
    merges = bpe_ref.train_merges(text, N_MERGES)
    tj = bpe_ref.tokenizer_json(merges, ADDED, specials_in_vocab=(EOS,))
    return json.dumps(tj, ensure_ascii=False) + "\n"


class Tok:
    """bpe_ref's tokenizer with a memo (the synthetic texts repeat a lot)."""

    def __init__(self, tok_json):
        self.t = bpe_ref.Tokenizer.from_str(tok_json)
        self.memo = {}
        self.media, self.eoc = self.t.token_id(MEDIA), self.t.token_id(EOC)
        self.eos, self.pad = self.t.token_id(EOS), self.t.token_id(PAD)

    def __len__(self):
        return len(self.t)

    def encode(self, s):
        ids = self.memo.get(s)
        if ids is None:
            ids = self.memo[s] = self.t.encode(s)
        return ids

    def decode(self, ids):
        return self.t.decode(ids)


def chunk_ids(tok, prompt, answer):
    """ids and loss mask of one chunk: prompt (no loss), answer and <|endofchunk|> (loss)."""
    p = tok.encode(prompt)
    a = tok.encode(answer) + [tok.eoc]
    return p + a, [0] * len(p) + [1] * len(a)
