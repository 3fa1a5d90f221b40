"""A model trained by tools/train/ (the bundled weights/flamingo-tiny.safetensors,
or the file named by $FLAMINGO_BUNDLED) in the C engine against the PyTorch reference (tests/reference/flamingo_ref.py, PIL +
torchvision preprocessing, the reference BPE tokenizer) on 50 held-out
images of the synthetic world (tools/train/evalset.py, a seed training never
uses), one zero-shot item each, every question type: logits of every prompt
position within 1e-4 of their range, and greedy answers identical.  Run by
tests/test_train_smoke.py on the smoke-trained file."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, os.path.join(ROOT, "weights"))
import bpe_ref  # noqa: E402
import flamingo_ref  # noqa: E402
import preprocess_ref  # noqa: E402

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
MODEL = os.environ.get("FLAMINGO_BUNDLED", os.path.join(ROOT, "weights", "flamingo-tiny.safetensors"))
N = 50


def main():
    torch.set_num_threads(1)
    ref = flamingo_ref.load(MODEL)
    tok = bpe_ref.Tokenizer.from_str(ref.tokenizer_json)
    S = ref.cfg["vision"]["image_size"]
    worst, same, fails = 0.0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train", "evalset.py"), "--out", tmp,
                        "--n", str(N)], check=True, capture_output=True, timeout=600)
        items = [json.loads(ln) for ln in open(os.path.join(tmp, "eval.jsonl"))]
        seen, chosen = set(), []
        for it in items:  # one zero-shot item per image, types in turn
            if it["shots"] == 0 and it["image"] not in seen and (len(chosen) % 6 == 0 or it["type"] != "caption"):
                seen.add(it["image"])
                chosen.append(it)
        out = os.path.join(tmp, "logits.f32")
        for it in chosen[:N]:
            img = os.path.join(tmp, it["image"])
            p = subprocess.run([BIN, "logits", "-m", MODEL, "-i", img, "-p", it["prompt"], "-o", out],
                               capture_output=True, timeout=60)
            if p.returncode:
                print("FAIL", p.stderr.decode())
                fails += 1
                continue
            ids = tok.encode(it["prompt"])
            px = preprocess_ref.open_clip_float(Image.open(img), S)[None]
            want = flamingo_ref.forward_logits(ref, ids, px)
            got = np.fromfile(out, "<f4").reshape(want.shape)
            err = float(np.abs(got - want).max() / np.ptp(want))
            worst = max(worst, err)
            new, _ = flamingo_ref.greedy(ref, ids, px, 24)
            want_text = tok.decode(new)
            r = subprocess.run([BIN, "run", "-m", MODEL, "-n", "24", "-i", img, "-p", it["prompt"]],
                               capture_output=True, timeout=60)
            got_text = r.stdout.decode()[:-1]
            same += got_text == want_text
            if err > 1e-4 or got_text != want_text:
                fails += 1
                print(f"FAIL {it['id']}: logits error {err:.2g}, C {got_text!r}, reference {want_text!r}")
    n = min(N, len(chosen))
    print(f"{n} images: worst logits error {worst:.2g} of the range (limit 1e-4); {same}/{n} greedy answers "
          f"identical")
    return 1 if fails or n < N else 0


if __name__ == "__main__":
    sys.exit(main())
