"""Make OpenBLAS run the kernels this CPU has, in a Python process (numpy, PyTorch).

The same rule as core/blas_core.c, whose comment has the why: Debian 12's OpenBLAS (0.3.21)
does not know the development Xeons (family 6, model 207) and falls back to its SSE3
"Prescott" kernels, 5x slower at sgemm than its Cooperlake ones. It chooses when the library
loads, from the environment only, so `fix()` must run before numpy or torch is imported: when
OPENBLAS_CORETYPE is unset and OpenBLAS would choose a core without AVX2 on a CPU with AVX2
and FMA, it sets the variable and executes the interpreter again with the same arguments.
"""
import ctypes
import ctypes.util
import os
import sys

WIDE = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"}


def core_for(current, flags, amd):
    """The OPENBLAS_CORETYPE to use when OpenBLAS chose `current`, or None to keep it."""
    if not {"avx2", "fma"} <= flags or (current or "").lower() in WIDE:
        return None
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    return "Zen" if amd else "Haswell"


def cpu_flags():
    """(the CPU flags of /proc/cpuinfo as a set, whether the CPU is AMD); empty where unreadable."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return set(), False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return flags, "AuthenticAMD" in text


def _lib():
    """The OpenBLAS this process uses (Debian's libblas.so.3, which PyTorch and numpy link, is a
    front end of the same libopenblas.so.0), or None when it is not found."""
    name = ctypes.util.find_library("openblas")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def current_core():
    """OpenBLAS's choice in this process (loads the library; None when it is not found)."""
    lib = _lib()
    if lib is None:
        return None
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode()


def set_threads(n):
    """OpenBLAS's own thread pool, which torch.set_num_threads does not size: Debian's OpenBLAS
    is the pthread build and starts one thread per core in every process. Two training
    processes of one PyTorch thread each then ran four OpenBLAS threads on two cores; with one
    each, every stage of tools/train/train.py ran 25-35% faster (2026-11-30, AMD EPYC, 2 cores).
    Its results do depend on n in the last bits (the vision features of 700 images differ with
    1 and 2 threads), so a caller that wants the same numbers on every machine fixes n.
    Returns the number it had before (None where OpenBLAS is not found)."""
    lib = _lib()
    if lib is None:
        return None
    before = lib.openblas_get_num_threads()
    lib.openblas_set_num_threads(ctypes.c_int(n))
    return before


def fix():
    if "OPENBLAS_CORETYPE" in os.environ or "numpy" in sys.modules or "torch" in sys.modules:
        return
    flags, amd = cpu_flags()
    current = current_core()
    if current is None:
        return
    want = core_for(current, flags, amd)
    if want:
        os.environ["OPENBLAS_CORETYPE"] = want
        # orig_argv: the interpreter's own options and `-c CODE` too (Python 3.10+)
        argv = getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv
        os.execv(sys.executable, argv)
