"""The bundled model's training pipeline (tools/train/train.py --smoke: a few
steps of every stage on a few images, under a minute), end to end: the file
it writes loads in the C engine, and the engine agrees with the PyTorch
reference on it (tests/bundled_check.py against that file: logits within 1e-4
of their range, greedy answers identical on 50 held-out images); the
Perceiver's count latents (`--set p_count=0.3`) train and load, and their
targets (count_labels, and where_labels with p_where) match a scene counted by
hand, and adding them leaves the other parts' initial weights as they were;
stage a trains on the first a_images only; stage c's tail has the caption
share it is given and QTYPE_C's ratios for the rest; stage b's same-scene sequences
with b_sep are the plain ones less every <image> after the first; and
`--from` that file runs stage c alone: with the same settings the same file
comes out bit for bit, with another stage c schedule only the cross-attention
blocks' tensors change, and a file whose tokenizer is not this train.py's is
refused; `--from FILE --redo-p` runs stages p and c on FILE's vision encoder and
LM, likewise bit for bit; and the yes / no phase's first c_yn_patch steps see the
patch latents only.  The full training (over an hour) is not run here."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
sys.path.insert(0, os.path.join(ROOT, "weights"))
import stfile  # noqa: E402


def train(tmp, *args, whole=False):
    """train.py --smoke ARGS: its exit code and the end of its output (with whole, all of it)."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train", "train.py"), "--smoke",
                        "--work", tmp, "--procs", "2", "--workers", "1", *args], capture_output=True, timeout=600)
    out, err = p.stdout.decode(), p.stderr.decode()
    return p.returncode, (out + err) if whole else out[-1500:] + err[-1500:]


def run_script(script, what):
    """Run one of the scripts below with tools/train on its path; its last stdout line, parsed
    as JSON, or None (and a FAIL line) when it did not run."""
    p = subprocess.run([sys.executable, "-c", script, os.path.join(ROOT, "tools", "train")],
                       capture_output=True, timeout=120)
    if p.returncode != 0:
        print(f"FAIL {what} did not run:", p.stderr.decode()[-1500:])
        return None
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def check_rerun(tmp, first, args, changed, later, what, logged=(), must_move=None):
    """train.py --from FIRST ARGS, twice: with FIRST's own settings the file must come out bit
    for bit; with `changed` (more --set) the tensors named in `later` must differ (one of them
    starting with must_move, if given) and all others stay. `logged`: what each run must print.
    0 when both hold, else 1 (with a FAIL line)."""
    a, _ = stfile.read(first)
    for extra, want_moved in (([], False), (changed, True)):
        again = os.path.join(tmp, "again.safetensors")
        rc, log = train(tmp, "--out", again, "--from", first, *args, *extra)
        if rc != 0 or not os.path.exists(again) or any(w not in log for w in logged):
            print(log)
            print(f"FAIL train.py --from {' '.join(args)}", *extra)
            return 1
        b, _ = stfile.read(again)
        same = [k for k in a if k not in later and np.array_equal(a[k], b[k])]
        moved = [k for k in later if not np.array_equal(a[k], b[k])]
        print(f"--from {' '.join(args + extra)}: {len(same)} of {len(a) - len(later)} other tensors unchanged, "
              f"{len(moved)} of {len(later)} {what} tensors differ")
        if (sorted(a) != sorted(b) or len(same) != len(a) - len(later) or bool(moved) != want_moved
                or (want_moved and must_move and not any(k.startswith(must_move) for k in moved))):
            print(f"FAIL --from {' '.join(args)}", *extra)
            return 1
    return 0


def check_from(tmp, first):
    """--from FILE: stage c only. With the same settings the file comes out bit for bit the
    same (stage c depends on the earlier stages and the seed only); with another stage c
    schedule, only the cross-attention blocks' tensors change."""
    a, meta = stfile.read(first)
    xattn = [k for k in a if ".gated_cross_attn_layer." in k]
    if check_rerun(tmp, first, [], ["--set", "c_tail=3"], xattn, "cross-attention"):
        return 1
    meta["tokenizer"] = json.dumps(dict(json.loads(meta["tokenizer"]), added_tokens=[]))
    other = os.path.join(tmp, "other-tokenizer.safetensors")
    stfile.write(other, a, metadata=meta)
    rc, log = train(tmp, "--out", os.path.join(tmp, "refused.safetensors"), "--from", other)
    if rc == 0 or "tokenizer or configuration" not in log:
        print(log)
        print("FAIL --from a file with another tokenizer was not refused")
        return 1
    return 0


def check_yn_patch(tmp, counts):
    """The smoke recipe's yes / no step sees the patch latents only (c_yn_patch=1): with
    c_yn_patch=0 it sees the count latents as well, and the cross-attention comes out
    otherwise (nothing else does). counts: the smoke model with count latents (p_count=0.3)."""
    a, _ = stfile.read(counts)
    xattn = [k for k in a if ".gated_cross_attn_layer." in k]
    out = os.path.join(tmp, "all-latents.safetensors")
    rc, log = train(tmp, "--out", out, "--from", counts, "--set", "p_count=0.3", "--set", "p_where=1.0", "--set", "c_yn_patch=0")
    if rc != 0 or not os.path.exists(out):
        print(log)
        print("FAIL train.py --from --set c_yn_patch=0")
        return 1
    b, _ = stfile.read(out)
    moved = [k for k in a if not np.array_equal(a[k], b[k])]
    print(f"c_yn_patch 1 -> 0: {len(moved)} tensors differ, {len([k for k in moved if k in xattn])} "
          f"of them cross-attention")
    if not moved or any(k not in xattn for k in moved):
        print("FAIL c_yn_patch: the yes / no step does not depend on it as it should")
        return 1
    return 0


COUNT_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
import train, model, world
objs = [dict(shape="circle", color="red", x=0.25, y=0.5), dict(shape="star", color="blue", x=0.75, y=0.125),
        dict(shape="circle", color="red", x=0.5, y=1.0), dict(shape="circle", color="blue", x=0.0, y=0.25)]
truths = [{"objects": objs}, {"objects": objs[1:2]}]
y = train.count_labels(truths).tolist()
w = [[None if v != v else v for v in row] for img in train.where_labels(truths).tolist() for row in img]
print(json.dumps(dict(y=y, where=w, shapes=world.SHAPES, colours=world.COLOR_NAMES, n=model.COUNT_LATENTS)))
"""


def check_count_labels():
    """The targets of the Perceiver's count latents (stage p), against counts written out by hand:
    each shape, each colour, all, then each colour-shape pair, colour-major; and where_labels,
    the mean centre of the objects counted (None where none are)."""
    r = run_script(COUNT_CHECK, "count_labels")
    if r is None:
        return 1
    S, C = r["shapes"], r["colours"]

    def want(counts):
        row = [0] * (len(S) + len(C) + 1 + len(S) * len(C))
        for (colour, shape), n in counts.items():
            row[S.index(shape)] += n
            row[len(S) + C.index(colour)] += n
            row[len(S) + len(C)] += n
            row[len(S) + len(C) + 1 + C.index(colour) * len(S) + S.index(shape)] = n
        return row
    expect = [want({("red", "circle"): 2, ("blue", "star"): 1, ("blue", "circle"): 1}),
              want({("blue", "star"): 1})]
    print(f"count_labels: {len(r['y'][0])} counts per image (model.COUNT_LATENTS {r['n']})")
    if r["y"] != expect or r["n"] != len(expect[0]):
        print("FAIL count_labels:", r["y"], "want", expect)
        return 1
    n, ns, nc = len(expect[0]), len(S), len(C)
    pair = ns + nc + 1
    where = [[None, None] for _ in range(2 * n)]
    for k, j, xy in ((0, S.index("circle"), (0.25, 0.5833333)), (0, S.index("star"), (0.75, 0.125)),
                     (0, ns + C.index("red"), (0.375, 0.75)), (0, ns + C.index("blue"), (0.375, 0.1875)),
                     (0, ns + nc, (0.375, 0.46875)), (0, pair + C.index("red") * ns + S.index("circle"), (0.375, 0.75)),
                     (0, pair + C.index("blue") * ns + S.index("star"), (0.75, 0.125)),
                     (0, pair + C.index("blue") * ns + S.index("circle"), (0.0, 0.25)),
                     (1, S.index("star"), (0.75, 0.125)), (1, ns + C.index("blue"), (0.75, 0.125)),
                     (1, ns + nc, (0.75, 0.125)), (1, pair + C.index("blue") * ns + S.index("star"), (0.75, 0.125))):
        where[k * n + j] = list(xy)
    close = all((a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-6)
                for got, want_xy in zip(r["where"], where) for a, b in zip(got, want_xy))
    print(f"where_labels: {sum(w[0] is not None for w in r['where'])} known mean centres of {2 * n}")
    if len(r["where"]) != len(where) or not close:
        bad = [(i, got, w) for i, (got, w) in enumerate(zip(r["where"], where)) if got != w][:5]
        print("FAIL where_labels (latent index, got, want):", bad)
        return 1
    return 0


def check_count_latents(tmp, plain):
    """--set p_count=0.3 p_where=1.0: the Perceiver gets the count latents (stage p trains them
    and their position head; train.py's own export check compares the file with the training
    model); the file loads in the C engine, and nothing but the Perceiver's latents changes
    shape."""
    out = os.path.join(tmp, "counts.safetensors")
    rc, log = train(tmp, "--out", out, "--set", "p_count=0.3", "--set", "p_where=1.0")
    if rc != 0 or not os.path.exists(out) or "counts " not in log or "where " not in log:
        print(log)
        print("FAIL the smoke training with count latents")
        return 1
    a, _ = stfile.read(plain)
    b, meta = stfile.read(out)
    latents = json.loads(meta["config"])["perceiver"]["num_latents"]
    reshaped = sorted(k for k in a if a[k].shape != b[k].shape)
    print(f"p_count=0.3: {latents} latents; tensors of another shape: {reshaped}")
    if sorted(a) != sorted(b) or reshaped != ["perceiver.latents"] or b["perceiver.latents"].shape[0] != latents:
        print("FAIL count latents: unexpected tensors")
        return 1
    info = subprocess.run([BIN, "info", out], capture_output=True, timeout=60)
    if info.returncode != 0 or f"{latents}" not in info.stdout.decode():
        print("FAIL flamingo info on the count-latent model:", info.stdout.decode(), info.stderr.decode())
        return 1
    return check_yn_patch(tmp, out) or check_redo_p(tmp, out)


def check_redo_p(tmp, first):
    """--from FILE --redo-p: stages p and c only, on FILE's vision encoder and LM. With the same
    settings the file comes out bit for bit (with p_head_seed, stage p's heads are drawn from a
    seed of their own, so stage p does not depend on what stages a and b drew from torch's
    global generator); with another stage p, only the Perceiver's and the cross-attention
    blocks' tensors change. Without p_head_seed, or without --from, --redo-p is refused.
    first: a smoke model with count latents (p_count=0.3, p_where=1.0)."""
    first_seeded = os.path.join(tmp, "seeded.safetensors")
    rc, log = train(tmp, "--out", first_seeded, "--set", "p_count=0.3", "--set", "p_where=1.0",
                    "--set", "p_head_seed=4343")
    if rc != 0:
        print(log)
        print("FAIL the smoke training with p_head_seed")
        return 1
    if np.array_equal(stfile.read(first)[0]["perceiver.latents"], stfile.read(first_seeded)[0]["perceiver.latents"]):
        print("FAIL p_head_seed does not change stage p")
        return 1
    first = first_seeded
    a, _ = stfile.read(first)
    later = [k for k in a if ".gated_cross_attn_layer." in k or k.startswith("perceiver.")]
    if check_rerun(tmp, first, ["--redo-p", "--set", "p_count=0.3", "--set", "p_where=1.0", "--set", "p_head_seed=4343"],
                   ["--set", "p_steps=6"], later, "Perceiver and cross-attention", ("counts ", "where "), "perceiver."):
        return 1
    for args, why in ((["--redo-p", "--set", "p_head_seed=4343"], "--redo-p needs --from"),
                      (["--redo-p", "--from", first], "--redo-p needs --set p_head_seed")):
        rc, log = train(tmp, "--out", os.path.join(tmp, "refused.safetensors"), *args)
        if rc == 0 or why not in log:
            print(log)
            print("FAIL not refused:", *args)
            return 1
    return 0


SCHEDULE_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
import train
out = {}
for name, share in (("full", train.FULL["c_tail_cap"]), ("quarter", train.QTYPE_C["caption"])):
    hp = dict(train.FULL, c_tail_cap=share)
    sch = train.c_schedule(hp)
    out[name] = dict(n=len(sch), tail=sch[-1].mix, is_qtype_c=sch[-1].mix is train.QTYPE_C)
hp = dict(train.FULL, c_yn=1000, c_yn_patch=300, c_yn_mix=200, c_tail_chunks=[0.1, 0.2, 0.3, 0.4], c_tail_same=0.9)
sch = train.c_schedule(hp)
out["latents"] = [s.latents for s in sch]
yn0 = hp["c_steps"] + hp["c_cap"]
out["yn_mixes"] = [json.dumps(s.mix, sort_keys=True) for s in sch[yn0:yn0 + 1000]]
out["yn_mix"] = json.dumps(train.YN_MIX, sort_keys=True)
out["shape"] = sorted(set(json.dumps([s.chunks, s.same]) for s in sch[:-hp["c_tail"]]))
out["tail_shape"] = sorted(set(json.dumps([s.chunks, s.same]) for s in sch[-hp["c_tail"]:]))
print(json.dumps(dict(out, qtype_c=train.QTYPE_C, hp=train.FULL, patch=train.M.PATCH_LATENTS)))
"""


def check_schedule():
    """Stage c's tail (c_schedule): captions at c_tail_cap of its chunks, the other kinds in
    QTYPE_C's ratios, summing to 1; with QTYPE_C's own caption share the mix is QTYPE_C itself,
    so that run17's schedule is still what those settings give."""
    r = run_script(SCHEDULE_CHECK, "the schedule check")
    if r is None:
        return 1
    hp, qc, tail = r["hp"], r["qtype_c"], r["full"]["tail"]
    steps = hp["c_steps"] + hp["c_cap"] + hp["c_yn"] + hp["c_tail"]
    others = [k for k in qc if k != "caption"]
    rest = sum(qc[k] for k in others)
    ok = (r["full"]["n"] == steps and sorted(tail) == sorted(qc) and abs(sum(tail.values()) - 1) < 1e-9
          and abs(tail["caption"] - hp["c_tail_cap"]) < 1e-12
          and all(abs(tail[k] - qc[k] * (1 - hp["c_tail_cap"]) / rest) < 1e-12 for k in others)
          and r["quarter"]["is_qtype_c"])
    yn0 = hp["c_steps"] + hp["c_cap"]       # c_yn_patch=300: the yes / no phase's first 300 steps
    lat = r["latents"]
    on = [i for i, n in enumerate(lat) if n is not None]
    ok = ok and lat == [None] * yn0 + [r["patch"]] * 300 + [None] * (len(lat) - yn0 - 300)
    # c_yn=1000, c_yn_mix=200: its last 200 steps are YN_MIX, the rest yes / no questions alone
    yn = json.dumps({"position_yn": 1.0})
    ok = ok and r["yn_mixes"] == [yn] * 800 + [r["yn_mix"]] * 200 and json.loads(r["yn_mix"])["position_yn"] < 1
    # the tail's sequences shaped by c_tail_chunks and c_tail_same, the other phases' as ever
    ok = ok and r["shape"] == ["[null, 0.5]"] and r["tail_shape"] == ["[[0.1, 0.2, 0.3, 0.4], 0.9]"]
    seen = (f"{len(on)} steps on {sorted(set(lat[i] for i in on))} latents, {on[:1]} to {on[-1:]}; "
            f"yes / no phase mixes {[(k, r['yn_mixes'].count(k)) for k in sorted(set(r['yn_mixes']))]}; "
            f"sequence shapes {r['shape']}, in the tail {r['tail_shape']}")
    print(f"stage c schedule: {r['full']['n']} steps, the tail's mix {tail}; with c_yn_patch=300, c_yn_mix=200: {seen}")
    if not ok:
        print("FAIL stage c's tail mix, length or patch-latent steps:", dict(r, latents=seen))
        return 1
    return 0


SEP_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import train, text
tok = text.Tok(text.make_tokenizer_json(train.SEED))
out = []
for k in range(40):
    n = 2 + k % 3
    seq = [train.same_scene_sequence(np.random.default_rng([9, k]), tok, n, one) for one in (False, True)]
    out.append(dict(n=n, ids=[s[0] for s in seq], mask=[s[1] for s in seq]))
print(json.dumps(dict(media=tok.media, seqs=out)))
"""


SAME_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import train, text
tok = text.Tok(text.make_tokenizer_json(train.SEED))
objs = [dict(shape="circle", color="red", x=0.3, y=0.3, size="small"),
        dict(shape="star", color="blue", x=0.7, y=0.6, size="large")]
out = dict(kinds=[], n=[], state=[])
for k in range(60):
    rng = np.random.default_rng([7, k // 2])           # one seed for each pair k, k + 1
    n = train.n_chunks(rng, [0.0, 0.0, 1.0, 0.0] if k % 2 else None)
    out["n"].append(n)
    out["state"].append(str(rng.bit_generator.state["state"]))
    ids, _, _ = train.sample_sequence(rng, tok, lambda i: objs, 1, n, {"caption": 0.5, "count": 0.5}, 1.0)
    out["kinds"].append(tok.decode(ids).count("Output:"))
print(json.dumps(out))
"""


def check_same():
    """The tail's sequence shape: n_chunks with other probabilities takes one draw as with the
    default ones (so nothing after it moves), and with p_same=1.0 a sequence of captions and
    count questions is all one or all the other."""
    r = run_script(SAME_CHECK, "the sequence shape check")
    if r is None:
        return 1
    n, caps, st = r["n"], r["kinds"], r["state"]
    ok = (all(n[k] == 3 for k in range(1, 60, 2)) and len(set(n[0::2])) > 1
          and all(st[k] == st[k + 1] for k in range(0, 60, 2))
          and all(c in (0, n[k]) for k, c in enumerate(caps)) and 0 < sum(c > 0 for c in caps) < 60)
    print(f"sequence shape: chunks {n[:10]}..., captions per sequence {caps[:10]}...")
    if not ok:
        print("FAIL n_chunks' probabilities or sample_sequence's p_same:", r)
        return 1
    return 0


def check_one_image():
    """b_sep's same-scene sequences (stage b): the same chunks, drawn from the same generator,
    with only the first chunk's <image>; without b_sep every chunk starts with one."""
    r = run_script(SEP_CHECK, "the b_sep check")
    if r is None:
        return 1
    media, bad = r["media"], 0
    for q in r["seqs"]:
        plain, one = q["ids"]
        first = [i for i, t in enumerate(plain) if t == media]
        want = [t for i, t in enumerate(plain) if t != media or i == 0]
        bad += not (len(first) == q["n"] and first[0] == 0 and one == want
                    and q["mask"][1] == [0] + [1] * (len(one) - 1))
    print(f"b_sep: {len(r['seqs'])} same-scene sequences, {bad} not the plain ones less their later <image>s")
    if bad:
        print("FAIL b_sep's same-scene sequences")
        return 1
    return 0


def check_init():
    """With count latents the model starts from the same weights as without (same global
    seed): only the Perceiver's latents gain rows, so a run with them differs from one without
    in what it learns, not in where its vision encoder and language model start."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
    import torch
    import model as M
    tokens = {"media": 1, "endofchunk": 2, "pad": 0, "eos": 3}
    built = []
    for counts in (False, True):
        torch.manual_seed(1)
        built.append(M.build(M.config(300, tokens, counts)).state_dict())
    a, b = built
    differ = sorted(k for k in a if not torch.equal(a[k], b[k]))
    lat_a, lat_b = a["perceiver.latents"], b["perceiver.latents"]
    print(f"initial weights with and without count latents: {len(a) - len(differ)} of {len(a)} tensors equal")
    if (differ != ["perceiver.latents"] or lat_b.shape[0] != M.PATCH_LATENTS + M.COUNT_LATENTS
            or not torch.equal(lat_a, lat_b[:M.PATCH_LATENTS])):
        print("FAIL count latents change the initial weights of other parts:", differ[:5])
        return 1
    return 0


def main():
    if check_count_labels():
        return 1
    if check_init():
        return 1
    if check_schedule():
        return 1
    if check_one_image():
        return 1
    if check_same():
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "smoke.safetensors")
        rc, log = train(tmp, "--out", out, whole=True)
        print(log[-3000:])
        if rc != 0 or not os.path.exists(out):
            print("FAIL the smoke training")
            return 1
        if "stage a: 160 images" not in log:     # SMOKE's a_images (its n_images: 192)
            print("FAIL stage a does not train on the first a_images only")
            return 1
        if check_from(tmp, out):
            return 1
        info = subprocess.run([BIN, "info", out], capture_output=True, timeout=60)
        if info.returncode != 0:
            print("FAIL flamingo info:", info.stderr.decode())
            return 1
        if check_count_latents(tmp, out):
            return 1
        r = subprocess.run([sys.executable, os.path.join(HERE, "bundled_check.py")], timeout=600,
                           env=dict(os.environ, FLAMINGO_BUNDLED=out))
        return r.returncode


if __name__ == "__main__":
    sys.exit(main())
