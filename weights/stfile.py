"""Write and read safetensors files with numpy only (no torch, no safetensors
package), for the converter, the tools and the tests.

The layout is the upstream one (docs/FORMAT.md): an 8-byte little-endian
header length, a JSON header, then the tensor bytes.  The writer adds two
choices of ours, both allowed by the format and by the upstream readers:
tensors are ordered by element size (largest first) and then by name, so that
every tensor starts at an offset aligned to its element size; and the header
is padded with spaces so that the data section starts on a 64-byte boundary.
Together these make every tensor of a mapped file naturally aligned.

    from stfile import write, read
    write("m.safetensors", {"w": np.ones((2, 3), np.float32)},
          metadata={"config": "{}"}, dtypes={"w": "bf16"})
    tensors, metadata = read("m.safetensors")   # bf16 comes back as float32
"""
import json
import struct

import numpy as np

DTYPES = {  # our name -> (safetensors name, element size)
    "f32": ("F32", 4),
    "f16": ("F16", 2),
    "bf16": ("BF16", 2),
    "i8": ("I8", 1),
    "u8": ("U8", 1),
    "i32": ("I32", 4),
}
_FROM_NUMPY = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float16): "f16",
    np.dtype(np.int8): "i8",
    np.dtype(np.uint8): "u8",
    np.dtype(np.int32): "i32",
}
ALIGN = 64


def f32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, round to nearest even (NaN kept NaN)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = np.isnan(a)
    out = rounded.astype(np.uint16)
    out[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return out


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def _encode(arr, dt):
    if dt == "bf16":
        return f32_to_bf16_bits(arr).astype("<u2").tobytes()
    np_dt = {"f32": "<f4", "f16": "<f2", "i8": "i1", "u8": "u1", "i32": "<i4"}[dt]
    return np.ascontiguousarray(arr).astype(np_dt).tobytes()


def write(path, tensors, metadata=None, dtypes=None):
    """tensors: dict name -> numpy array.  dtypes: optional dict name -> one of
    DTYPES (default: the array's own dtype; float64 is stored as f32).
    metadata: dict str -> str."""
    dtypes = dtypes or {}
    entries = []
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        dt = dtypes.get(name) or _FROM_NUMPY.get(arr.dtype) or "f32"
        if dt not in DTYPES:
            raise ValueError(f"{name}: unknown dtype {dt}")
        entries.append((name, arr, dt))
    entries.sort(key=lambda e: (-DTYPES[e[2]][1], e[0]))

    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("metadata keys and values must be strings")
        header["__metadata__"] = dict(metadata)
    blobs, offset = [], 0
    for name, arr, dt in entries:
        data = _encode(arr, dt)
        header[name] = {
            "dtype": DTYPES[dt][0],
            "shape": [int(s) for s in arr.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    pad = (-(8 + len(hjson))) % ALIGN
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read(path):
    """-> (dict name -> numpy array, metadata dict).  F16 stays float16, BF16
    becomes float32."""
    with open(path, "rb") as f:
        buf = f.read()
    (hlen,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + hlen].decode("utf-8"))
    data = memoryview(buf)[8 + hlen :]
    metadata = header.pop("__metadata__", {})
    out = {}
    np_of = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I8": "i1", "U8": "u1", "I32": "<i4"}
    for name, info in header.items():
        b, e = info["data_offsets"]
        a = np.frombuffer(data[b:e], dtype=np_of[info["dtype"]]).reshape(info["shape"])
        out[name] = bf16_bits_to_f32(a) if info["dtype"] == "BF16" else a.copy()
    return out, metadata
