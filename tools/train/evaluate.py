#!/usr/bin/env python3
"""Exact-match accuracy of a model file on the evaluation set, in PyTorch (the reference of
tests/reference/flamingo_ref.py, loaded from the file; greedy; <image> and <PAD> banned; stop at
<|endofchunk|> or <|endoftext|>). The C engine's `make eval` runs the same prompts.

    /usr/bin/python3 tools/train/evaluate.py [-m weights/flamingo-tiny.safetensors] [--set build/evalset]
        [--limit N] [--out results.json]
"""
import argparse
import collections
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import bpe_ref  # noqa: E402
import flamingo_ref  # noqa: E402
import model as M  # noqa: E402
import preprocess_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "weights", "flamingo-tiny.safetensors"))
    ap.add_argument("--set", default=os.path.join(ROOT, "build", "evalset"))
    ap.add_argument("--limit", type=int, default=0, help="only the items of the first N query images")
    ap.add_argument("--out", help="write every item's output and the summary as JSON")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", type=int, default=20, help="items also decoded one at a time by flamingo_ref.greedy")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = flamingo_ref.load(args.model)
    tok = bpe_ref.Tokenizer.from_str(m.tokenizer_json)
    t = m.cfg["tokens"]
    S = m.cfg["vision"]["image_size"]
    items = [json.loads(line) for line in open(os.path.join(args.set, "eval.jsonl"))]
    if args.limit:
        keep = {f"images/q{i:04d}" for i in range(args.limit)}
        items = [it for it in items if os.path.splitext(it["image"])[0] in keep]

    t0 = time.time()
    paths = sorted({p for it in items for p in it["images"]})
    lat = {}
    with torch.no_grad():
        for i in range(0, len(paths), 256):
            chunk = paths[i: i + 256]
            pix = np.stack([preprocess_ref.open_clip_float(Image.open(os.path.join(args.set, p)), S) for p in chunk])
            out = m.encode_images(torch.from_numpy(pix))
            for p, o in zip(chunk, out):
                lat[p] = o
    t1 = time.time()

    order = sorted(range(len(items)), key=lambda k: len(items[k]["prompt"]))
    outputs = [None] * len(items)
    B = 128
    for s in range(0, len(order), B):
        idx = order[s: s + B]
        prompts = [tok.encode(items[k]["prompt"]) for k in idx]
        lats = [torch.stack([lat[p] for p in items[k]["images"]]) for k in idx]
        new = M.greedy_batch(m, prompts, lats, 24, t["endofchunk"], t["eos"], [t["media"], t["pad"]])
        for k, n in zip(idx, new):
            outputs[k] = tok.decode(n).strip()
    t2 = time.time()

    # the batched decoder against the reference's own one-sequence greedy on a few items
    for k in range(0, len(items), max(1, len(items) // max(1, args.check)))[: args.check]:
        it = items[k]
        pix = np.stack([preprocess_ref.open_clip_float(Image.open(os.path.join(args.set, p)), S) for p in it["images"]])
        g, _ = flamingo_ref.greedy(m, tok.encode(it["prompt"]), pix, 24)
        assert tok.decode(g).strip() == outputs[k], (it["id"], tok.decode(g), outputs[k])

    acc = collections.defaultdict(lambda: [0, 0])
    for it, o in zip(items, outputs):
        ok = int(o == it["answer"])
        for key in (f"{it['type']}/{it['shots']}", f"style:{it['style']}/{it['shots']}", f"all/{it['shots']}"):
            acc[key][0] += ok
            acc[key][1] += 1
    summary = {k: {"correct": c, "n": n, "acc": round(c / n, 4)} for k, (c, n) in sorted(acc.items())}
    print(f"{len(items)} items, {len(paths)} images; encode {t1 - t0:.0f}s, generate {t2 - t1:.0f}s")
    print(f"{'':24s} {'zero-shot':>18s} {'two-shot':>18s}")
    keys = sorted({k.rsplit('/', 1)[0] for k in summary})
    for k in keys:
        row = []
        for shots in (0, 2):
            v = summary.get(f"{k}/{shots}")
            row.append(f"{100 * v['acc']:6.2f}% of {v['n']:5d}" if v else "")
        print(f"{k:24s} {row[0]:>18s} {row[1]:>18s}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "items": [dict(it, output=o) for it, o in zip(items, outputs)]}, f, indent=0)


if __name__ == "__main__":
    main()
