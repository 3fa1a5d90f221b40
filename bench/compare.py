#!/usr/bin/env python3
"""`make bench-compare`: flamingo.c's `bench --synthetic openflamingo-3b --json` next to the
PyTorch peer (bench/pytorch_peer.py) in each dtype, run one after the other in one go, with
the ratio of flamingo.c to the best peer on each figure (above 1: flamingo.c is better, for
times as for rates).  The limits each side measured (sgemm, memory bandwidth) are shown too:
they were measured minutes apart on a shared machine.

    python3 bench/compare.py [--dtypes f32,bf16,q8_0] [--peer-dtypes auto|f32|bf16|f32,bf16] [--threads N]

--dtypes: flamingo.c's weight formats to run (each its own column and its own ratio column).

auto (the default): f32, and bf16 where the CPU has bf16 instructions (AMX-BF16 or
AVX512-BF16). Without them PyTorch's bf16 autocast is emulated and about 80x slower than f32
(measured on the AVX2 development machine), which would make the run take hours to show a
figure nobody would pick.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import openblas_core  # noqa: E402

# (key, higher is better)
ROWS = [("blas_core", True), ("sgemm_gflops", True), ("mem_bw_gbs", True), ("vision_ms_b1", False), ("vision_ms_b8", False),
        ("vision_ratio_b8", True), ("perceiver_ms", False), ("prefill_tps_64", True), ("prefill_tps_512", True),
        ("decode_tps_1", True), ("decode_ratio_1", True), ("decode_tps_4", True), ("decode_tps_8", True),
        ("decode_tps_16", True), ("ttft_new_ms", False), ("ttft_cached_image_ms", False),
        ("ttft_cached_ms", False), ("peak_rss_mb", False)]


def run_json(cmd):
    """One side's JSON object; {} (an empty column) when it fails, so that a failing peer does not
    throw away the other runs (each takes minutes). Each object is also echoed to stderr as it
    arrives."""
    print("bench-compare:", " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"bench-compare: {cmd[0]} failed ({p.returncode}):\n{p.stderr[-2000:]}", file=sys.stderr, flush=True)
        return {}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def cpu_has_bf16():
    flags, _ = openblas_core.cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "flamingo"))
    ap.add_argument("--dtypes", default="f32,bf16,q8_0")
    ap.add_argument("--peer-dtypes", default="auto")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    if args.peer_dtypes == "auto":
        args.peer_dtypes = "f32,bf16" if cpu_has_bf16() else "f32"
        if args.peer_dtypes == "f32":
            print("bench-compare: no bf16 instructions on this CPU: PyTorch bf16 left out "
                  "(--peer-dtypes f32,bf16 to run it anyway)", file=sys.stderr)
    ours = args.dtypes.split(",")
    cols = [(f"flamingo.c {dt}", run_json([args.bin, "bench", "--synthetic", "openflamingo-3b", "--dtype", dt,
                                           "--json", "-t", str(args.threads)])) for dt in ours]
    for dt in args.peer_dtypes.split(","):
        cols.append((f"pytorch {dt}", run_json([sys.executable, os.path.join(HERE, "pytorch_peer.py"),
                                                 "--dtype", dt, "--json", "--threads", str(args.threads)])))
    n = len(ours)
    print(f"{'figure':18s}" + "".join(f"{name:>18s}" for name, _ in cols) +
          "".join(f"{dt + ' / best peer':>20s}" for dt in ours))
    for key, higher in ROWS:
        vals = [c.get(key) for _, c in cols]
        peers = [v for v in vals[n:] if isinstance(v, (int, float)) and v > 0]
        ratios = []
        for v in vals[:n]:
            r = ""
            if peers and isinstance(v, (int, float)) and v > 0 and not key.startswith(("sgemm", "mem_bw")):
                best = max(peers) if higher else min(peers)
                r = f"{(v / best if higher else best / v):.2f}x"
            ratios.append(r)
        print(f"{key:18s}" + "".join(f"{'' if v is None else v:>18}" for v in vals) +
              "".join(f"{r:>20s}" for r in ratios))
    if any(not c for _, c in cols):
        sys.exit("bench-compare: a run failed (its column is empty; the error is above)")


if __name__ == "__main__":
    main()
