"""weights/fetch.sh against a local stand-in for the Hugging Face hub: a real
HTTP server (http.server) that answers the hub's two requests, the file
listing `/api/models/REPO/tree/REV` (size, LFS sha256 or git blob sha1) and
`/REPO/resolve/REV/FILE` (a redirect to a "CDN" path that honours Range, as
the hub's does), serving small upstream-format models (tests/reference/upstream.py)
under the real repository names.  Checks:

  - a fresh fetch of a single-file LM (the 3B layout) and of a sharded one with
    an index (the 9B layout) ends in the same model file as running convert.py
    on the files directly;
  - an interrupted download resumes with a Range request and verifies;
  - a second run downloads nothing;
  - a file whose bytes differ from the published hash is refused and removed,
    and the next run downloads it afresh;
  - an unknown model name and a hub that lacks a file are clear errors.
"""
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, os.path.join(ROOT, "weights"))
import flamingo_ref  # noqa: E402
import make_flamingo_golden as mfg  # noqa: E402
import stfile  # noqa: E402
import upstream  # noqa: E402

FETCH = os.path.join(ROOT, "weights", "fetch.sh")
PY = os.environ.get("PYTHON", sys.executable)
HEADS = "--perceiver-heads 2 --perceiver-dim-head 16 --xattn-heads 2 --xattn-dim-head 16"
LFS_EXT = (".pt", ".bin", ".safetensors")

failures = 0


def report(ok, what):
    global failures
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what}")


class Hub:
    """Files per repo, request log, and a switch that corrupts one file's bytes."""

    def __init__(self, root):
        self.root, self.log, self.corrupt = root, [], None

    def listing(self, repo):
        base = os.path.join(self.root, repo)
        items = []
        for dirpath, _, files in os.walk(base):
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                rel = os.path.relpath(p, base)
                data = open(p, "rb").read()
                item = {"type": "file", "path": rel, "size": len(data),
                        "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
                if rel.endswith(LFS_EXT):
                    item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                items.append(item)
        return items


def make_handler(hub):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_bytes(self, data, head=False):
            rng = self.headers.get("Range")
            start = 0
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not head:
                self.wfile.write(data[start:])

        def answer(self, head):
            path = self.path.split("?")[0]
            hub.log.append((self.command, path, self.headers.get("Range")))
            if path.startswith("/api/models/") and "/tree/" in path:
                repo = path[len("/api/models/"):].split("/tree/")[0]
                if not os.path.isdir(os.path.join(hub.root, repo)):
                    self.send_error(404)
                    return
                self.send_bytes(json.dumps(hub.listing(repo)).encode(), head)
            elif "/resolve/" in path:
                repo, rest = path[1:].split("/resolve/", 1)
                f = rest.split("/", 1)[1]
                if not os.path.isfile(os.path.join(hub.root, repo, f)):
                    self.send_error(404)
                    return
                self.send_response(302)
                self.send_header("Location", f"/cdn/{repo}/{f}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path.startswith("/cdn/"):
                p = os.path.join(hub.root, path[len("/cdn/"):])
                if not os.path.isfile(p):
                    self.send_error(404)
                    return
                data = open(p, "rb").read()
                if hub.corrupt and p.endswith(hub.corrupt):
                    data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
                self.send_bytes(data, head)
            else:
                self.send_error(404)

        def do_GET(self):
            self.answer(False)

        def do_HEAD(self):
            self.answer(True)
    return Handler


def main():
    tok_json = open(os.path.join(HERE, "fixtures", "tiny.tokenizer.json"), encoding="utf-8").read()
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(os.path.join(tmp, "hub"))
        srcs, upstream_truths = {}, []
        # the 3B layout (single pytorch_model.bin) and the 9B layout (shards + index)
        for name, of_repo, lm_repo, model, plan in (
                ("openflamingo-3b-vitl-mpt1b", "openflamingo/OpenFlamingo-3B-vitl-mpt1b",
                 "anas-awadalla/mpt-1b-redpajama-200b", "of_mosaic",
                 dict(vision="openai_jit", lm_container="bin", lm_dtype="f32")),
                ("openflamingo-9b-vitl-mpt7b", "openflamingo/OpenFlamingo-9B-vitl-mpt7b",
                 "anas-awadalla/mpt-7b", "of_mpt",
                 dict(vision="openai_jit", lm_container="bin_sharded", lm_dtype="f32"))):
            _, lm_over, every, vextra, init = mfg.MODELS[model]
            cfg = mfg.model_config(model, tok_json, lm_over, every)
            full = flamingo_ref.full_config(cfg)
            truth = upstream.complete_vision(mfg.random_state(full, 7, vextra, init), full, np.random.default_rng(1))
            truth = upstream.round_truth(truth, full, plan)
            if srcs:   # one ViT-L-14.pt serves every model, as upstream
                first = upstream_truths[0]
                truth.update({k: v for k, v in first.items() if k.startswith("vision_encoder.")})
            upstream_truths.append(truth)
            paths = upstream.write_upstream(truth, full, tok_json, os.path.join(tmp, "src", model), plan)
            os.makedirs(os.path.join(hub.root, of_repo))
            shutil.copy(paths["checkpoint"], os.path.join(hub.root, of_repo, "checkpoint.pt"))
            shutil.copytree(paths["lm"], os.path.join(hub.root, lm_repo))
            clip = os.path.join(hub.root, "clip", "ViT-L-14.pt")
            if not os.path.exists(clip):
                os.makedirs(os.path.dirname(clip))
                shutil.copy(paths["vision"], clip)
            paths["vision"] = clip
            srcs[name] = (model, paths)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(hub))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"

        def fetch(name, out_dir, extra_env=None):
            model, paths = srcs[name]
            env = dict(os.environ, FLAMINGO_HF_ENDPOINT=endpoint, PYTHON=PY,
                       FLAMINGO_CLIP_URL=f"{endpoint}/cdn/clip/ViT-L-14.pt",
                       FLAMINGO_CLIP_SHA256=hashlib.sha256(open(paths["vision"], "rb").read()).hexdigest(),
                       FLAMINGO_CONVERT_ARGS=f"--vision-config {paths['vision_config']} {HEADS} --quiet")
            env.update(extra_env or {})
            return subprocess.run(["sh", FETCH, name, out_dir], capture_output=True, env=env, timeout=300)

        def direct(name, out):
            model, paths = srcs[name]
            subprocess.run([PY, os.path.join(ROOT, "weights", "convert.py"), "--vision", paths["vision"],
                            "--vision-config", paths["vision_config"], "--lm", paths["lm"], "--checkpoint",
                            paths["checkpoint"], "--tokenizer", paths["tokenizer"], "--out", out, "--name", name,
                            "--quiet"] + HEADS.split(), check=True, timeout=300)
            return out

        def same_model(a, b):
            """Same tensors, config and tokenizer (the "source" metadata names other folders)."""
            (ta, ma), (tb, mb) = stfile.read(a), stfile.read(b)
            return (ma["config"] == mb["config"] and ma["tokenizer"] == mb["tokenizer"] and set(ta) == set(tb)
                    and all(np.array_equal(ta[k], tb[k]) for k in ta))

        for name in srcs:
            out_dir = os.path.join(tmp, "models")
            hub.log.clear()
            p = fetch(name, out_dir)
            out = os.path.join(out_dir, f"{name}.f32.safetensors")
            same = p.returncode == 0 and os.path.exists(out) and \
                same_model(out, direct(name, os.path.join(tmp, "direct.safetensors")))
            ranged = [x for x in hub.log if x[0] == "GET" and x[1].startswith("/cdn/")]
            report(same, f"{name}: fetched {len(ranged)} files, verified, converted; the file equals "
                   f"convert.py's on the same inputs {p.stderr.decode().strip()[-300:] if not same else ''}")

        name = "openflamingo-3b-vitl-mpt1b"
        out_dir = os.path.join(tmp, "models")
        dl = os.path.join(out_dir, "downloads", "openflamingo_OpenFlamingo-3B-vitl-mpt1b")
        ck = os.path.join(dl, "checkpoint.pt")
        # a second run downloads nothing
        hub.log.clear()
        p = fetch(name, out_dir)
        got = [x for x in hub.log if x[1].startswith("/cdn/") and x[0] == "GET"]
        report(p.returncode == 0 and not got, f"second run: no downloads ({len(got)} file requests)")
        # an interrupted download resumes
        data = open(ck, "rb").read()
        os.remove(ck)
        os.remove(ck + ".verified")
        with open(ck + ".part", "wb") as f:
            f.write(data[: len(data) // 2])
        hub.log.clear()
        p = fetch(name, out_dir)
        ranges = [x[2] for x in hub.log if x[1].endswith("checkpoint.pt") and x[1].startswith("/cdn/")]
        report(p.returncode == 0 and open(ck, "rb").read() == data and ranges == [f"bytes={len(data) // 2}-"],
               f"interrupted download resumed with {ranges}")
        # bytes that differ from the published hash: refused, removed, fetched afresh next time
        os.remove(ck)
        os.remove(ck + ".verified")
        hub.corrupt = "checkpoint.pt"
        p = fetch(name, out_dir)
        err = p.stderr.decode()
        report(p.returncode == 1 and "does not match the published file" in err and not os.path.exists(ck),
               f"corrupted download refused: {err.strip().splitlines()[-1] if err.strip() else ''}")
        hub.corrupt = None
        p = fetch(name, out_dir)
        report(p.returncode == 0 and open(ck, "rb").read() == data, "the next run downloads it afresh")
        # unknown names, missing files
        p = subprocess.run(["sh", FETCH, "openflamingo-2b"], capture_output=True, timeout=60)
        err = p.stderr.decode()
        report(p.returncode == 1 and "unknown model 'openflamingo-2b'" in err and "openflamingo-9b-vitl-mpt7b" in err,
               f"unknown model: {err.strip()[:150]}")
        os.remove(os.path.join(hub.root, "anas-awadalla/mpt-1b-redpajama-200b", "tokenizer.json"))
        shutil.rmtree(os.path.join(out_dir, "downloads", "anas-awadalla_mpt-1b-redpajama-200b"))
        p = fetch(name, out_dir)
        err = p.stderr.decode()
        report(p.returncode == 1 and "has no file 'tokenizer.json'" in err, f"hub without a file: {err.strip()[-150:]}")
        p = subprocess.run(["sh", FETCH, "--list"], capture_output=True, timeout=60)
        names = p.stdout.decode().split()
        bin_ = os.environ.get("FLAMINGO_BIN", "./flamingo")
        listed = [m["name"] for m in json.loads(subprocess.run([bin_, "models", "--json"], capture_output=True,
                                                               timeout=60).stdout)]
        report(len(names) == 5 and names == listed, f"fetch.sh --list and flamingo models name the same models: {names}")
        server.shutdown()
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
