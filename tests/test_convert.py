"""weights/convert.py on upstream-format files (tests/reference/upstream.py):
for each language-model family, small models are written the way upstream
publishes them (OpenAI's TorchScript CLIP, open_clip / timm / transformers
state dicts, HF folders as one .bin, sharded .bin with an index, sharded
safetensors with an index, in f32 / bf16 / f16; OpenFlamingo checkpoint.pt
with and without the DDP wrapping and the old buffers), converted, and then

  - every tensor of the converted file equals the model it was made from, bit
    for bit (f32), or that model rounded the way numpy / torch round (bf16, f16);
  - the stored config equals the model's, the tokenizer has OpenFlamingo's ids;
  - `flamingo logits` on the converted file is within 1e-4 of the range of the
    logits of the reference (tests/reference/flamingo_ref.py) loaded from the
    same upstream files by its own loader (torch.load / torch.jit.load), and
    `flamingo run` (greedy) gives the reference's text;
  - wrong inputs (mismatched checkpoint and LM, truncated shards, a missing
    tokenizer or shard, a checkpoint off the cross-attention rule, wrong head
    counts...) each exit 1 with one clear line and leave no output file.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, os.path.join(ROOT, "weights"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bpe_ref  # noqa: E402
import convert as convert_mod  # noqa: E402
import flamingo_ref  # noqa: E402
import make_flamingo_golden as mfg  # noqa: E402
import openblas_core  # noqa: E402
import stfile  # noqa: E402
import upstream  # noqa: E402

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
PY = os.environ.get("PYTHON", sys.executable)
CONVERT = os.path.join(ROOT, "weights", "convert.py")

PLANS = {  # model (make_flamingo_golden.MODELS) -> how its upstream files are made
    "of_mosaic": dict(vision="openai_jit", lm_container="bin", lm_dtype="f32", wrap=True),
    "of_mpt": dict(vision="open_clip_safetensors", lm_container="bin_sharded", lm_dtype="bf16"),
    "of_neox": dict(vision="timm_safetensors", lm_container="bin", lm_dtype="f16", buffers=True),
    "of_neox4": dict(vision="hf_clip_safetensors", lm_container="safetensors_sharded", lm_dtype="f16"),
}
PROMPTS = [("<image>Output:", ["astronaut.png"]),
           ("<image>Output:a red circle.<|endofchunk|><image>Question:What colour is it? Short answer:",
            ["coffee.png", "rocket.jpg"])]
NEW = 10
# the small models' Perceiver and cross-attention (make_flamingo_golden: 2 heads of 16)
HEADS = ["--perceiver-heads", "2", "--perceiver-dim-head", "16", "--xattn-heads", "2", "--xattn-dim-head", "16"]

failures = 0


def report(ok, what):
    global failures
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what}")


def convert(paths, out, extra=(), vision=None, lm=None, checkpoint=None, tokenizer=None):
    args = [PY, CONVERT, "--vision", vision or paths["vision"], "--vision-config", paths["vision_config"],
            "--lm", lm or paths["lm"], "--checkpoint", checkpoint or paths["checkpoint"],
            "--tokenizer", tokenizer or paths["tokenizer"], "--out", out, "--quiet"] + HEADS + list(extra)
    return subprocess.run(args, capture_output=True, timeout=300)


def flamingo(args, env=None):
    p = subprocess.run([BIN] + args, capture_output=True, timeout=300, env=env)
    if p.returncode:
        raise RuntimeError(f"flamingo {' '.join(args[:1])}: {p.stderr.decode().strip()}")
    return p


def make_truth(name, tok_json, seed):
    _, lm_over, every, vextra, init = mfg.MODELS[name]
    cfg = mfg.model_config(name, tok_json, lm_over, every)
    full = flamingo_ref.full_config(cfg)
    truth = mfg.random_state(full, seed, vextra, init)
    truth = upstream.complete_vision(truth, full, np.random.default_rng(seed))
    return cfg, upstream.round_truth(truth, full, PLANS[name])


def check_tensors(path, truth, rounding=None):
    got, meta = stfile.read(path)
    header = stfile.LazyFile(path).tensors
    bad = []
    if set(got) != set(truth):
        bad.append(f"names differ: extra {sorted(set(got) - set(truth))[:3]}, "
                   f"missing {sorted(set(truth) - set(got))[:3]}")
    for k in sorted(set(got) & set(truth)):
        want = np.asarray(truth[k], np.float32)
        dt = header[k].dtype
        if rounding and want.ndim >= 2:
            want_dt = {"bf16": "bf16", "f16": "<f2"}[rounding]
            want = upstream._np_round(want, rounding)
        else:
            want_dt = "<f4"
        if dt != want_dt:
            bad.append(f"{k}: stored as {dt}, expected {want_dt}")
        elif not np.array_equal(np.asarray(got[k], np.float32), want):
            bad.append(f"{k}: values differ (max {np.abs(np.asarray(got[k], np.float32) - want).max():g})")
    return bad, meta


def check_config(meta, cfg):
    got = flamingo_ref.full_config(json.loads(meta["config"]))
    want = flamingo_ref.full_config(cfg)
    bad = []
    for sec in ("vision", "perceiver", "lm", "xattn", "tokens", "preprocess"):
        for k, v in want[sec].items():
            g = got[sec].get(k)
            same = np.allclose(g, v, rtol=1e-7, atol=0) if isinstance(v, (float, list)) else g == v
            if not same:
                bad.append(f"{sec}.{k} = {g!r}, expected {v!r}")
    return bad


def load_pixels(names, size):
    return mfg.load_pixels(names, size)


def check_outputs(model_path, ref, tok, size, kernels=None, tol=1e-4, text=True):
    """flamingo logits / run on the converted file against the reference model (kernels: the
    FLAMINGO_KERNELS table to run, None for the best the CPU has)."""
    bad = []
    env = dict(os.environ)
    env.pop("FLAMINGO_KERNELS", None)
    if kernels:
        env["FLAMINGO_KERNELS"] = kernels
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.f32")
        for prompt, images in PROMPTS:
            ids = tok.encode(prompt)
            pixels = load_pixels(images, size)
            want = flamingo_ref.forward_logits(ref, ids, pixels)
            imgs = sum((["-i", os.path.join(mfg.SKIMAGE, n)] for n in images), [])
            flamingo(["logits", "-m", model_path, "-p", prompt, "-o", out] + imgs, env=env)
            got = np.fromfile(out, "<f4").reshape(want.shape)
            err = float(np.abs(got - want).max() / np.ptp(want))
            print(f"      logits of {prompt[:40]!r}: error {err:.2g} of the range ({kernels or 'best'} kernels)")
            if not err <= tol:
                bad.append(f"logits of {prompt!r}: error {err:.2g} of the range ({kernels or 'best'} kernels)")
            if not text:
                continue
            gen = flamingo_ref.generate(ref, ids, pixels, NEW)
            text_out = flamingo(["run", "-m", model_path, "-p", prompt, "-n", str(NEW)] + imgs, env=env).stdout.decode()
            want_text = tok.decode(gen) + "\n"
            if text_out != want_text:
                bad.append(f"run {prompt!r}: {text_out!r}, reference {want_text!r}")
    return bad


# Logits of the BF16 and q8_0 models with their rows rounded to bf16 (gemm_bf16_dot, from 2
# rows for BF16 and 12 for q8_0), as a share of the logit range: measured 0.0006 to 0.0026 on
# this file's prompts (2026-11-29).
BF16_DOT_TOL = 1e-2


def cpu_has_bf16_dot():
    """Whether the engine's best kernels here round rows to bf16 for BF16 weights."""
    flags, _ = openblas_core.cpu_flags()
    return all(f in flags for f in ("avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16", "avx2", "fma"))


def expect_error(what, proc, out, needle):
    err = proc.stderr.decode("utf-8", "replace")
    lines = err.strip().splitlines()
    ok = (proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("convert: error:")
          and needle in lines[0] and not os.path.exists(out) and not os.path.exists(out + ".part"))
    report(ok, f"{what}: exit {proc.returncode}: {err.strip()[:200]}")


def main():
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    tok_json = open(os.path.join(HERE, "fixtures", "tiny.tokenizer.json"), encoding="utf-8").read()
    tok = bpe_ref.Tokenizer.from_str(tok_json)
    size = mfg.VISION["image_size"]
    with tempfile.TemporaryDirectory() as tmp:
        made = {}
        for i, (name, plan) in enumerate(PLANS.items()):
            cfg, truth = make_truth(name, tok_json, 100 + i)
            paths = upstream.write_upstream(truth, flamingo_ref.full_config(cfg), tok_json,
                                            os.path.join(tmp, name), plan, seed=i)
            made[name] = (cfg, truth, paths)
            out = os.path.join(tmp, name + ".safetensors")
            p = convert(paths, out, ["--name", name])
            if p.returncode:
                report(False, f"{name}: convert failed: {p.stderr.decode().strip()}")
                continue
            bad, meta = check_tensors(out, truth)
            bad += check_config(meta, cfg)
            tj = json.loads(meta["tokenizer"])
            added = {a["content"]: a["id"] for a in tj["added_tokens"]}
            if [added.get(t) for t in upstream.OF_TOKENS] != [357, 358, 359]:
                bad.append(f"added token ids {[added.get(t) for t in upstream.OF_TOKENS]}")
            ref = upstream.reference_load(cfg, paths, len(tok))
            bad += check_outputs(out, ref, tok, size)
            report(not bad, f"{name}: {plan['vision']} + {plan['lm_container']} {plan['lm_dtype']} LM"
                   f"{' + wrapped checkpoint' if plan.get('wrap') else ''}"
                   f"{' + buffers' if plan.get('buffers') else ''}: tensors, config, logits, greedy text"
                   + ("".join("\n      " + b for b in bad[:8])))

        # the other vision containers give the same file
        cfg, truth, paths = made["of_mpt"]
        alt = os.path.join(tmp, "of_mpt", "open_clip_pytorch_model.bin")
        visual = {k[15:]: v for k, v in truth.items() if k.startswith("vision_encoder.")}
        upstream.write_vision("open_clip_bin", visual, cfg["vision"], alt, np.random.default_rng(5))
        for kind, vpath in (("open_clip_pytorch_model.bin", alt),):
            out = os.path.join(tmp, "alt.safetensors")
            p = convert(paths, out, ["--name", "of_mpt"], vision=vpath)
            bad = [p.stderr.decode().strip()] if p.returncode else check_tensors(out, truth)[0]
            report(not bad, f"of_mpt with {kind}: same tensors" + "".join("\n      " + b for b in bad[:4]))
            if os.path.exists(out):
                os.remove(out)

        # dtypes: bf16 and f16 files hold the rounded values, and the engine runs them as the
        # reference runs the rounded model
        cfg, truth, paths = made["of_mosaic"]
        for dt in ("bf16", "f16"):
            out = os.path.join(tmp, f"of_mosaic.{dt}.safetensors")
            p = convert(paths, out, ["--dtype", dt, "--name", "of_mosaic"])
            if p.returncode:
                report(False, f"--dtype {dt}: {p.stderr.decode().strip()}")
                continue
            bad, _ = check_tensors(out, truth, rounding=dt)
            rounded = {k: (upstream._np_round(v, dt) if np.ndim(v) >= 2 else v) for k, v in truth.items()}
            optional = {k: v for k, v in rounded.items()}
            ref = flamingo_ref.from_state(cfg, optional)
            # the converted file exactly: f32 rows (the AVX-512 table without BF16, where the
            # CPU has it; another table leaves BF16 weights with f32 rows anyway) ...
            bad += check_outputs(out, ref, tok, size, kernels="avx512")
            if dt == "bf16" and cpu_has_bf16_dot():
                # ... and as it runs by default there: rows of 2 and more rounded to bf16 as
                # PyTorch's autocast rounds them (core/mat.c); the kernel itself is checked to
                # 1e-5 against the rounded rows in tests/test_wmat.c
                bad += check_outputs(out, ref, tok, size, tol=BF16_DOT_TOL, text=False)
            report(not bad, f"--dtype {dt}: rounded tensors (1-D kept f32), logits and text of the rounded "
                   "model" + "".join("\n      " + b for b in bad[:6]))
            os.remove(out)

        # q8_0: the weight matrices as int8 + F16 scales (numpy's quantiser, exactly), the rest f32;
        # the engine computes on them as stored and must match the reference run on the widened
        # values
        out = os.path.join(tmp, "of_mosaic.q8_0.safetensors")
        p = convert(paths, out, ["--dtype", "q8_0", "--name", "of_mosaic"])
        bad = [p.stderr.decode().strip()] if p.returncode else []
        if not bad:
            header = stfile.LazyFile(out).tensors
            got, _ = stfile.read(out)
            widened, n_q = {}, 0
            for k, v in truth.items():
                v = np.asarray(v, np.float32)
                if convert_mod.q8_0_eligible(k, v.shape):
                    n_q += 1
                    q, sc = stfile.q8_0(v)
                    if header[k].dtype != "i1" or header.get(k + "_scale") is None:
                        bad.append(f"{k}: stored as {header[k].dtype}, expected i8 + {k}_scale")
                    elif not (np.array_equal(got[k].reshape(q.shape), q) and np.array_equal(got[k + "_scale"], sc)):
                        bad.append(f"{k}: q8_0 values or scales differ from stfile.q8_0")
                    widened[k] = stfile.q8_0_to_f32(q, sc).reshape(v.shape)
                else:
                    if header[k].dtype != "<f4" or not np.array_equal(got[k], v):
                        bad.append(f"{k}: expected f32, unchanged")
                    widened[k] = v
            if n_q < 10:
                bad.append(f"only {n_q} tensors quantized")
            ref = flamingo_ref.from_state(cfg, widened)
            # exactly through f32 / int16 rows, then as it runs by default (see bf16 above)
            bad += check_outputs(out, ref, tok, size, kernels="avx512")
            if cpu_has_bf16_dot():
                bad += check_outputs(out, ref, tok, size, tol=BF16_DOT_TOL, text=False)
        report(not bad, "--dtype q8_0: weight matrices int8 + F16 scales as stfile.q8_0, the rest f32; "
               "logits and text of the widened model" + "".join("\n      " + b for b in bad[:6]))
        if os.path.exists(out):
            os.remove(out)

        errors(tmp, made)
    print(f"{failures} failed")
    return 1 if failures else 0


def errors(tmp, made):
    out = os.path.join(tmp, "err.safetensors")
    _, _, mos = made["of_mosaic"]
    _, _, mpt = made["of_mpt"]
    _, _, neox = made["of_neox"]
    _, _, neox4 = made["of_neox4"]
    expect_error("4B-style checkpoint with an MPT LM", convert(mos, out, checkpoint=neox["checkpoint"]), out,
                 "do not belong together")
    expect_error("MPT checkpoint with a GPT-NeoX LM", convert(neox, out, checkpoint=mos["checkpoint"]), out,
                 "do not belong together")
    expect_error("checkpoint of another width", convert(mos, out, checkpoint=mpt["checkpoint"]), out,
                 "embedding width")
    expect_error("missing tokenizer", convert(mos, out, tokenizer=os.path.join(tmp, "nope", "tokenizer.json")),
                 out, "tokenizer.json")
    # a truncated .bin shard and a truncated .safetensors shard
    for label, src in (("bin", mpt["lm"]), ("safetensors", neox4["lm"])):
        d = os.path.join(tmp, f"trunc_{label}")
        shutil.copytree(src, d)
        shard = sorted(f for f in os.listdir(d) if f.endswith((".bin", ".safetensors")))[1]
        with open(os.path.join(d, shard), "r+b") as f:
            f.truncate(os.path.getsize(os.path.join(d, shard)) * 2 // 3)
        paths = mpt if label == "bin" else neox4
        expect_error(f"truncated {label} shard", convert(paths, out, lm=d), out, shard)
        os.remove(os.path.join(d, shard))
        expect_error(f"missing {label} shard", convert(paths, out, lm=d), out, "missing")
    # the checkpoint lacks one cross-attention block: off the (i + 1) % n rule
    ck = torch.load(neox["checkpoint"])
    ck = {k: v for k, v in ck.items() if ".layers.3.gated_cross_attn_layer." not in k}
    bad_ck = os.path.join(tmp, "gap.pt")
    torch.save(ck, bad_ck)
    expect_error("cross-attention off the rule", convert(neox, out, checkpoint=bad_ck), out, "(i + 1) % n == 0")
    # a tensor missing from the LM
    d = os.path.join(tmp, "lm_missing")
    shutil.copytree(mos["lm"], d)
    sd = torch.load(os.path.join(d, "pytorch_model.bin"))
    del sd["transformer.blocks.2.attn.out_proj.weight"]
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    expect_error("LM without a tensor", convert(mos, out, lm=d), out,
                 "missing tensor 'lang_encoder.transformer.blocks.2.decoder_layer.attn.out_proj.weight'")
    expect_error("wrong --xattn-heads", convert(mos, out, ["--xattn-heads", "4"]), out, "--xattn-heads")
    expect_error("--model with upstream inputs", convert(mos, out, ["--model", mos["checkpoint"]]), out,
                 "--model replaces")
    expect_error("vision file that is not CLIP", convert(mos, out, vision=mos["checkpoint"]), out,
                 "no CLIP image tower")
    for layers, needle in ((3, "missing tensor 'vision_encoder.transformer.resblocks.2."),
                           (1, "unexpected image-tower tensor 'transformer.resblocks.1.")):
        vc = json.load(open(mos["vision_config"]))
        vc["vision_cfg"]["layers"] = layers
        vc_path = os.path.join(tmp, f"vision{layers}.json")
        json.dump(vc, open(vc_path, "w"))
        expect_error(f"vision config with {layers} layers for a 2-layer tower",
                     convert(dict(mos, vision_config=vc_path), out), out, needle)
    # the hub's open_clip_config.json wraps the model config in "model_cfg"; without quick_gelu a
    # warning says that the tower gets GELU
    vc = json.load(open(mos["vision_config"]))
    wrapped = os.path.join(tmp, "open_clip_config.json")
    json.dump({"model_cfg": vc, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
              open(wrapped, "w"))
    p = convert(dict(mos, vision_config=wrapped), out)
    meta = stfile.LazyFile(out).metadata if p.returncode == 0 else {}
    got = json.loads(meta.get("config", "{}"))
    report(p.returncode == 0 and got["vision"]["act"] == "quick_gelu" and got["preprocess"]["mean"] == [0.5] * 3,
           f"hub open_clip_config.json (model_cfg + preprocess_cfg) understood {p.stderr.decode().strip()[:150]}")
    if os.path.exists(out):
        os.remove(out)
    del vc["quick_gelu"]
    no_qg = os.path.join(tmp, "no_quick_gelu.json")
    json.dump(vc, open(no_qg, "w"))
    p = convert(dict(mos, vision_config=no_qg), out)
    got = json.loads(stfile.LazyFile(out).metadata["config"]) if p.returncode == 0 else {}
    report(p.returncode == 0 and "quick_gelu" in p.stderr.decode() and got["vision"]["act"] == "gelu",
           f"vision config without quick_gelu: GELU, with a warning: {p.stderr.decode().strip()[:150]}")
    if os.path.exists(out):
        os.remove(out)
    d = os.path.join(tmp, "lm_no_d_model")
    shutil.copytree(mos["lm"], d)
    hf = json.load(open(os.path.join(d, "config.json")))
    del hf["d_model"]
    json.dump(hf, open(os.path.join(d, "config.json"), "w"))
    expect_error("config.json without d_model", convert(mos, out, lm=d), out, "no 'd_model'")
    garbage = os.path.join(tmp, "garbage.bin")
    with open(garbage, "wb") as f:
        f.write(b"PK\x03\x04" + os.urandom(5000))
    expect_error("garbage checkpoint", convert(mos, out, checkpoint=garbage), out, "garbage.bin")


if __name__ == "__main__":
    sys.exit(main())
