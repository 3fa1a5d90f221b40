"""The committed bundled model, weights/flamingo-tiny.safetensors: at most 30 MB;
`flamingo run` without -m takes it; and the C engine agrees with the PyTorch
reference on it (tests/bundled_check.py: 50 held-out images of the synthetic
world, logits within 1e-4 of their range, greedy answers identical)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
MODEL = os.path.join(ROOT, "weights", "flamingo-tiny.safetensors")


def main():
    fails = 0
    size = os.path.getsize(MODEL)
    ok = size <= 30 * 1024 * 1024
    print(("ok  " if ok else "FAIL") + f" {MODEL}: {size} bytes (limit 30 MiB)")
    fails += not ok
    # the default model: run without -m, outside the checkout's folder, equals run -m FILE
    img = os.path.join(HERE, "fixtures", "img", "cat.jpg")
    prompt = "<image>Question:What color is the circle? Short answer:"
    env = {k: v for k, v in os.environ.items() if k != "FLAMINGO_MODEL"}
    a = subprocess.run([os.path.abspath(BIN), "run", "-i", img, "-p", prompt], capture_output=True, timeout=60,
                       env=env, cwd="/")
    b = subprocess.run([os.path.abspath(BIN), "run", "-m", MODEL, "-i", img, "-p", prompt], capture_output=True,
                       timeout=60)
    ok = a.returncode == 0 and b.returncode == 0 and a.stdout == b.stdout
    print(("ok  " if ok else "FAIL") + f" run without -m uses the bundled model: {a.stdout!r} {b.stdout!r} "
          f"{a.stderr.decode()[-300:]}")
    fails += not ok
    r = subprocess.run([sys.executable, os.path.join(HERE, "bundled_check.py")], timeout=900,
                       env=dict(os.environ, FLAMINGO_BUNDLED=MODEL))
    fails += r.returncode != 0
    print(f"{fails} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
