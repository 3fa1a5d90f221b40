"""Preprocessing against PIL + torchvision: every image of the corpus
(tests/reference/images.py: real photographs from python3-skimage, JPEG
encodings of them, and synthetic edge cases) through `flamingo preprocess`
and through the reference (tests/reference/preprocess_ref.py).

Pass criteria, per image and pipeline (open_clip for all, idefics for all):
  - the 8-bit RGB pixels after resize and crop (--u8) are identical to the
    reference on at least 99.9% of positions and never differ by more than 1;
  - the float32 output (normalised CHW) equals the normalisation of our own
    u8 pixels bit for bit, and differs from the reference floats only where
    the u8 pixels differ.
Files PIL cannot open are skipped by name (there are none in the corpus).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
import images  # noqa: E402
import preprocess_ref as ref  # noqa: E402

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
S = 224


def run(args):
    p = subprocess.run([BIN] + args, capture_output=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.decode().strip()}")


def ours(path, kind, tmp):
    u8p, fp = os.path.join(tmp, "o.u8"), os.path.join(tmp, "o.f32")
    run(["preprocess", "-i", path, "-o", u8p, "--u8", "--kind", kind])
    run(["preprocess", "-i", path, "-o", fp, "--kind", kind])
    u8 = np.fromfile(u8p, np.uint8).reshape(S, S, 3)
    fl = np.fromfile(fp, "<f4").reshape(3, S, S)
    return u8, fl


def normalise(u8, kind):
    mean = np.array(ref.OPENAI_MEAN, np.float32)[:, None, None]
    std = np.array(ref.OPENAI_STD, np.float32)[:, None, None]
    chw = u8.transpose(2, 0, 1)
    if kind == "idefics":
        x = (chw * (1 / 255)).astype(np.float32)
    else:
        x = chw.astype(np.float32) / np.float32(255)
    return (x - mean) / std


def main():
    failures = 0
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        cases = images.make_corpus(tmp)
        for case in cases:
            im = images.open_reference(case)
            for kind in ("open_clip", "idefics"):
                want_u8 = ref.open_clip_u8(im) if kind == "open_clip" else ref.idefics_u8(im)
                want_f = ref.open_clip_float(im) if kind == "open_clip" else ref.idefics_float(im)
                try:
                    got_u8, got_f = ours(case.path, kind, tmp)
                except RuntimeError as e:
                    print(f"FAIL {case.name} [{kind}]: {e}")
                    failures += 1
                    continue
                diff = np.abs(got_u8.astype(int) - want_u8.astype(int))
                same = float(np.mean(diff == 0))
                own = normalise(got_u8, kind)
                float_self = np.array_equal(own.view(np.uint32), got_f.view(np.uint32))
                mask = (diff == 0).transpose(2, 0, 1)
                float_ref = np.array_equal(got_f[mask].view(np.uint32), want_f[mask].view(np.uint32))
                ok = same >= 0.999 and diff.max() <= 1 and float_self and float_ref
                checked += 1
                status = "ok  " if ok else "FAIL"
                print(f"{status} {case.name:40s} [{kind:9s}] {Image.open(case.path).mode:5s} "
                      f"{im.size[0]}x{im.size[1]}: identical {100 * same:7.3f}%  max diff {diff.max()}"
                      f"{'' if float_self else '  float != own normalisation'}"
                      f"{'' if float_ref else '  float != reference where u8 equal'}")
                failures += not ok
    print(f"{checked} comparisons, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
