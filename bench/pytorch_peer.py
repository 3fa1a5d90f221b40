#!/usr/bin/env python3
"""The PyTorch peer of `flamingo bench --synthetic openflamingo-3b`: the same stages, at the
same shape, with random weights, done the way a user would run OpenFlamingo in PyTorch at its
best on a CPU: all cores, inference mode, a KV cache, each image's cross-attention keys and
values computed once, batched decode.  It prints the same JSON keys as the C bench, so that
`make bench-compare` (bench/compare.py) can put them side by side.

    python3 bench/pytorch_peer.py [--dtype f32|bf16] [--threads N] [--json]

The modules and their parameter layout are the PyTorch reference's (tests/reference/
flamingo_ref.py, OpenFlamingo-3B's defaults there); the reference recomputes the whole text
for every token, so the language model's forward pass with a cache is written here, over the
reference's own weights.  --dtype bf16 runs every stage under torch.autocast(bfloat16), which
is PyTorch's fastest CPU mode where oneDNN has bf16 kernels (AMX, AVX512-BF16); elsewhere it is
slower than f32, and the figures say so.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import openblas_core  # noqa: E402

# PyTorch's f32 products go to Debian's OpenBLAS, as flamingo.c's do: the peer runs the same
# OpenBLAS kernels as the engine (tools/openblas_core.py, core/blas_core.c)
openblas_core.fix()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "reference"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "weights"))
import flamingo_ref  # noqa: E402


def best_of(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sgemm_gflops(reps=4):
    """The C bench's limit shape (8 images x 257 tokens, 1024 -> 4096), float32."""
    a, b = torch.randn(8 * 257, 1024), torch.randn(4096, 1024)
    a @ b.t()
    t = best_of(lambda: a @ b.t(), reps)
    return 2.0 * a.shape[0] * b.shape[0] * a.shape[1] / t * 1e-9


def mem_bandwidth():
    x = torch.ones(1 << 28)                       # 1 GiB of float32
    x.sum()
    return x.numel() * 4 / best_of(lambda: x.sum(), 4) * 1e-9


class Cache:
    """Per layer: keys and values [B, h, S, hd] of the text so far; the images' cross-attention
    keys and values [B, h, n_img * L, dh]; how many <image> tokens each row has seen."""

    def __init__(self, n_layers):
        self.k = [None] * n_layers
        self.v = [None] * n_layers
        self.img_k = [None] * n_layers
        self.img_v = [None] * n_layers
        self.seen = None
        self.n_lat = 0


def add_images(lang, cache, latents):
    """latents [B, n_img, L, Dv] -> each block's keys and values, once."""
    B, n, L, Dv = latents.shape
    cache.n_lat = L
    for i, layer in enumerate(lang.layers()):
        a = layer.gated_cross_attn_layer.attn
        k, v = a.to_kv(latents.reshape(B, n * L, Dv)).chunk(2, dim=-1)
        cache.img_k[i] = k.reshape(B, n * L, a.heads, -1).transpose(1, 2)
        cache.img_v[i] = v.reshape(B, n * L, a.heads, -1).transpose(1, 2)


def xattn(blk, x, cache, i, text_time):
    """Gated cross-attention of x [B, T, d]: each token attends to the latents of its latest
    image (text_time [B, T], 1-based; 0: none yet)."""
    a = blk.attn
    B, T, _ = x.shape
    q = a.to_q(a.norm(x)).view(B, T, a.heads, -1).transpose(1, 2) * a.scale
    k, v = cache.img_k[i], cache.img_v[i]
    sim = q @ k.transpose(-1, -2)                                      # [B, h, T, n*L]
    media_time = torch.arange(k.shape[2]) // cache.n_lat + 1
    mask = text_time[:, None, :, None] == media_time
    sim = sim.masked_fill(~mask, -torch.finfo(sim.dtype).max)
    w = sim.softmax(dim=-1).masked_fill((text_time == 0)[:, None, :, None], 0.0)
    out = a.to_out((w @ v).transpose(1, 2).reshape(B, T, -1))
    x = out * blk.attn_gate.tanh() + x
    return blk.ff(x) * blk.ff_gate.tanh() + x


def mpt_block(blk, x, cache, i, slopes):
    att = blk.attn
    B, T, d = x.shape
    h = att.n_heads
    q, k, v = att.Wqkv(getattr(blk, blk.n1)(x)).chunk(3, dim=-1)
    if att.q_ln is not None:   # (float: PyTorch 1.13's autocast leaves layer_norm's input bf16)
        q, k = att.q_ln(q.float()), att.k_ln(k.float())
    q = q.view(B, T, h, -1).transpose(1, 2)
    k = k.view(B, T, h, -1).transpose(1, 2)
    v = v.view(B, T, h, -1).transpose(1, 2)
    if cache.k[i] is not None:
        k = torch.cat((cache.k[i], k), dim=2)
        v = torch.cat((cache.v[i], v), dim=2)
    cache.k[i], cache.v[i] = k, v
    S = k.shape[2]
    w = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d // h))
    w = w + (torch.arange(1 - S, 1).view(1, 1, 1, S) * slopes).to(w.dtype)
    causal = torch.arange(S)[None, :] > (torch.arange(T) + S - T)[:, None]
    w = w.masked_fill(causal, torch.finfo(w.dtype).min).softmax(dim=-1)
    x = x + att.out_proj((w @ v).transpose(1, 2).reshape(B, T, d))
    return x + getattr(blk, blk.mlp_name)(getattr(blk, blk.n2)(x))


def lm_forward(model, cache, ids, last_only=True):
    """ids [B, T] appended to every row's cache -> logits [B, V] of the last token."""
    lang = model.lang_encoder
    tr = lang.transformer
    is_media = (ids == model.media_token_id).long()
    seen = cache.seen if cache.seen is not None else torch.zeros(ids.shape[0], dtype=torch.long)
    text_time = seen[:, None] + is_media.cumsum(dim=1)
    cache.seen = text_time[:, -1]
    slopes = flamingo_ref.gen_slopes(model.cfg["lm"]["n_heads"], model.cfg["lm"]["alibi_bias_max"])
    x = tr.wte(ids)
    for i, layer in enumerate(lang.layers()):
        x = xattn(layer.gated_cross_attn_layer, x, cache, i, text_time)
        x = mpt_block(layer.decoder_layer, x, cache, i, slopes)
    x = getattr(tr, lang.final_norm_name)(x[:, -1:] if last_only else x)
    return F.linear(x, tr.wte.weight)


def prompt(cfg, n, images):
    ids = [1 + (i * 7919) % (cfg["lm"]["vocab_size"] - 1000) for i in range(n)]
    for k in range(images):
        ids[k * (n // images)] = cfg["tokens"]["media"]
    return torch.tensor([ids])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(3)
    say = (lambda *a: None) if args.json else (lambda *a: print("peer:", *a, file=sys.stderr, flush=True))

    say("measuring sgemm and memory bandwidth...")
    gemm, bw = sgemm_gflops(), mem_bandwidth()
    say("building OpenFlamingo-3B with random weights...")
    model = flamingo_ref.Flamingo({}).eval()
    if args.dtype == "bf16":
        # PyTorch 1.13's fused nn.MultiheadAttention (taken in eval mode under inference_mode)
        # does not follow autocast: it fails on bf16 inputs with f32 weights. In train mode the
        # module takes the unfused path, which autocast covers; CLIP's attention has no dropout,
        # so the result is the same function.
        for mod in model.vision_encoder.modules():
            if isinstance(mod, torch.nn.MultiheadAttention):
                mod.train()
    cfg = model.cfg
    lm_params = sum(p.numel() for n, p in model.lang_encoder.named_parameters())
    lm_bytes = lm_params * 4
    S = cfg["vision"]["image_size"]
    px = torch.randn(8, 3, S, S)
    auto = (torch.autocast("cpu", dtype=torch.bfloat16) if args.dtype == "bf16"
            else torch.autocast("cpu", enabled=False))
    with torch.inference_mode(), auto:
        say("vision encoder and Perceiver...")
        model.vision_encoder(px[:1])
        vis1 = best_of(lambda: model.vision_encoder(px[:1]), 2)
        # a first call at a new shape pays oneDNN's set-up (its bf16 kernels are made for
        # the shape): warm batch 8 too, as batch 1 above, or the peer is measured cold
        model.vision_encoder(px)
        vis8 = best_of(lambda: model.vision_encoder(px), 1) / 8
        feats = model.vision_encoder(px[:1])
        perc = best_of(lambda: model.perceiver(feats), 3)
        lat = model.perceiver(feats).float()                       # [1, L, Dv]

        say("prefill...")
        def with_images(images, rows=1):
            c = Cache(cfg["lm"]["n_layers"])
            add_images(model.lang_encoder, c, lat[None].expand(rows, images, -1, -1))
            return c

        def prefill(n, images):
            """seconds to prefill n tokens whose images' keys and values are already there
            (as the C bench: a cached image)"""
            c = with_images(images)
            ids = prompt(cfg, n, images)
            t0 = time.perf_counter()
            lm_forward(model, c, ids)
            return time.perf_counter() - t0
        prefill(64, 1)
        pre64 = min(prefill(64, 1) for _ in range(2))
        pre512 = min(prefill(512, 4) for _ in range(2))  # the first: a new shape, cold

        def new_image():
            """encode, resample, the keys and values, prefill: an image never seen"""
            latents = model.perceiver(model.vision_encoder(px[:1])).float()
            c = Cache(cfg["lm"]["n_layers"])
            add_images(model.lang_encoder, c, latents[None])
            lm_forward(model, c, prompt(cfg, 64, 1))
        ttft_new = best_of(new_image, 1)
        ttft_image = pre64

        def follow_up():
            """a 16-token question after the first 48 tokens of the prompt, whose keys and values
            are kept from before (as the C bench: the image cache and the prefix cache)"""
            c = with_images(1)
            ids = prompt(cfg, 64, 1)
            lm_forward(model, c, ids[:, :48])
            t0 = time.perf_counter()
            lm_forward(model, c, 1 + (ids[:, 48:] * 7 + 101) % 49000)
            return time.perf_counter() - t0
        ttft_cached = min(follow_up() for _ in range(2))

        say("decode...")
        def decode(rows, steps):
            c = with_images(1, rows)
            lm_forward(model, c, prompt(cfg, 64, 1).expand(rows, -1))
            lm_forward(model, c, torch.full((rows, 1), 7))  # a first step at this batch: untimed
            t0 = time.perf_counter()
            for s in range(steps):
                nxt = torch.tensor([[1 + (s * 31 + r * 17) % 50000] for r in range(rows)])
                lm_forward(model, c, nxt)
            return rows * steps / (time.perf_counter() - t0)
        dec = {n: decode(n, 8) for n in (1, 4, 8, 16)}

    out = {"model": "openflamingo-3b", "impl": "pytorch " + torch.__version__, "dtype": args.dtype,
           "threads": torch.get_num_threads(), "blas_core": openblas_core.current_core(),
           "sgemm_gflops": round(gemm, 1), "mem_bw_gbs": round(bw, 1),
           "lm_params": lm_params,
           "vision_ms_b1": round(vis1 * 1e3, 1), "vision_ms_b8": round(vis8 * 1e3, 1),
           "vision_ratio_b8": round(flops_vision(cfg) / vis8 * 1e-9 / gemm, 3),
           "perceiver_ms": round(perc * 1e3, 2),
           "prefill_tps_64": round(64 / pre64, 2), "prefill_tps_512": round(512 / pre512, 2),
           "decode_tps_1": round(dec[1], 3), "decode_ratio_1": round(lm_bytes * dec[1] * 1e-9 / bw, 3),
           "decode_tps_4": round(dec[4], 3), "decode_tps_8": round(dec[8], 3), "decode_tps_16": round(dec[16], 3),
           "ttft_new_ms": round(ttft_new * 1e3, 1), "ttft_cached_image_ms": round(ttft_image * 1e3, 1),
           "ttft_cached_ms": round(ttft_cached * 1e3, 1),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:16s} {v}")


def flops_vision(cfg):
    """FLOPs per image of the ViT's matrix products, 2 per multiply-add (the C bench's
    clip_flops_per_image)."""
    v = cfg["vision"]
    W, M, g = v["width"], v["mlp_dim"], v["image_size"] // v["patch_size"]
    T = g * g + 1
    per_layer = T * (4 * W * W + 2 * W * M) + 2 * T * T * W
    return 2.0 * (g * g * 3 * v["patch_size"] ** 2 * W + v["layers"] * per_layer)


if __name__ == "__main__":
    main()
