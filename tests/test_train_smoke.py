"""The bundled model's training pipeline (tools/train/train.py --smoke: a few
steps of every stage on a few images, under a minute), end to end: the file
it writes loads in the C engine, and the engine agrees with the PyTorch
reference on it (tests/bundled_check.py against that file: logits within 1e-4
of their range, greedy answers identical on 50 held-out images).  The full
training (about 56 minutes) is not run here."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "smoke.safetensors")
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train", "train.py"), "--smoke", "--out", out,
                            "--work", tmp, "--procs", "2", "--workers", "1"], capture_output=True, timeout=600)
        print(p.stdout.decode()[-1500:], p.stderr.decode()[-1500:])
        if p.returncode != 0 or not os.path.exists(out):
            print("FAIL the smoke training")
            return 1
        info = subprocess.run([BIN, "info", out], capture_output=True, timeout=60)
        if info.returncode != 0:
            print("FAIL flamingo info:", info.stderr.decode())
            return 1
        r = subprocess.run([sys.executable, os.path.join(HERE, "bundled_check.py")], timeout=600,
                           env=dict(os.environ, FLAMINGO_BUNDLED=out))
        return r.returncode


if __name__ == "__main__":
    sys.exit(main())
