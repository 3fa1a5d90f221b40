"""Full-width check of the language side (make test-full): models with the
real widths and head sizes of the three OpenFlamingo v2 language models
(MPT-1B: 2048 wide, 16 heads of 128, q/k LayerNorm; RedPajama-3B: 2560 wide,
32 heads of 80, rotary; MPT-7B: 4096 wide, 32 heads of 128) and
OpenFlamingo's cross-attention (8 heads of 64), but few layers, a tiny
vision tower and the tiny tokenizer, random weights from a seed (nothing
committed), through `flamingo logits` and `flamingo run` against the
PyTorch reference (tests/reference/flamingo_ref.py).

Pass: logits within 1e-4 of their range; greedy and 3-beam outputs
identical.  These are the kernel paths the tiny fixtures do not reach
(head widths that fill whole vector registers, sgemv decode at width).
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
import bpe_ref  # noqa: E402
import flamingo_ref  # noqa: E402
import make_flamingo_golden as mfg  # noqa: E402
import stfile  # noqa: E402

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
SEED = int(os.environ.get("FULL_SEED", "7"))
INIT = dict(emb_std=0.5, end_scale=1.0, branch_gain=1.0, xattn_gain=1.0)
MODELS = {  # name -> (lm overrides, xattn.every)
    "mpt1b-width": (dict(family="mosaic_gpt", d_model=2048, n_heads=16, mlp_dim=8192, qk_ln=True, n_layers=2), 1),
    "rpj3b-width": (dict(family="gpt_neox", d_model=2560, n_heads=32, mlp_dim=10240, rotary_pct=1.0,
                         parallel_residual=False, n_layers=2), 2),
    "mpt7b-width": (dict(family="mpt", d_model=4096, n_heads=32, mlp_dim=16384, qk_ln=False, n_layers=1), 1),
}
PROMPTS = [("<image>Output:", ["astronaut.png"]),
           ("Question:What is it? <image>Output:a red circle.<|endofchunk|><image>Output:",
            ["coffee.png", "rocket.jpg"])]
NEW = 8


def main():
    torch.set_num_threads(os.cpu_count() or 1)
    tok_json = open(os.path.join(HERE, "fixtures", "tiny.tokenizer.json")).read()
    tok = bpe_ref.Tokenizer.from_str(tok_json)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (lm_over, every)) in enumerate(MODELS.items()):
            cfg = mfg.model_config(name, tok_json, lm_over, every)
            cfg["xattn"].update(heads=8, dim_head=64)
            state = mfg.random_state(cfg, SEED + i, (), INIT)
            path = os.path.join(tmp, name + ".safetensors")
            stfile.write(path, state, metadata={"config": json.dumps(cfg), "tokenizer": tok_json})
            model = flamingo_ref.load(path)
            del state
            for prompt, images in PROMPTS:
                ids = tok.encode(prompt)
                pixels = mfg.load_pixels(images, cfg["vision"]["image_size"])
                paths = [os.path.join(mfg.SKIMAGE, n) for n in images]
                imgs = sum((["-i", p] for p in paths), [])
                want = flamingo_ref.forward_logits(model, ids, pixels)
                out = os.path.join(tmp, "logits.f32")
                subprocess.run([BIN, "logits", "-m", path, "-p", prompt, "-o", out] + imgs, check=True, timeout=600)
                got = np.fromfile(out, "<f4").reshape(want.shape)
                err = float(np.abs(got - want).max() / np.ptp(want))
                ok = err <= 1e-4
                for beams in (1, 3):
                    ref_ids = flamingo_ref.generate(model, ids, pixels, NEW, num_beams=beams)
                    want_text = tok.decode([int(t) for t in ref_ids]) + "\n"
                    p = subprocess.run([BIN, "run", "-m", path, "-p", prompt, "-n", str(NEW), "--beams", str(beams)]
                                       + imgs, capture_output=True, check=True, timeout=600)
                    if p.stdout.decode("utf-8", "replace") != want_text:
                        ok = False
                        print(f"  {name} beams {beams}: got {p.stdout!r}, want {want_text!r}")
                bad += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} ({cfg['lm']['d_model']} wide, {len(images)} images, "
                      f"{len(ids)} tokens): logits error {err:.2g} of the range")
            os.unlink(path)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
