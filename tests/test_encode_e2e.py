"""End to end on the small fixture towers: real photographs through
`flamingo encode` (decode + preprocess + ViT in C) against the reference
pipeline (PIL/torchvision preprocessing + the PyTorch ViT of
tests/reference/clip_ref.py on the weights read back from the same file).
Covers both preprocessing kinds (clip_quickgelu: open_clip at 28 px;
clip_gelu: IDEFICS at 32 px), F16/BF16 storage, and both kernel tables
(the CPU's best, and FLAMINGO_KERNELS=generic).
Pass: max |ours - ref| <= 1e-4 x max |ref|."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "weights"))
import clip_ref  # noqa: E402
import make_golden  # noqa: E402
import preprocess_ref  # noqa: E402
import stfile  # noqa: E402
from PIL import Image  # noqa: E402

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"
PHOTOS = ["astronaut.png", "rocket.jpg", "camera.png", "logo.png", "hubble_deep_field.jpg"]


def main():
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in make_golden.CLIP_CONFIGS.items():
            path = os.path.join(HERE, "fixtures", name + ".safetensors")
            tensors, meta = stfile.read(path)
            kind = json.loads(meta["config"]).get("preprocess", {}).get("kind", "open_clip")
            state = {k[len("vision_encoder."):]: v.astype(np.float32) for k, v in tensors.items()}
            S = cfg["image_size"]
            prep = preprocess_ref.open_clip_float if kind == "open_clip" else preprocess_ref.idefics_float
            photos = [os.path.join(SKIMAGE, p) for p in PHOTOS]
            pixels = np.stack([prep(Image.open(p), S) for p in photos])
            want = clip_ref.encode(clip_ref.build(cfg, state), pixels)
            for kernels in ("best", "generic"):
                out = os.path.join(tmp, name + ".f32")
                env = {k: v for k, v in os.environ.items() if k != "FLAMINGO_KERNELS"}
                if kernels != "best":  # unset: the best table the CPU runs
                    env["FLAMINGO_KERNELS"] = kernels
                subprocess.run([BIN, "encode", "-m", path, "-o", out, "--batch", "2"] +
                               sum((["-i", p] for p in photos), []), check=True, timeout=300, env=env)
                got = np.fromfile(out, "<f4").reshape(want.shape)
                ratio = float(np.abs(got - want).max() / np.abs(want).max())
                ok = ratio <= 1e-4
                bad += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} ({kind}, {len(photos)} photos, {kernels} kernels): "
                      f"max diff / max |ref| = {ratio:.3g}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
