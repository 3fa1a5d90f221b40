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


MAKERS = {"st": make_st}

if __name__ == "__main__":
    os.makedirs(FIX, exist_ok=True)
    names = sys.argv[1:] or list(MAKERS)
    for n in names:
        MAKERS[n]()
