#!/usr/bin/env python3
"""`make bench-compare`: flamingo.c's `bench --synthetic openflamingo-3b --json` next to the
PyTorch peer (bench/pytorch_peer.py) in each dtype, run one after the other in one go, with
the ratio of flamingo.c to the best peer on each figure (above 1: flamingo.c is better, for
times as for rates).  The limits each side measured (sgemm, memory bandwidth) are shown too:
they were measured minutes apart on a shared machine.

    python3 bench/compare.py [--peer-dtypes f32,bf16] [--threads N]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (key, higher is better)
ROWS = [("sgemm_gflops", True), ("mem_bw_gbs", True), ("vision_ms_b1", False), ("vision_ms_b8", False),
        ("vision_ratio_b8", True), ("perceiver_ms", False), ("prefill_tps_64", True), ("prefill_tps_512", True),
        ("decode_tps_1", True), ("decode_ratio_1", True), ("decode_tps_4", True), ("decode_tps_8", True),
        ("decode_tps_16", True), ("ttft_new_ms", False), ("ttft_cached_ms", False), ("peak_rss_mb", False)]


def run_json(cmd):
    print("bench-compare:", " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench-compare: {cmd[0]} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "flamingo"))
    ap.add_argument("--peer-dtypes", default="f32,bf16")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    cols = [("flamingo.c f32", run_json([args.bin, "bench", "--synthetic", "openflamingo-3b", "--json",
                                         "-t", str(args.threads)]))]
    for dt in args.peer_dtypes.split(","):
        cols.append((f"pytorch {dt}", run_json([sys.executable, os.path.join(HERE, "pytorch_peer.py"),
                                                 "--dtype", dt, "--json", "--threads", str(args.threads)])))
    print(f"{'figure':18s}" + "".join(f"{name:>18s}" for name, _ in cols) + f"{'c / best peer':>16s}")
    for key, higher in ROWS:
        vals = [c.get(key) for _, c in cols]
        peers = [v for v in vals[1:] if isinstance(v, (int, float)) and v > 0]
        ratio = ""
        if peers and isinstance(vals[0], (int, float)) and vals[0] > 0 and not key.startswith(("sgemm", "mem_bw")):
            best = max(peers) if higher else min(peers)
            ratio = f"{(vals[0] / best if higher else best / vals[0]):.2f}x"
        print(f"{key:18s}" + "".join(f"{'' if v is None else v:>18}" for v in vals) + f"{ratio:>16s}")


if __name__ == "__main__":
    main()
