"""Benchmark of `flamingo serve` (not a test): aggregate decode tokens/s with
1, 4, 8 and 16 concurrent streaming clients, and the time to first token of a
request with a new image against one whose image is in the cache.

    /usr/bin/python3 bench/serve_load.py MODEL [--tokens 24] [--json]

MODEL is best the OpenFlamingo-3B shape with random weights
(bench/convert_peak.py DIR --dtypes f32 --keep writes one).  Figures are
given as ratios measured in the same run (aggregate over 1-sequence rate;
cached over new time to first token), because the machines are shared.

Aggregate decode rate at C clients: the tokens that arrive while all C
streams are decoding (after the last one's first token, before the first
one ends), over that window's length.  Time to first token: from sending
the request to the first event with text, seen by the client.
"""
import argparse
import base64
import io
import json
import os
import sys
import threading
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from server_util import Server  # noqa: E402


def photo(seed):
    rng = np.random.default_rng(seed)
    a = (rng.random((480, 640, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def stream(srv, body, out):
    """POST a streaming chat; out gets (t_send, [(t, n_text_chunks)], usage)."""
    c = srv.conn(timeout=3600)
    t0 = time.time()
    c.request("POST", "/v1/chat/completions", json.dumps(dict(body, stream=True,
                                                             stream_options={"include_usage": True})),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    times, usage = [], None
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        ev = json.loads(line[6:])
        if "error" in ev:
            raise RuntimeError(ev)
        if ev.get("usage"):
            usage = ev["usage"]
        for ch in ev["choices"]:
            if ch["delta"].get("content") is not None and "role" not in ch["delta"]:
                times.append(time.time())
    c.close()
    out.append((t0, times, usage))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--clients", default="1,4,8,16")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    srv = Server(args.model, "--max-seqs", "16", "--max-tokens", "512")
    res = {}
    try:
        # time to first token: a new image, then the same image again (cached)
        new, cached = [], []
        for seed in range(2):
            url = photo(seed)
            body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                              {"type": "text", "text": "What is in the picture?"}]}],
                    "max_tokens": 1}
            for into in (new, cached):
                out = []
                stream(srv, body, out)
                t0, times, _ = out[0]
                into.append(times[0] - t0)
        res["ttft_new_ms"] = 1000 * min(new)
        res["ttft_cached_ms"] = 1000 * min(cached)
        res["ttft_cached_over_new"] = min(cached) / min(new)
        # aggregate decode at C concurrent streams (text prompts: decode is what is measured)
        for C in [int(x) for x in args.clients.split(",")]:
            outs = []
            body = {"messages": [{"role": "user", "content": "Describe a busy street at night in detail."}],
                    "max_tokens": args.tokens, "temperature": 0}
            ts = [threading.Thread(target=stream, args=(srv, body, outs)) for _ in range(C)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            lo = max(times[0] for _, times, _ in outs)
            hi = min(times[-1] for _, times, _ in outs)
            n = sum(sum(1 for t in times if lo < t <= hi) for _, times, _ in outs)
            gen = sum(u["completion_tokens"] for _, _, u in outs)
            res[f"decode_tps_{C}"] = n / (hi - lo) if hi > lo else 0.0
            res[f"generated_{C}"] = gen
            print(f"  {C:2d} clients: {res[f'decode_tps_{C}']:.2f} tokens/s aggregate "
                  f"({n} tokens in the common window of {hi - lo:.1f} s; {gen} generated)", file=sys.stderr)
        one = res.get("decode_tps_1") or 0
        for C in [int(x) for x in args.clients.split(",")]:
            if one:
                res[f"decode_ratio_{C}_over_1"] = res[f"decode_tps_{C}"] / one
        with open(f"/proc/{srv.proc.pid}/status") as f:
            for ln in f:
                if ln.startswith("VmHWM"):
                    res["server_peak_rss_mb"] = int(ln.split()[1]) / 1024
    finally:
        code, out = srv.stop()
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:28s} {v:.3f}" if isinstance(v, float) else f"{k:28s} {v}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
