"""`flamingo eval` scores exactly: on items whose answers are the model's own
greedy outputs (from `flamingo run`) for one group and wrong for another, it
reports 100% and 0%; few-shot items with three images, shared shot images
(found in the cache), paths relative to the data file, the table and JSON
outputs, and --show's wrong answers with their query images.  (The bundled model's accuracy is `make eval`, not a test.)"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "fixtures", "of_mpt.safetensors")
SK = "/usr/lib/python3/dist-packages/skimage/data"


def run(prompt, images):
    args = [BIN, "run", "-m", MODEL, "-n", "8", "-p", prompt]
    for im in images:
        args += ["-i", im]
    return subprocess.run(args, capture_output=True, check=True, timeout=60).stdout.decode()[:-1]


def main():
    tmp = tempfile.mkdtemp()
    try:
        os.makedirs(os.path.join(tmp, "images"))
        names = []
        for f in ("astronaut.png", "chelsea.png", "coffee.png"):
            shutil.copy(os.path.join(SK, f), os.path.join(tmp, "images", f))
            names.append("images/" + f)
        shutil.copy(os.path.join(HERE, "fixtures", "img", "cat.jpg"), os.path.join(tmp, "images", "cat.jpg"))
        names.append("images/cat.jpg")
        items = []
        for i, q in enumerate(names):
            p = "<image>Question:What is it? Short answer:"
            want = run(p, [os.path.join(tmp, q)])
            items.append({"type": "right", "shots": 0, "images": [q], "prompt": p, "answer": want.strip()})
            items.append({"type": "wrong", "shots": 0, "image": q, "prompt": p, "answer": want + "x"})
            fs = "<image>Output:a.<|endofchunk|><image>Output:b.<|endofchunk|><image>Output:"
            shots = [names[(i + 1) % 4], names[(i + 2) % 4], q]
            want = run(fs, [os.path.join(tmp, s) for s in shots])
            items.append({"type": "right", "shots": 2, "images": shots, "prompt": fs, "answer": want.strip()})
        data = os.path.join(tmp, "eval.jsonl")
        with open(data, "w") as f:
            for it in items:
                f.write(json.dumps(it) + "\n")
        p = subprocess.run([BIN, "eval", "-m", MODEL, "-n", "8", "--data", data, "--json"], capture_output=True,
                           timeout=120)
        r = json.loads(p.stdout)
        acc = {(g["type"], g["shots"]): (g["items"], g["accuracy"]) for g in r["groups"]}
        want = {("right", 0): (4, 1.0), ("wrong", 0): (4, 0.0), ("right", 2): (4, 1.0)}
        ok = p.returncode == 0 and acc == want and r["items"] == 12 and abs(r["accuracy"] - 8 / 12) < 1e-6
        print(("ok  " if ok else "FAIL") + f" eval scores: {acc}")
        t = subprocess.run([BIN, "eval", "-m", MODEL, "-n", "8", "--data", data, "--show", "3"], capture_output=True,
                           timeout=120)
        table = t.stdout.decode()
        ok2 = t.returncode == 0 and "right            2       4    100.0%" in table and "all" in table
        print(("ok  " if ok2 else "FAIL") + " the table\n" + table)
        # --show K: the first K wrong answers, each with its query image (to pair zero- and few-shot)
        shown = [ln for ln in t.stderr.decode().splitlines() if ln.startswith("wrong: ")]
        want_shown = [f"wrong: wrong (0 shots) {os.path.join(tmp, q)}: " for q in names[:3]]
        ok4 = len(shown) == 3 and all(ln.startswith(w) and ln.endswith('x"') for ln, w in zip(shown, want_shown))
        print(("ok  " if ok4 else "FAIL") + " --show 3: " + " | ".join(shown))
        bad = subprocess.run([BIN, "eval", "-m", MODEL, "--data", os.path.join(tmp, "none.jsonl")],
                             capture_output=True, timeout=60)
        ok3 = bad.returncode == 1 and b"cannot open" in bad.stderr
        print(("ok  " if ok3 else "FAIL") + " a missing data file")
        return 0 if ok and ok2 and ok3 and ok4 else 1
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
