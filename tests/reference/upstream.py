"""Upstream-format model files at small sizes, and the reference's own way of
loading them, for the converter tests (tests/test_convert.py) and the
peak-memory measurement (tests/reference/make_upstream_3b.py).

`write_upstream(truth, cfg, out_dir, plan)` splits a model's state (flamingo.c
names, docs/FORMAT.md) into the files a user downloads, in the containers,
dtypes and key names upstream publishes (docs/SPEC-openflamingo.md section 2):

  vision    OpenAI's TorchScript CLIP archive (traced-style module `visual.*` plus
            a text tower, weights "partially converted to float16" the way OpenAI's
            convert_weights does it), open_clip's state dict (.bin or .safetensors,
            full CLIP, f32), timm's VisionTransformer safetensors, or HF
            transformers' CLIPModel safetensors;
  lm/       a HF folder: config.json as MosaicML / Together publish it, and the
            weights as pytorch_model.bin, shards + pytorch_model.bin.index.json,
            model.safetensors, or shards + model.safetensors.index.json, in f32,
            f16 or bf16, with the LM's own pre-OpenFlamingo embeddings (more rows,
            other values) and, for GPT-NeoX, the old buffers;
  checkpoint.pt   what OpenFlamingo's filter_state_dict_to_trainable keeps, optionally
            wrapped in {"model_state_dict": ...} with DDP's `module.` prefix;
  tokenizer.json  the tokenizer without OpenFlamingo's three added tokens.

Values that upstream stores in a narrower dtype are rounded in `truth` first
(`round_truth`), so the converted f32 file can be compared bit for bit.

`reference_load(...)` is the reference's loader: it follows OpenFlamingo's
create_model_and_transforms (CLIP tower from the vision file, LM from the HF
folder, embeddings resized to len(tokenizer)) and then
`load_state_dict(checkpoint, strict=False)`, using torch.load / torch.jit.load
and whole-file reads, i.e. none of weights/convert.py's lazy readers.
"""
import collections
import json
import os
import re

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
import sys  # noqa: E402

sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "weights"))
import clip_ref  # noqa: E402
import flamingo_ref  # noqa: E402
import stfile  # noqa: E402

OF_TOKENS = ("<|endofchunk|>", "<image>", "<PAD>")

# ---------------------------------------------------------------------------------------
# Which tensors upstream stores narrower


def _fp16_in_openai_jit(name):
    """OpenAI's clip/model.py convert_weights: Conv / Linear / MultiheadAttention weights and
    biases and the projections become float16; LayerNorms and the embeddings stay float32."""
    if name.endswith(("conv1.weight", "conv1.bias", "in_proj_weight", "in_proj_bias", "out_proj.weight",
                      "out_proj.bias", "c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias")):
        return True
    return name in ("proj", "text_projection")


def _np_round(a, dt):
    a = np.asarray(a, np.float32)
    if dt == "f16":
        return a.astype(np.float16).astype(np.float32)
    if dt == "bf16":
        return stfile.bf16_bits_to_f32(stfile.f32_to_bf16_bits(a)).reshape(a.shape)
    return a


def round_truth(truth, cfg, plan):
    """Round the tensors that the planned upstream files store as f16 / bf16."""
    out = dict(truth)
    for k, v in truth.items():
        if k.startswith("vision_encoder.") and plan["vision"] == "openai_jit" and _fp16_in_openai_jit(k[15:]):
            out[k] = _np_round(v, "f16")
        elif k.startswith("lang_encoder.") and "gated_cross_attn_layer" not in k and not _is_embedding(k):
            out[k] = _np_round(v, plan["lm_dtype"])
    return out


def _is_embedding(name):
    return name in ("lang_encoder.transformer.wte.weight", "lang_encoder.gpt_neox.embed_in.weight",
                    "lang_encoder.embed_out.weight")


def complete_vision(truth, cfg, rng):
    """Upstream CLIP files always hold ln_post and proj: add them when the model lacks them."""
    out = dict(truth)
    W = cfg["vision"]["width"]
    if "vision_encoder.ln_post.weight" not in out:
        out["vision_encoder.ln_post.weight"] = (1 + 0.2 * rng.standard_normal(W)).astype(np.float32)
        out["vision_encoder.ln_post.bias"] = (0.1 * rng.standard_normal(W)).astype(np.float32)
    if "vision_encoder.proj" not in out:
        out["vision_encoder.proj"] = (rng.standard_normal((W, 24)) / np.sqrt(W)).astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------
# Writing the files


def _t(a, dt="f32"):
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return {"f32": t, "f16": t.half(), "bf16": t.bfloat16()}[dt]


def _st_write(path, tensors):
    """safetensors through stfile (numpy), with torch dtypes mapped."""
    arrs, dts = {}, {}
    for k, t in tensors.items():
        if t.dtype == torch.bfloat16:
            arrs[k], dts[k] = t.float().numpy(), "bf16"
        elif t.dtype == torch.float16:
            arrs[k], dts[k] = t.numpy(), "f16"
        else:
            arrs[k] = t.numpy()
    stfile.write(path, arrs, metadata={"format": "pt"}, dtypes=dts)


def text_tower(rng, width=16, layers=1, vocab=40, ctx=8, embed_dim=24):
    """A small CLIP text tower under OpenAI / open_clip names (the converter must skip it)."""
    sd = {"token_embedding.weight": rng.standard_normal((vocab, width)),
          "positional_embedding": rng.standard_normal((ctx, width)),
          "ln_final.weight": np.ones(width), "ln_final.bias": np.zeros(width),
          "text_projection": rng.standard_normal((width, embed_dim)), "logit_scale": np.array(4.6)}
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        sd.update({p + "ln_1.weight": np.ones(width), p + "ln_1.bias": np.zeros(width),
                   p + "attn.in_proj_weight": rng.standard_normal((3 * width, width)),
                   p + "attn.in_proj_bias": np.zeros(3 * width),
                   p + "attn.out_proj.weight": rng.standard_normal((width, width)),
                   p + "attn.out_proj.bias": np.zeros(width),
                   p + "ln_2.weight": np.ones(width), p + "ln_2.bias": np.zeros(width),
                   p + "mlp.c_fc.weight": rng.standard_normal((4 * width, width)),
                   p + "mlp.c_fc.bias": np.zeros(4 * width),
                   p + "mlp.c_proj.weight": rng.standard_normal((width, 4 * width)),
                   p + "mlp.c_proj.bias": np.zeros(width)})
    return {k: np.asarray(v, np.float32) for k, v in sd.items()}


class _TextTower(nn.Module):
    def __init__(self, sd):
        super().__init__()
        for k, v in sd.items():
            mod, name = self, k
            parts = k.split(".")
            for p in parts[:-1]:
                if not hasattr(mod, p):
                    mod.add_module(p, nn.Module())
                mod = getattr(mod, p)
            mod.register_parameter(parts[-1], nn.Parameter(torch.from_numpy(v)))
            del name


class OpenAIClip(nn.Module):
    """The module layout of OpenAI's CLIP (clip/model.py): `visual` plus a text tower at the top
    level, and the three integer attributes the JIT archive carries."""

    def __init__(self, vcfg, visual_sd, text_sd):
        super().__init__()
        self.visual = clip_ref.VisionTransformer(**dict(vcfg, ln_post=False))
        self.visual.proj = nn.Parameter(torch.zeros(visual_sd["proj"].shape))
        self.visual.load_state_dict({k: torch.from_numpy(v) for k, v in visual_sd.items()}, strict=True)
        text = _TextTower(text_sd)
        for name, child in text.named_children():
            self.add_module(name, child)
        for name, p in text.named_parameters(recurse=False):
            self.register_parameter(name, p)
        self.register_buffer("input_resolution", torch.tensor(vcfg["image_size"]))
        self.register_buffer("context_length", torch.tensor(text_sd["positional_embedding"].shape[0]))
        self.register_buffer("vocab_size", torch.tensor(text_sd["token_embedding.weight"].shape[0]))

    def forward(self, image):
        return self.visual(image)


def write_vision(kind, visual_sd, vcfg, path, rng):
    """visual_sd: open_clip VisionTransformer names -> f32 arrays (with ln_post, proj)."""
    text_sd = text_tower(rng, embed_dim=visual_sd["proj"].shape[1])
    if kind == "openai_jit":
        m = OpenAIClip(vcfg, visual_sd, text_sd).eval()
        for name, p in m.named_parameters():
            if _fp16_in_openai_jit(name.split("visual.", 1)[-1]):
                p.data = p.data.half()
        S = vcfg["image_size"]
        # Traced like OpenAI's archives; the trace runs in f32 (CPU has no half conv), the stored
        # parameters keep their mixed dtypes.
        with torch.no_grad():
            m32 = OpenAIClip(vcfg, visual_sd, text_sd).eval()
            traced = torch.jit.trace(m32, torch.zeros(1, 3, S, S), check_trace=False)
        with torch.no_grad():
            for name, p in traced.named_parameters():
                src = dict(m.named_parameters())[name]
                p.data = src.data.clone()
        torch.jit.save(traced, path)
        return
    full = {"visual." + k: v for k, v in visual_sd.items()}
    full.update(text_sd)
    if kind == "open_clip_bin":
        torch.save(collections.OrderedDict((k, _t(v)) for k, v in full.items()), path)
    elif kind == "open_clip_safetensors":
        _st_write(path, {k: _t(v) for k, v in full.items()})
    elif kind == "timm_safetensors":
        _st_write(path, {k: _t(v) for k, v in _to_timm(visual_sd).items()})
    elif kind == "hf_clip_safetensors":
        _st_write(path, {k: _t(v) for k, v in _to_hf_clip(visual_sd, text_sd).items()})
    else:
        raise ValueError(kind)


def _to_timm(sd):
    """open_clip -> timm names, as timm's _convert_openai_clip renames them."""
    out = {}
    for k, v in sd.items():
        if k == "proj":
            out["head.weight"] = v.T.copy()
            out["head.bias"] = np.zeros(v.shape[1], np.float32)
            continue
        if k == "class_embedding":
            out["cls_token"] = v[None, None]
            continue
        if k == "positional_embedding":
            out["pos_embed"] = v[None]
            continue
        n = k
        for a, b in (("conv1", "patch_embed.proj"), ("transformer.resblocks.", "blocks."), ("ln_pre", "norm_pre"),
                     ("ln_post", "norm"), ("ln_", "norm"), ("in_proj_", "qkv."), ("out_proj", "proj"),
                     ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            n = n.replace(a, b)
        out[n] = v
    return out


def _to_hf_clip(sd, text_sd):
    """open_clip -> HF transformers CLIPModel names (q/k/v split out of in_proj)."""
    p = "vision_model."
    out = {p + "embeddings.class_embedding": sd["class_embedding"],
           p + "embeddings.patch_embedding.weight": sd["conv1.weight"],
           p + "embeddings.position_embedding.weight": sd["positional_embedding"],
           p + "pre_layrnorm.weight": sd["ln_pre.weight"], p + "pre_layrnorm.bias": sd["ln_pre.bias"],
           p + "post_layernorm.weight": sd["ln_post.weight"], p + "post_layernorm.bias": sd["ln_post.bias"],
           "visual_projection.weight": sd["proj"].T.copy(),
           p + "embeddings.position_ids": np.arange(sd["positional_embedding"].shape[0], dtype=np.float32)[None],
           "text_model.embeddings.token_embedding.weight": text_sd["token_embedding.weight"],
           "text_projection.weight": text_sd["text_projection"].T.copy(), "logit_scale": text_sd["logit_scale"]}
    i = 0
    while f"transformer.resblocks.{i}.ln_1.weight" in sd:
        b, L = f"transformer.resblocks.{i}.", f"{p}encoder.layers.{i}."
        W = sd[b + "ln_1.weight"].shape[0]
        for j, q in enumerate("qkv"):
            out[L + f"self_attn.{q}_proj.weight"] = sd[b + "attn.in_proj_weight"][j * W:(j + 1) * W]
            out[L + f"self_attn.{q}_proj.bias"] = sd[b + "attn.in_proj_bias"][j * W:(j + 1) * W]
        for a, c in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                     ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            out[L + c + ".weight"] = sd[b + a + ".weight"]
            out[L + c + ".bias"] = sd[b + a + ".bias"]
        i += 1
    return out


def hf_config(cfg, hf_vocab, eos):
    lm = cfg["lm"]
    if lm["family"] == "mosaic_gpt":
        return {"architectures": ["MosaicGPT"], "model_type": "mosaic_gpt", "d_model": lm["d_model"],
                "n_layers": lm["n_layers"], "n_heads": lm["n_heads"], "mlp_ratio": lm["mlp_dim"] // lm["d_model"],
                "max_seq_len": lm["max_seq_len"], "vocab_size": hf_vocab, "alibi": True,
                "alibi_bias_max": lm["alibi_bias_max"], "attn_qk_ln": lm["qk_ln"], "attn_clip_qkv": None,
                "attn_impl": "torch", "attn_pdrop": 0.0, "emb_pdrop": 0.0, "resid_pdrop": 0.0,
                "softmax_scale": None, "no_bias": True, "low_precision_layernorm": True, "prefix_lm": False,
                "attn_uses_sequence_id": False, "embedding_fraction": 1.0, "logit_scale": None,
                "init_device": "cpu", "param_init_fn": "kaiming_normal_", "torch_dtype": "float32",
                "tokenizer_name": "EleutherAI/gpt-neox-20b", "use_cache": False,
                "auto_map": {"AutoConfig": "configuration_mosaic_gpt.MosaicGPTConfig",
                             "AutoModelForCausalLM": "mosaic_gpt.MosaicGPT"}}
    if lm["family"] == "mpt":
        return {"architectures": ["MPTForCausalLM"], "model_type": "mpt", "d_model": lm["d_model"],
                "n_layers": lm["n_layers"], "n_heads": lm["n_heads"],
                "expansion_ratio": lm["mlp_dim"] // lm["d_model"], "max_seq_len": lm["max_seq_len"],
                "vocab_size": hf_vocab, "no_bias": True, "norm_type": "low_precision_layernorm",
                "learned_pos_emb": True, "logit_scale": None, "emb_pdrop": 0, "resid_pdrop": 0,
                "embedding_fraction": 1.0, "init_device": "cpu", "torch_dtype": "bfloat16", "use_cache": False,
                "verbose": 0, "tokenizer_name": "EleutherAI/gpt-neox-20b",
                "attn_config": {"alibi": True, "alibi_bias_max": lm["alibi_bias_max"], "attn_impl": "torch",
                                "attn_pdrop": 0, "attn_type": "multihead_attention", "attn_uses_sequence_id": False,
                                "clip_qkv": None, "prefix_lm": False, "qk_ln": lm["qk_ln"], "softmax_scale": None},
                "auto_map": {"AutoConfig": "configuration_mpt.MPTConfig",
                             "AutoModelForCausalLM": "modeling_mpt.MPTForCausalLM"}}
    return {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": lm["d_model"],
            "num_hidden_layers": lm["n_layers"], "num_attention_heads": lm["n_heads"],
            "intermediate_size": lm["mlp_dim"], "hidden_act": "gelu", "rotary_pct": lm["rotary_pct"],
            "rotary_emb_base": lm["rotary_base"], "use_parallel_residual": lm["parallel_residual"],
            "layer_norm_eps": lm["ln_eps"], "max_position_embeddings": lm["max_seq_len"],
            "vocab_size": hf_vocab, "tie_word_embeddings": False, "bos_token_id": eos, "eos_token_id": eos,
            "initializer_range": 0.02, "torch_dtype": "float16", "use_cache": True,
            "transformers_version": "4.28.1"}


def _hf_name(name):
    """flamingo.c (wrapped) name -> the LM's HF name."""
    n = name[len("lang_encoder."):]
    return n.replace(".decoder_layer.", ".")


def write_lm(truth, cfg, lm_dir, container, dtype, rng, hf_vocab, eos, n_shards=3):
    """The HF folder: config.json and the LM weights (decoder layers + final norm from truth,
    embeddings the LM's own: hf_vocab rows, other values)."""
    os.makedirs(lm_dir, exist_ok=True)
    lm = cfg["lm"]
    with open(os.path.join(lm_dir, "config.json"), "w") as f:
        json.dump(hf_config(cfg, hf_vocab, eos), f, indent=2)
    sd = collections.OrderedDict()
    d = lm["d_model"]
    for k, v in truth.items():
        if k.startswith("lang_encoder.") and "gated_cross_attn_layer" not in k and not _is_embedding(k):
            sd[_hf_name(k)] = _t(v, dtype)
    pre = lambda: _t(rng.standard_normal((hf_vocab, d)) * 0.3, dtype)  # noqa: E731
    if lm["family"] == "gpt_neox":
        sd["gpt_neox.embed_in.weight"] = pre()
        sd["embed_out.weight"] = pre()
        S = lm["max_seq_len"]
        hd = d // lm["n_heads"]
        rot = int(hd * lm["rotary_pct"])
        for i in range(lm["n_layers"]):          # the buffers old HF GPT-NeoX checkpoints carry
            b = f"gpt_neox.layers.{i}.attention."
            sd[b + "bias"] = torch.tril(torch.ones(S, S, dtype=torch.bool)).view(1, 1, S, S)
            sd[b + "masked_bias"] = torch.tensor(-1e9)
            sd[b + "rotary_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot))
    else:
        sd["transformer.wte.weight"] = pre()
    names = list(sd)
    if container in ("bin", "safetensors"):
        if container == "bin":
            torch.save(sd, os.path.join(lm_dir, "pytorch_model.bin"))
        else:
            _st_write(os.path.join(lm_dir, "model.safetensors"), sd)
        return
    stem, ext = ("pytorch_model", "bin") if container == "bin_sharded" else ("model", "safetensors")
    weight_map, total = {}, 0
    for s in range(n_shards):
        part = collections.OrderedDict((k, sd[k]) for k in names[s::n_shards])
        fname = f"{stem}-{s + 1:05d}-of-{n_shards:05d}.{ext}"
        if ext == "bin":
            torch.save(part, os.path.join(lm_dir, fname))
        else:
            _st_write(os.path.join(lm_dir, fname), part)
        for k, t in part.items():
            weight_map[k] = fname
            total += t.numel() * t.element_size()
    with open(os.path.join(lm_dir, f"{stem}.{ext}.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)


def write_checkpoint(truth, cfg, path, wrap, buffers):
    """What filter_state_dict_to_trainable keeps: perceiver, gated blocks, the embeddings."""
    sd = collections.OrderedDict()
    for k, v in truth.items():
        if k.startswith("perceiver.") or "gated_cross_attn_layer" in k or _is_embedding(k):
            sd[k] = _t(v)
    if buffers:        # OpenFlamingo-4B-vitl-rpj3b's file also holds the frozen layers' buffers
        S = cfg["lm"]["max_seq_len"]
        for i in range(cfg["lm"]["n_layers"]):
            b = f"lang_encoder.gpt_neox.layers.{i}.decoder_layer.attention."
            sd[b + "bias"] = torch.tril(torch.ones(S, S, dtype=torch.bool)).view(1, 1, S, S)
            sd[b + "masked_bias"] = torch.tensor(-1e9)
    if wrap:
        sd = {"model_state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items()),
              "epoch": 3, "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-4}]}}
    torch.save(sd, path)


def write_tokenizer(tok_json, path):
    """The LM's tokenizer.json: the given one without OpenFlamingo's added tokens."""
    tj = json.loads(tok_json)
    tj["added_tokens"] = [a for a in tj["added_tokens"] if a["content"] not in OF_TOKENS]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)


VISION_FILES = {"openai_jit": "ViT-L-14.pt", "open_clip_bin": "open_clip_pytorch_model.bin",
                "open_clip_safetensors": "open_clip_model.safetensors", "timm_safetensors": "model.safetensors",
                "hf_clip_safetensors": "clip.safetensors"}


def vision_config_json(cfg, embed_dim):
    v = cfg["vision"]
    return {"embed_dim": embed_dim, "quick_gelu": v["act"] == "quick_gelu",
            "vision_cfg": {"image_size": v["image_size"], "layers": v["layers"], "width": v["width"],
                           "patch_size": v["patch_size"], "head_width": v["width"] // v["heads"],
                           "mlp_ratio": v["mlp_dim"] / v["width"]}}


def write_upstream(truth, cfg, tok_json, out_dir, plan, seed=0):
    """All upstream files of one model under out_dir; returns their paths."""
    rng = np.random.default_rng([seed, 99])
    os.makedirs(out_dir, exist_ok=True)
    visual = {k[len("vision_encoder."):]: v for k, v in truth.items() if k.startswith("vision_encoder.")}
    paths = {"vision": os.path.join(out_dir, VISION_FILES[plan["vision"]]),
             "vision_config": os.path.join(out_dir, "vision_config.json"),
             "lm": os.path.join(out_dir, "lm"), "checkpoint": os.path.join(out_dir, "checkpoint.pt"),
             "tokenizer": os.path.join(out_dir, "lm", "tokenizer.json")}
    write_vision(plan["vision"], visual, cfg["vision"], paths["vision"], rng)
    with open(paths["vision_config"], "w") as f:
        json.dump(vision_config_json(cfg, visual["proj"].shape[1]), f)
    V = cfg["lm"]["vocab_size"]
    write_lm(truth, cfg, paths["lm"], plan["lm_container"], plan["lm_dtype"], rng,
             hf_vocab=plan.get("hf_vocab", V + 24), eos=cfg["tokens"]["eos"])
    write_checkpoint(truth, cfg, paths["checkpoint"], plan.get("wrap", False), plan.get("buffers", False))
    write_tokenizer(tok_json, paths["tokenizer"])
    return paths


# ---------------------------------------------------------------------------------------
# The reference's loader


def _load_any(path):
    """A whole weights file as name -> torch tensor, through torch / the safetensors layout."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[8:9] == b"{":
        tensors, _ = stfile.read(path)
        return {k: torch.from_numpy(np.asarray(v)) for k, v in tensors.items()}
    try:
        return dict(torch.jit.load(path, map_location="cpu").state_dict())
    except RuntimeError:
        return torch.load(path, map_location="cpu")


def _visual_from(sd):
    """-> open_clip VisionTransformer names (as open_clip / timm / transformers define them)."""
    if any(k.startswith("visual.") for k in sd):
        return {k[7:]: v for k, v in sd.items() if k.startswith("visual.")}
    if "cls_token" in sd:                                  # timm
        inv = {}
        for k, v in sd.items():
            if k == "head.bias":
                continue
            if k == "head.weight":
                inv["proj"] = v.t()
                continue
            if k == "cls_token":
                inv["class_embedding"] = v.reshape(-1)
                continue
            if k == "pos_embed":
                inv["positional_embedding"] = v[0]
                continue
            n = k.replace("patch_embed.proj", "conv1").replace("blocks.", "transformer.resblocks.")
            n = n.replace("norm_pre", "ln_pre").replace("norm1", "ln_1").replace("norm2", "ln_2")
            n = re.sub(r"^norm\.", "ln_post.", n)
            n = n.replace("attn.qkv.", "attn.in_proj_").replace("attn.proj", "attn.out_proj")
            n = n.replace("mlp.fc1", "mlp.c_fc").replace("mlp.fc2", "mlp.c_proj")
            inv[n] = v
        return inv
    p = "vision_model."                                   # transformers CLIPModel
    out = {"class_embedding": sd[p + "embeddings.class_embedding"],
           "conv1.weight": sd[p + "embeddings.patch_embedding.weight"],
           "positional_embedding": sd[p + "embeddings.position_embedding.weight"],
           "ln_pre.weight": sd[p + "pre_layrnorm.weight"], "ln_pre.bias": sd[p + "pre_layrnorm.bias"],
           "ln_post.weight": sd[p + "post_layernorm.weight"], "ln_post.bias": sd[p + "post_layernorm.bias"],
           "proj": sd["visual_projection.weight"].t()}
    i = 0
    while f"{p}encoder.layers.{i}.layer_norm1.weight" in sd:
        L, b = f"{p}encoder.layers.{i}.", f"transformer.resblocks.{i}."
        out[b + "attn.in_proj_weight"] = torch.cat([sd[L + f"self_attn.{q}_proj.weight"] for q in "qkv"])
        out[b + "attn.in_proj_bias"] = torch.cat([sd[L + f"self_attn.{q}_proj.bias"] for q in "qkv"])
        for a, c in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                     ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            out[b + a + ".weight"] = sd[L + c + ".weight"]
            out[b + a + ".bias"] = sd[L + c + ".bias"]
        i += 1
    return out


def _lm_state(lm_dir):
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        ip = os.path.join(lm_dir, index)
        if os.path.exists(ip):
            sd = {}
            for shard in sorted(set(json.load(open(ip))["weight_map"].values())):
                sd.update(_load_any(os.path.join(lm_dir, shard)))
            return sd
    for single in ("model.safetensors", "pytorch_model.bin"):
        if os.path.exists(os.path.join(lm_dir, single)):
            return _load_any(os.path.join(lm_dir, single))
    raise FileNotFoundError(lm_dir)


def reference_load(cfg, paths, tokenizer_len):
    """A flamingo_ref.Flamingo assembled the way OpenFlamingo does it from the upstream files."""
    cfg = flamingo_ref.full_config(cfg)
    optional = {"vision_encoder.ln_post.weight": None, "vision_encoder.proj": None}
    visual = _visual_from(_load_any(paths["vision"]))
    optional["vision_encoder.proj"] = tuple(visual["proj"].shape)
    model = flamingo_ref.Flamingo(cfg, optional)
    sd = {"vision_encoder." + k: v.float() for k, v in visual.items()}
    lm = _lm_state(paths["lm"])
    for k, v in lm.items():
        if k.endswith(("attention.bias", "attention.masked_bias", "rotary_emb.inv_freq")):
            continue                                     # buffers, not parameters
        m = re.fullmatch(r"(transformer\.blocks|gpt_neox\.layers)\.(\d+)\.(.+)", k)
        name = f"lang_encoder.{m.group(1)}.{m.group(2)}.decoder_layer.{m.group(3)}" if m else "lang_encoder." + k
        if _is_embedding(name):                          # resize_token_embeddings(len(tokenizer))
            v = v[:tokenizer_len]
        sd[name] = v.float()
    model.load_state_dict(sd, strict=False)
    ck = torch.load(paths["checkpoint"], map_location="cpu")
    if "model_state_dict" in ck:
        ck = ck["model_state_dict"]
    ck = {k[7:] if k.startswith("module.") else k: v for k, v in ck.items()}
    ck = {k: v.float() for k, v in ck.items() if not k.endswith(("attention.bias", "attention.masked_bias"))}
    result = model.load_state_dict(ck, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    never_loaded = set(model.state_dict()) - set(sd) - set(ck)
    assert not never_loaded, f"the upstream files leave these unset: {sorted(never_loaded)[:5]}"
    return model.eval()
