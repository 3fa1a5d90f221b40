"""An independent PyTorch reference of the whole OpenFlamingo (v2) forward pass
and of its generation (HF transformers 4.31 greedy / beam search), for
flamingo.c's golden fixtures.  Written from docs/SPEC-openflamingo.md and
docs/FORMAT.md (upstream semantics: open_flamingo src/helpers.py and
flamingo_lm.py, MosaicML's MosaicGPT / MPT, HF GPT-NeoX), not from flamingo.c.

Module and parameter names are exactly the model file's (docs/FORMAT.md), so
`load(path)` is `load_state_dict(strict=True)` of what weights/stfile.read gives.

    m = load("tests/fixtures/of_mosaic.safetensors")
    logits = forward_logits(m, ids, pixels)          # [T, V] float32
    new = generate(m, ids, pixels, 16, num_beams=3)  # new token ids, no end token

The text is recomputed from scratch for every generated token (no KV cache), one
sequence at a time (batch 1); the image latents are computed once per generation.
Generated tokens attend to the prompt's last image, as upstream's cached-media path.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "weights"))
import clip_ref  # noqa: E402
import stfile  # noqa: E402

# ---------------------------------------------------------------------------------------
# Configuration (docs/FORMAT.md section 3: every key has the OpenFlamingo-3B default).

DEFAULTS = {
    "vision": {"image_size": 224, "patch_size": 14, "width": 1024, "layers": 24, "heads": 16,
               "mlp_dim": 4096, "act": "quick_gelu", "ln_eps": 1e-5, "output": "patch_tokens",
               "ln_post": False},
    "perceiver": {"depth": 6, "heads": 8, "dim_head": 64, "num_latents": 64, "ff_mult": 4},
    "lm": {"family": "mosaic_gpt", "d_model": 2048, "n_layers": 24, "n_heads": 16, "mlp_dim": 8192,
           "vocab_size": 50280, "max_seq_len": 2048, "ln_eps": 1e-5, "qk_ln": True, "alibi_bias_max": 8,
           "rotary_pct": 1.0, "rotary_base": 10000, "parallel_residual": False},
    "xattn": {"every": 1, "heads": 8, "dim_head": 64, "ff_mult": 4},
    "tokens": {"media": 50278, "endofchunk": 50277, "pad": 50279, "eos": 0},
}


def full_config(cfg):
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    if cfg.get("format_version", 1) != 1:
        raise ValueError("format_version must be 1")
    out = dict(cfg)
    for sec, d in DEFAULTS.items():
        merged = dict(d)
        merged.update(cfg.get(sec, {}))
        out[sec] = merged
    return out


# ---------------------------------------------------------------------------------------
# OpenFlamingo helpers.py

def FeedForward(dim, mult):
    """LN, Linear up (no bias), exact GELU, Linear down (no bias); names .0 .1 .3"""
    inner = int(dim * mult)
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(),
                         nn.Linear(inner, dim, bias=False))


class PerceiverAttention(nn.Module):
    def __init__(self, dim, dim_head, heads):
        super().__init__()
        self.scale = dim_head ** -0.5
        self.heads = heads
        inner = dim_head * heads
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x, latents):
        """x [n, v, D] media tokens, latents [n, L, D] -> [n, L, D]"""
        x = self.norm_media(x)
        latents = self.norm_latents(latents)
        h = self.heads
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat((x, latents), dim=-2)).chunk(2, dim=-1)
        n = x.shape[0]
        q, k, v = (t.reshape(n, t.shape[1], h, -1).transpose(1, 2) for t in (q, k, v))  # [n, h, *, d]
        q = q * self.scale
        sim = q @ k.transpose(-1, -2)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        attn = sim.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(n, latents.shape[1], -1)
        return self.to_out(out)


class PerceiverResampler(nn.Module):
    def __init__(self, dim, depth, dim_head, heads, num_latents, ff_mult):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim))
        self.layers = nn.ModuleList([
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads), FeedForward(dim, ff_mult)])
            for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        """x [n_img, v, D] (one frame per image) -> [n_img, num_latents, D]"""
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm(latents)


class MaskedCrossAttention(nn.Module):
    """only_attend_immediate_media=True, not the cached-media path (generation here
    recomputes everything, where cumsum gives the same last image)."""

    def __init__(self, dim, dim_visual, dim_head, heads):
        super().__init__()
        self.scale = dim_head ** -0.5
        self.heads = heads
        inner = dim_head * heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_visual, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x, media, media_locations):
        """x [T, d] text hidden state, media [T_img, n, Dv], media_locations [T] bool"""
        T_txt = x.shape[0]
        T_img, n = media.shape[:2]
        h = self.heads
        x = self.norm(x)
        q = self.to_q(x)
        text_time = media_locations.long().cumsum(dim=-1)            # [T]
        if T_img == 0:
            # No image at all: every token has text_time 0 and upstream zeroes its
            # attention weights, so the output is to_out(0) = 0.
            return self.to_out(torch.zeros_like(q))
        k, v = self.to_kv(media.reshape(T_img * n, -1)).chunk(2, dim=-1)
        q = q.reshape(T_txt, h, -1).transpose(0, 1)                  # [h, T, d]
        k = k.reshape(T_img * n, h, -1).transpose(0, 1)              # [h, T_img*n, d]
        v = v.reshape(T_img * n, h, -1).transpose(0, 1)
        q = q * self.scale
        sim = q @ k.transpose(-1, -2)                                 # [h, T, T_img*n]
        media_time = (torch.arange(T_img) + 1).repeat_interleave(n)  # [T_img*n]
        mask = text_time[:, None] == media_time[None, :]             # [T, T_img*n]
        sim = sim.masked_fill(~mask[None], -torch.finfo(sim.dtype).max)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        attn = sim.softmax(dim=-1)
        attn = attn.masked_fill((text_time == 0)[None, :, None], 0.0)
        out = (attn @ v).transpose(0, 1).reshape(T_txt, -1)
        return self.to_out(out)


class GatedCrossAttentionBlock(nn.Module):
    def __init__(self, dim, dim_visual, dim_head, heads, ff_mult):
        super().__init__()
        self.attn = MaskedCrossAttention(dim, dim_visual, dim_head, heads)
        self.attn_gate = nn.Parameter(torch.tensor([0.0]))
        self.ff = FeedForward(dim, ff_mult)
        self.ff_gate = nn.Parameter(torch.tensor([0.0]))

    def forward(self, x, media, media_locations):
        x = self.attn(x, media, media_locations) * self.attn_gate.tanh() + x
        x = self.ff(x) * self.ff_gate.tanh() + x
        return x


class FlamingoLayer(nn.Module):
    """OpenFlamingo's flamingo_lm.FlamingoLayer: the gated block (if any) on the
    incoming hidden state, then the original decoder layer."""

    def __init__(self, gated_cross_attn_layer, decoder_layer):
        super().__init__()
        self.gated_cross_attn_layer = gated_cross_attn_layer
        self.decoder_layer = decoder_layer

    def forward(self, x, media, media_locations):
        if self.gated_cross_attn_layer is not None:
            x = self.gated_cross_attn_layer(x, media, media_locations)
        return self.decoder_layer(x)


# ---------------------------------------------------------------------------------------
# MosaicGPT (MPT-1B) and MPT (MPT-7B)

class WeightOnlyLayerNorm(nn.Module):
    """nn.LayerNorm whose bias Parameter was removed (MosaicML's no_bias=True)."""

    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, None, self.eps)


def gen_slopes(n_heads, alibi_bias_max):
    """MosaicML's gen_slopes, with its interleave for non-power-of-two head counts."""
    _n = 2 ** math.ceil(math.log2(n_heads))
    m = torch.arange(1, _n + 1, dtype=torch.float32)
    m = m.mul(alibi_bias_max / _n)
    slopes = 1.0 / torch.pow(2, m)
    if _n != n_heads:
        slopes = torch.concat([slopes[1::2], slopes[::2]])[:n_heads]
    return slopes.view(1, n_heads, 1, 1)


def build_alibi_bias(n_heads, seq_len, alibi_bias_max, dtype):
    """[1, h, 1, seq_len]: (j - (seq_len - 1)) * slope_h (MosaicML, full=False)."""
    bias = torch.arange(1 - seq_len, 1, dtype=torch.int32).view(1, 1, 1, seq_len)
    return (bias * gen_slopes(n_heads, alibi_bias_max)).to(dtype)


class MPTAttention(nn.Module):
    def __init__(self, d, n_heads, qk_ln, eps, alibi_bias_max):
        super().__init__()
        self.n_heads, self.alibi_bias_max = n_heads, alibi_bias_max
        self.Wqkv = nn.Linear(d, 3 * d, bias=False)
        if qk_ln:
            self.q_ln = WeightOnlyLayerNorm(d, eps)
            self.k_ln = WeightOnlyLayerNorm(d, eps)
        else:
            self.q_ln = self.k_ln = None
        self.out_proj = nn.Linear(d, d, bias=False)

    def forward(self, x):
        T, d = x.shape
        h = self.n_heads
        q, k, v = self.Wqkv(x).chunk(3, dim=-1)
        if self.q_ln is not None:                     # over the full width, before the head split
            q, k = self.q_ln(q), self.k_ln(k)
        q = q.reshape(T, h, -1).transpose(0, 1).unsqueeze(0)          # [1, h, T, hd]
        k = k.reshape(T, h, -1).permute(1, 2, 0).unsqueeze(0)         # [1, h, hd, T]
        v = v.reshape(T, h, -1).transpose(0, 1).unsqueeze(0)
        scale = 1 / math.sqrt(d // h)
        w = q.matmul(k) * scale
        w = w + build_alibi_bias(h, T, self.alibi_bias_max, w.dtype)  # S_k = T (no cache)
        causal = torch.ones(T, T, dtype=torch.bool).tril().logical_not()
        w = w.masked_fill(causal.view(1, 1, T, T), torch.finfo(w.dtype).min)
        w = torch.softmax(w, dim=-1)
        out = w.matmul(v)[0].transpose(0, 1).reshape(T, d)
        return self.out_proj(out)


class MosaicMLP(nn.Module):
    def __init__(self, d, m, up, down):
        super().__init__()
        self.up_name, self.down_name = up, down
        setattr(self, up, nn.Linear(d, m, bias=False))
        self.act = nn.GELU()
        setattr(self, down, nn.Linear(m, d, bias=False))

    def forward(self, x):
        return getattr(self, self.down_name)(self.act(getattr(self, self.up_name)(x)))


class MPTBlock(nn.Module):
    """mosaic_gpt: ln_1 / attn / ln_2 / mlp.{mlp_up,mlp_down};
    mpt: norm_1 / attn / norm_2 / ffn.{up_proj,down_proj}.  Pre-LN, sequential."""

    def __init__(self, lm, family):
        super().__init__()
        d, eps = lm["d_model"], lm["ln_eps"]
        self.n1, self.n2, self.mlp_name = (("ln_1", "ln_2", "mlp") if family == "mosaic_gpt"
                                           else ("norm_1", "norm_2", "ffn"))
        setattr(self, self.n1, WeightOnlyLayerNorm(d, eps))
        self.attn = MPTAttention(d, lm["n_heads"], lm["qk_ln"], eps, lm["alibi_bias_max"])
        setattr(self, self.n2, WeightOnlyLayerNorm(d, eps))
        names = ("mlp_up", "mlp_down") if family == "mosaic_gpt" else ("up_proj", "down_proj")
        setattr(self, self.mlp_name, MosaicMLP(d, lm["mlp_dim"], *names))

    def forward(self, x):
        x = x + self.attn(getattr(self, self.n1)(x))
        return x + getattr(self, self.mlp_name)(getattr(self, self.n2)(x))


# ---------------------------------------------------------------------------------------
# GPT-NeoX (HF transformers ~4.31)

def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class NeoXAttention(nn.Module):
    def __init__(self, lm):
        super().__init__()
        d, h = lm["d_model"], lm["n_heads"]
        self.h, self.hd = h, d // h
        self.rotary_ndims = int(self.hd * lm["rotary_pct"])
        self.base = lm["rotary_base"]
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)

    def rotary(self, T, dtype):
        dim = self.rotary_ndims
        inv_freq = 1.0 / (self.base ** (torch.arange(0, dim, 2).float() / dim))
        t = torch.arange(T, dtype=inv_freq.dtype)
        freqs = torch.einsum("i,j->ij", t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)          # [T, rotary_ndims]

    def forward(self, x):
        T, d = x.shape
        qkv = self.query_key_value(x).view(T, self.h, 3 * self.hd)   # per head: q, k, v
        q = qkv[..., : self.hd].transpose(0, 1)                       # [h, T, hd]
        k = qkv[..., self.hd: 2 * self.hd].transpose(0, 1)
        v = qkv[..., 2 * self.hd:].transpose(0, 1)
        r = self.rotary_ndims
        if r > 0:
            cos, sin = self.rotary(T, q.dtype)                        # position ids 0..T-1
            qr, kr = q[..., :r], k[..., :r]
            q = torch.cat((qr * cos + rotate_half(qr) * sin, q[..., r:]), dim=-1)
            k = torch.cat((kr * cos + rotate_half(kr) * sin, k[..., r:]), dim=-1)
        norm_factor = math.sqrt(self.hd)
        scores = (q @ k.transpose(-1, -2)) * (1.0 / norm_factor)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        scores = torch.where(causal, scores, torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype))
        w = F.softmax(scores, dim=-1)
        out = (w @ v).transpose(0, 1).reshape(T, d)
        return self.dense(out)


class NeoXMLP(nn.Module):
    def __init__(self, d, m):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(d, m)
        self.act = nn.GELU()
        self.dense_4h_to_h = nn.Linear(m, d)

    def forward(self, x):
        return self.dense_4h_to_h(self.act(self.dense_h_to_4h(x)))


class NeoXLayer(nn.Module):
    def __init__(self, lm):
        super().__init__()
        d, eps = lm["d_model"], lm["ln_eps"]
        self.parallel = bool(lm["parallel_residual"])
        self.input_layernorm = nn.LayerNorm(d, eps=eps)
        self.post_attention_layernorm = nn.LayerNorm(d, eps=eps)
        self.attention = NeoXAttention(lm)
        self.mlp = NeoXMLP(d, lm["mlp_dim"])

    def forward(self, x):
        a = self.attention(self.input_layernorm(x))
        if self.parallel:
            return self.mlp(self.post_attention_layernorm(x)) + a + x
        a = a + x
        return self.mlp(self.post_attention_layernorm(a)) + a


# ---------------------------------------------------------------------------------------
# The wrapped language model and the whole Flamingo

class LangEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        lm, xa = cfg["lm"], cfg["xattn"]
        self.family = lm["family"]
        d, V, L = lm["d_model"], lm["vocab_size"], lm["n_layers"]

        def gated(i):
            if (i + 1) % xa["every"] != 0:
                return None
            return GatedCrossAttentionBlock(d, cfg["vision"]["width"], xa["dim_head"], xa["heads"], xa["ff_mult"])

        if self.family in ("mosaic_gpt", "mpt"):
            self.transformer = nn.Module()
            self.transformer.wte = nn.Embedding(V, d)
            self.transformer.blocks = nn.ModuleList(
                [FlamingoLayer(gated(i), MPTBlock(lm, self.family)) for i in range(L)])
            self.final_norm_name = "ln_f" if self.family == "mosaic_gpt" else "norm_f"
            setattr(self.transformer, self.final_norm_name, WeightOnlyLayerNorm(d, lm["ln_eps"]))
        elif self.family == "gpt_neox":
            self.gpt_neox = nn.Module()
            self.gpt_neox.embed_in = nn.Embedding(V, d)
            self.gpt_neox.layers = nn.ModuleList([FlamingoLayer(gated(i), NeoXLayer(lm)) for i in range(L)])
            self.gpt_neox.final_layer_norm = nn.LayerNorm(d, eps=lm["ln_eps"])
            self.embed_out = nn.Linear(d, V, bias=False)
        else:
            raise ValueError(f"unknown lm family {self.family!r}")

    def layers(self):
        return self.transformer.blocks if self.family != "gpt_neox" else self.gpt_neox.layers

    def forward(self, ids, media, media_locations):
        """ids [T] long, media [T_img, n, Dv] -> logits [T, V]"""
        if self.family == "gpt_neox":
            x = self.gpt_neox.embed_in(ids)
        else:
            x = self.transformer.wte(ids)
        for layer in self.layers():
            x = layer(x, media, media_locations)
        if self.family == "gpt_neox":
            return self.embed_out(self.gpt_neox.final_layer_norm(x))
        x = getattr(self.transformer, self.final_norm_name)(x)
        return F.linear(x, self.transformer.wte.weight)               # tied


class Flamingo(nn.Module):
    def __init__(self, cfg, vision_extra=()):
        super().__init__()
        self.cfg = cfg = full_config(cfg)
        vc = dict(cfg["vision"])
        vc["conv_bias"] = "vision_encoder.conv1.bias" in vision_extra
        self.vision_encoder = clip_ref.VisionTransformer(**vc)
        for mod in self.vision_encoder.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.eps = vc["ln_eps"]
        if not vc["ln_post"] and "vision_encoder.ln_post.weight" not in vision_extra:
            self.vision_encoder.ln_post = None                         # optional in the file
        if "vision_encoder.proj" in vision_extra:                      # optional, unused
            self.vision_encoder.proj = nn.Parameter(torch.zeros(vision_extra["vision_encoder.proj"]))
        p = cfg["perceiver"]
        self.perceiver = PerceiverResampler(vc["width"], p["depth"], p["dim_head"], p["heads"],
                                            p["num_latents"], p["ff_mult"])
        self.lang_encoder = LangEncoder(cfg)
        self.media_token_id = cfg["tokens"]["media"]

    def encode_images(self, pixels):
        """pixels [n_img, 3, S, S] -> latents [n_img, num_latents, Wv]"""
        if pixels.shape[0] == 0:
            n, W = self.cfg["perceiver"]["num_latents"], self.cfg["vision"]["width"]
            return torch.zeros(0, n, W, dtype=self.perceiver.latents.dtype)
        feats = self.vision_encoder(pixels)        # patch tokens, no CLS, no ln_post
        return self.perceiver(feats)

    def forward(self, ids, pixels):
        media_locations = ids == self.media_token_id
        n_media = int(media_locations.sum())
        if n_media != pixels.shape[0]:
            raise ValueError(f"{n_media} <image> tokens but {pixels.shape[0]} images")
        media = self.encode_images(pixels)
        return self.lang_encoder(ids, media, media_locations)


def load(path, dtype=torch.float32):
    tensors, meta = stfile.read(path)
    optional = {k: tuple(v.shape) for k, v in tensors.items()
                if k in ("vision_encoder.conv1.bias", "vision_encoder.ln_post.weight", "vision_encoder.proj")}
    m = Flamingo(meta["config"], optional)
    m.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in tensors.items()},
                      strict=True)
    m.tokenizer_json = meta.get("tokenizer")
    return m.to(dtype).eval()


def from_state(cfg, state, dtype=torch.float32):
    """A Flamingo from a config (dict or JSON) and a state dict of numpy arrays."""
    optional = {k: tuple(np.shape(v)) for k, v in state.items()
                if k in ("vision_encoder.conv1.bias", "vision_encoder.ln_post.weight", "vision_encoder.proj")}
    m = Flamingo(cfg, optional)
    m.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()},
                      strict=True)
    return m.to(dtype).eval()


def _dtype(model):
    return model.perceiver.latents.dtype


def _as_inputs(model, ids, pixels):
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    if pixels is None:
        S = model.cfg["vision"]["image_size"]
        pixels = np.zeros((0, 3, S, S), np.float32)
    pixels = torch.as_tensor(np.asarray(pixels)).to(_dtype(model))
    return ids, pixels


def forward_logits(model, ids, pixels):
    """ids: sequence of token ids (T), pixels [n_img, 3, S, S] in the order of the
    <image> tokens -> logits [T, V] (numpy, float32)."""
    ids, pixels = _as_inputs(model, ids, pixels)
    with torch.no_grad():
        return model(ids, pixels).float().numpy()


def _media(model, ids_list, pixels_t):
    """Image latents, computed once per generation (they depend on the images only)."""
    n_media = sum(1 for t in ids_list if t == model.media_token_id)
    if n_media != pixels_t.shape[0]:
        raise ValueError(f"{n_media} <image> tokens but {pixels_t.shape[0]} images")
    with torch.no_grad():
        return model.encode_images(pixels_t)


def _logits_t(model, ids_list, media):
    """Logits [T, V] of the whole sequence, recomputed from scratch (no KV cache)."""
    with torch.no_grad():
        ids = torch.tensor(ids_list, dtype=torch.long)
        return model.lang_encoder(ids, media, ids == model.media_token_id)


# ---------------------------------------------------------------------------------------
# Generation: HF transformers 4.31 semantics (greedy_search, beam_search with
# BeamSearchScorer / BeamHypotheses, early_stopping=False, num_return_sequences=1),
# end tokens {endofchunk, eos}, <image> and <PAD> banned (NoBadWordsLogitsProcessor).

def _end_and_banned(model):
    t = model.cfg["tokens"]
    return {t["endofchunk"], t["eos"]}, [t["media"], t["pad"]]


def greedy(model, ids, pixels, max_new_tokens):
    """-> (new token ids without the end token, end token id or None)"""
    ends, banned = _end_and_banned(model)
    seq, pix = _as_inputs(model, ids, pixels)
    seq = seq.tolist()
    media = _media(model, seq, pix)
    new = []
    for _ in range(max_new_tokens):
        logits = _logits_t(model, seq, media)[-1].clone()
        logits[banned] = -float("inf")
        tok = int(torch.argmax(logits))           # first index on ties, as torch/HF
        if tok in ends:
            return new, tok
        seq.append(tok)
        new.append(tok)
    return new, None


class BeamHypotheses:
    """transformers 4.31 BeamHypotheses (early_stopping=False)."""

    def __init__(self, num_beams, length_penalty):
        self.length_penalty = length_penalty
        self.num_beams = num_beams
        self.beams = []
        self.worst_score = 1e9

    def __len__(self):
        return len(self.beams)

    def add(self, hyp, sum_logprobs, info=None):
        score = sum_logprobs / (len(hyp) ** self.length_penalty)
        if len(self) < self.num_beams or score > self.worst_score:
            self.beams.append((score, hyp, info))
            if len(self) > self.num_beams:
                sorted_next_scores = sorted([(s, idx) for idx, (s, _, _) in enumerate(self.beams)])
                del self.beams[sorted_next_scores[0][1]]
                self.worst_score = sorted_next_scores[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs, cur_len):
        if len(self) < self.num_beams:
            return False
        highest_attainable_score = best_sum_logprobs / cur_len ** self.length_penalty
        return self.worst_score >= highest_attainable_score


def beam_search(model, ids, pixels, max_new_tokens, num_beams, length_penalty=1.0, trace=None,
                n_candidates=None):
    """HF 4.31 beam_search for one prompt.  Hypothesis lengths (for the length
    penalty) count the prompt, as 4.31 does for decoder-only models.
    n_candidates: the top-k taken per step, 2 * num_beams in 4.31 (4.32+ take
    max(2, 1 + n_end) * num_beams); with fewer than num_beams non-end tokens among
    them 4.31 raises ValueError, and so does this (RuntimeError).
    Note: with one beam this is not greedy search when length_penalty != 0 (4.31's
    is_done compares the finished score s/L**lp with best/(L+1)**lp, so the beam
    may go on past an end token); HF itself never runs beam_search with one beam.
    -> (best hypothesis' new token ids without the end token, its score, end token or None)"""
    ends, banned = _end_and_banned(model)
    seq0, pix = _as_inputs(model, ids, pixels)
    prompt = seq0.tolist()
    media = _media(model, prompt, pix)
    prompt_len = len(prompt)
    max_length = prompt_len + max_new_tokens
    beams = [list(prompt) for _ in range(num_beams)]
    dt = _dtype(model)                            # float32 (float64 only for the robustness check)
    beam_scores = torch.zeros(num_beams, dtype=dt)
    beam_scores[1:] = -1e9
    hyps = BeamHypotheses(num_beams, length_penalty)
    done = False
    while True:
        cur_len = len(beams[0]) + 1        # 4.31: "add up to the length which the next_scores is calculated on"
        logits = torch.stack([_logits_t(model, b, media)[-1] for b in beams])   # [nb, V]
        scores = F.log_softmax(logits, dim=-1)
        scores[:, banned] = -float("inf")                      # NoBadWordsLogitsProcessor
        scores = scores + beam_scores[:, None].expand_as(scores)
        V = scores.shape[-1]
        flat = scores.view(1, num_beams * V)
        k = n_candidates or 2 * num_beams
        top_scores, top_tokens = torch.topk(flat, k, dim=1, largest=True, sorted=True)
        top_scores, top_tokens = top_scores[0], top_tokens[0]
        top_beams = torch.div(top_tokens, V, rounding_mode="floor")
        top_tokens = top_tokens % V
        # BeamSearchScorer.process
        next_scores = torch.zeros(num_beams, dtype=dt)
        next_tokens = [0] * num_beams
        next_beams = [0] * num_beams
        b = 0
        for rank, (tok, sc, bi) in enumerate(zip(top_tokens.tolist(), top_scores, top_beams.tolist())):
            if tok in ends:
                if rank >= num_beams:
                    continue
                hyps.add(list(beams[bi]), sc.item(), tok)
            else:
                next_scores[b] = sc
                next_tokens[b] = tok
                next_beams[b] = bi
                b += 1
            if b == num_beams:
                break
        if b < num_beams:
            raise RuntimeError("fewer non-end candidates than beams")
        done = done or hyps.is_done(top_scores.max().item(), cur_len)
        if trace is not None:
            trace.append((cur_len, top_scores.tolist(), top_tokens.tolist(), top_beams.tolist()))
        beams = [beams[bi] + [t] for bi, t in zip(next_beams, next_tokens)]
        beam_scores = next_scores
        if done or len(beams[0]) >= max_length:
            break
    # BeamSearchScorer.finalize
    if not done:
        for i in range(num_beams):
            hyps.add(list(beams[i]), beam_scores[i].item(), None)
    sorted_hyps = sorted(hyps.beams, key=lambda x: x[0])
    best_score, best, end_tok = sorted_hyps.pop()
    return best[prompt_len:], best_score, end_tok


def generate(model, ids, pixels, max_new_tokens, num_beams=1, length_penalty=1.0):
    """The new token ids (list of int), without the end token."""
    if num_beams == 1:
        return greedy(model, ids, pixels, max_new_tokens)[0]
    return beam_search(model, ids, pixels, max_new_tokens, num_beams, length_penalty)[0]
