"""`flamingo caption` on a folder of 200 images (195 real ones of several
formats in nested folders, 5 corrupt, plus files that are not images):
195 caption lines and 5 error lines, exit 0, captions equal to `flamingo run`
with the same prompt; killed halfway (SIGKILL, also with a half-written
last line) and started again with the same --output, it captions only the
rest, and every image ends up exactly once; --shard 0/2 and 1/2 split the
folder without overlap and together cover it."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "fixtures", "of_mpt.safetensors")
fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL", what)


def make_folder(d):
    rng = np.random.default_rng(5)
    paths = []
    for i in range(195):
        sub = os.path.join(d, f"part{i % 3}", "deeper" if i % 5 == 0 else "")
        os.makedirs(sub, exist_ok=True)
        a = (rng.random((24 + i % 17, 30 + i % 11, 3)) * 255).astype(np.uint8)
        ext = ["jpg", "png", "bmp", "gif"][i % 4]
        p = os.path.normpath(os.path.join(sub, f"img{i:03d}.{ext}"))
        Image.fromarray(a).save(p)
        paths.append(p)
    for i in range(5):
        p = os.path.join(d, f"corrupt{i}.{['jpg', 'png'][i % 2]}")
        with open(p, "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 not really" if i % 2 == 0 else b"\x89PNG\r\n\x1a\n truncated")
        paths.append(p)
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("not an image")
    return sorted(paths)


def lines(path):
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def caption(*args, **kw):
    return subprocess.run([BIN, "caption", "-m", MODEL, "-n", "6", *args], capture_output=True, timeout=600, **kw)


def main():
    tmp = tempfile.mkdtemp()
    try:
        d = os.path.join(tmp, "photos")
        paths = make_folder(d)
        p = caption(d)
        out = [json.loads(ln) for ln in p.stdout.decode().splitlines()]
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr.decode()[-500:]}")
        got = [o["path"] for o in out]
        check(got == paths, "one line per image, in sorted order, nothing else")
        caps = [o for o in out if "caption" in o]
        errs = [o for o in out if "error" in o]
        check(len(caps) == 195 and len(errs) == 5 and all("corrupt" in o["path"] for o in errs),
              f"{len(caps)} captions, {len(errs)} errors")
        check(all(isinstance(o["ms"], (int, float)) and o["ms"] >= 0 for o in caps), "ms")
        for o in caps[:: 40]:
            r = subprocess.run([BIN, "run", "-m", MODEL, "-n", "6", "-i", o["path"], "-p", "<image>Output:"],
                               capture_output=True, timeout=60)
            check(r.stdout.decode()[:-1] == o["caption"], f"{o['path']}: {o['caption']!r} != run's {r.stdout!r}")

        # resume: kill halfway, a half-written line, start again
        res = os.path.join(tmp, "out.jsonl")
        proc = subprocess.Popen([BIN, "caption", "-m", MODEL, "-n", "6", "--batch", "1", "-o", res, d],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and (not os.path.exists(res) or len(open(res).readlines()) < 40):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = lines(res)
        check(0 < len(first) < 200, f"killed halfway: {len(first)} lines")
        with open(res, "a") as f:
            f.write('{"path": "' + paths[-1])  # a line cut in the middle
        p = caption("-o", res, d)
        check(p.returncode == 0, f"resume exit {p.returncode}")
        with open(res) as f:
            raw = f.read().splitlines()
        good = [json.loads(ln) for ln in raw if ln.startswith("{") and ln.endswith("}")]
        check(sorted(o["path"] for o in good) == paths, "after the resume every image is there exactly once")
        check(len(good) == 200 and len(raw) == 201, f"{len(good)} good lines, {len(raw)} lines")
        p = caption("-o", res, d)
        check(p.returncode == 0 and len(open(res).read().splitlines()) == 201, "a third run adds nothing")

        # shards
        a, b = os.path.join(tmp, "a.jsonl"), os.path.join(tmp, "b.jsonl")
        check(caption("--shard", "0/2", "-o", a, d).returncode == 0, "shard 0/2")
        check(caption("--shard", "1/2", "-o", b, d).returncode == 0, "shard 1/2")
        sa, sb = {o["path"] for o in lines(a)}, {o["path"] for o in lines(b)}
        check(not (sa & sb) and sorted(sa | sb) == paths and abs(len(sa) - len(sb)) <= 1, "shards split the folder")

        # usage errors
        for args, want in ((["--shard", "2/2", d], "--shard"), (["-p", "no marker", d], "exactly one <image>"),
                           ([], "at least one")):
            p = caption(*args)
            check(p.returncode in (1, 2) and want in p.stderr.decode(), f"{args}: {p.returncode} {p.stderr!r}")
    finally:
        shutil.rmtree(tmp)
    print(f"{len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
