#!/usr/bin/env python3
"""Convert a public OpenFlamingo model, from the files exactly as upstream
publishes them, into one flamingo.c model file (docs/FORMAT.md).

    python3 weights/convert.py --vision ViT-L-14.pt --lm mpt-1b-redpajama-200b/ \\
        --checkpoint checkpoint.pt --tokenizer tokenizer.json --out of-3b.safetensors \\
        [--vision-config ViT-L-14.json] [--dtype f32|f16|bf16|q8_0] [--name NAME] \\
        [--perceiver-heads 8 --perceiver-dim-head 64 --xattn-heads 8 --xattn-dim-head 64]

What goes in, and where each part of the model comes from (as OpenFlamingo's
own `create_model_and_transforms` + `load_state_dict(checkpoint, strict=False)`
assemble it):

  --vision      the CLIP image tower: OpenAI's TorchScript archive (`ViT-L-14.pt`),
                an open_clip state dict (`open_clip_pytorch_model.bin` or
                `open_clip_model.safetensors`, keys `visual.*`), a timm one
                (`model.safetensors` of timm/vit_large_patch14_clip_224.openai) or a
                HF transformers CLIPModel / CLIPVisionModel one.
  --lm          a HF model folder: config.json (model_type mosaic_gpt, mpt or gpt_neox)
                and the weights as `model.safetensors`, `pytorch_model.bin`, or shards
                of either with their index json.
  --checkpoint  OpenFlamingo's checkpoint.pt: the Perceiver, the gated cross-attention
                blocks and the resized embeddings (rows = len(tokenizer)); anything else
                it holds replaces the LM's tensor of the same name, as upstream.
  --tokenizer   the LM's tokenizer.json; `<|endofchunk|>`, `<image>` and, when the
                tokenizer has no pad token, `<PAD>` are added as OpenFlamingo's factory.py
                adds them, and the result is stored in the model file.

Everything is checked before anything is written: the LM family against the
checkpoint's key names, every expected tensor and its shape against the
configuration, the cross-attention layers against the `(i + 1) % n == 0`
rule, the embedding rows against the tokenizer.  Errors name the file and the
tensor, and exit with status 1; nothing is left at --out unless it succeeded.

It streams: the inputs are opened lazily (weights/torchzip.py,
weights/stfile.LazyFile) and the output is written one tensor at a time, so
the memory needed is about the largest tensor (the embedding) plus the CLIP
tower, not the model.  Only TorchScript and legacy (pre-1.6) torch pickles are
read whole, through torch itself.

Output dtypes: --dtype applies to every tensor of two or more dimensions;
1-D tensors (norms, biases, gates, the class embedding) stay f32, as they are
a rounding error of the size and the engine reads them as f32 anyway.  q8_0
applies to the weight matrices only (q8_0_eligible), as int8 plus F16 scales
`NAME_scale` (docs/FORMAT.md); the rest stays f32.

    python3 weights/convert.py --model FILE --dtype q8_0 --out OUT

re-stores an existing flamingo.c model file instead (config and tokenizer kept).
Needs Python 3 with numpy and torch (torch only for TorchScript archives,
legacy pickles and bf16/f16 rounding is done in numpy).
"""
import argparse
import json
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stfile  # noqa: E402
import torchzip  # noqa: E402

CONVERTER_VERSION = 1


class ConvertError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# Tensor sources: anything with .shape, .dtype ("<f4", "<f2", "bf16", ...) and .numpy()


class TorchTensor:
    """A tensor already in memory as a torch.Tensor (TorchScript / legacy pickles)."""

    def __init__(self, t):
        self.t = t.detach()
        self.shape = tuple(self.t.shape)
        name = str(self.t.dtype).replace("torch.", "")
        self.dtype = {"float32": "<f4", "float16": "<f2", "bfloat16": "bf16", "float64": "<f8"}.get(name, name)

    def numpy(self):
        import torch
        t = self.t.contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16)
        return t.numpy()


class Derived:
    """A tensor computed from other sources when it is written."""

    def __init__(self, shape, fn, dtype="<f4"):
        self.shape, self.fn, self.dtype = tuple(shape), fn, dtype

    def numpy(self):
        return self.fn()


def f32(src, what):
    """The values of a source as a float32 array (exact for f16 / bf16 / f32)."""
    a = src.numpy()
    if src.dtype == "bf16":
        return stfile.bf16_bits_to_f32(a).reshape(src.shape)
    if src.dtype in ("<f4", "<f2", "<f8", "float32", "float16", "float64"):
        a = np.asarray(a)
        out = a.astype(np.float32, copy=False)
        if a.dtype == np.float64 and not np.array_equal(np.isfinite(out), np.isfinite(a)):
            raise ConvertError(f"{what}: float64 values overflow float32")
        return out
    raise ConvertError(f"{what}: a {src.dtype} tensor where a floating-point one belongs")


def open_tensors(path):
    """All tensors of one weights file, lazily where the format allows: name -> source."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(9)
    try:
        if len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK"):
            return dict(stfile.LazyFile(path).tensors)
        if torchzip.is_torchscript(path):
            return _torch_load(path, jit=True)
        if torchzip.is_legacy(path):
            return _torch_load(path, jit=False)
        return torchzip.TorchZip(path).tensors()
    except (torchzip.FormatError, ValueError) as e:
        raise ConvertError(str(e)) from None


def _torch_load(path, jit):
    try:
        import torch
    except ImportError:
        raise ConvertError(f"{path}: reading this format needs torch (python3-torch)") from None
    try:
        if jit:
            sd = torch.jit.load(path, map_location="cpu").state_dict()
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)   # runs no code from the file
    except Exception as e:  # torch raises RuntimeError, pickle errors, zip errors...
        raise ConvertError(f"{path}: torch cannot load it ({type(e).__name__}: {e})") from None
    out = {}

    def walk(obj, prefix):
        if isinstance(obj, torch.Tensor):
            out[prefix] = TorchTensor(obj)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
    walk(sd, "")
    return out


def read_json(path, hint=""):
    """A JSON file, or a ConvertError naming it (hint: what the file should be)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise ConvertError(f"{path}: {e.strerror or e}{hint}") from None
    except ValueError as e:
        raise ConvertError(f"{path}: not JSON ({e})") from None


def shape_str(s):
    return "[" + ", ".join(str(d) for d in s) + "]"


# ---------------------------------------------------------------------------------------
# The vision tower


OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
VIT_L_14 = {"embed_dim": 768, "quick_gelu": True,
            "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14}}
# open_clip's CLIPVisionCfg defaults (model.py) for keys a config leaves out
VISION_CFG_DEFAULTS = {"layers": 12, "width": 768, "head_width": 64, "mlp_ratio": 4.0, "patch_size": 16,
                       "image_size": 224}
# keys that change the patch tokens away from the plain CLIP ViT's: refused unless at one of
# these values (the other pooling options only change the pooled output, which OpenFlamingo
# does not use)
VISION_CFG_PLAIN = {"ls_init_value": (None,), "attentional_pool": (False,), "no_ln_pre": (False,),
                    "pos_embed_type": ("learnable",), "timm_model_name": (None,),
                    "pool_type": ("tok", "avg"),  # "none" would keep CLS among the tokens
                    "output_tokens": (False, True)}


def vision_config(path):
    """(our vision section, preprocess section, embed_dim) from an open_clip model config."""
    if path:
        oc = read_json(path)
        if isinstance(oc, dict) and isinstance(oc.get("model_cfg"), dict):
            # the hub's open_clip_config.json: {"model_cfg": {...}, "preprocess_cfg": {...}}
            oc = dict(oc["model_cfg"], preprocess_cfg=oc.get("preprocess_cfg") or {})
        if not isinstance(oc, dict) or not isinstance(oc.get("vision_cfg"), dict):
            raise ConvertError(f"{path}: not an open_clip model config (no vision_cfg object)")
        if "quick_gelu" not in oc:
            print(f"convert: warning: {path} does not set quick_gelu, so the tower uses GELU as open_clip "
                  "defaults to; OpenAI's CLIP weights need \"quick_gelu\": true", file=sys.stderr)
    else:
        oc = VIT_L_14
    vc = dict(VISION_CFG_DEFAULTS)
    vc.update(oc.get("vision_cfg", {}))
    where = path or "the default ViT-L-14 config"
    for k, plain in VISION_CFG_PLAIN.items():
        if k in vc and vc[k] not in plain:
            raise ConvertError(f"{where}: vision_cfg.{k} = {vc[k]!r} is not supported "
                               "(flamingo.c runs the plain CLIP ViT)")
    size = vc["image_size"]
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise ConvertError(f"{where}: only square image sizes are supported, got {size}")
        size = size[0]
    patch = vc["patch_size"]
    if isinstance(patch, (list, tuple)):
        patch = patch[0]
    width, head_width = int(vc["width"]), int(vc["head_width"])
    if head_width <= 0 or width % head_width:
        raise ConvertError(f"{where}: width {width} is not a multiple of head_width {head_width}")
    eps = 1e-5
    nk = vc.get("norm_kwargs") or {}
    if isinstance(nk, dict) and "eps" in nk:
        eps = float(nk["eps"])
    vision = {"image_size": int(size), "patch_size": int(patch), "width": width, "layers": int(vc["layers"]),
              "heads": width // head_width, "mlp_dim": int(width * float(vc["mlp_ratio"])),
              "act": "quick_gelu" if oc.get("quick_gelu", False) else "gelu", "ln_eps": eps,
              "output": "patch_tokens", "ln_post": False}
    pc = oc.get("preprocess_cfg") or {}
    mean = pc.get("mean", vc.get("image_mean", OPENAI_MEAN))
    std = pc.get("std", vc.get("image_std", OPENAI_STD))
    if pc.get("interpolation", "bicubic") != "bicubic" or pc.get("resize_mode", "shortest") != "shortest":
        raise ConvertError(f"{where}: preprocess_cfg asks for {pc.get('interpolation')} / "
                           f"{pc.get('resize_mode')} resizing; flamingo.c implements open_clip's "
                           "default (bicubic, shortest side, centre crop)")
    pre = {"kind": "open_clip", "image_size": int(size), "mean": [float(x) for x in mean],
           "std": [float(x) for x in std]}
    return vision, pre, oc.get("embed_dim")


def _timm_to_open_clip(name):
    """timm's VisionTransformer names (as its _convert_openai_clip writes them) -> open_clip's."""
    fixed = {"cls_token": "class_embedding", "pos_embed": "positional_embedding",
             "patch_embed.proj.weight": "conv1.weight", "patch_embed.proj.bias": "conv1.bias",
             "norm_pre.weight": "ln_pre.weight", "norm_pre.bias": "ln_pre.bias",
             "norm.weight": "ln_post.weight", "norm.bias": "ln_post.bias", "head.weight": "proj"}
    if name in fixed:
        return fixed[name]
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if not m:
        return None
    sub = {"norm1.weight": "ln_1.weight", "norm1.bias": "ln_1.bias",
           "norm2.weight": "ln_2.weight", "norm2.bias": "ln_2.bias",
           "attn.qkv.weight": "attn.in_proj_weight", "attn.qkv.bias": "attn.in_proj_bias",
           "attn.proj.weight": "attn.out_proj.weight", "attn.proj.bias": "attn.out_proj.bias",
           "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
           "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias"}.get(m.group(2))
    return f"transformer.resblocks.{m.group(1)}.{sub}" if sub else None


def _squeeze_leading(src, n):
    """A source with its first n (size-1) dimensions dropped."""
    if src.shape[:n] != (1,) * n:
        return src
    return Derived(src.shape[n:], lambda: f32(src, "").reshape(src.shape[n:]))


def vision_tensors(path):
    """The image tower's tensors under open_clip's VisionTransformer names."""
    raw = open_tensors(path)
    names = set(raw)
    out = {}
    if any(k.startswith("visual.") for k in names):                       # open_clip / OpenAI CLIP
        for k, v in raw.items():
            if k.startswith("visual."):
                out[k[len("visual."):]] = v
    elif "conv1.weight" in names:                                          # a bare open_clip visual
        out = dict(raw)
    elif "patch_embed.proj.weight" in names or "cls_token" in names:      # timm
        for k, v in raw.items():
            ok = _timm_to_open_clip(k)
            if ok is None:
                if k == "head.bias":
                    continue      # timm adds a zero bias when it converts proj to a Linear head
                raise ConvertError(f"{path}: unexpected timm tensor '{k}' (not a plain CLIP ViT)")
            if ok == "proj":
                out[ok] = Derived(v.shape[::-1], lambda v=v: np.ascontiguousarray(f32(v, "head").T))
            elif ok == "class_embedding":
                out[ok] = _squeeze_leading(v, 2)
            elif ok == "positional_embedding":
                out[ok] = _squeeze_leading(v, 1)
            else:
                out[ok] = v
    elif any(k.startswith("vision_model.") for k in names):               # HF transformers CLIP
        out = _hf_clip_vision(path, raw)
    else:
        sample = ", ".join(sorted(names)[:4])
        raise ConvertError(f"{path}: no CLIP image tower found (expected open_clip 'visual.*', timm or "
                           f"HF CLIP names; the file has {sample}...)")
    return out


def _hf_clip_vision(path, raw):
    p = "vision_model."
    out = {}
    fixed = {p + "embeddings.class_embedding": "class_embedding",
             p + "embeddings.patch_embedding.weight": "conv1.weight",
             p + "embeddings.position_embedding.weight": "positional_embedding",
             p + "pre_layrnorm.weight": "ln_pre.weight", p + "pre_layrnorm.bias": "ln_pre.bias",
             p + "post_layernorm.weight": "ln_post.weight", p + "post_layernorm.bias": "ln_post.bias"}
    qkv = {}
    for k, v in raw.items():
        if k in fixed:
            out[fixed[k]] = v
            continue
        if k == "visual_projection.weight":
            out["proj"] = Derived(v.shape[::-1], lambda v=v: np.ascontiguousarray(f32(v, k).T))
            continue
        m = re.fullmatch(re.escape(p) + r"encoder\.layers\.(\d+)\.(.+)", k)
        if not m:
            continue            # text_model.*, logit_scale, position_ids buffers
        i, rest = m.group(1), m.group(2)
        pre = f"transformer.resblocks.{i}."
        qm = re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
        if qm:
            qkv.setdefault((i, qm.group(2)), {})[qm.group(1)] = v
            continue
        sub = {"layer_norm1.weight": "ln_1.weight", "layer_norm1.bias": "ln_1.bias",
               "layer_norm2.weight": "ln_2.weight", "layer_norm2.bias": "ln_2.bias",
               "self_attn.out_proj.weight": "attn.out_proj.weight",
               "self_attn.out_proj.bias": "attn.out_proj.bias",
               "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
               "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias"}.get(rest)
        if sub is None:
            raise ConvertError(f"{path}: unexpected HF CLIP tensor '{k}'")
        out[pre + sub] = v
    for (i, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ConvertError(f"{path}: layer {i} lacks one of q_proj/k_proj/v_proj.{kind}")
        q, k_, v_ = parts["q"], parts["k"], parts["v"]
        shape = (q.shape[0] * 3,) + tuple(q.shape[1:])
        name = f"transformer.resblocks.{i}.attn.in_proj_" + ("weight" if kind == "weight" else "bias")
        out[name] = Derived(shape, lambda q=q, k_=k_, v_=v_: np.concatenate(
            [f32(q, "q_proj"), f32(k_, "k_proj"), f32(v_, "v_proj")], axis=0))
    return out


# ---------------------------------------------------------------------------------------
# The language model (HF folder)

# buffers that older HF / MosaicML checkpoints carry next to the parameters: the causal mask and
# the rotary tables are recomputed by the engine, never read
LM_BUFFERS = re.compile(r"(^|\.)(attention\.(bias|masked_bias)|attn\.bias|"
                        r"rotary_emb\.(inv_freq|cos_cached|sin_cached))$")


def lm_config(lm_dir):
    path = os.path.join(lm_dir, "config.json")
    try:
        return _lm_config(lm_dir, path)
    except (KeyError, TypeError, ValueError) as e:
        what = f"no '{e.args[0]}'" if isinstance(e, KeyError) else f"a malformed value ({e})"
        raise ConvertError(f"{path}: {what}; not a config.json of an MPT or GPT-NeoX model?") from None


def _lm_config(lm_dir, path):
    if not os.path.isdir(lm_dir):
        raise ConvertError(f"{lm_dir}: not a directory (--lm takes the HF model folder)")
    hf = read_json(path, " (--lm must hold the model's config.json)")
    if not isinstance(hf, dict):
        raise ConvertError(f"{path}: not a JSON object")
    mt = hf.get("model_type")
    bad = lambda what: ConvertError(f"{path}: {what} is not supported by flamingo.c")  # noqa: E731
    if mt == "mosaic_gpt":
        if not hf.get("alibi", False):
            raise bad("MosaicGPT without alibi (learned positions)")
        if not hf.get("no_bias", False):
            raise bad("MosaicGPT with biases (no_bias false)")
        for k in ("attn_clip_qkv", "softmax_scale", "logit_scale"):
            if hf.get(k) is not None:
                raise bad(f"{k} = {hf[k]!r}")
        if hf.get("prefix_lm"):
            raise bad("prefix_lm")
        d = int(hf["d_model"])
        lm = {"family": "mosaic_gpt", "d_model": d, "n_layers": int(hf["n_layers"]),
              "n_heads": int(hf["n_heads"]), "mlp_dim": int(float(hf.get("mlp_ratio", 4)) * d),
              "max_seq_len": int(hf.get("max_seq_len", 2048)), "ln_eps": 1e-5,
              "qk_ln": bool(hf.get("attn_qk_ln", False)),
              "alibi_bias_max": float(hf.get("alibi_bias_max", 8))}
    elif mt == "mpt":
        ac = hf.get("attn_config") or {}
        if not ac.get("alibi", False):
            raise bad("MPT without alibi (learned positions)")
        if not hf.get("no_bias", False):
            raise bad("MPT with biases (no_bias false)")
        if ac.get("attn_type", "multihead_attention") != "multihead_attention":
            raise bad(f"attn_type {ac.get('attn_type')!r}")
        for k in ("clip_qkv", "softmax_scale"):
            if ac.get(k) is not None:
                raise bad(f"attn_config.{k} = {ac[k]!r}")
        if ac.get("prefix_lm"):
            raise bad("prefix_lm")
        if hf.get("logit_scale") is not None:
            raise bad(f"logit_scale = {hf['logit_scale']!r}")
        if str(hf.get("norm_type", "low_precision_layernorm")).lower() not in ("low_precision_layernorm", "layernorm"):
            raise bad(f"norm_type {hf.get('norm_type')!r}")
        ffn = hf.get("ffn_config") or {}
        if ffn.get("ffn_type", "mptmlp") != "mptmlp" or ffn.get("ffn_act_fn") not in (None, {"name": "gelu"}):
            raise bad(f"ffn_config {ffn!r}")
        d = int(hf["d_model"])
        lm = {"family": "mpt", "d_model": d, "n_layers": int(hf["n_layers"]), "n_heads": int(hf["n_heads"]),
              "mlp_dim": int(float(hf.get("expansion_ratio", 4)) * d),
              "max_seq_len": int(hf.get("max_seq_len", 2048)), "ln_eps": 1e-5,
              "qk_ln": bool(ac.get("qk_ln", False)), "alibi_bias_max": float(ac.get("alibi_bias_max", 8))}
    elif mt == "gpt_neox":
        act = hf.get("hidden_act", "gelu")
        if act != "gelu":
            raise bad(f"hidden_act {act!r} (only exact 'gelu')")
        if hf.get("rope_scaling") is not None:
            raise bad("rope_scaling")
        if hf.get("attention_bias", True) is not True:
            raise bad("GPT-NeoX without attention biases")
        lm = {"family": "gpt_neox", "d_model": int(hf["hidden_size"]), "n_layers": int(hf["num_hidden_layers"]),
              "n_heads": int(hf["num_attention_heads"]), "mlp_dim": int(hf["intermediate_size"]),
              "max_seq_len": int(hf.get("max_position_embeddings", 2048)),
              "ln_eps": float(hf.get("layer_norm_eps", 1e-5)),
              # newer transformers write partial_rotary_factor / rope_theta for the same two
              "rotary_pct": float(hf.get("rotary_pct", hf.get("partial_rotary_factor", 0.25))),
              "rotary_base": float(hf.get("rotary_emb_base", hf.get("rope_theta", 10000))),
              # HF GPTNeoXConfig defaults: rotary_pct 0.25, use_parallel_residual True
              "parallel_residual": bool(hf.get("use_parallel_residual", True)), "qk_ln": False}
    elif mt is None:
        raise ConvertError(f"{path}: no model_type")
    else:
        raise ConvertError(f"{path}: model_type {mt!r} is not supported (OpenFlamingo v2 uses "
                           "mosaic_gpt for MPT-1B, mpt for MPT-7B, gpt_neox for RedPajama-3B)")
    if lm["n_heads"] <= 0 or lm["d_model"] % lm["n_heads"]:
        raise ConvertError(f"{path}: {lm['n_heads']} heads do not divide width {lm['d_model']}")
    lm["tied"] = lm["family"] != "gpt_neox" or bool(hf.get("tie_word_embeddings", False))
    lm["eos_token_id"] = hf.get("eos_token_id")
    return lm


def lm_tensors(lm_dir):
    """name -> source over all weight files of the folder (HF names), and the files."""
    def p(name):
        return os.path.join(lm_dir, name)
    for index, single in (("model.safetensors.index.json", "model.safetensors"),
                          ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if os.path.isfile(p(index)):
            return _sharded(lm_dir, index)
        if os.path.isfile(p(single)):
            return open_tensors(p(single)), [single]
    raise ConvertError(f"{lm_dir}: no weights (model.safetensors, pytorch_model.bin, or their "
                       "sharded form with an index json)")


def _sharded(lm_dir, index):
    path = os.path.join(lm_dir, index)
    index_json = read_json(path)
    wm = index_json.get("weight_map") if isinstance(index_json, dict) else None
    if not isinstance(wm, dict):
        raise ConvertError(f"{path}: not a weights index (no weight_map object)")
    shards = sorted(set(wm.values()))
    out = {}
    for shard in shards:
        if not isinstance(shard, str) or "/" in shard or shard.startswith("."):
            raise ConvertError(f"{path}: bad shard name {shard!r}")
        sp = os.path.join(lm_dir, shard)
        if not os.path.isfile(sp):
            raise ConvertError(f"{sp}: missing (listed in {index})")
        tensors = open_tensors(sp)
        for name, where in wm.items():
            if where == shard:
                if name not in tensors:
                    raise ConvertError(f"{sp}: has no tensor '{name}', which {index} places there")
                out[name] = tensors[name]
    return out, shards


def wrap_lm_name(name, family):
    """HF name -> the name inside OpenFlamingo's wrapped model (lang_encoder., decoder_layer.)."""
    layers = r"gpt_neox\.layers" if family == "gpt_neox" else r"transformer\.blocks"
    m = re.fullmatch(f"({layers}" + r"\.\d+\.)(.+)", name)
    if m:
        return "lang_encoder." + m.group(1) + "decoder_layer." + m.group(2)
    return "lang_encoder." + name


# ---------------------------------------------------------------------------------------
# The OpenFlamingo checkpoint

CKPT_IGNORED = re.compile(r"^lang_encoder\.(old_decoder_blocks|gated_cross_attn_layers)\.")


def checkpoint_tensors(path):
    raw = open_tensors(path)
    keys = list(raw)
    for wrapper in ("model_state_dict.", "state_dict.", "model."):
        inner = [k for k in keys if k.startswith(wrapper)]
        if inner and (wrapper == "model_state_dict." or len(inner) == len(keys)):
            raw = {k[len(wrapper):]: raw[k] for k in inner}
            break
    out = {}
    for k, v in raw.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if CKPT_IGNORED.match(k) or LM_BUFFERS.search(k):
            continue
        out[k] = v
    if not out:
        raise ConvertError(f"{path}: no tensors")
    return out


# ---------------------------------------------------------------------------------------
# The tokenizer


def load_tokenizer(path, eos_token_id):
    """(tokenizer.json text with OpenFlamingo's tokens added, tokens section, length)."""
    tj = read_json(path, " (--tokenizer takes the LM's tokenizer.json)")
    model = tj.get("model") if isinstance(tj, dict) else None
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ConvertError(f"{path}: not a HF tokenizer.json with a BPE model")
    added = tj.setdefault("added_tokens", [])
    ids = {}
    for tok, i in model["vocab"].items():
        ids[tok] = int(i)
    for a in added:
        ids[a["content"]] = int(a["id"])
    length = max(ids.values()) + 1 if ids else 0
    if len(set(ids.values())) != length:
        raise ConvertError(f"{path}: token ids are not contiguous (0..{length - 1} has gaps)")
    pad = _pad_token(os.path.dirname(os.path.abspath(path)))
    wanted = ["<|endofchunk|>", "<image>"] + ([] if pad else ["<PAD>"])
    for content in wanted:            # factory.py's add_special_tokens order
        if content not in ids:
            added.append({"id": length, "content": content, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True})
            ids[content] = length
            length += 1
    if eos_token_id is None:
        if "<|endoftext|>" not in ids:
            raise ConvertError(f"{path}: no end-of-text token (config.json has no eos_token_id and the "
                               "tokenizer has no <|endoftext|>)")
        eos_token_id = ids["<|endoftext|>"]
    if isinstance(eos_token_id, list):
        eos_token_id = eos_token_id[0]
    tokens = {"media": ids["<image>"], "endofchunk": ids["<|endofchunk|>"],
              "pad": ids[pad] if pad else ids["<PAD>"], "eos": int(eos_token_id)}
    if pad and pad not in ids:
        raise ConvertError(f"{path}: the pad token {pad!r} named by special_tokens_map.json is not in it")
    return json.dumps(tj, ensure_ascii=False), tokens, length


def _pad_token(folder):
    """The pad token a special_tokens_map.json beside tokenizer.json names, if any."""
    p = os.path.join(folder, "special_tokens_map.json")
    try:
        with open(p, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    pad = m.get("pad_token") if isinstance(m, dict) else None
    if isinstance(pad, dict):
        pad = pad.get("content")
    return pad if isinstance(pad, str) else None


# ---------------------------------------------------------------------------------------
# The whole model: expected tensors, sources, checks


def expected_tensors(cfg, embed_dim):
    """name -> shape of every tensor of the model file (docs/FORMAT.md section 4), and the set
    of optional ones."""
    v, p, lm, xa = cfg["vision"], cfg["perceiver"], cfg["lm"], cfg["xattn"]
    W, M, P = v["width"], v["mlp_dim"], v["patch_size"]
    T = (v["image_size"] // P) ** 2 + 1
    e = {"vision_encoder.conv1.weight": (W, 3, P, P), "vision_encoder.class_embedding": (W,),
         "vision_encoder.positional_embedding": (T, W),
         "vision_encoder.ln_pre.weight": (W,), "vision_encoder.ln_pre.bias": (W,)}
    for i in range(v["layers"]):
        b = f"vision_encoder.transformer.resblocks.{i}."
        e.update({b + "ln_1.weight": (W,), b + "ln_1.bias": (W,), b + "attn.in_proj_weight": (3 * W, W),
                  b + "attn.in_proj_bias": (3 * W,), b + "attn.out_proj.weight": (W, W),
                  b + "attn.out_proj.bias": (W,), b + "ln_2.weight": (W,), b + "ln_2.bias": (W,),
                  b + "mlp.c_fc.weight": (M, W), b + "mlp.c_fc.bias": (M,),
                  b + "mlp.c_proj.weight": (W, M), b + "mlp.c_proj.bias": (W,)})
    optional = {"vision_encoder.conv1.bias": (W,), "vision_encoder.ln_post.weight": (W,),
                "vision_encoder.ln_post.bias": (W,)}
    if embed_dim:
        optional["vision_encoder.proj"] = (W, int(embed_dim))
    inner = p["heads"] * p["dim_head"]
    e["perceiver.latents"] = (p["num_latents"], W)
    for k in range(p["depth"]):
        q = f"perceiver.layers.{k}."
        for n in ("0.norm_media", "0.norm_latents", "1.0"):
            e[q + n + ".weight"] = (W,)
            e[q + n + ".bias"] = (W,)
        e.update({q + "0.to_q.weight": (inner, W), q + "0.to_kv.weight": (2 * inner, W),
                  q + "0.to_out.weight": (W, inner), q + "1.1.weight": (p["ff_mult"] * W, W),
                  q + "1.3.weight": (W, p["ff_mult"] * W)})
    e["perceiver.norm.weight"] = (W,)
    e["perceiver.norm.bias"] = (W,)

    d, Ml, V, fam = lm["d_model"], lm["mlp_dim"], lm["vocab_size"], lm["family"]
    I = xa["heads"] * xa["dim_head"]
    if fam == "gpt_neox":
        e.update({"lang_encoder.gpt_neox.embed_in.weight": (V, d), "lang_encoder.embed_out.weight": (V, d),
                  "lang_encoder.gpt_neox.final_layer_norm.weight": (d,),
                  "lang_encoder.gpt_neox.final_layer_norm.bias": (d,)})
    else:
        e["lang_encoder.transformer.wte.weight"] = (V, d)
        e["lang_encoder.transformer.%s.weight" % ("ln_f" if fam == "mosaic_gpt" else "norm_f")] = (d,)
    for i in range(lm["n_layers"]):
        P_ = f"lang_encoder.gpt_neox.layers.{i}." if fam == "gpt_neox" else f"lang_encoder.transformer.blocks.{i}."
        if (i + 1) % xa["every"] == 0:
            g = P_ + "gated_cross_attn_layer."
            e.update({g + "attn_gate": (1,), g + "ff_gate": (1,), g + "attn.norm.weight": (d,),
                      g + "attn.norm.bias": (d,), g + "attn.to_q.weight": (I, d), g + "attn.to_kv.weight": (2 * I, W),
                      g + "attn.to_out.weight": (d, I), g + "ff.0.weight": (d,), g + "ff.0.bias": (d,),
                      g + "ff.1.weight": (xa["ff_mult"] * d, d), g + "ff.3.weight": (d, xa["ff_mult"] * d)})
        D = P_ + "decoder_layer."
        if fam == "gpt_neox":
            for n, s in (("input_layernorm", d), ("post_attention_layernorm", d)):
                e[D + n + ".weight"] = (s,)
                e[D + n + ".bias"] = (s,)
            e.update({D + "attention.query_key_value.weight": (3 * d, d), D + "attention.query_key_value.bias": (3 * d,),
                      D + "attention.dense.weight": (d, d), D + "attention.dense.bias": (d,),
                      D + "mlp.dense_h_to_4h.weight": (Ml, d), D + "mlp.dense_h_to_4h.bias": (Ml,),
                      D + "mlp.dense_4h_to_h.weight": (d, Ml), D + "mlp.dense_4h_to_h.bias": (d,)})
        else:
            n1, n2, mlp, up, down = (("ln_1", "ln_2", "mlp", "mlp_up", "mlp_down") if fam == "mosaic_gpt"
                                     else ("norm_1", "norm_2", "ffn", "up_proj", "down_proj"))
            e.update({D + n1 + ".weight": (d,), D + "attn.Wqkv.weight": (3 * d, d),
                      D + "attn.out_proj.weight": (d, d), D + n2 + ".weight": (d,),
                      D + f"{mlp}.{up}.weight": (Ml, d), D + f"{mlp}.{down}.weight": (d, Ml)})
            if lm["qk_ln"]:
                e[D + "attn.q_ln.weight"] = (d,)
                e[D + "attn.k_ln.weight"] = (d,)
    return e, optional


def _family_of_checkpoint(keys):
    if any(k.startswith("lang_encoder.gpt_neox.") or k == "lang_encoder.embed_out.weight" for k in keys):
        return "gpt_neox"
    if any(k.startswith("lang_encoder.transformer.") for k in keys):
        return "mpt"      # mosaic_gpt or mpt: both use transformer.blocks
    if any(k.startswith("lang_encoder.model.") for k in keys):
        return "llama"
    return None


def xattn_every(ck, family, n_layers, path):
    layer_re = (r"lang_encoder\.gpt_neox\.layers\.(\d+)\.gated_cross_attn_layer\.attn_gate" if family == "gpt_neox"
                else r"lang_encoder\.transformer\.blocks\.(\d+)\.gated_cross_attn_layer\.attn_gate")
    idx = sorted(int(m.group(1)) for m in (re.fullmatch(layer_re, k) for k in ck) if m)
    if not idx:
        raise ConvertError(f"{path}: no gated cross-attention blocks "
                           "(lang_encoder.<layers>.<i>.gated_cross_attn_layer.*)")
    every = idx[0] + 1
    want = [i for i in range(n_layers) if (i + 1) % every == 0]
    if idx != want:
        raise ConvertError(f"{path}: cross-attention at layers {idx[:12]}{'...' if len(idx) > 12 else ''} "
                           f"of {n_layers}: does not fit one block before every layer i with "
                           f"(i + 1) % n == 0 (n = {every} would give {want[:12]})")
    return every


def build(args):
    """-> (config, metadata, entries for stfile.write_stream), after checking everything."""
    vision, pre, embed_dim = vision_config(args.vision_config)
    lm = lm_config(args.lm)
    family = lm["family"]
    ck = checkpoint_tensors(args.checkpoint)
    ck_family = _family_of_checkpoint(ck)
    lm_kind = "gpt_neox" if family == "gpt_neox" else "mpt"
    if ck_family == "llama":
        raise ConvertError(f"{args.checkpoint}: an OpenFlamingo v1 (LLaMA) checkpoint; flamingo.c loads v2 models")
    if ck_family is None:
        raise ConvertError(f"{args.checkpoint}: no language-model tensors (lang_encoder.*): not an "
                           "OpenFlamingo checkpoint?")
    if ck_family != lm_kind:
        names = {"gpt_neox": "GPT-NeoX (RedPajama-3B, the 4B models)", "mpt": "MPT (MPT-1B / MPT-7B: the 3B and 9B models)"}
        raise ConvertError(f"{args.checkpoint} was made for a {names[ck_family]} language model, but "
                           f"--lm {args.lm} is {family}: checkpoint and LM do not belong together")
    lm_src, lm_files = lm_tensors(args.lm)
    vis_src = vision_tensors(args.vision)
    tok_text, tokens, n_tokens = load_tokenizer(args.tokenizer, lm["eos_token_id"])

    emb_name = "lang_encoder.gpt_neox.embed_in.weight" if family == "gpt_neox" else "lang_encoder.transformer.wte.weight"
    if emb_name not in ck:
        raise ConvertError(f"{args.checkpoint}: no '{emb_name}' (OpenFlamingo saves the resized embedding)")
    V, d_emb = ck[emb_name].shape
    if d_emb != lm["d_model"]:
        raise ConvertError(f"{args.checkpoint}: embedding width {d_emb} but the LM's d_model is "
                           f"{lm['d_model']} ({args.lm}): checkpoint and LM do not belong together")
    if V != n_tokens:
        raise ConvertError(f"{args.checkpoint}: {V} embedding rows, but the tokenizer has {n_tokens} tokens "
                           f"with OpenFlamingo's additions ({args.tokenizer}); they must be equal")

    # sizes read from the checkpoint (the perceiver's depth, latents and multipliers)
    depth = 0
    while f"perceiver.layers.{depth}.0.to_q.weight" in ck:
        depth += 1
    if depth == 0 or "perceiver.latents" not in ck:
        raise ConvertError(f"{args.checkpoint}: no Perceiver (perceiver.latents, perceiver.layers.0.*)")
    Wv = vision["width"]
    ff = ck.get("perceiver.layers.0.1.1.weight")
    cfg = {
        "format": "flamingo.c", "format_version": 1,
        "name": args.name or os.path.basename(os.path.normpath(args.out)).split(".")[0],
        "vision": vision, "preprocess": pre,
        "perceiver": {"depth": depth, "heads": args.perceiver_heads, "dim_head": args.perceiver_dim_head,
                      "num_latents": int(ck["perceiver.latents"].shape[0]),
                      "ff_mult": int(ff.shape[0] // Wv) if ff is not None and ff.shape[0] % Wv == 0 else 4},
        "lm": {k: lm[k] for k in ("family", "d_model", "n_layers", "n_heads", "mlp_dim", "max_seq_len", "ln_eps")},
        "xattn": {"every": xattn_every(ck, family, lm["n_layers"], args.checkpoint),
                  "heads": args.xattn_heads, "dim_head": args.xattn_dim_head, "ff_mult": 4},
        "tokens": tokens,
    }
    cfg["lm"]["vocab_size"] = int(V)
    for k in ("qk_ln", "alibi_bias_max", "rotary_pct", "rotary_base", "parallel_residual"):
        if k in lm:
            cfg["lm"][k] = lm[k]
    g0 = [k for k in ck if k.endswith("gated_cross_attn_layer.ff.1.weight")]
    if g0 and ck[g0[0]].shape[0] % lm["d_model"] == 0:
        cfg["xattn"]["ff_mult"] = int(ck[g0[0]].shape[0] // lm["d_model"])

    want, optional = expected_tensors(cfg, embed_dim)

    # sources: vision, then the LM, then the checkpoint over both (load_state_dict order)
    src, origin = {}, {}
    for k, s in vis_src.items():
        name = "vision_encoder." + k
        if name not in want and name not in optional:
            raise ConvertError(f"{args.vision}: unexpected image-tower tensor '{k}' (a ViT with more "
                               "than flamingo.c runs: layer scale, attention pooling...?) or more layers "
                               f"than the vision config's {vision['layers']}")
        src[name], origin[name] = s, args.vision
    lm_unexpected = []
    for k, s in lm_src.items():
        if LM_BUFFERS.search(k):
            continue
        name = wrap_lm_name(k, family)
        if name not in want:
            if name in ("lang_encoder.lm_head.weight",) and lm["tied"]:
                continue
            lm_unexpected.append(k)
            continue
        src[name], origin[name] = s, args.lm
    if lm_unexpected:
        raise ConvertError(f"{args.lm}: tensors that a {family} LM of this config does not have: "
                           + ", ".join(lm_unexpected[:5]) + (" ..." if len(lm_unexpected) > 5 else ""))
    ck_unexpected = []
    for k, s in ck.items():
        if k not in want and k not in optional:
            ck_unexpected.append(k)
            continue
        src[k], origin[k] = s, args.checkpoint
    if ck_unexpected:
        raise ConvertError(f"{args.checkpoint}: tensors this model does not have: "
                           + ", ".join(ck_unexpected[:5]) + (" ..." if len(ck_unexpected) > 5 else ""))
    if family == "gpt_neox" and "lang_encoder.embed_out.weight" not in ck:
        out_name = "lang_encoder.embed_out.weight"
        if lm["tied"]:
            src[out_name], origin[out_name] = ck[emb_name], args.checkpoint
        elif out_name in src and src[out_name].shape[0] >= V:
            # upstream: resize_token_embeddings keeps the first V rows of the LM's own matrix
            s0 = src[out_name]
            src[out_name] = Derived((V,) + tuple(s0.shape[1:]), lambda s0=s0: f32(s0, out_name)[:V])

    where = {"vision_encoder.": args.vision, "perceiver.": args.checkpoint}
    for name, shape in want.items():
        if name not in src:
            home = next((w for p, w in where.items() if name.startswith(p)), None)
            if home is None:
                home = args.checkpoint if "gated_cross_attn_layer" in name else args.lm
            raise ConvertError(f"missing tensor '{name}' (it should come from {home})")
    for name, s in src.items():
        shape = want.get(name, optional.get(name))
        if tuple(s.shape) != tuple(shape):
            raise ConvertError(f"{origin[name]}: '{name}' has shape {shape_str(s.shape)}, the model "
                               f"needs {shape_str(shape)}" + _hint(name, cfg))

    entries = []
    for name, s in src.items():
        entries += typed_entries(name, s.shape, args.dtype, lambda name=name, s=s: f32(s, name))
    meta = {"config": json.dumps(cfg), "tokenizer": tok_text,
            "source": json.dumps({"vision": os.path.basename(args.vision),
                                  "lm": [os.path.basename(os.path.normpath(args.lm))] + lm_files,
                                  "checkpoint": os.path.basename(args.checkpoint),
                                  "tokenizer": os.path.basename(args.tokenizer)}),
            "converter": f"flamingo.c weights/convert.py {CONVERTER_VERSION}"}
    if vision["act"] == "gelu" and torchzip.is_torchscript(args.vision):
        print(f"convert: warning: {args.vision} is OpenAI's CLIP (QuickGELU), but the vision config "
              "says GELU (set \"quick_gelu\": true)", file=sys.stderr)
    return cfg, meta, entries


def _hint(name, cfg):
    if "perceiver.layers" in name and ("to_q" in name or "to_kv" in name or "to_out" in name):
        return " (--perceiver-heads x --perceiver-dim-head must match the checkpoint)"
    if "gated_cross_attn_layer.attn.to_" in name:
        return " (--xattn-heads x --xattn-dim-head must match the checkpoint)"
    if name.startswith("vision_encoder."):
        return " (--vision-config must describe the --vision weights)"
    if name.startswith("lang_encoder.") and "gated" not in name:
        return " (checkpoint and LM do not belong together?)"
    return ""


def q8_0_eligible(name, shape):
    """q8_0 is for the weight matrices the engine multiplies by (its Linear
    layers, the patch embedding, the token embeddings): tensors named
    *weight of two or more dimensions whose rows (all but the first
    dimension) hold a multiple of 32 values."""
    k = 1
    for d in shape[1:]:
        k *= int(d)
    return len(shape) >= 2 and name.endswith("weight") and k % stfile.Q8_BLOCK == 0


def typed_entries(name, shape, dt, get_f32):
    """write_stream entries for one tensor stored as --dtype dt: 1-D tensors
    stay f32; q8_0 becomes an I8 tensor plus its F16 scales `name_scale`
    (docs/FORMAT.md), or f32 where q8_0 does not apply (q8_0_eligible)."""
    if len(shape) < 2 or (dt == "q8_0" and not q8_0_eligible(name, shape)):
        return [(name, "f32", shape, get_f32)]
    if dt == "q8_0":
        n = int(shape[0])
        k = int(np.prod(shape[1:]))
        return [(name, "i8", shape, lambda: stfile.q8_0(get_f32())[0].reshape(shape)),
                (name + "_scale", "f16", (n, k // stfile.Q8_BLOCK), lambda: stfile.q8_0(get_f32())[1])]

    def produce():
        a = get_f32()
        if dt == "f16":
            big = np.abs(a) > 65504
            if big.any() and np.isfinite(a[big]).any():
                raise ConvertError(f"{name}: values up to {np.abs(a).max():g} overflow f16; use bf16 or f32")
        return a
    return [(name, dt, shape, produce)]


def build_from_model(args):
    """--model: an existing flamingo.c model file, every tensor re-stored as
    --dtype (q8_0 tensors are widened first); config and tokenizer kept."""
    try:
        lf = stfile.LazyFile(args.model)
    except ValueError as e:
        raise ConvertError(str(e)) from None
    meta = dict(lf.metadata)
    if "config" not in meta:
        raise ConvertError(f"{args.model}: no config in its metadata (not a flamingo.c model file)")
    cfg = json.loads(meta["config"])
    entries = []
    for name, t in sorted(lf.tensors.items()):
        if name.endswith("_scale") and name[: -len("_scale")] in lf.tensors:
            continue

        def get(name=name, t=t):
            if t.dtype == "i1":
                sc = lf.tensors.get(name + "_scale")
                if sc is None or sc.dtype != "<f2":
                    raise ConvertError(f"{args.model}: '{name}' is I8 without F16 scales '{name}_scale'")
                return stfile.q8_0_to_f32(t.numpy().reshape(t.shape[0], -1), sc.numpy()).reshape(t.shape)
            return f32(t, f"{args.model}: {name}")
        entries += typed_entries(name, t.shape, args.dtype, get)
    meta["converter"] = f"flamingo.c weights/convert.py {CONVERTER_VERSION}"
    meta["source"] = json.dumps({"model": os.path.basename(args.model)})
    return cfg, meta, entries


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="convert.py", description="Convert an OpenFlamingo model (upstream files) to a flamingo.c model file.")
    ap.add_argument("--vision", help="CLIP weights: ViT-L-14.pt, open_clip or timm state dict")
    ap.add_argument("--vision-config", help="open_clip model config JSON (default: ViT-L-14, QuickGELU)")
    ap.add_argument("--lm", help="HF language-model folder (config.json + weights)")
    ap.add_argument("--checkpoint", help="OpenFlamingo checkpoint.pt")
    ap.add_argument("--tokenizer", help="the LM's tokenizer.json")
    ap.add_argument("--model", help="instead of the four above: a flamingo.c model file to store as --dtype")
    ap.add_argument("--out", required=True, help="the model file to write (.safetensors)")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16", "q8_0"])
    ap.add_argument("--name", help="model name stored in the config (default: from --out)")
    ap.add_argument("--perceiver-heads", type=int, default=8)
    ap.add_argument("--perceiver-dim-head", type=int, default=64)
    ap.add_argument("--xattn-heads", type=int, default=8)
    ap.add_argument("--xattn-dim-head", type=int, default=64)
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    try:
        upstream = [args.vision, args.lm, args.checkpoint, args.tokenizer]
        if args.model and any(upstream):
            raise ConvertError("--model replaces --vision, --lm, --checkpoint and --tokenizer; give one or the other")
        if not args.model and not all(upstream):
            raise ConvertError("needs --vision, --lm, --checkpoint and --tokenizer (or --model)")
        for n in ("perceiver_heads", "perceiver_dim_head", "xattn_heads", "xattn_dim_head"):
            if not 1 <= getattr(args, n) <= 1024:
                raise ConvertError(f"--{n.replace('_', '-')} must be in [1, 1024]")
        t0 = time.time()
        cfg, meta, entries = build_from_model(args) if args.model else build(args)
        tmp = args.out + ".part"
        total = [0]

        def progress(name, done, total_bytes):
            total[0] = total_bytes
            if not args.quiet and sys.stderr.isatty():
                print(f"\rconvert: {done / 1e9:7.2f} / {total_bytes / 1e9:.2f} GB", end="", file=sys.stderr)
        try:
            stfile.write_stream(tmp, entries, meta, progress)
            os.replace(tmp, args.out)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        if not args.quiet:
            if sys.stderr.isatty():
                print(file=sys.stderr)
            lm = cfg["lm"]
            print(f"convert: wrote {args.out}: {len(entries)} tensors, {total[0] / 1e9:.2f} GB ({args.dtype}), "
                  f"{lm['family']} {lm['n_layers']} layers x {lm['d_model']}, cross-attention every "
                  f"{cfg['xattn']['every']}, vocab {lm['vocab_size']}, in {time.time() - t0:.0f} s", file=sys.stderr)
        return 0
    except ConvertError as e:
        print(f"convert: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"convert: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
