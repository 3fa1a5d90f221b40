#!/usr/bin/env python3
"""Write the held-out evaluation set of the bundled model.

    /usr/bin/python3 tools/train/evalset.py [--out build/evalset] [--n 1000]
    /usr/bin/python3 tools/train/evalset.py --renderer matplotlib   # build/evalset-foreign

The images come from the world's seed EVAL_SEED, which training never uses (train.py draws
everything from SEED = 1). With --renderer matplotlib the scenes come from FOREIGN_SEED and
another tool draws them (foreign.py: matplotlib's shapes, named colours and rasteriser, skimage's
photo effects; styles mpl-filled, mpl-aliased, mpl-outline, mpl-photo): the set that measures
whether the model generalises beyond its own renderer. Written:

  OUT/images/q0000.jpg ...   the n query images (JPEG or PNG, as world.encode chose), every
                             render style of world.py (flat, smooth, outline, photo)
  OUT/images/s0000.png ...   N_SHOT images whose solved examples make the few-shot prompts
  OUT/truth.jsonl            per image: its file and ground truth (objects with shape, colour,
                             size, centre x/y and radius as fractions of the side, style, background)
  OUT/eval.jsonl             per item: {"id", "type", "shots", "image", "images", "prompt", "answer",
                             "style", "background"}

For each query image there is one item of every type that applies to it: "caption" always,
"color", "shape", "count", "position", "presence" where the scene has an unambiguous question
of that type (text.py states the rules), first zero-shot (`shots` 0, `images` = [image]) and then
few-shot (`shots` 2: two solved examples of the same type on two shot images, then the query;
`images` lists the three files in the order of the <image> markers). Prompts are OpenFlamingo's
formats, chunks joined with nothing between them:

  <image>Output:                                              (caption; the answer is the caption)
  <image>Question:What color is the star? Short answer:       (questions)
  <image>Question:...? Short answer:blue<|endofchunk|><image>Question:...? Short answer:yes<|endofchunk|><image>Question:...? Short answer:

Scoring is exact match of the generated text, stripped of surrounding whitespace, with `answer`
(greedy decoding, stop at <|endofchunk|>). Paths in the JSONL files are relative to OUT.
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import text  # noqa: E402
import world  # noqa: E402

EVAL_SEED = 777
FOREIGN_SEED = 778
N_SHOT = 200
# renderer -> (seed of its scenes, default folder under build/)
RENDERERS = {"world": (EVAL_SEED, "evalset"), "matplotlib": (FOREIGN_SEED, "evalset-foreign")}


def make_image(renderer, seed, index):
    """-> (truth, file bytes, extension) of scene `index`, drawn by `renderer`."""
    if renderer == "matplotlib":
        import foreign      # matplotlib and skimage, only for this set
        return foreign.make(seed, index)
    return world.make(seed, index)


def write_image(out, name, index, renderer, seed):
    truth, data, ext = make_image(renderer, seed, index)
    rel = f"images/{name}.{ext}"
    with open(os.path.join(out, rel), "wb") as f:
        f.write(data)
    return rel, truth


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="default build/evalset (build/evalset-foreign with --renderer matplotlib)")
    ap.add_argument("--n", type=int, default=1000, help="query images")
    ap.add_argument("--renderer", choices=list(RENDERERS), default="world",
                    help="world.py's renderer (the training one), or another tool's (foreign.py)")
    args = ap.parse_args()
    seed, folder = RENDERERS[args.renderer]
    args.out = args.out or os.path.join(ROOT, "build", folder)
    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)

    queries = [write_image(args.out, f"q{i:04d}", i, args.renderer, seed) for i in range(args.n)]
    shots = [write_image(args.out, f"s{k:04d}", args.n + k, args.renderer, seed) for k in range(N_SHOT)]
    with open(os.path.join(args.out, "truth.jsonl"), "w") as f:
        for rel, t in queries + shots:
            f.write(json.dumps({"image": rel, **world.public(t)}) + "\n")

    items = []
    counts = {}
    for i, (rel, t) in enumerate(queries):
        rng = np.random.default_rng([seed, 1, i])
        for qt in text.QTYPES:
            pa = text.prompt_and_answer(t["objects"], qt, rng)
            if pa is None:
                continue
            prompt, answer = pa
            base = {"type": qt, "image": rel, "style": t["style"], "background": t["background"]}
            items.append(dict(id=f"q{i:04d}-{qt}-0", shots=0, images=[rel], prompt=prompt, answer=answer, **base))
            # two solved examples of the same type on shot images (drawn until two apply)
            ctx, ctx_imgs = "", []
            while len(ctx_imgs) < 2:
                k = int(rng.integers(N_SHOT))
                srel, st = shots[k]
                if srel in ctx_imgs:
                    continue
                spa = text.prompt_and_answer(st["objects"], qt, rng)
                if spa is None:
                    continue
                ctx += spa[0] + spa[1] + text.EOC
                ctx_imgs.append(srel)
            items.append(dict(id=f"q{i:04d}-{qt}-2", shots=2, images=ctx_imgs + [rel], prompt=ctx + prompt,
                              answer=answer, **base))
            counts[qt] = counts.get(qt, 0) + 1
    with open(os.path.join(args.out, "eval.jsonl"), "w") as f:
        for it in items:
            f.write(json.dumps(it) + "\n")
    print(f"wrote {args.out}: {len(queries)} query images, {len(shots)} shot images, {len(items)} items "
          f"(zero-shot and two-shot of each): " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
