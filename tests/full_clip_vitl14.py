"""Full-size check (make test-full): CLIP ViT-L/14 at its real shape, random
weights drawn from a seed at test time (nothing committed), real photographs
preprocessed by torchvision (open_clip's transform) on one side and by
`flamingo encode` on the other, compared with the PyTorch reference of
tests/reference/clip_ref.py.

Pass: max |ours - ref| <= 1e-4 x max |ref| over all output tokens.
Set FULL_SEED to try another seed; FULL_KEEP=1 keeps the model file.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "weights"))
import clip_ref  # noqa: E402
import preprocess_ref  # noqa: E402
import stfile  # noqa: E402
from PIL import Image  # noqa: E402

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
SEED = int(os.environ.get("FULL_SEED", "20261128"))
CFG = dict(image_size=224, patch_size=14, width=1024, layers=24, heads=16, mlp_dim=4096,
           act="quick_gelu", output="patch_tokens", ln_post=False, conv_bias=False)
PHOTOS = ["chelsea.png", "rocket.jpg", "coffee.png"]
SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"


def main():
    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(SEED)
    state = clip_ref.random_state(CFG, rng)
    n_params = sum(v.size for v in state.values())
    print(f"ViT-L/14 with random weights (seed {SEED}): {n_params / 1e6:.1f} M parameters")
    tmp = tempfile.mkdtemp(prefix="flamingo-full-")
    model = os.path.join(tmp, "vit-l-14-random.safetensors")
    vision = {k: CFG[k] for k in ("image_size", "patch_size", "width", "layers", "heads", "mlp_dim", "act",
                                  "output", "ln_post")}
    config = json.dumps({"format": "flamingo.c", "format_version": 1, "name": "vit-l-14-random",
                         "vision": vision})
    stfile.write(model, {"vision_encoder." + k: v for k, v in state.items()}, metadata={"config": config})

    paths = [os.path.join(SKIMAGE, p) for p in PHOTOS]
    pixels = np.stack([preprocess_ref.open_clip_float(Image.open(p)) for p in paths])
    want = clip_ref.encode(clip_ref.build(CFG, state), pixels)
    del state

    out = os.path.join(tmp, "tokens.f32")
    cmd = [BIN, "encode", "-m", model, "-o", out] + sum((["-i", p] for p in paths), [])
    subprocess.run(cmd, check=True, timeout=1200)
    got = np.fromfile(out, "<f4").reshape(want.shape)
    max_ref = float(np.abs(want).max())
    max_diff = float(np.abs(got - want).max())
    ratio = max_diff / max_ref
    print(f"{len(paths)} photos: tokens {want.shape}, max |ref| {max_ref:.3f}, max |diff| {max_diff:.3g}, "
          f"ratio {ratio:.3g} (limit 1e-4)")
    if os.environ.get("FULL_KEEP") != "1":
        for f in (model, out):
            os.unlink(f)
        os.rmdir(tmp)
    return 0 if ratio <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
