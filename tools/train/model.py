"""The bundled model's architecture and a batched forward pass for training.

The modules are the PyTorch reference's own (tests/reference/flamingo_ref.py and clip_ref.py):
`build(cfg)` returns a flamingo_ref.Flamingo, so its state_dict has exactly the model file's
tensor names. The reference runs one sequence at a time ([T] ids); training needs batches, so
`lm_forward` below computes the same function over [B, T] with the same parameters: the
GPT-NeoX attention and the masked cross-attention rewritten with a batch dimension. train.py
checks after export that the reference (one sequence at a time, loaded from the file) gives
the same logits as this batched path.
"""
import copy
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "weights"))
sys.path.insert(0, HERE)
import flamingo_ref  # noqa: E402
import preprocess_ref  # noqa: E402
import world  # noqa: E402

IMAGE_SIZE = 96
# The Perceiver's latents: one per patch of the 8 x 8 grid (stage p: latent i reproduces patch
# token i), then, with train.py's p_count, one per countable attribute, which stage p teaches to
# carry how many objects the image has of it: each shape, each colour, all objects, each
# colour-shape pair (train.py's count_labels, in that order).
PATCH_LATENTS = 64
COUNT_LATENTS = len(world.SHAPES) + len(world.COLOR_NAMES) + 1 + len(world.SHAPES) * len(world.COLOR_NAMES)
MEAN = list(preprocess_ref.OPENAI_MEAN)
STD = list(preprocess_ref.OPENAI_STD)


def config(vocab_size, tokens, count_latents=False):
    """The model's configuration; count_latents adds the Perceiver's COUNT_LATENTS (train.py's
    p_count, on in the committed recipe since run17: tools/train/README.md, "Count latents")."""
    return {
        "format": "flamingo.c", "format_version": 1, "name": "flamingo-tiny",
        "vision": {"image_size": IMAGE_SIZE, "patch_size": 12, "width": 96, "layers": 4, "heads": 4,
                   "mlp_dim": 192, "act": "gelu", "ln_eps": 1e-5, "output": "patch_tokens", "ln_post": False},
        "preprocess": {"kind": "open_clip", "image_size": IMAGE_SIZE, "mean": MEAN, "std": STD},
        "perceiver": {"depth": 2, "heads": 4, "dim_head": 32,
                      "num_latents": PATCH_LATENTS + (COUNT_LATENTS if count_latents else 0), "ff_mult": 2},
        "lm": {"family": "gpt_neox", "d_model": 96, "n_layers": 4, "n_heads": 4, "mlp_dim": 256,
               "vocab_size": vocab_size, "max_seq_len": 1024, "ln_eps": 1e-5, "rotary_pct": 1.0,
               "rotary_base": 10000, "parallel_residual": False},
        "xattn": {"every": 1, "heads": 4, "dim_head": 32, "ff_mult": 2},
        "tokens": tokens,
    }


# The count latents' initial values come from a generator of their own: the reference's
# Flamingo draws the vision encoder's, the Perceiver's (latents first) and the language model's
# initial weights from torch's global generator in that order, so drawing 127 latents instead of
# 64 there would give the language model other weights, and a run with count latents would
# differ from one without in every part instead of the Perceiver alone (run16, README).
COUNT_LATENT_SEED = 4242


def build(cfg):
    """A flamingo_ref.Flamingo with random weights; with count latents, the same weights as
    without (same global seed) plus COUNT_LATENTS rows of latents drawn apart."""
    n = cfg["perceiver"]["num_latents"]
    if n <= PATCH_LATENTS:
        return flamingo_ref.Flamingo(cfg)
    base = copy.deepcopy(cfg)
    base["perceiver"]["num_latents"] = PATCH_LATENTS
    m = flamingo_ref.Flamingo(base)
    lat = m.perceiver.latents
    extra = torch.randn(n - PATCH_LATENTS, lat.shape[1],
                        generator=torch.Generator().manual_seed(COUNT_LATENT_SEED))
    m.perceiver.latents = torch.nn.Parameter(torch.cat([lat.data, extra]))
    m.cfg = flamingo_ref.full_config(cfg)
    return m


def normalize(u8):
    """uint8 [N, S, S, 3] (numpy or tensor) -> float32 [N, 3, S, S], as torchvision's
    ToTensor + Normalize (the C engine reproduces those bit for bit)."""
    x = torch.as_tensor(u8).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(STD, dtype=torch.float32)[:, None, None]
    return x.sub(mean).div(std)


# ---------------------------------------------------------------------------------------
# Batched language model (GPT-NeoX) with gated cross-attention

_rot_cache = {}


def _rotary(att, T, dtype):
    key = (att.rotary_ndims, att.base, T, dtype)
    if key not in _rot_cache:
        _rot_cache[key] = att.rotary(T, dtype)
    return _rot_cache[key]


def neox_attention(att, x):
    """flamingo_ref.NeoXAttention over x [B, T, d]."""
    B, T, d = x.shape
    h, hd = att.h, att.hd
    qkv = att.query_key_value(x).view(B, T, h, 3 * hd)
    q = qkv[..., :hd].transpose(1, 2)                       # [B, h, T, hd]
    k = qkv[..., hd: 2 * hd].transpose(1, 2)
    v = qkv[..., 2 * hd:].transpose(1, 2).contiguous()      # faster bmm, same bits (gated_xattn)
    r = att.rotary_ndims
    if r > 0:
        cos, sin = _rotary(att, T, q.dtype)
        qr, kr = q[..., :r], k[..., :r]
        q = torch.cat((qr * cos + flamingo_ref.rotate_half(qr) * sin, q[..., r:]), dim=-1)
        k = torch.cat((kr * cos + flamingo_ref.rotate_half(kr) * sin, k[..., r:]), dim=-1)
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    w = F.softmax(scores, dim=-1)
    return att.dense((w @ v).transpose(1, 2).reshape(B, T, d))


def neox_layer(layer, x):
    a = neox_attention(layer.attention, layer.input_layernorm(x))
    if layer.parallel:
        return layer.mlp(layer.post_attention_layernorm(x)) + a + x
    a = a + x
    return layer.mlp(layer.post_attention_layernorm(a)) + a


def chunk_index(text_time, M):
    """Where each image's tokens are: text_time [B, T] (1-based index of the latest <image>, 0
    before the first) -> (gather [B*M, Tc] rows of the flattened [B*T] tokens, valid [B*M, Tc]).
    A token sees only its latest image, so the cross-attention runs chunk by chunk: [B*M, Tc]
    queries over that chunk's L latents instead of [B, T] queries over all M*L, masked (M times
    less work; the same function)."""
    B, T = text_time.shape
    tt = text_time.reshape(-1)
    assert tt.numel() == 0 or int(tt.max()) <= M, "more <image> tokens than images"
    rows = torch.arange(B * T)
    slot = torch.arange(B).repeat_interleave(T) * M + tt - 1       # media slot of every token
    seen = tt > 0
    slot, rows = slot[seen], rows[seen]
    counts = torch.bincount(slot, minlength=B * M)
    Tc = max(1, int(counts.max()))
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(len(slot)) - start[slot]                      # tokens of a chunk are contiguous
    gather = torch.zeros(B * M, Tc, dtype=torch.long)
    valid = torch.zeros(B * M, Tc, dtype=torch.bool)
    gather[slot, pos] = rows
    valid[slot, pos] = True
    return gather, valid


def gated_xattn(blk, x, media, chunks):
    """flamingo_ref.GatedCrossAttentionBlock over x [B, T, d]; media [B, M, L, Dv] (the
    latents of each sequence's images, in order; unused slots may hold anything); chunks:
    chunk_index(text_time, M), text_time [B, T] the 1-based index of the latest <image> at or
    before each token, 0 if none (those tokens get no cross-attention output, as upstream)."""
    a = blk.attn
    B, T, _ = x.shape
    M, L = media.shape[1], media.shape[2]
    h = a.heads
    gather, valid = chunks
    q = a.to_q(a.norm(x)).reshape(B * T, -1)
    inner = q.shape[-1]
    q = (q[gather].view(B * M, -1, h, inner // h).transpose(1, 2) * a.scale).contiguous()   # [B*M, h, Tc, dh]
    # Contiguous operands for the two products below: PyTorch's CPU bmm (Debian's build has no
    # MKL) multiplies them matrix by matrix either way, but on strided ones it ran about twice
    # as slow, and the backward of .chunk(2) (a strided cat) took 5 ms a layer. The same
    # numbers bit for bit (12 steps compared, and a whole run: g1 in tools/train/README.md).
    # 8% faster a step in one process; in a full run of 2 processes within the noise.
    kv = a.to_kv(media.reshape(B * M, L, -1)).view(B * M, L, 2, h, -1)
    k, v = kv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)                  # [B*M, h, L, dh] each
    sim = q @ k.transpose(-1, -2)                                            # [B*M, h, Tc, L]
    attn = (sim - sim.amax(dim=-1, keepdim=True).detach()).softmax(dim=-1)
    o = (attn @ v).transpose(1, 2).reshape(B * M, -1, inner)                 # [B*M, Tc, inner]
    out = torch.zeros(B * T, inner, dtype=o.dtype).index_put((gather[valid],), o[valid])
    x = a.to_out(out.view(B, T, inner)) * blk.attn_gate.tanh() + x
    return blk.ff(x) * blk.ff_gate.tanh() + x


def lm_forward(m, ids, media=None, xattn=True):
    """ids [B, T] long; media [B, M, L, Dv] perceiver latents or None -> logits [B, T, V].
    xattn=False skips the cross-attention blocks (the text-only language model)."""
    lang = m.lang_encoder
    x = lang.gpt_neox.embed_in(ids)
    if xattn:
        chunks = chunk_index((ids == m.media_token_id).long().cumsum(dim=-1), media.shape[1])
    for layer in lang.layers():
        if xattn and layer.gated_cross_attn_layer is not None:
            x = gated_xattn(layer.gated_cross_attn_layer, x, media, chunks)
        x = neox_layer(layer.decoder_layer, x)
    return lang.embed_out(lang.gpt_neox.final_layer_norm(x))


def vision_features(m, pixels, batch=256):
    """pixels [N, 3, S, S] -> patch tokens [N, P, W] (no grad)."""
    out = []
    with torch.no_grad():
        for i in range(0, pixels.shape[0], batch):
            out.append(m.vision_encoder(pixels[i: i + batch]))
    return torch.cat(out)


def greedy_batch(m, prompts, latents, max_new, eoc, eos, banned):
    """Greedy decoding of many prompts at once, recomputing each step (no KV cache).
    prompts: list of id lists; latents: list of [n_img_i, L, Dv] tensors (the images of each
    prompt in order) -> list of new-token lists (without the end token)."""
    B = len(prompts)
    M = max(1, max(t.shape[0] for t in latents))
    L, D = latents[0].shape[1], latents[0].shape[2]
    media = torch.zeros(B, M, L, D)
    for b, t in enumerate(latents):
        media[b, : t.shape[0]] = t
    seqs = [list(p) for p in prompts]
    new = [[] for _ in range(B)]
    alive = list(range(B))
    with torch.no_grad():
        for _ in range(max_new):
            if not alive:
                break
            T = max(len(seqs[b]) for b in alive)
            ids = torch.zeros(len(alive), T, dtype=torch.long)
            for i, b in enumerate(alive):
                ids[i, : len(seqs[b])] = torch.tensor(seqs[b])
            logits = lm_forward(m, ids, media[alive])
            last = torch.stack([logits[i, len(seqs[b]) - 1] for i, b in enumerate(alive)])
            last[:, banned] = -float("inf")
            tok = last.argmax(-1).tolist()
            still = []
            for b, t in zip(alive, tok):
                if t in (eoc, eos):
                    continue
                seqs[b].append(t)
                new[b].append(t)
                still.append(b)
            alive = still
    return new
