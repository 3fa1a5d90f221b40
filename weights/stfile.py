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

For files larger than memory (weights/convert.py): `write_stream` takes
(name, dtype, shape, produce) entries and calls each `produce()` only when
that tensor's turn to be written comes, converting it in slices; `LazyFile`
opens a safetensors file and reads one tensor at a time.
"""
import json
import os
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


CHUNK = 1 << 22  # elements converted at a time: bounds the temporaries of f32 -> f16/bf16


def _encode_chunks(arr, dt):
    """Yield the little-endian bytes of arr stored as dt, a slice at a time."""
    flat = np.asarray(arr).reshape(-1)
    for at in range(0, max(flat.size, 1), CHUNK):
        part = flat[at : at + CHUNK]
        if dt == "bf16":
            yield f32_to_bf16_bits(part).astype("<u2", copy=False)
            continue
        np_dt = {"f32": "<f4", "f16": "<f2", "i8": "i1", "u8": "u1", "i32": "<i4"}[dt]
        yield np.ascontiguousarray(part, dtype=np_dt)


Q8_BLOCK = 32


def q8_0(a):
    """float32 [n, ...] -> (int8 values [n, k], float16 scales [n, k / 32]): one
    scale per block of 32 along each row, scale = max |w| / 127 rounded to f16,
    values rint(w / scale) (ties to even) clamped to +-127; a block of zeros
    has scale 0.  core/wmat.c's wmat_q8_quantize_row is the same, bit for bit."""
    a = np.asarray(a, dtype=np.float32)
    n = a.shape[0]
    b = a.reshape(n, -1, Q8_BLOCK)
    scale = (np.abs(b).max(axis=-1) / np.float32(127)).astype(np.float16)
    s = scale.astype(np.float32)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(s > 0, np.rint(b / np.where(s > 0, s, np.float32(1))), np.float32(0))
    return np.clip(q, -127, 127).astype(np.int8).reshape(n, -1), scale


def q8_0_to_f32(q, scale):
    """The inverse: int8 [n, k] and float16 [n, k / 32] -> float32 [n, k]."""
    n = q.shape[0]
    b = np.asarray(q, dtype=np.float32).reshape(n, -1, Q8_BLOCK)
    return (b * np.asarray(scale, dtype=np.float32)[..., None]).reshape(n, -1)


def write(path, tensors, metadata=None, dtypes=None):
    """tensors: dict name -> numpy array.  dtypes: optional dict name -> one of
    DTYPES (default: the array's own dtype; float64 is stored as f32).
    metadata: dict str -> str."""
    dtypes = dtypes or {}
    entries = []
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        dt = dtypes.get(name) or _FROM_NUMPY.get(arr.dtype) or "f32"
        entries.append((name, dt, arr.shape, lambda arr=arr: arr))
    write_stream(path, entries, metadata)


def write_stream(path, entries, metadata=None, progress=None):
    """entries: (name, dtype, shape, produce) tuples; produce() returns an array
    of that shape, called once, when the tensor is written, and dropped after.
    progress(name, done_bytes, total_bytes), when given, is called after each."""
    for name, dt, shape, _ in entries:
        if dt not in DTYPES:
            raise ValueError(f"{name}: unknown dtype {dt}")
    entries = sorted(entries, key=lambda e: (-DTYPES[e[1]][1], e[0]))
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("metadata keys and values must be strings")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, dt, shape, _ in entries:
        if name in header:
            raise ValueError(f"tensor {name} given twice")
        n = DTYPES[dt][1]
        for d in shape:
            n *= int(d)
        header[name] = {"dtype": DTYPES[dt][0], "shape": [int(d) for d in shape],
                        "data_offsets": [offset, offset + n]}
        offset += n
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hjson += b" " * ((-(8 + len(hjson))) % ALIGN)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name, dt, shape, produce in entries:
            arr = np.asarray(produce())
            if tuple(arr.shape) != tuple(int(d) for d in shape):
                raise ValueError(f"{name}: produced shape {list(arr.shape)}, declared {list(shape)}")
            written = 0
            for chunk in _encode_chunks(arr, dt):
                f.write(memoryview(chunk).cast("B"))
                written += chunk.nbytes
            b, e = header[name]["data_offsets"]
            if written != e - b:
                raise ValueError(f"{name}: wrote {written} bytes, declared {e - b}")
            del arr
            if progress:
                progress(name, e, offset)


class LazyTensor:
    """One tensor of a LazyFile: dtype is a numpy dtype string, or "bf16"
    (read() then gives the uint16 bit patterns), shape a tuple."""

    def __init__(self, lazy_file, name, dtype, shape, begin, end):
        self.file, self.name, self.dtype, self.shape = lazy_file, name, dtype, shape
        self.begin, self.end = begin, end

    def numpy(self):
        return self.file.read_tensor(self)

    def __repr__(self):
        return f"LazyTensor({self.dtype}, {list(self.shape)})"


_NP_OF = {"F32": "<f4", "F16": "<f2", "BF16": "bf16", "F64": "<f8", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


class LazyFile:
    """A safetensors file opened for reading one tensor at a time.  The header
    is checked the way weights/st.c checks it (sizes, bounds, overlaps)."""

    MAX_HEADER = 64 << 20

    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")
        size = os.fstat(self.f.fileno()).st_size
        head = self.f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (hlen,) = struct.unpack("<Q", head)
        if hlen > self.MAX_HEADER or 8 + hlen > size:
            raise ValueError(f"{path}: header length {hlen} is impossible for a "
                             f"{size}-byte file (truncated, or not safetensors)")
        try:
            header = json.loads(self.f.read(hlen).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{path}: the header is not JSON ({e})") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path}: the header is not a JSON object")
        self.data_start, data_size = 8 + hlen, size - 8 - hlen
        meta = header.pop("__metadata__", None) or {}
        self.metadata = meta if isinstance(meta, dict) else {}
        self.tensors = {}
        spans = []
        for name, info in header.items():
            try:
                dt = _NP_OF[info["dtype"]]
                shape = tuple(int(d) for d in info["shape"])
                b, e = (int(x) for x in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}: bad header entry for {name!r} (unknown dtype or "
                                 "malformed shape / offsets)") from None
            el = 2 if dt == "bf16" else np.dtype(dt).itemsize
            n = el
            for d in shape:
                if d < 0:
                    raise ValueError(f"{path}: {name}: negative dimension")
                n *= d
            if not 0 <= b <= e or e - b != n:
                raise ValueError(f"{path}: {name}: data_offsets {b}..{e} do not hold {n} bytes")
            if e > data_size:
                raise ValueError(f"{path}: {name} ends at byte {e} of a {data_size}-byte data "
                                 "section (truncated file)")
            spans.append((b, e, name))
            self.tensors[name] = LazyTensor(self, name, dt, shape, b, e)
        spans.sort()
        for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
            if b1 < e0 and b1 != e1:
                raise ValueError(f"{path}: tensors {n0} and {n1} overlap")

    def read_tensor(self, t):
        self.f.seek(self.data_start + t.begin)
        buf = self.f.read(t.end - t.begin)
        if len(buf) != t.end - t.begin:
            raise ValueError(f"{self.path}: truncated while reading {t.name}")
        a = np.frombuffer(buf, dtype="<u2" if t.dtype == "bf16" else t.dtype)
        return a.reshape(t.shape)

    def close(self):
        self.f.close()


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
