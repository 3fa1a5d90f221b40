#!/usr/bin/env python3
"""Regenerate every committed fixture under tests/fixtures/ (`make golden`).

Deterministic: the same numpy/torch versions give the same bytes.  Each
fixture's maker is a function below; run with names to remake only some:
    python3 tests/reference/make_golden.py [st] [clip] [images] [flamingo]

The tokenizer fixtures (tests/fixtures/tok) come from the HuggingFace
tokenizers library through node: tests/reference/tok/regen.sh (make golden-tok).
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


def _psd_rgb(a):
    """A minimal raw (uncompressed) 8-bit RGB(A) PSD; PIL reads these, cannot write them."""
    import struct

    h, w, c = a.shape
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, c, h, w, 8, 3)
    return head + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + a.transpose(2, 0, 1).tobytes()


def _psd_rgb_packbits(a):
    """The same, with PackBits rows (literal runs and repeats)."""
    import struct

    h, w, _ = a.shape
    rows = []
    for c in range(3):
        for y in range(h):
            row, out, i = a[y, :, c].tobytes(), bytearray(), 0
            while i < w:
                j = i
                while j < w and j - i < 128 and row[j] == row[i]:
                    j += 1
                if j - i >= 3:                        # a repeat run
                    out += bytes([257 - (j - i), row[i]])
                    i = j
                else:                                  # a literal run up to the next repeat
                    j = i
                    while j < w and j - i < 128 and not (j + 2 < w and row[j] == row[j + 1] == row[j + 2]):
                        j += 1
                    j = max(j, i + 1)
                    out += bytes([j - i - 1]) + row[i:j]
                    i = j
            rows.append(bytes(out))
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3)
    counts = b"".join(struct.pack(">H", len(r)) for r in rows)
    return head + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 1) + counts + b"".join(rows)


def _hdr_rle(a):
    """A Radiance HDR with run-length scanlines (dumps only), from u8 RGB."""
    h, w, _ = a.shape
    f = a.astype(np.float64) / 255.0 + 1e-6
    m = f.max(axis=2)
    e = np.ceil(np.log2(m)).astype(int)
    rgbe = np.zeros((h, w, 4), np.uint8)
    rgbe[..., :3] = np.clip(f / (2.0 ** e)[..., None] * 256, 0, 255).astype(np.uint8)
    rgbe[..., 3] = (e + 128).astype(np.uint8)
    out = bytearray(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (h, w))
    for y in range(h):
        out += bytes([2, 2, w >> 8, w & 255])
        for c in range(4):
            row = rgbe[y, :, c].tobytes()
            for i in range(0, w, 128):
                chunk = row[i:i + 128]
                out += bytes([len(chunk)]) + chunk
    return bytes(out)


def make_images():
    """Small real-photo files for test_img.c (decoding, truncation, fuzzing),
    cut from python3-skimage's chelsea.png, and their PIL-decoded pixels
    (cat_pixels.safetensors; none for the HDR, which PIL cannot open)."""
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
    crop.save(os.path.join(d, "cat_rle.tga"), compression="tga_rle")
    crop.save(os.path.join(d, "cat.ppm"))
    with open(os.path.join(d, "cat.psd"), "wb") as f:
        f.write(_psd_rgb(np.asarray(crop)))
    alpha = (np.arange(64, dtype=np.uint8)[None, :, None] * 4) * np.ones((48, 1, 1), np.uint8)
    with open(os.path.join(d, "cat_rgba.psd"), "wb") as f:
        f.write(_psd_rgb(np.concatenate([np.asarray(crop), alpha], axis=2)))
    with open(os.path.join(d, "cat_rle.psd"), "wb") as f:
        f.write(_psd_rgb_packbits(np.asarray(crop)))
    with open(os.path.join(d, "cat.hdr"), "wb") as f:
        f.write(_hdr_rle(np.asarray(crop)))
    ref = {}
    for n in ("cat.jpg", "cat_progressive.jpg", "cat.png", "cat.gif", "cat.bmp", "cat_rle.tga",
              "cat.ppm", "cat.psd", "cat_rle.psd", "cat_rgba.psd"):
        ref[n.replace(".", "_")] = np.asarray(Image.open(os.path.join(d, n)).convert("RGB"))
    stfile.write(os.path.join(d, "cat_pixels.safetensors"), ref)
    print("wrote", d)


def make_flamingo():
    """The four tiny Flamingo models and their reference logits and
    generations (tests/reference/make_flamingo_golden.py)."""
    import make_flamingo_golden

    make_flamingo_golden.make_flamingo()


MAKERS = {"st": make_st, "clip": make_clip, "images": make_images, "flamingo": make_flamingo}

if __name__ == "__main__":
    os.makedirs(FIX, exist_ok=True)
    names = sys.argv[1:] or list(MAKERS)
    for n in names:
        MAKERS[n]()
