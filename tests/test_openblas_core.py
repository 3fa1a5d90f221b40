"""tools/openblas_core.py, the Python side of core/blas_core.c: the same rule for replacing
OpenBLAS's choice of kernels (the C test has the same cases), and the re-execution itself: a
script that calls fix() and then imports numpy runs a core the rule accepts, on this CPU; and
set_threads sizes the pool of the OpenBLAS that numpy (and PyTorch) use."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import openblas_core as ob  # noqa: E402

AVX2 = {"avx2", "fma"}
SKX = AVX2 | {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
CPL = SKX | {"avx512_bf16"}


def main():
    bad = 0
    cases = [("Prescott", CPL, False, "Cooperlake"), ("Prescott", SKX, False, "SkylakeX"),
             ("Prescott", AVX2, False, "Haswell"), ("Prescott", AVX2, True, "Zen"),
             ("Sandybridge", AVX2, False, "Haswell"), (None, SKX, False, "SkylakeX"),
             ("Haswell", CPL, False, None), ("haswell", SKX, False, None), ("Zen", AVX2, True, None),
             ("SkylakeX", CPL, False, None), ("Cooperlake", CPL, False, None),
             ("SapphireRapids", CPL, False, None), ("Prescott", set(), False, None),
             ("Prescott", {"avx2"}, False, None), ("Nehalem", {"sse4_2"}, False, None)]
    for current, flags, amd, want in cases:
        got = ob.core_for(current, flags, amd)
        if got != want:
            print(f"core_for({current!r}, {sorted(flags)}, amd={amd}) = {got!r}, expected {want!r}")
            bad += 1

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    script = ("import sys; sys.path.insert(0, %r); import openblas_core as ob; ob.fix(); import numpy; "
              "print(ob.current_core(), ob.core_for(ob.current_core(), *ob.cpu_flags()))"
              % os.path.join(os.path.dirname(HERE), "tools"))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=120)
    print("after fix():", out.stdout.strip(), out.stderr.strip()[-500:])
    if out.returncode != 0 or not out.stdout.strip().endswith("None"):
        print("after fix(), OpenBLAS still runs a core the rule replaces")
        bad += 1

    # set_threads sizes OpenBLAS's own pool in this process (tools/train/train.py's processes)
    script = ("import sys; sys.path.insert(0, %r); import openblas_core as ob; import numpy; "
              "a = numpy.ones((300, 300), numpy.float32); ob.set_threads(1); b = a @ a; "
              "print(ob.set_threads(2), ob.set_threads(1), float(b[0, 0]))"
              % os.path.join(os.path.dirname(HERE), "tools"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    print("set_threads:", out.stdout.strip(), out.stderr.strip()[-500:])
    if out.returncode != 0 or out.stdout.split() != ["1", "2", "300.0"]:
        print("set_threads did not size OpenBLAS's pool")
        bad += 1
    print(f"{len(cases) + 2 - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
