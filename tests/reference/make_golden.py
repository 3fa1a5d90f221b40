#!/usr/bin/env python3
"""Regenerate every committed fixture under tests/fixtures/ (`make golden`).

Deterministic: the same numpy/torch versions give the same bytes.  Each
fixture's maker is a function below; run with names to remake only some:
    python3 tests/reference/make_golden.py [st] [clip]
"""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "weights"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import stfile  # noqa: E402

FIX = os.path.join(ROOT, "tests", "fixtures")


def make_st():
    """st_basic.safetensors: every dtype, a scalar, an empty tensor, unicode
    metadata, and all 65536 F16 / BF16 bit patterns with numpy's float32
    values beside them (test_st.c compares the C conversion bit for bit)."""
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    f16_all = bits.view(np.float16)
    with np.errstate(invalid="ignore"):
        f16_as_f32 = f16_all.astype(np.float32)
    bf16_as_f32 = stfile.bf16_bits_to_f32(bits)
    tensors = {
        "a.f32": (np.arange(6, dtype=np.float32) * 0.5 - 1.0).reshape(2, 3),
        "scalar": np.array(-123456789, dtype=np.int32),
        "empty": np.zeros((0, 7), np.float32),
        "i8": (np.arange(256) - 128).astype(np.int8),
        "u8": np.array([0, 1, 255], np.uint8),
        "f16_all": f16_all,
        "f16_all_as_f32": f16_as_f32,
        "bf16_all": bf16_as_f32,
        "bf16_all_as_f32": bf16_as_f32,
    }
    meta = {"format": "flamingo.c test", "unicode": "caf\u00e9 \u2192 \U0001f9a9"}
    path = os.path.join(FIX, "st_basic.safetensors")
    stfile.write(path, tensors, metadata=meta, dtypes={"bf16_all": "bf16"})
    # The writer's bf16 rounding must be the identity on bf16 values.
    back, _ = stfile.read(path)
    ok = back["bf16_all"].view(np.uint32) == bf16_as_f32.view(np.uint32)
    nan = np.isnan(bf16_as_f32)
    assert np.all(ok | nan), "bf16 round trip changed a value"
    print("wrote", path)


# Two small vision towers covering both activations, both output kinds,
# ln_post on and off, conv bias on and off, and F32 / F16 / BF16 storage.
CLIP_CONFIGS = {
    "clip_quickgelu": dict(image_size=28, patch_size=7, width=64, layers=2, heads=4, mlp_dim=256,
                           act="quick_gelu", output="patch_tokens", ln_post=False, conv_bias=False),
    "clip_gelu": dict(image_size=32, patch_size=8, width=48, layers=3, heads=3, mlp_dim=192,
                      act="gelu", output="all_tokens", ln_post=True, conv_bias=True),
}


def clip_config_json(name, cfg, preprocess_kind="open_clip"):
    import json

    vision = {k: cfg[k] for k in ("image_size", "patch_size", "width", "layers", "heads", "mlp_dim",
                                  "act", "output", "ln_post")}
    return json.dumps({"format": "flamingo.c", "format_version": 1, "name": name, "vision": vision,
                       "preprocess": {"kind": preprocess_kind}}, indent=1)


def make_clip():
    """clip_*.safetensors (model files) and clip_*.io.safetensors (pixels
    [3, 3, S, S] and the reference tokens).  clip_gelu stores its matrices
    as F16 and its biases as BF16; the reference runs on the rounded values."""
    import clip_ref

    for seed, (name, cfg) in enumerate(CLIP_CONFIGS.items()):
        rng = np.random.default_rng(1000 + seed)
        state = clip_ref.random_state(cfg, rng)
        dtypes = {}
        if name == "clip_gelu":
            for k, v in state.items():
                if v.ndim >= 2 and k != "positional_embedding":
                    dtypes[k] = "f16"
                    state[k] = v.astype(np.float16).astype(np.float32)
                elif k.endswith(".bias"):
                    dtypes[k] = "bf16"
                    state[k] = stfile.bf16_bits_to_f32(stfile.f32_to_bf16_bits(v))
        model_path = os.path.join(FIX, name + ".safetensors")
        kind = "idefics" if cfg["output"] == "all_tokens" else "open_clip"
        stfile.write(model_path, {"vision_encoder." + k: v for k, v in state.items()},
                     metadata={"config": clip_config_json(name, cfg, kind)},
                     dtypes={"vision_encoder." + k: d for k, d in dtypes.items()})
        S = cfg["image_size"]
        pixels = rng.standard_normal((3, 3, S, S)).astype(np.float32)
        tokens = clip_ref.encode(clip_ref.build(cfg, state), pixels)
        stfile.write(os.path.join(FIX, name + ".io.safetensors"), {"pixels": pixels, "tokens": tokens})
        print("wrote", model_path, "tokens", tokens.shape, "max |t|", float(np.abs(tokens).max()))


def make_images():
    """Small real-photo files for test_img.c (decoding, truncation, fuzzing),
    cut from python3-skimage's chelsea.png, and their PIL-decoded pixels."""
    from PIL import Image

    src = Image.open("/usr/lib/python3/dist-packages/skimage/data/chelsea.png").convert("RGB")
    crop = src.crop((200, 60, 264, 108))  # 64x48, the cat's face
    d = os.path.join(FIX, "img")
    os.makedirs(d, exist_ok=True)
    crop.save(os.path.join(d, "cat.jpg"), quality=85)
    crop.save(os.path.join(d, "cat_progressive.jpg"), quality=85, progressive=True)
    crop.save(os.path.join(d, "cat.png"))
    crop.quantize(colors=32).save(os.path.join(d, "cat.gif"))
    crop.save(os.path.join(d, "cat.bmp"))
    ref = {}
    for n in ("cat.jpg", "cat_progressive.jpg", "cat.png", "cat.gif", "cat.bmp"):
        ref[n.replace(".", "_")] = np.asarray(Image.open(os.path.join(d, n)).convert("RGB"))
    stfile.write(os.path.join(d, "cat_pixels.safetensors"), ref)
    print("wrote", d)


MAKERS = {"st": make_st, "clip": make_clip, "images": make_images}

if __name__ == "__main__":
    os.makedirs(FIX, exist_ok=True)
    names = sys.argv[1:] or list(MAKERS)
    for n in names:
        MAKERS[n]()
