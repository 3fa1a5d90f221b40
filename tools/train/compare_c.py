#!/usr/bin/env python3
"""The C engine against the PyTorch reference on the bundled model: logits of eval-set prompts
(`flamingo logits`) and greedy answers (`flamingo run`), item by item.

    /usr/bin/python3 tools/train/compare_c.py [-m weights/flamingo-tiny.safetensors]
        [--set build/evalset] [--n 10] [--flamingo ./flamingo]

Prints, per item, the largest |logit difference| divided by the range of the reference's
logits, and whether the greedy answers are identical; exits 1 when any item differs by more
than 1e-4 of the range or gives another answer.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import bpe_ref  # noqa: E402
import flamingo_ref  # noqa: E402
import preprocess_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "weights", "flamingo-tiny.safetensors"))
    ap.add_argument("--set", default=os.path.join(ROOT, "build", "evalset"))
    ap.add_argument("--n", type=int, default=10, help="items (spread over the set)")
    ap.add_argument("--flamingo", default=os.path.join(ROOT, "flamingo"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    m = flamingo_ref.load(args.model)
    tok = bpe_ref.Tokenizer.from_str(m.tokenizer_json)
    S = m.cfg["vision"]["image_size"]
    V = m.cfg["lm"]["vocab_size"]
    items = [json.loads(line) for line in open(os.path.join(args.set, "eval.jsonl"))]
    pick = items[:: max(1, len(items) // args.n)][: args.n]
    bad = 0
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for it in pick:
            imgs = [os.path.join(args.set, p) for p in it["images"]]
            ids = tok.encode(it["prompt"])
            pix = np.stack([preprocess_ref.open_clip_float(Image.open(p), S) for p in imgs])
            want = flamingo_ref.forward_logits(m, ids, pix)
            out = os.path.join(tmp, "logits.f32")
            cmd = [args.flamingo, "logits", "-m", args.model, "-p", it["prompt"], "-o", out]
            for p in imgs:
                cmd += ["-i", p]
            subprocess.run(cmd, check=True)
            got = np.fromfile(out, dtype="<f4").reshape(-1, V)
            diff = float(np.abs(got - want).max() / (want.max() - want.min()))
            worst = max(worst, diff)
            g, _ = flamingo_ref.greedy(m, ids, pix, 24)
            ref_answer = tok.decode(g)
            cmd = [args.flamingo, "run", "-m", args.model, "-p", it["prompt"], "-n", "24"]
            for p in imgs:
                cmd += ["-i", p]
            c_answer = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            same = c_answer.strip() == ref_answer.strip()
            ok = diff < 1e-4 and same
            bad += not ok
            print(f"{it['id']:22s} logits |diff|/range {diff:.1e}  C {c_answer.strip()!r:40s} "
                  f"ref {ref_answer.strip()!r:40s} expected {it['answer']!r} {'ok' if ok else 'DIFFERENT'}")
    print(f"{len(pick)} items, worst logits |diff|/range {worst:.1e}, {bad} different")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
