#!/usr/bin/env python3
"""Peak memory of weights/convert.py on a model of the real OpenFlamingo-3B
shape (CLIP ViT-L/14 as OpenAI's TorchScript archive, MPT-1B as a 5.2 GB f32
pytorch_model.bin with its 50432-row embedding, a 4.2 GB checkpoint.pt, a
50277-token tokenizer.json), random weights.  It writes the upstream files
once into DIR (about 10 GB, a few minutes), then runs the converter under
`/usr/bin/time -v` for each dtype and prints peak RSS against the output size.

    python3 bench/convert_peak.py DIR [--dtypes f32,bf16] [--keep]

The issue's limit is 1.5x the output size; the figure to report is the ratio.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "weights"))
import convert  # noqa: E402  (only for the list of tensor names and shapes)
import flamingo_ref  # noqa: E402
import upstream  # noqa: E402

# flamingo_ref's defaults are OpenFlamingo-3B's shape (docs/FORMAT.md section 3)
CFG = flamingo_ref.full_config({})


def random_part(names, rng):
    """Random tensors for the given name -> shape, scaled like trained ones (no NaN paths)."""
    out = {}
    for k, shape in names.items():
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            a = rng.random(shape, dtype=np.float32)
            a -= 0.5
            a *= np.float32(2 * np.sqrt(3.0 / fan_in))
            out[k] = a
        elif k.endswith("gate"):
            out[k] = np.full(shape, 0.1, np.float32)
        elif k.endswith("weight"):
            out[k] = np.ones(shape, np.float32)
        else:
            out[k] = np.zeros(shape, np.float32)
    return out


def tokenizer_json(n=50277):
    """A valid byte-level BPE with GPT-NeoX-20B's size: id 0 <|endoftext|>, 256 byte
    tokens, then two-byte merges up to n tokens."""
    cs = []
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    chars = {b: chr(b) for b in bs[: 188]}
    for b, c in zip(bs[188:], cs):
        chars[b] = chr(c)
    vocab = {"<|endoftext|>": 0}
    for b in range(256):
        vocab[chars[b]] = len(vocab)
    merges = []
    for a in range(256):
        for b in range(256):
            if len(vocab) >= n:
                break
            tok = chars[a] + chars[b]
            vocab[tok] = len(vocab)
            merges.append(f"{chars[a]} {chars[b]}")
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True}],
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "vocab": vocab, "merges": merges}}


def make_files(d):
    marker = os.path.join(d, ".complete")
    paths = {"vision": os.path.join(d, "ViT-L-14.pt"), "lm": os.path.join(d, "mpt-1b"),
             "checkpoint": os.path.join(d, "checkpoint.pt"), "tokenizer": os.path.join(d, "mpt-1b", "tokenizer.json")}
    if os.path.exists(marker):
        return paths
    os.makedirs(paths["lm"], exist_ok=True)
    rng = np.random.default_rng(3)
    want, optional = convert.expected_tensors(CFG, 768)
    t0 = time.time()
    visual = random_part({k[15:]: s for k, s in list(want.items()) + list(optional.items())
                          if k.startswith("vision_encoder.") and "conv1.bias" not in k}, rng)
    upstream.write_vision("openai_jit", visual, CFG["vision"], paths["vision"], rng)
    del visual
    print(f"  vision written ({time.time() - t0:.0f} s)", flush=True)
    lm = random_part({k: s for k, s in want.items()
                      if k.startswith("lang_encoder.") and "gated_cross_attn_layer" not in k
                      and not upstream._is_embedding(k)}, rng)
    upstream.write_lm(lm, CFG, paths["lm"], "bin", "f32", rng, hf_vocab=50432, eos=0)
    del lm
    print(f"  LM written ({time.time() - t0:.0f} s)", flush=True)
    ck = random_part({k: s for k, s in want.items()
                      if k.startswith("perceiver.") or "gated_cross_attn_layer" in k or upstream._is_embedding(k)}, rng)
    upstream.write_checkpoint(ck, CFG, paths["checkpoint"], wrap=False, buffers=False)
    del ck
    with open(paths["tokenizer"], "w") as f:
        json.dump(tokenizer_json(), f, ensure_ascii=False)
    print(f"  checkpoint and tokenizer written ({time.time() - t0:.0f} s)", flush=True)
    open(marker, "w").close()
    return paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--keep", action="store_true", help="keep the converted files")
    args = ap.parse_args()
    paths = make_files(args.dir)
    inputs = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args.dir) for f in fs)
    print(f"upstream files: {inputs / 1e9:.2f} GB in {args.dir}")
    results = {}
    for dt in args.dtypes.split(","):
        out = os.path.join(args.dir, f"of-3b-shape.{dt}.safetensors")
        cmd = ["/usr/bin/time", "-v", sys.executable, os.path.join(ROOT, "weights", "convert.py"),
               "--vision", paths["vision"], "--lm", paths["lm"], "--checkpoint", paths["checkpoint"],
               "--tokenizer", paths["tokenizer"], "--out", out, "--dtype", dt, "--quiet"]
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        secs = time.time() - t0
        if p.returncode:
            print(p.stderr)
            return 1
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
        size = os.path.getsize(out)
        results[dt] = dict(peak_rss_gb=peak_kb * 1024 / 1e9, output_gb=size / 1e9,
                           ratio=peak_kb * 1024 / size, seconds=secs)
        print(f"{dt}: output {size / 1e9:.2f} GB, peak RSS {peak_kb / 1e6:.2f} GB = "
              f"{peak_kb * 1024 / size:.3f} x the output, {secs:.0f} s", flush=True)
        if not args.keep:
            os.remove(out)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
