"""Real clients against `flamingo serve` (tests/node/, pinned in
package-lock.json and installed with `npm ci` on first use):

- the official `openai` npm package drives /v1/chat/completions with an
  image, streaming and not, through --api-key (openai_chat.mjs checks the
  shapes; here: its answer equals the same request sent by hand);
- headless Chromium (Debian's chromium, through puppeteer-core) loads the
  web page at /, uploads a photo, asks with the keyboard, and the answer
  that appears equals the server's greedy answer to the same request; a
  screenshot goes to $BUILD/test-logs/web.png;
- the same page on the bundled model: a photo of a red circle, "What color
  is the circle?", and the answer must be "red" (web-bundled.png).
"""
import json
import os
import subprocess
import sys

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from server_util import FIX, Server, data_uri, sanitizer_report  # noqa: E402

NODE_DIR = os.path.join(HERE, "node")
CAT = os.path.join(FIX, "img", "cat.jpg")
MODEL = os.path.join(FIX, "of_mpt.safetensors")
BUNDLED = os.path.join(os.path.dirname(HERE), "weights", "flamingo-tiny.safetensors")


def stop_failed(srv):
    """Stop the server: 1 (and the end of its output) if it exited badly or a sanitizer spoke."""
    code, out = srv.stop()
    if code != 0 or sanitizer_report(out):
        print(f"FAIL server exit {code}\n{out[-3000:]}")
        return 1
    return 0


def npm_ready():
    """node_modules matches the pins, or `npm ci` makes it so."""
    pins = json.load(open(os.path.join(NODE_DIR, "package.json")))["devDependencies"]
    for name, version in pins.items():
        p = os.path.join(NODE_DIR, "node_modules", name, "package.json")
        if not os.path.exists(p) or json.load(open(p))["version"] != version:
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)
            return


def node(script, *args):
    p = subprocess.run(["node", os.path.join(NODE_DIR, script), *args], capture_output=True, timeout=300)
    out = p.stdout.decode()
    print(out.strip()[:2000])
    if p.returncode != 0:
        print(p.stderr.decode()[-3000:])
        raise RuntimeError(f"{script}: exit {p.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def main():
    npm_ready()
    fails = 0
    srv = Server(MODEL, "--api-key", "k-123")
    try:
        r = node("openai_chat.mjs", srv.base, CAT, "k-123")
        st, want = srv.json("/v1/chat/completions",
                            {"messages": [{"role": "user", "content": [
                                {"type": "text", "text": r.get("question", "What is in this picture?")},
                                {"type": "image_url", "image_url": {"url": data_uri(CAT)}}]}],
                             "max_tokens": 16, "temperature": 0},
                            headers={"Authorization": "Bearer k-123"})
        ok = r["ok"] and r["text"] == r["stream_text"] and st == 200 and \
            want["choices"][0]["message"]["content"] == r["text"]
        print(("ok  " if ok else "FAIL") + " the openai package: streaming and not, equal to a hand-made request")
        fails += not ok
    finally:
        fails += stop_failed(srv)

    srv = Server(MODEL)
    try:
        shot = os.path.join(os.environ.get("BUILD", "build"), "test-logs", "web.png")
        os.makedirs(os.path.dirname(shot), exist_ok=True)
        for question in ("What animal is this?", ""):
            r = node("web.mjs", srv.base, CAT, question, shot)
            content = [{"type": "image_url", "image_url": {"url": data_uri(CAT)}}]
            if question:
                content.append({"type": "text", "text": question})
            st, want = srv.json("/v1/chat/completions", {"messages": [{"role": "user", "content": content}],
                                                         "max_tokens": 64, "temperature": 0})
            ok = st == 200 and r["answer"] == want["choices"][0]["message"]["content"] and os.path.getsize(shot) > 1000
            print(("ok  " if ok else "FAIL") + f" the web page in Chromium, question {question!r}: {r['answer']!r}"
                  f" (screenshot {shot})")
            fails += not ok
    finally:
        fails += stop_failed(srv)
    # the bundled model answers a question about a photo through the page
    shot = os.path.join(os.environ.get("BUILD", "build"), "test-logs", "web-bundled.png")
    circle = os.path.join(os.environ.get("BUILD", "build"), "test-logs", "red-circle.jpg")
    im = Image.new("RGB", (480, 360), (235, 235, 225))
    ImageDraw.Draw(im).ellipse((170, 110, 310, 250), fill=(210, 30, 35))
    im.save(circle, quality=90)
    srv = Server(BUNDLED)
    try:
        r = node("web.mjs", srv.base, circle, "What color is the circle?", shot)
        ok = r["answer"].strip() == "red"
        print(("ok  " if ok else "FAIL") + f" the bundled model in the page: 'What color is the circle?' -> "
              f"{r['answer']!r} (screenshot {shot})")
        fails += not ok
    finally:
        fails += stop_failed(srv)
    print(f"{fails} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
