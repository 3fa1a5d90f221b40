"""bench/pytorch_peer.py computes the real model: its language model forward pass with a KV
cache, image keys and values computed once, and a batch dimension, gives the PyTorch
reference's logits (tests/reference/flamingo_ref.py, which recomputes everything one sequence
at a time) on a small OpenFlamingo-shaped model with random weights: a 3-image prompt
prefilled in two chunks, then 6 decode steps, for 3 sequences at once.  Tolerance: 1e-4 of
the logits' range (float32; observed 2.5e-7)."""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bench"))
sys.path.insert(0, os.path.join(HERE, "reference"))
import flamingo_ref  # noqa: E402
import pytorch_peer as peer  # noqa: E402

CFG = {
    "vision": {"image_size": 28, "patch_size": 14, "width": 32, "layers": 1, "heads": 2, "mlp_dim": 64},
    "perceiver": {"depth": 1, "heads": 2, "dim_head": 8, "num_latents": 5, "ff_mult": 2},
    "lm": {"family": "mosaic_gpt", "d_model": 48, "n_layers": 3, "n_heads": 6, "mlp_dim": 96, "vocab_size": 97,
           "max_seq_len": 64, "qk_ln": True, "alibi_bias_max": 8},
    "xattn": {"every": 1, "heads": 2, "dim_head": 8, "ff_mult": 2},
    "tokens": {"media": 96, "endofchunk": 95, "pad": 94, "eos": 0},
}


def main():
    torch.manual_seed(0)
    model = flamingo_ref.Flamingo(CFG).eval()
    for layer in model.lang_encoder.layers():      # open the gates: a zero gate hides the images
        layer.gated_cross_attn_layer.attn_gate.data.fill_(0.7)
        layer.gated_cross_attn_layer.ff_gate.data.fill_(-0.4)
    B, media = 3, 96
    pixels = torch.randn(B, 3, 3, 28, 28)
    prompts = torch.randint(1, 90, (B, 20))
    for pos in (0, 7, 15):
        prompts[:, pos] = media
    steps = torch.randint(1, 90, (B, 6))
    failures = 0
    with torch.inference_mode():
        lat = torch.stack([model.encode_images(pixels[b]) for b in range(B)])        # [B, 3, L, W]
        cache = peer.Cache(CFG["lm"]["n_layers"])
        peer.add_images(model.lang_encoder, cache, lat)
        peer.lm_forward(model, cache, prompts[:, :9])
        got = [peer.lm_forward(model, cache, prompts[:, 9:])[:, 0]]
        for s in range(steps.shape[1]):
            got.append(peer.lm_forward(model, cache, steps[:, s: s + 1])[:, 0])
        for b in range(B):
            for s in range(len(got)):
                ids = torch.cat((prompts[b], steps[b, :s]))
                ref = model.lang_encoder(ids, lat[b], ids == media)[-1]
                err = float((got[s][b] - ref).abs().max() / (ref.max() - ref.min()))
                if not err < 1e-4:
                    print(f"FAIL sequence {b}, step {s}: max |diff| / range {err:.2e}")
                    failures += 1
        # a token before any image attends to none: the reference's rule, and the peer's
        cache = peer.Cache(CFG["lm"]["n_layers"])
        peer.add_images(model.lang_encoder, cache, lat[:1])
        ids = torch.tensor([[5, 6, media, 7]])
        got0 = peer.lm_forward(model, cache, ids, last_only=False)[0]
        ref0 = model.lang_encoder(ids[0], lat[0, :1], ids[0] == media)
        err = float((got0 - ref0).abs().max() / (ref0.max() - ref0.min()))
        if not err < 1e-4:
            print(f"FAIL text before the first image: max |diff| / range {err:.2e}")
            failures += 1
    print(f"{B} sequences x {len(got)} positions checked, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
