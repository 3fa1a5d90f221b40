"""`flamingo serve` under load: 16 clients at once, mixed endpoints (chat,
completions with 0 to 3 images, raw captions, 3-beam requests), streaming
and not, some of them hanging up mid-stream or before the answer.  Every
completed answer must equal the same request sent alone (greedy and beam
search are deterministic, and batching must not change them); no 5xx; the
hung-up requests are freed (no active sequence, nothing queued, nothing in
flight at the end); the server then exits 0 on SIGTERM (under ASan: with no
leak report).  --max-seqs 6 makes requests queue and join running batches."""
import json
import os
import random
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from server_util import FIX, Server, data_uri, sanitizer_report, sse_events  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "weights"))
import stfile  # noqa: E402

MODEL = os.path.join(FIX, "of_mpt.safetensors")
CAT = os.path.join(FIX, "img", "cat.jpg")
CLIENTS, PER_CLIENT = 16, 6


def requests():
    """(path, body or raw bytes, content type) of every kind."""
    out = []
    _, meta = stfile.read(os.path.join(FIX, "of_mpt.io.safetensors"))
    for case in json.loads(meta["cases"]):
        out.append(("/v1/completions", {"prompt": case["prompt"], "images": [data_uri(p) for p in case["images"]],
                                        "max_tokens": case["max_new_tokens"]}, None))
    cat = data_uri(CAT)
    for text, mt in (("a", 40), ("What is it", 12), ("zzz", 30)):
        out.append(("/v1/chat/completions", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": cat}}, {"type": "text", "text": text}]}], "max_tokens": mt},
            None))
    out.append(("/v1/chat/completions", {"messages": [{"role": "user", "content": "ok"}], "max_tokens": 50}, None))
    out.append(("/v1/completions", {"prompt": "<image>Output:", "images": [cat], "max_tokens": 8, "num_beams": 3},
                None))
    with open(CAT, "rb") as f:
        out.append(("/v1/caption", f.read(), "image/jpeg"))
    return out


def answer(path, data):
    if path.endswith("chat/completions"):
        return [c["message"]["content"] for c in data["choices"]]
    if path.endswith("caption"):
        return [data["caption"]]
    return [c["text"] for c in data["choices"]]


def stream_answer(path, raw):
    ev = sse_events(raw)
    assert ev[-1] == "[DONE]", ev[-2:]
    text = ""
    for e in ev[:-1]:
        c = json.loads(e)
        assert "error" not in c, c
        d = c["choices"][0]
        text += d["delta"].get("content", "") if "delta" in d else d["text"]
    return [text]


def main():
    srv = Server(MODEL, "--max-seqs", "6", "--image-batch", "2", "--step-rows", "24")
    reqs = requests()
    fails = []
    try:
        alone = []
        for path, body, ctype in reqs:
            hdr = {"Content-Type": ctype} if ctype else None
            st, hd, data = srv.post(path, body, headers=hdr)
            assert st == 200, (path, st, data[:300])
            alone.append(answer(path, json.loads(data)))
        print(f"{len(reqs)} requests answered alone")
        counts = {"done": 0, "streamed": 0, "hung_up": 0}
        lock = threading.Lock()

        def client(seed):
            rnd = random.Random(seed)
            for k in range(PER_CLIENT):
                i = rnd.randrange(len(reqs))
                path, body, ctype = reqs[i]
                stream = ctype is None and rnd.random() < 0.5
                hang = rnd.random() < 0.2
                if stream:
                    body = dict(body, stream=True)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                if hang:  # send, maybe read a little, hang up
                    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
                    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype or 'application/json'}\r\n"
                              f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                    if stream:
                        s.recv(200)
                    s.close()
                    with lock:
                        counts["hung_up"] += 1
                    continue
                c = srv.conn(timeout=300)
                c.request("POST", path, body=payload, headers={"Content-Type": ctype or "application/json"})
                r = c.getresponse()
                raw = r.read()
                c.close()
                try:
                    got = stream_answer(path, raw) if stream else answer(path, json.loads(raw))
                except Exception as e:  # noqa: BLE001
                    got = f"unreadable: {e}: {raw[:300]!r}"
                with lock:
                    if r.status != 200 or got != alone[i]:
                        fails.append(f"client {seed} request {i} ({path}, stream={stream}): status {r.status}, "
                                     f"got {got!r}, alone {alone[i]!r}")
                    counts["streamed" if stream else "done"] += 1

        t0 = time.time()
        ts = [threading.Thread(target=client, args=(s,)) for s in range(CLIENTS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=600)
        dt = time.time() - t0
        print(f"{CLIENTS} clients x {PER_CLIENT}: {counts} in {dt:.1f} s")
        # hung-up requests are freed: nothing active or queued once the dust settles
        deadline = time.time() + 30
        while True:
            st, hd, m = srv.request("GET", "/metrics")
            vals = {ln.split()[0]: float(ln.split()[1]) for ln in m.decode().splitlines()
                    if ln and not ln.startswith("#")}
            idle = vals["flamingo_active_sequences"] == 0 and vals["flamingo_queue_depth"] == 0 and \
                vals["flamingo_requests_in_flight"] == 1
            if idle or time.time() > deadline:
                break
            time.sleep(0.2)
        if not idle:
            fails.append(f"not idle after the load: {vals}")
        five = [k for k in vals if k.startswith("flamingo_requests_total") and '"5' in k]
        if five:
            fails.append(f"5xx answers: {five}")
    finally:
        code, out = srv.stop()
    if code != 0 or sanitizer_report(out):
        fails.append(f"server exit {code}:\n{out[-4000:]}")
    gone = out.count(" 499 ")
    print(f"{gone} requests logged as closed by the client (499)")
    for f in fails:
        print("FAIL", f)
    print(f"{len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
