"""weights/torchzip.py, the lazy reader of torch.save archives, against
torch.load on the same files: every dtype the converter meets, views that
share a storage (a slice, a transpose, a scalar), parameters, tensor
subclasses, a state dict inside a training checkpoint next to objects the
reader must not execute; and the damage it must report: a truncated file, a
flipped byte in a storage (CRC), a storage missing from the archive, a
legacy (pre-1.6) pickle, and a pickle that would run code when unpickled."""
import collections
import os
import pickle
import sys
import tempfile
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "weights"))
import torchzip  # noqa: E402

failures = 0


def report(ok, what):
    global failures
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what}")


class Sub(torch.Tensor):
    pass


class Evil:
    def __reduce__(self):
        return (os.system, ("echo torchzip ran code >&2; touch /tmp/torchzip_ran_code",))


def as_numpy(t):
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(np.uint16)
    return t.contiguous().numpy()


def raises(fn, needle):
    try:
        fn()
    except torchzip.FormatError as e:
        return needle in str(e), str(e)
    return False, "no error"


def main():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 10, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = base
    sd["slice"] = base[:, 2:5]
    sd["transpose"] = base.t()
    sd["row"] = base[3]
    sd["scalar"] = base[2, 7]
    sd["f16"] = torch.randn(3, 4, generator=g).half()
    sd["bf16"] = torch.randn(5, 3, generator=g).bfloat16()
    sd["f64"] = torch.randn(4, generator=g).double()
    sd["i64"] = torch.arange(7)
    sd["bool"] = torch.tril(torch.ones(1, 1, 4, 4, dtype=torch.bool))
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    sd["subclass"] = torch.arange(6.0).as_subclass(Sub)
    sd["empty"] = torch.zeros(0, 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ck.pt")
        torch.save({"model_state_dict": sd, "epoch": 3, "module": torch.nn.Linear(2, 2),
                    "optimizer_state_dict": {"state": {0: {"exp_avg": torch.ones(2)}}}}, path)
        z = torchzip.TorchZip(path)
        ts = z.tensors()
        bad = []
        for k, t in sd.items():
            lt = ts.get("model_state_dict." + k)
            got = lt.numpy() if lt is not None else None
            want = as_numpy(t)
            if got is None or got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
                bad.append(k)
        report(not bad and "optimizer_state_dict.state.0.exp_avg" in ts,
               f"{len(sd)} tensors of every kind read as torch.load reads them {bad or ''}")

        # damage
        data = open(path, "rb").read()
        tr = os.path.join(tmp, "truncated.pt")
        open(tr, "wb").write(data[: len(data) * 2 // 3])
        ok, msg = raises(lambda: torchzip.TorchZip(tr), "truncated")
        report(ok, f"truncated archive: {msg}")

        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(next(n for n in zf.namelist() if n.endswith("/data/0")))
        flipped = bytearray(data)
        n_name, n_extra = (int.from_bytes(data[info.header_offset + o: info.header_offset + o + 2], "little")
                           for o in (26, 28))
        flipped[info.header_offset + 30 + n_name + n_extra + 5] ^= 0x40
        fp = os.path.join(tmp, "flipped.pt")
        open(fp, "wb").write(bytes(flipped))
        z2 = torchzip.TorchZip(fp)
        first = next(t for t in z2.tensors().values()           # a view of all of storage 0
                     if t.storage.key == "0" and t.numel == t.storage.numel)
        ok, msg = raises(first.numpy, "CRC")
        report(ok, f"flipped byte in a storage: {msg}")

        legacy = os.path.join(tmp, "legacy.pt")
        torch.save(sd, legacy, _use_new_zipfile_serialization=False)
        ok, msg = raises(lambda: torchzip.TorchZip(legacy), "legacy")
        report(ok and torchzip.is_legacy(legacy), f"legacy pickle recognised: {msg}")

        # a storage the pickle names but the archive lacks
        miss = os.path.join(tmp, "missing.pt")
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(miss, "w", zipfile.ZIP_STORED) as dst:
            for n in src.namelist():
                if not n.endswith("/data/1"):
                    dst.writestr(n, src.read(n))
        z3 = torchzip.TorchZip(miss)
        t1 = next(t for t in z3.tensors().values() if t.storage.key == "1")
        ok, msg = raises(t1.numpy, "missing")
        report(ok, f"storage missing from the archive: {msg}")

        # a pickle that would run a command: read, nothing runs
        evil = os.path.join(tmp, "evil.pt")
        with zipfile.ZipFile(evil, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("evil/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
        if os.path.exists("/tmp/torchzip_ran_code"):
            os.remove("/tmp/torchzip_ran_code")
        z4 = torchzip.TorchZip(evil)
        report(not os.path.exists("/tmp/torchzip_ran_code") and z4.tensors() == {},
               "a pickle calling os.system is read without running it")
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
