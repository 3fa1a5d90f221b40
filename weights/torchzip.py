"""Read PyTorch checkpoints (`torch.save` zip archives) lazily: the tensor
names, dtypes and shapes come from the pickle at once, the bytes of a tensor
only when it is asked for.  This is what lets weights/convert.py turn a 26 GB
language model into a model file with about one tensor in memory at a time;
`torch.load` would hold all of it (and torch 1.13, Debian 12's, has no
`mmap=True`).

The archive (torch >= 1.6) is a zip whose entries are stored, not
compressed: `<name>/data.pkl` is a pickle of the object (a state dict, or a
dict around one), and `<name>/data/<key>` holds the raw little-endian bytes
of storage `<key>`.  In the pickle a tensor is the call
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, and a
storage is the persistent id `("storage", torch.FloatStorage, key, device,
numel)`.  Parameters wrap a tensor in `torch._utils._rebuild_parameter`.

The unpickler runs no code from the file: every global it does not know
becomes an inert `Opaque` object, so a checkpoint that also pickles an
optimizer state or an argparse Namespace still loads, and nothing in it is
executed.  Tensors come back as `LazyTensor`s; `.numpy()` reads exactly the
bytes the tensor spans (a view of a larger storage reads only its part) and
checks them against the zip's CRC when it reads a whole storage.

TorchScript archives (`torch.jit.save`, such as OpenAI's CLIP `ViT-L-14.pt`)
are zips too, but their pickle holds scripted module objects whose parameter
names only TorchScript's type table knows; `is_torchscript` spots them and
the converter hands them to `torch.jit.load`.  Legacy pre-1.6 pickles
(`is_legacy`) go to `torch.load` as well.

    ck = TorchZip("pytorch_model.bin")
    for name, t in ck.tensors().items():   # name -> LazyTensor (flattened dict)
        print(name, t.dtype, t.shape)
        a = t.numpy()                      # numpy array; float16/bfloat16 -> see below
"""
import io
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

# Storage class name -> (numpy dtype of one element, element size).  bfloat16 has
# no numpy dtype: its elements come back as uint16 bit patterns (dtype "bf16").
STORAGES = {
    "FloatStorage": ("<f4", 4), "HalfStorage": ("<f2", 2), "BFloat16Storage": ("bf16", 2),
    "DoubleStorage": ("<f8", 8), "LongStorage": ("<i8", 8), "IntStorage": ("<i4", 4),
    "ShortStorage": ("<i2", 2), "CharStorage": ("i1", 1), "ByteStorage": ("u1", 1),
    "BoolStorage": ("?", 1),
}
# torch dtype names (torch 2.x pickles `torch.float32` etc. in some paths) -> storage name
DTYPE_NAMES = {
    "float32": "FloatStorage", "float": "FloatStorage", "float16": "HalfStorage", "half": "HalfStorage",
    "bfloat16": "BFloat16Storage", "float64": "DoubleStorage", "double": "DoubleStorage",
    "int64": "LongStorage", "long": "LongStorage", "int32": "IntStorage", "int": "IntStorage",
    "int16": "ShortStorage", "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage",
}
MAX_PICKLE = 256 << 20  # a state dict's pickle is names and shapes: megabytes, not gigabytes


class FormatError(Exception):
    pass


class Opaque:
    """Stands in for any object of a class the reader does not know: it keeps
    what the pickle gives it and runs nothing."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<{self.qualname}>"


def _opaque_class(qualname):
    return type("Opaque", (Opaque,), {"qualname": qualname})


class _StorageType:
    def __init__(self, name):
        self.name = name


class _StorageRef:
    def __init__(self, archive, kind, key, numel):
        self.archive, self.kind, self.key, self.numel = archive, kind, key, numel


class LazyTensor:
    """A tensor of a checkpoint whose bytes have not been read yet."""

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset = storage, int(offset)
        self.shape, self.stride = tuple(int(s) for s in shape), tuple(int(s) for s in stride)
        self.dtype = STORAGES[storage.kind][0]

    @property
    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    def numpy(self):
        """The values, as a C-contiguous numpy array (bf16: uint16 bits)."""
        return self.storage.archive.read_tensor(self)

    def __repr__(self):
        return f"LazyTensor({self.dtype}, {list(self.shape)})"


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, _StorageRef):
        raise FormatError("tensor without a storage")
    return LazyTensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    """A tensor subclass (or one with Python state): the tensor inside is what counts."""
    return func(*args)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, archive):
        super().__init__(f)
        self.archive = archive

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch._tensor" and name == "_rebuild_from_type_v2":
            return _rebuild_from_type_v2
        if module == "torch" and name in STORAGES:
            return _StorageType(name)
        if module == "torch" and name in DTYPE_NAMES:
            return _StorageType(DTYPE_NAMES[name])
        if module == "torch" and name == "UntypedStorage":
            return _StorageType("ByteStorage")
        if module == "torch._utils" and name.startswith("_rebuild"):
            raise FormatError(f"unsupported tensor kind {module}.{name} (sparse, quantized or "
                              "device tensor); save a plain dense state dict")
        return _opaque_class(f"{module}.{name}")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise FormatError(f"unknown persistent id {pid!r:.80}")
        kind, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(kind, _StorageType):
            raise FormatError(f"unknown storage type {kind!r:.80}")
        if kind.name not in STORAGES:
            raise FormatError(f"unsupported storage type torch.{kind.name}")
        return _StorageRef(self.archive, kind.name, key, numel)


def _is_zip(path):
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def is_legacy(path):
    """A pre-1.6 torch pickle (not a zip)?"""
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and not _is_zip(path)


def is_torchscript(path):
    if not _is_zip(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


class TorchZip:
    """One `torch.save` zip archive, opened for lazy reads."""

    def __init__(self, path):
        self.path = path
        if not os.path.isfile(path):
            raise FormatError(f"{path}: no such file")
        self.size = os.path.getsize(path)
        if not _is_zip(path):
            raise FormatError(f"{path}: not a PyTorch zip checkpoint" +
                              (" (a legacy pre-1.6 torch pickle)" if is_legacy(path) else ""))
        try:
            self.zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile as e:
            raise FormatError(f"{path}: damaged or truncated zip archive ({e})") from None
        names = self.zip.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise FormatError(f"{path}: not a torch.save archive (no single <name>/data.pkl)")
        self.prefix = pkls[0][: -len("data.pkl")]
        bo = self.prefix + "byteorder"
        if bo in names and self.zip.read(bo).strip() not in (b"little", b""):
            raise FormatError(f"{path}: big-endian checkpoint")
        info = self.zip.getinfo(pkls[0])
        if info.file_size > MAX_PICKLE:
            raise FormatError(f"{path}: data.pkl is {info.file_size} bytes (over {MAX_PICKLE})")
        self._entries = {}
        self._fh = open(path, "rb")
        try:
            self.obj = _Unpickler(io.BytesIO(self.zip.read(pkls[0])), self).load()
        except FormatError as e:
            raise FormatError(f"{path}: {e}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                KeyError, zipfile.BadZipFile, zlib.error) as e:
            raise FormatError(f"{path}: cannot read the pickle ({type(e).__name__}: {e})") from None

    def close(self):
        self._fh.close()
        self.zip.close()

    def tensors(self):
        """The tensors of the pickled object, flattened: a dict of tensors keeps its keys;
        a dict around a state dict ({"model_state_dict": {...}}) gives dotted keys."""
        out = {}

        def walk(obj, prefix):
            if isinstance(obj, LazyTensor):
                out[prefix] = obj
            elif isinstance(obj, dict):
                for k, v in obj.items():
                    walk(v, f"{prefix}.{k}" if prefix else str(k))
        walk(self.obj, "")
        return out

    def _entry(self, key):
        """(absolute offset of the data, size, crc) of storage `key`."""
        e = self._entries.get(key)
        if e:
            return e
        name = f"{self.prefix}data/{key}"
        try:
            info = self.zip.getinfo(name)
        except KeyError:
            raise FormatError(f"{self.path}: storage {key} is missing from the archive") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise FormatError(f"{self.path}: storage {key} is compressed; torch.save never does that")
        self._fh.seek(info.header_offset)
        local = self._fh.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise FormatError(f"{self.path}: bad zip entry for storage {key}")
        n_name, n_extra = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + n_name + n_extra
        if start + info.file_size > self.size:
            raise FormatError(f"{self.path}: truncated (storage {key} ends past the end of the file)")
        e = (start, info.file_size, info.CRC)
        self._entries[key] = e
        return e

    def read_tensor(self, t):
        kind = t.storage.kind
        np_dt, el = STORAGES[kind]
        start, size, crc = self._entry(t.storage.key)
        if size < t.storage.numel * el:
            raise FormatError(f"{self.path}: storage {t.storage.key} holds {size} bytes, "
                              f"less than its {t.storage.numel} elements")
        if t.numel == 0:
            return np.zeros(t.shape, np.uint16 if np_dt == "bf16" else np_dt)
        # the span of storage elements that the (possibly strided) view touches
        if any(s < 0 for s in t.stride) or t.offset < 0:
            raise FormatError(f"{self.path}: negative stride or offset")
        last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride))
        if last >= t.storage.numel:
            raise FormatError(f"{self.path}: a tensor reaches past its storage {t.storage.key}")
        lo, hi = t.offset, last + 1
        whole = lo == 0 and hi * el == size
        self._fh.seek(start + lo * el)
        buf = self._fh.read((hi - lo) * el)
        if len(buf) != (hi - lo) * el:
            raise FormatError(f"{self.path}: truncated while reading storage {t.storage.key}")
        if whole and zlib.crc32(buf) != crc:
            raise FormatError(f"{self.path}: storage {t.storage.key} fails its CRC check (damaged file)")
        arr = np.frombuffer(buf, dtype="<u2" if np_dt == "bf16" else np_dt)
        view = np.lib.stride_tricks.as_strided(arr, shape=t.shape,
                                               strides=tuple(s * el for s in t.stride))
        return view if view.flags.c_contiguous else view.copy(order="C")
