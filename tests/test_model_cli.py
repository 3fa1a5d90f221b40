"""The language side end to end through the command line, on the golden
models: `flamingo logits` with the real photographs (decoded and
preprocessed by flamingo.c) against the reference's logits (photos
preprocessed by PIL/torchvision), and `flamingo run` (greedy and 3 beams)
against the reference's generations decoded by the reference tokenizer
(tests/reference/bpe_ref.py).  Pass: logits within 1e-4 of their range,
generated text identical.  Also the command line's error contract for run,
logits and tokenize."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "weights"))
import bpe_ref  # noqa: E402
import stfile  # noqa: E402

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
FIX = os.path.join(HERE, "fixtures")
MODELS = ["of_mosaic", "of_mpt", "of_neox", "of_neox4"]


def run(args, check=True):
    p = subprocess.run([BIN] + args, capture_output=True, timeout=300)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.decode().strip()}")
    return p


def main():
    bad = 0
    tok = bpe_ref.Tokenizer.from_file(os.path.join(FIX, "tiny.tokenizer.json"))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.f32")
        for name in MODELS:
            model = os.path.join(FIX, name + ".safetensors")
            tensors, meta = stfile.read(os.path.join(FIX, name + ".io.safetensors"))
            for k, case in enumerate(json.loads(meta["cases"])):
                imgs = sum((["-i", p] for p in case["images"]), [])
                run(["logits", "-m", model, "-p", case["prompt"], "-o", out] + imgs)
                want = tensors[f"case{k}.logits"]
                got = np.fromfile(out, "<f4").reshape(want.shape)
                err = float(np.abs(got - want).max() / np.ptp(want))
                ok = err <= 1e-4
                for mode, extra in (("greedy", []), ("beam3", ["--beams", "3"])):
                    p = run(["run", "-m", model, "-p", case["prompt"], "-n", str(case["max_new_tokens"])] + extra + imgs)
                    text = p.stdout.decode("utf-8", "replace")
                    want_text = tok.decode([int(i) for i in tensors[f"case{k}.{mode}"]]) + "\n"
                    if text != want_text:
                        ok = False
                        print(f"  {name} case {k} {mode}: got {text!r}, want {want_text!r}")
                bad += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} case {k}: logits error {err:.2g} of the range")

        # The error contract: one line on stderr, exit 1 (failure) or 2 (usage).
        model = os.path.join(FIX, "of_mosaic.safetensors")
        img = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"
        cases = [
            (["run", "-m", model, "-p", "<image><image>Output:", "-i", img], 1, "2 <image> markers but 1 images"),
            (["run", "-m", model, "-p", "Output:", "-i", img], 1, "0 <image> markers but 1 images"),
            (["run", "-m", model, "-p", "<image>x", "-i", os.path.join(tmp, "missing.jpg")], 1, "missing.jpg: cannot open"),
            (["run", "-m", model, "-p", "word " * 100], 1, "exceed the model's context of 96"),
            (["run", "-m", model, "-p", "a b", "-n", "95"], 1, "exceed the model's context"),
            (["run", "-m", os.path.join(FIX, "clip_gelu.safetensors"), "-p", "hi"], 1, "not a Flamingo model"),
            (["run", "-m", model, "-p", "a", "--temperature", "-1"], 2, "--temperature must be a number"),
            (["run", "-m", model, "-p", "a", "--beams", "99"], 2, "--beams must be an integer in [1, 16]"),
            (["run", "-m", model], 2, "-p PROMPT is required"),
            (["logits", "-m", model, "-p", "<image>", "-o", out], 1, "1 <image> markers but 0 images"),
            (["tokenize", "-p", "x"], 2, "exactly one of -m MODEL and --tokenizer"),
            (["tokenize", "-m", model, "--decode", "-p", "[1, 99999]"], 1, "token ids must be integers in [0, 360)"),
            (["tokenize", "-m", model, "-p", "\udcff".encode("utf-8", "surrogateescape").decode("latin-1")], 0, None),
        ]
        for args, status, text in cases:
            p = run(args, check=False)
            err = p.stderr.decode("utf-8", "replace")
            ok = p.returncode == status and (text is None or (err.count("\n") == 1 and text in err))
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {' '.join(args[:1])} -> exit {p.returncode}: {err.strip()[:120]}")
        # stdin mode of tokenize: one JSON string per line in, one array per line out
        p = subprocess.run([BIN, "tokenize", "-m", model], input=b'"<image>Output:"\n"a red circle"\n',
                           capture_output=True, timeout=60)
        lines = p.stdout.decode().splitlines()
        want = [json.dumps(tok.encode("<image>Output:")).replace(" ", ""),
                json.dumps(tok.encode("a red circle")).replace(" ", "")]
        ok = p.returncode == 0 and lines == want
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} tokenize from stdin: {lines} (want {want})")
    print(f"{bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
