#!/usr/bin/env python3
"""Train the bundled model, weights/flamingo-tiny.safetensors, from scratch (the Flamingo recipe
at small scale; tools/train/README.md has the design and the figures).

    /usr/bin/python3 tools/train/train.py            # full run, 66-70 minutes on 2 cores (README)
    /usr/bin/python3 tools/train/train.py --from weights/flamingo-tiny.safetensors   # stage c only
    /usr/bin/python3 tools/train/train.py --from weights/flamingo-tiny.safetensors --redo-p   # p and c
    /usr/bin/python3 tools/train/train.py --smoke    # a few steps of every stage, to a temp file

Stages:
  0  images of the synthetic world (world.py, seed SEED) rendered, JPEG/PNG-encoded, decoded and
     put through open_clip's validation transform (PIL bicubic, centre crop), as the C engine does;
     the BPE tokenizer trained on the synthetic text (text.py)
  a  the vision encoder (a CLIP ViT, clip_ref.py) pretrained on the images by classification of
     the ground truth: per patch, "an object's centre lies here" with its shape, colour and
     offset; per image, how many objects of each shape and colour; each token's own position
     (so that the Perceiver's latents can address patches); and, by regression, the patch's
     centre and the centre of the object covering it (position questions)
  b  the language model (GPT-NeoX) pretrained on the text alone: interleaved caption / question
     chunks with <image> markers but no pixels, about unrelated scenes or several about one scene
  p  both frozen; the Perceiver Resampler (64 + 63 latents) trained: patch latent i to
     reproduce patch token i; with p_count > 0 (the default), each of 63 latents more to hold
     how many objects of one shape, colour or colour-shape pair the image has, and with
     p_where > 0 where those objects are
  c  the gated cross-attention layers trained on interleaved image-text sequences of 1-4 chunks
     (few-shot examples included), gates from 0.5, in phases (c_schedule): colour and presence
     questions only, the full mix, yes / no position questions only, the full mix again at a
     lower rate with captions at half the chunks, in sequences shaped more like few-shot prompts
     (more of 3 chunks, most of one question type); the Perceiver as stage p left it
Then the model file is written with weights/stfile.py and read back with the reference
(tests/reference/flamingo_ref.py), whose logits must equal the training model's.

Every stage runs in --procs processes (default 2) of one thread each, data-parallel
(data_parallel below): on these small models that is 2-3x faster than PyTorch's threads.

Deterministic: numpy generators seeded from SEED (and the process's rank), torch.manual_seed, one
fixed number of steps per stage (the same file comes out on the same machine with the same
--procs; another process count samples other batches).
"""
import argparse
import contextlib
import datetime
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
import typing

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import openblas_core  # noqa: E402

openblas_core.fix()     # before numpy and torch load OpenBLAS: 2-3x faster f32 steps on the Xeons

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "weights"))
import flamingo_ref  # noqa: E402
import model as M  # noqa: E402
import preprocess_ref  # noqa: E402
import stfile  # noqa: E402
import text  # noqa: E402
import world  # noqa: E402

SEED = 1              # the training world; evalset.py uses another seed (EVAL_SEED there)
FULL = dict(n_images=48000, a_images=24000, a_steps=6000, a_batch=96, a_lr=2e-3,
            b_steps=1500, b_batch=48, b_lr=2e-3, b_same=0.6, b_sep=0, b_probe=200,
            c_steps=4400, c_bind=600, c_batch=32, c_lr=2e-3, c_gate0=0.5, a_pos=1.0, p_steps=3000, p_lr=3e-3, p_count=1.0, p_where=0.2, p_head_seed=4343,
            a_coord=1.0, c_cap=0, c_cap_lr=2e-3, c_yn=2400, c_yn_lr=2e-3, c_yn_patch=0, c_yn_mix=0, c_tail=3200, c_tail_lr=1e-3,
            c_tail_cap=0.4, c_tail_chunks=[0.2, 0.2, 0.4, 0.2], c_tail_same=0.8)
SMOKE = dict(n_images=192, a_images=160, a_steps=4, a_batch=32, a_lr=1e-3,
             b_steps=4, b_batch=8, b_lr=1e-3, b_same=0.6, b_sep=1, b_probe=5,
             c_steps=4, c_bind=2, c_batch=8, c_lr=1e-3, c_gate0=0.5, a_pos=1.0, p_steps=4, p_lr=3e-3, p_count=0.0, p_where=0.0, p_head_seed=0,
             a_coord=1.0, c_cap=0, c_cap_lr=1e-3, c_yn=2, c_yn_lr=1e-3, c_yn_patch=1, c_yn_mix=1, c_tail=2, c_tail_lr=1e-3,
             c_tail_cap=0.26, c_tail_chunks=[0.0, 0.0, 1.0, 0.0], c_tail_same=0.8)
QTYPE_P = {"caption": 0.24, "color": 0.12, "shape": 0.12, "count": 0.18, "position": 0.22, "presence": 0.12}
# Stage c's mix after the binding phase: colour and shape questions are easy (99% after run12),
# counts are not, and a caption's first word is the count of its largest colour-shape group, so
# stage c also asks "How many red circles are there?" (count_pair; not in the evaluation set).
QTYPE_C = {"caption": 0.26, "color": 0.07, "shape": 0.06, "count": 0.19, "count_pair": 0.06,
           "position": 0.24, "presence": 0.12}
N_CHUNKS_P = [0.35, 0.25, 0.25, 0.15]      # 1, 2, 3, 4 chunks per sequence
# The yes / no phase's last c_yn_mix steps: its questions with the other two yes / no-answered
# kinds' binding, on all latents (c_schedule)
YN_MIX = {"position_yn": 0.5, "color": 0.25, "presence": 0.25}


@contextlib.contextmanager
def threads(n):
    """PyTorch's and OpenBLAS's threads for one inference pass over all images (the frozen
    parts' outputs, computed once); the training steps run in processes of one thread each
    (data_parallel). OpenBLAS's result depends on its thread count (the vision features of 700
    images differ in their last bits with 1 and 2 threads, measured 2026-11-30), so n is
    --procs, which does not depend on the machine: a run's file does not depend on how many
    cores the machine has (before OpenBLAS was sized, every process ran one OpenBLAS thread
    per core)."""
    torch.set_num_threads(n)
    openblas_core.set_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(1)
        openblas_core.set_threads(1)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---------------------------------------------------------------------------------------
# Data parallelism over processes
#
# Why: these models are small, and PyTorch's intra-op threads lose on them. On the 2-core
# machine a ViT step over 96 images took 0.55 s with 2 threads and 0.28 s with 1; two
# 1-thread processes, each on 48 of the 96 images with the gradients summed, take 0.21 s.
# So every stage runs in `procs` processes of one thread each (PyTorch's and OpenBLAS's,
# openblas_core.set_threads): this one (rank 0, whose model is the one that goes on) and
# procs - 1 forked copies, each sampling its own share of every batch from its own generator
# (seeded by rank); their gradients are averaged before every optimiser step, so the
# parameters stay identical in all of them.

def data_parallel(procs, fn, *args):
    """fn(rank, procs, *args) in procs processes; returns rank 0's result."""
    if procs == 1:
        return fn(0, 1, *args)
    with tempfile.TemporaryDirectory(prefix="flamingo-dp-") as tmp:
        return _data_parallel(procs, fn, args, os.path.join(tmp, "store"))


def _data_parallel(procs, fn, args, store):
    sys.stdout.flush()
    pids = []
    for r in range(1, procs):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _join(r, procs, store)
                fn(r, procs, *args)
                dist.destroy_process_group()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    _join(0, procs, store)
    try:
        out = fn(0, procs, *args)
    finally:
        dist.destroy_process_group()
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise RuntimeError(f"a data-parallel worker failed (wait status {status})")
    return out


def _join(rank, procs, store):
    # loopback: all processes are on this machine, and a container's host name may not resolve
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=procs,
                            timeout=datetime.timedelta(seconds=300))


def check_in_step(params):
    """At the end of a data-parallel stage: every process must hold the same parameters."""
    if not dist.is_initialized():
        return
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    hi, lo = flat.clone(), flat.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    assert torch.equal(hi, lo), "the data-parallel processes' parameters diverged"


def optimise(opt, loss, params, clip):
    """One optimiser step of every stage: the gradients of loss, averaged over the processes,
    their norm clipped to clip (None: not clipped)."""
    opt.zero_grad()
    loss.backward()
    average_grads(params)
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()


def average_grads(params):
    """Sums the gradients over the processes and divides by their number (no-op alone)."""
    if not dist.is_initialized():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    at = 0
    for p, g in zip(params, grads):
        n = g.numel()
        if p.grad is None:
            p.grad = flat[at:at + n].view_as(p).clone()
        else:
            p.grad.copy_(flat[at:at + n].view_as(p))
        at += n


# ---------------------------------------------------------------------------------------
# Stage 0: images

def _one_image(args):
    seed, i = args
    import io
    from PIL import Image
    truth, data, _ = world.make(seed, i)
    im = Image.open(io.BytesIO(data))
    return truth, preprocess_ref.open_clip_u8(im, M.IMAGE_SIZE)


def make_images(seed, n, workers):
    out = np.zeros((n, M.IMAGE_SIZE, M.IMAGE_SIZE, 3), np.uint8)
    truths = []
    jobs = [(seed, i) for i in range(n)]
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            res = pool.imap(_one_image, jobs, chunksize=32)
            for i, (t, u8) in enumerate(res):
                truths.append(t)
                out[i] = u8
    else:
        for i, j in enumerate(jobs):
            t, u8 = _one_image(j)
            truths.append(t)
            out[i] = u8
    return out, truths


# ---------------------------------------------------------------------------------------
# Stage a: the vision encoder

def vision_labels(truths, grid, flip):
    """Per image: per patch centre objectness / shape / colour / in-patch offset, and counts."""
    n = len(truths)
    obj = np.zeros((n, grid * grid), np.int64)
    shape = np.full((n, grid * grid), -100, np.int64)
    colour = np.full((n, grid * grid), -100, np.int64)
    off = np.zeros((n, grid * grid, 2), np.float32)
    counts = count_labels(truths)[:, :len(world.SHAPES) + len(world.COLOR_NAMES) + 1]   # not the pairs
    cover = np.full((n, grid * grid, 2), -100, np.int64)      # shape, colour of the nearest object
    # the patch's own centre and the centre of the object covering it (NaN: none), x right, y down
    coord = np.full((n, grid * grid, 4), np.nan, np.float32)
    pc = (np.arange(grid) + 0.5) / grid
    coord[:, :, 0] = np.tile(pc, grid)
    coord[:, :, 1] = np.repeat(pc, grid)
    for k, t in enumerate(truths):
        best = np.full((grid, grid), 1.0)
        for o in t["objects"]:
            x = 1.0 - o["x"] if flip else o["x"]
            d = np.hypot(pc[None, :] - x, pc[:, None] - o["y"]) / o["r"]       # [row y, col x]
            hit = d < best
            best = np.where(hit, d, best)
            cover[k, hit.reshape(-1), 0] = world.SHAPES.index(o["shape"])
            cover[k, hit.reshape(-1), 1] = world.COLOR_NAMES.index(o["color"])
            coord[k, hit.reshape(-1), 2:] = (x, o["y"])
        for o in t["objects"]:
            x = 1.0 - o["x"] if flip else o["x"]
            gx, gy = min(int(x * grid), grid - 1), min(int(o["y"] * grid), grid - 1)
            p = gy * grid + gx
            obj[k, p] = 1
            shape[k, p] = world.SHAPES.index(o["shape"])
            colour[k, p] = world.COLOR_NAMES.index(o["color"])
            off[k, p] = (x * grid - gx, o["y"] * grid - gy)
    obj, shape, colour, off, cover, coord = (torch.from_numpy(a) for a in (obj, shape, colour, off, cover, coord))
    return [obj, shape, colour, off, counts, cover, coord]


class VisionHeads(nn.Module):
    """Training-only heads on the ViT's patch tokens (not exported)."""

    def __init__(self, width, n_patches, pos_weight, coord_weight):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        # where each token sits: keeps the position in the tokens, so that the Perceiver's latents
        # (queries that do not depend on the image) can each pick out one patch (stage p)
        self.pos = nn.Linear(width, n_patches)
        self.pos_weight = pos_weight
        self.patch = nn.Linear(width, 2 + 2 * (len(world.SHAPES) + len(world.COLOR_NAMES)) + 2)
        self.n_counts = len(world.SHAPES) + len(world.COLOR_NAMES) + 1
        self.pool = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(),
                                  nn.Linear(width, self.n_counts * 5))
        # coordinates, linear in the (normed) token: the patch's own centre and the centre of the
        # object covering it, so that a cross-attention query can prefer "lowest" or "leftmost"
        # with one dot product (position questions)
        self.coord = nn.Linear(width, 4)
        self.coord_weight = coord_weight

    def loss(self, tokens, labels):
        obj, shape, colour, off, counts, cover, coord = labels
        normed = self.norm(tokens)
        h = self.patch(normed)                                  # [B, P, ...]
        ns, nc = len(world.SHAPES), len(world.COLOR_NAMES)
        l_obj = F.cross_entropy(h[..., :2].reshape(-1, 2), obj.reshape(-1), weight=torch.tensor([1.0, 4.0]))
        l_shape = F.cross_entropy(h[..., 2:2 + ns].reshape(-1, ns), shape.reshape(-1))
        l_col = F.cross_entropy(h[..., 2 + ns:2 + ns + nc].reshape(-1, nc), colour.reshape(-1))
        k = 2 + ns + nc
        l_cover = (2 * F.cross_entropy(h[..., k:k + ns].reshape(-1, ns), cover[..., 0].reshape(-1)) +
                   F.cross_entropy(h[..., k + ns:k + ns + nc].reshape(-1, nc), cover[..., 1].reshape(-1)))
        m = obj.bool()
        l_off = F.mse_loss(torch.sigmoid(h[..., -2:])[m], off[m]) * 10
        c = self.pool(tokens.mean(dim=1)).view(-1, self.n_counts, 5)
        l_cnt = F.cross_entropy(c.reshape(-1, 5), counts.reshape(-1))
        acc_shape = (h[..., 2:2 + ns].argmax(-1)[m] == shape[m]).float().mean()
        P = tokens.shape[1]
        l_pos = F.cross_entropy(self.pos(tokens).reshape(-1, P), torch.arange(P).repeat(tokens.shape[0]))
        known = ~torch.isnan(coord)
        l_coord = F.mse_loss(self.coord(normed)[known], coord[known]) * 10
        # shape is the slow one to learn (colour comes in a few steps): twice the weight
        return (l_obj + 2 * l_shape + l_col + l_off + l_cnt + l_cover + self.pos_weight * l_pos +
                self.coord_weight * l_coord), dict(
            pos=l_pos.item(), coord=l_coord.item(), obj=l_obj.item(), cover=l_cover.item(), shape=l_shape.item(), col=l_col.item(), off=l_off.item(), cnt=l_cnt.item(),
            acc_shape=acc_shape.item())


def lr_at(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def stage_a(m, images, truths, hp, seed, procs):
    vit = m.vision_encoder
    W = m.cfg["vision"]["width"]
    grid = m.cfg["vision"]["image_size"] // m.cfg["vision"]["patch_size"]
    heads = VisionHeads(W, grid * grid, hp["a_pos"], hp["a_coord"])
    labels = [vision_labels(truths, grid, False), vision_labels(truths, grid, True)]
    n_val = min(512, len(truths) // 8)
    n_tr = len(truths) - n_val
    log(f"stage a: {len(truths)} images, {n_tr} to train on, {n_val} held out")
    pixels = M.normalize(images)
    vit.train()
    data_parallel(procs, _stage_a_loop, vit, heads, pixels, labels, n_tr, hp, seed)
    vit.eval()
    with torch.no_grad():
        idx = torch.arange(n_tr, len(truths))
        _, info = heads.loss(vit(pixels[idx]), [a[idx] for a in labels[0]])
    log("a held-out:", " ".join(f"{k} {v:.3f}" for k, v in info.items()))
    return info


def _stage_a_loop(rank, procs, vit, heads, pixels, labels, n_tr, hp, seed):
    params = list(vit.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=hp["a_lr"], weight_decay=0.05)
    rng = np.random.default_rng([seed, 100, rank])
    t0 = time.time()
    for step in range(hp["a_steps"]):
        idx = torch.from_numpy(rng.integers(0, n_tr, hp["a_batch"] // procs))
        flip = rng.random() < 0.5
        x = pixels[idx]
        if flip:
            x = x.flip(-1)
        lab = [a[idx] for a in labels[int(flip)]]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, hp["a_steps"], hp["a_lr"], 50)
        loss, info = heads.loss(vit(x), lab)
        optimise(opt, loss, params, clip=1.0)
        if rank == 0 and (step % 100 == 0 or step == hp["a_steps"] - 1):
            log(f"a {step}/{hp['a_steps']} loss {loss.item():.3f} " +
                " ".join(f"{k} {v:.3f}" for k, v in info.items()) + f" ({time.time() - t0:.0f}s)")
    check_in_step(params)


# ---------------------------------------------------------------------------------------
# Sequences of chunks (stages b and c)

def sample_sequence(rng, tok, objs_fn, n_pool, n=None, qtype_p=None, p_same=0.5):
    """One interleaved sequence of n chunks: (ids, loss mask, image indices). objs_fn(i) gives
    the ground truth objects of pool image i (stage c) or of a freshly sampled scene (stage b).
    qtype_p: the question-type mix (default QTYPE_P). With probability p_same every chunk is of
    one type (as in a few-shot prompt), else each draws its own."""
    if n is None:
        n = n_chunks(rng)
    qtype_p = qtype_p or QTYPE_P
    types = list(qtype_p)
    probs = np.array([qtype_p[t] for t in types])
    same = rng.random() < p_same
    fixed = types[int(rng.choice(len(types), p=probs))]
    ids, mask, imgs = [], [], []
    for c in range(n):
        for _try in range(20):
            i = int(rng.integers(n_pool))
            objs = objs_fn(i)
            qt = fixed if same else types[int(rng.choice(len(types), p=probs))]
            pa = text.prompt_and_answer(objs, qt, rng, "colour" if rng.random() < 0.1 else "color")
            if pa is not None:
                break
        if c > 0 and rng.random() < 0.1:
            sep = tok.encode("\n")
            ids += sep
            mask += [0] * len(sep)
        cid, cm = text.chunk_ids(tok, pa[0], pa[1])
        ids += cid
        mask += cm
        imgs.append(i)
    return ids, mask, imgs


def n_chunks(rng, probs=None):
    """1 to 4, with probabilities probs (default N_CHUNKS_P); one draw from rng whatever probs."""
    return 1 + int(rng.choice(4, p=N_CHUNKS_P if probs is None else probs))


def collate(seqs, pad):
    T = max(len(s[0]) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), T)
    for b, (i, mk, _) in enumerate(seqs):
        ids[b, : len(i)] = torch.tensor(i)
        mask[b, : len(mk)] = torch.tensor(mk, dtype=torch.float32)
    return ids, mask


def next_token_loss(logits, ids, mask):
    """Cross-entropy of token t+1 from position t, where mask[t+1] is set."""
    lg = logits[:, :-1].reshape(-1, logits.shape[-1])
    tgt = ids[:, 1:].reshape(-1)
    w = mask[:, 1:].reshape(-1)
    ce = F.cross_entropy(lg, tgt, reduction="none")
    return (ce * w).sum() / w.sum().clamp(min=1)


def same_scene_sequence(rng, tok, n, one_image=False):
    """Stage b only: n chunks about ONE scene (a caption first, most of the time, then
    questions), so that the text alone asks the language model to find, in its context, what a
    question is about and to copy the attribute it needs. That is the skill the frozen model must
    already have for stage c, where the cross-attention puts the scene into the residual stream
    instead of a caption (tools/train/README.md, "What limits the model").
    one_image (b_sep): only the first chunk starts with <image>, so that to the LM an <image>
    always starts a new scene, as in a few-shot prompt. (The intent: in c27 the LM still
    answered across an <image> most of the time; tools/train/README.md, "Captions overfit".)"""
    objs = world.sample_objects(rng)
    types = list(QTYPE_P)
    probs = np.array([QTYPE_P[t] for t in types])
    ids = []
    for c in range(n):
        for _try in range(20):
            qt = "caption" if (c == 0 and rng.random() < 0.7) else types[int(rng.choice(len(types), p=probs))]
            pa = text.prompt_and_answer(objs, qt, rng, "colour" if rng.random() < 0.1 else "color")
            if pa is not None:
                break
        cid = text.chunk_ids(tok, pa[0], pa[1])[0]
        ids += cid[1:] if (one_image and c > 0) else cid        # cid[0] is <image>
    return ids, [0] + [1] * (len(ids) - 1), []


def retrieval_accuracy(m, tok, seed, n=200, new_image=True):
    """How often the text-only LM answers a question from a caption of the same scene earlier in
    its context (greedy first token == the answer's first token), per question type. new_image:
    the question's chunk starts with its own <image> (as b_sep=0 trains), else it does not (as
    b_sep=1 trains same-scene chunks; with b_sep=1, new_image=True measures how much the LM
    still copies across an <image>, which it should not)."""
    rng = np.random.default_rng([seed, 210])
    out = {}
    with torch.no_grad():
        for qt in ("color", "shape", "count", "presence"):
            ok = total = 0
            while total < n:
                objs = world.sample_objects(rng)
                pa = text.prompt_and_answer(objs, qt, rng)
                if pa is None:
                    continue
                ctx = text.chunk_ids(tok, *text.prompt_and_answer(objs, "caption", rng))[0]
                ids = ctx + tok.encode(pa[0])[0 if new_image else 1:]
                logits = M.lm_forward(m, torch.tensor([ids]), xattn=False)[0, -1]
                ok += int(logits.argmax()) == tok.encode(pa[1])[0]
                total += 1
            out[qt] = ok / total
    return out


def stage_b(m, tok, hp, seed, procs):
    """The language model alone, on text (xattn blocks skipped, <image> is just a token). A share
    b_same of the sequences are chunks about one scene (same_scene_sequence), the others chunks
    about unrelated scenes, as few-shot prompts are."""
    data_parallel(procs, _stage_b_loop, m, tok, hp, seed)
    acc = retrieval_accuracy(m, tok, seed, hp["b_probe"])
    log("b answers from a caption in context: " + " ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    if hp["b_sep"] > 0:
        across, acc = acc, retrieval_accuracy(m, tok, seed, hp["b_probe"], new_image=False)
        log("b ... with no <image> between them: " + " ".join(f"{k} {v:.3f}" for k, v in acc.items()))
        acc = {**acc, "across_image": across}
    return acc


def _stage_b_loop(rank, procs, m, tok, hp, seed):
    lang = m.lang_encoder
    params = [p for n, p in lang.named_parameters() if "gated_cross_attn_layer" not in n]
    opt = torch.optim.AdamW(params, lr=hp["b_lr"], weight_decay=0.01)
    rng = np.random.default_rng([seed, 200, rank])
    t0 = time.time()
    for step in range(hp["b_steps"]):
        n = n_chunks(rng)        # one chunk count per batch: little padding
        seqs = []
        for _ in range(hp["b_batch"] // procs):
            if rng.random() < hp["b_same"]:
                seqs.append(same_scene_sequence(rng, tok, max(2, n), hp["b_sep"] > 0))
            else:
                ids, _, g = sample_sequence(rng, tok, lambda i: world.sample_objects(rng), 1, n)
                # the LM learns the whole text, not only the answers: every token but padding
                seqs.append((ids, [0] + [1] * (len(ids) - 1), g))
        ids, mask = collate(seqs, tok.pad)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, hp["b_steps"], hp["b_lr"], 100)
        loss = next_token_loss(M.lm_forward(m, ids, xattn=False), ids, mask)
        optimise(opt, loss, params, clip=1.0)
        if rank == 0 and (step % 100 == 0 or step == hp["b_steps"] - 1):
            log(f"b {step}/{hp['b_steps']} loss {loss.item():.3f} ({time.time() - t0:.0f}s)")
    check_in_step(params)


def count_labels(truths):
    """Per image, how many objects (0-4) it has of each shape, of each colour, in all, and of
    each colour-shape pair (colour-major): the order of M.COUNT_LATENTS."""
    ns, nc = len(world.SHAPES), len(world.COLOR_NAMES)
    y = np.zeros((len(truths), ns + nc + 1 + ns * nc), np.int64)
    for k, t in enumerate(truths):
        for o in t["objects"]:
            s, c = world.SHAPES.index(o["shape"]), world.COLOR_NAMES.index(o["color"])
            y[k, [s, ns + c, ns + nc, ns + nc + 1 + c * ns + s]] += 1
    return torch.from_numpy(y)


def where_labels(truths):
    """Per image and count latent (count_labels' order), the mean centre (x, y) of the objects
    that have the attribute; NaN where there are none."""
    ns, nc = len(world.SHAPES), len(world.COLOR_NAMES)
    s = np.zeros((len(truths), ns + nc + 1 + ns * nc, 2), np.float64)
    n = np.zeros((len(truths), ns + nc + 1 + ns * nc, 1), np.float64)
    for k, t in enumerate(truths):
        for o in t["objects"]:
            sh, c = world.SHAPES.index(o["shape"]), world.COLOR_NAMES.index(o["color"])
            j = [sh, ns + c, ns + nc, ns + nc + 1 + c * ns + sh]
            s[k, j] += (o["x"], o["y"])
            n[k, j] += 1
    with np.errstate(invalid="ignore"):
        return torch.from_numpy((s / n).astype(np.float32))


def stage_p(m, feats, truths, hp, seed, procs):
    """The Perceiver alone, before stage c. Its latents' queries do not depend on the image, so
    without this they pool the patches of several objects and the cross-attention cannot tell
    which colour belongs to which shape (tools/train/README.md, "Where the binding is lost"):
    - patch latent i learns to reproduce (layer-normed) patch token i;
    - with p_count > 0, count latent j learns, through one linear head shared by all of them
      (thrown away), how many objects the image has of attribute j (count_labels), the loss
      weighted by p_count. A cross-attention output is an average, which loses how many tokens
      matched; a latent that holds the count turns "how many circles" and a caption's "two"
      into a look-up, like "what colour is the star" (tools/train/README.md, "Count latents":
      run17: captions 84.4% instead of run15's 80.4, counts 89.9 instead of 86.0);
    - with p_where > 0, through a second linear head, where those objects are (their mean
      centre, where_labels), the loss weighted by p_where: a question's look-up of "the red
      circle" finds its count latent as well as its patch latents, and the comparison of two
      objects' positions needs what it finds there to hold the position (tools/train/README.md,
      "Stage p twice as long": c24)."""
    L, P = m.cfg["perceiver"]["num_latents"], feats.shape[1]
    n_count = M.COUNT_LATENTS if hp["p_count"] > 0 else 0
    assert L == P + n_count, f"stage p needs one latent per patch and per count ({L} latents, {P} patches)"
    counts = count_labels(truths) if n_count else None
    where = where_labels(truths) if n_count and hp["p_where"] > 0 else None
    # p_head_seed > 0: the heads (thrown away) are a draw of their own, so that stage p depends on
    # its inputs and that seed only (--from FILE --redo-p; FULL: 4343, c26's stage p); 0: torch's
    # global generator, as it stands after stages a and b (run17's stage p)
    with torch.random.fork_rng(devices=[], enabled=hp["p_head_seed"] > 0):
        if hp["p_head_seed"] > 0:
            torch.manual_seed(hp["p_head_seed"])
        head = nn.Linear(feats.shape[-1], 5) if n_count else None
        where_head = nn.Linear(feats.shape[-1], 2) if where is not None else None
    data_parallel(procs, _stage_p_loop, m, head, feats, counts, hp, seed, where_head, where)
    with torch.no_grad():       # the figures reported: 512 training images, the same in any run
        x = feats[-512:].float()
        out = m.perceiver(x)
        info = dict(reconstruction=F.mse_loss(out[:, :P], F.layer_norm(x, (x.shape[-1],))).item())
        if head is not None:
            pred, y = head(out[:, P:]).argmax(-1), counts[-512:]
            ok, pairs = pred == y, slice(len(world.SHAPES) + len(world.COLOR_NAMES) + 1, None)
            info.update(counts_right=ok.float().mean().item(), nonzero_counts_right=ok[y > 0].float().mean().item(),
                        largest_pair_right=(pred[:, pairs].max(1).values == y[:, pairs].max(1).values).float().mean().item())
        return info


def _stage_p_loop(rank, procs, m, head, feats, counts, hp, seed, where_head, where):
    params = list(m.perceiver.parameters()) + (list(head.parameters()) if head is not None else [])
    params += list(where_head.parameters()) if where_head is not None else []
    opt = torch.optim.AdamW(params, lr=hp["p_lr"], weight_decay=0.0)
    rng = np.random.default_rng([seed, 250, rank])
    P = feats.shape[1]
    t0 = time.time()
    for step in range(hp["p_steps"]):
        idx = torch.from_numpy(rng.integers(0, len(feats), 64 // procs))
        x = feats[idx].float()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, hp["p_steps"], hp["p_lr"], 50)
        out = m.perceiver(x)
        loss = l_rec = F.mse_loss(out[:, :P], F.layer_norm(x, (x.shape[-1],)))
        if head is not None:
            l_cnt = F.cross_entropy(head(out[:, P:]).reshape(-1, 5), counts[idx].reshape(-1))
            loss = l_rec + hp["p_count"] * l_cnt
        if where_head is not None:
            w = where[idx]
            known = ~torch.isnan(w)
            l_where = F.mse_loss(where_head(out[:, P:])[known], w[known]) * 10
            loss = loss + hp["p_where"] * l_where
        optimise(opt, loss, params, clip=None)
        if rank == 0 and (step % 100 == 0 or step == hp["p_steps"] - 1):
            log(f"p {step}/{hp['p_steps']} reconstruction {l_rec.item():.4f}" +
                (f" counts {l_cnt.item():.4f}" if head is not None else "") +
                (f" where {l_where.item():.4f}" if where_head is not None else "") + f" ({time.time() - t0:.0f}s)")
    check_in_step(params)


def stage_c(m, tok, feats, truths, hp, seed, procs):
    """The gated cross-attention on interleaved sequences; everything else frozen.
    The gates start at c_gate0 (tanh 0.46), not at OpenFlamingo's 0: with a closed gate the
    blocks get no gradient but through the gate itself, and at this scale they then took
    thousands of steps to open (tools/train/README.md)."""
    for p in m.parameters():
        p.requires_grad_(False)
    # The Perceiver stays as stage p left it: that is how the binding was measured to pass
    # (tools/train/README.md); training it here as well has not been tried on this schedule.
    train = []
    for layer in m.lang_encoder.layers():
        if layer.gated_cross_attn_layer is not None:
            blk = layer.gated_cross_attn_layer
            with torch.no_grad():
                blk.attn_gate.fill_(hp["c_gate0"])
                blk.ff_gate.fill_(hp["c_gate0"])
            train += list(blk.parameters())
    for p in train:
        p.requires_grad_(True)
    with torch.no_grad(), threads(procs):      # the Perceiver is frozen: its latents of every image, once
        latents = torch.cat([m.perceiver(feats[i:i + 512].float()) for i in range(0, len(truths), 512)])
    data_parallel(procs, _stage_c_loop, m, tok, latents, truths, train, hp, seed)
    for p in m.parameters():
        p.requires_grad_(True)


def c_schedule(hp):
    """Stage c's question mix and learning rate at every step, in phases:
    1. binding, c_bind steps: colour and presence questions only, the two that need the colour
       bound to the shape. On that mix the loss drops sharply after 400-700 steps at a high
       learning rate (the cross-attention finds the object's patches); on the full mix, where
       they are a quarter of the chunks, it had not within 2,400 steps (run7).
    2. main, the rest of c_steps: the full mix (QTYPE_C). 1 and 2 share one warm-up and cosine.
    2b. c_cap steps of captions alone, with their own cosine (0 in FULL: c19 in
       tools/train/README.md).
    3. c_yn steps of yes / no position questions alone ("Is A left of B?": two look-ups and a
       comparison, at chance in the full mix; learnt alone only from a cross-attention that
       already finds objects, after a plateau of 400-1,100 steps), with their own cosine. The
       first c_yn_patch of them see the Perceiver's patch latents only, not its count latents:
       a look-up of "the red circle" finds that pair's count latent first, which holds no
       position, and with strong count latents (stage p at p_count=1.0) the phase then stayed
       at chance for all its steps (c23); without them it leaves chance, slowly (c28 in
       tools/train/README.md, "Two-shot captions"; off in FULL). Its last c_yn_mix steps are
       YN_MIX on all latents (off in FULL: presence did not come back, d2 in "Where the yes /
       no phase stalls").
    4. tail, c_tail steps of the full mix at a lower rate, which win back what the other kinds
       lost in phase 3; captions are c_tail_cap of its chunks (0.4 in FULL, against QTYPE_C's
       0.26: captions are the kind that more steps still improve; tools/train/README.md,
       "Captions are under-trained"; after FULL's 2,400-step phase 3 a longer tail with fewer
       captions than run19's 0.5 wins back counts and presence, "Where the yes / no phase
       stalls"). Its sequences are shaped more like few-shot prompts
       (c_tail_chunks: more of 3 chunks; c_tail_same: most of one question type throughout),
       which took two-shot captions up to zero-shot ones ("Two-shot captions").
       (tools/train/README.md, "Stage c's phases".)
    Every step is a CStep: the question mix, the learning rate, how many of each image's
    latents the cross-attention sees (None: all), the chunk-count probabilities of its
    sequences and the probability that a sequence's chunks are all of one type."""
    bind_p = {t: (0.5 if t in ("color", "presence") else 0.0) for t in QTYPE_C}
    yes_no = {"position_yn": 1.0}
    tail = with_caption_share(QTYPE_C, hp["c_tail_cap"])
    cap = {"caption": 1.0}
    patch = M.PATCH_LATENTS
    return ([CStep(bind_p if i < hp["c_bind"] else QTYPE_C, lr_at(i, hp["c_steps"], hp["c_lr"], 50))
             for i in range(hp["c_steps"])] +
            [CStep(cap, lr_at(i, hp["c_cap"], hp["c_cap_lr"], 50)) for i in range(hp["c_cap"])] +
            [CStep(yes_no if i < hp["c_yn"] - hp["c_yn_mix"] else YN_MIX, lr_at(i, hp["c_yn"], hp["c_yn_lr"], 50),
                   patch if i < hp["c_yn_patch"] else None)
             for i in range(hp["c_yn"])] +
            [CStep(tail, lr_at(i, hp["c_tail"], hp["c_tail_lr"], 50), None, hp["c_tail_chunks"], hp["c_tail_same"])
             for i in range(hp["c_tail"])])


class CStep(typing.NamedTuple):
    """One step of stage c's schedule (c_schedule)."""
    mix: dict
    lr: float
    latents: typing.Optional[int] = None
    chunks: typing.Optional[list] = None      # None: N_CHUNKS_P
    same: float = 0.5


def with_caption_share(mix, share):
    """mix with captions at `share` and the other types scaled to the rest (mix itself when
    its caption share already is `share`)."""
    if share == mix["caption"]:
        return mix
    rest = sum(v for k, v in mix.items() if k != "caption")
    return {k: (share if k == "caption" else v * (1.0 - share) / rest) for k, v in mix.items()}


def _stage_c_loop(rank, procs, m, tok, latents, truths, train, hp, seed):
    opt = torch.optim.AdamW(train, lr=hp["c_lr"], weight_decay=0.01)
    rng = np.random.default_rng([seed, 300, rank])
    n_pool = len(truths)
    schedule = c_schedule(hp)
    steps = len(schedule)
    t0 = time.time()
    ema = None
    for step, st in enumerate(schedule):
        n = n_chunks(rng, st.chunks)
        seqs = [sample_sequence(rng, tok, lambda i: truths[i]["objects"], n_pool, n, st.mix, st.same)
                for _ in range(hp["c_batch"] // procs)]
        ids, mask = collate(seqs, tok.pad)
        media = torch.stack([latents[s[2]] for s in seqs])          # [B, n, L, W]: n images each
        if st.latents is not None:
            media = media[:, :, :st.latents]
        for g in opt.param_groups:
            g["lr"] = st.lr
        loss = next_token_loss(M.lm_forward(m, ids, media), ids, mask)
        optimise(opt, loss, train, clip=1.0)
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if rank == 0 and (step % 100 == 0 or step == steps - 1):
            gates = [round(float(l.gated_cross_attn_layer.attn_gate.tanh()), 3) for l in m.lang_encoder.layers()]
            log(f"c {step}/{steps} loss {loss.item():.3f} ema {ema:.3f} attn gates {gates} "
                f"({time.time() - t0:.0f}s)")
    check_in_step(train)


# ---------------------------------------------------------------------------------------
# Export and check

def reuse_stages(m, cfg, tok_json, path, redo_p=False):
    """--from: stages a, b and p (a and b only with redo_p) as an earlier run left them. The
    tokenizer and the configuration must be the ones this train.py makes (else the later stages
    would not be the same); the cross-attention blocks (and with redo_p the Perceiver) keep this
    run's initial weights. The earlier stages' figures (held-out vision heads, reconstruction)
    are in that run's log, not recomputed here."""
    tensors, meta = stfile.read(path)
    if meta.get("tokenizer") != tok_json or json.loads(meta["config"]) != cfg:
        sys.exit(f"{path}: its tokenizer or configuration is not the one this train.py makes")
    own = m.state_dict()
    for k, v in tensors.items():
        if ".gated_cross_attn_layer." not in k and not (redo_p and k.startswith("perceiver.")):
            own[k].copy_(torch.from_numpy(np.asarray(v, dtype=np.float32)))
    log(f"stages a, b{'' if redo_p else ', p'} from {path}")


def export(m, cfg, tok_json, path):
    state = {k: v.detach().float().numpy() for k, v in m.state_dict().items()}
    stfile.write(path, state, metadata={"config": json.dumps(cfg), "tokenizer": tok_json,
                                        "training": json.dumps({"recipe": "tools/train/train.py", "seed": SEED})})


def check_export(m, path, tok, images, truths):
    """The reference, loaded from the file, one sequence at a time == the batched model."""
    ref = flamingo_ref.load(path)
    rng = np.random.default_rng(5)
    worst = 0.0
    for k in range(3):
        ids, _, imgs = sample_sequence(rng, tok, lambda i: truths[i]["objects"], len(truths))
        pix = M.normalize(images[imgs]).numpy()
        want = flamingo_ref.forward_logits(ref, ids, pix)
        with torch.no_grad():
            lat = m.encode_images(torch.from_numpy(pix))
            got = M.lm_forward(m, torch.tensor([ids]), lat[None])[0].numpy()
        worst = max(worst, float(np.abs(want - got).max() / (want.max() - want.min())))
    log(f"export check: batched training model vs reference from the file, max |diff| / range {worst:.2e}")
    assert worst < 1e-5, "the batched training forward differs from the reference"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a few steps of each stage, to a temp file")
    ap.add_argument("--out", help="model file (default weights/flamingo-tiny.safetensors; temp with --smoke)")
    ap.add_argument("--work", default=os.path.join(HERE, "work"), help="folder for the log")
    ap.add_argument("--procs", type=int, default=2,
                    help="processes per stage, one thread each, each on its share of every batch")
    ap.add_argument("--workers", type=int, default=2, help="processes rendering images")
    ap.add_argument("--reuse-images", action="store_true", help="load stage 0's images from --work if there")
    ap.add_argument("--set", action="append", default=[], help="override a hyperparameter, e.g. c_steps=100")
    ap.add_argument("--from", dest="from_", metavar="FILE",
                    help="take the vision encoder, Perceiver, language model and tokenizer from FILE, an "
                         "earlier run's output, and run stage c only (the same file as a full run with "
                         "those stages: stage c depends on them and on the seed only)")
    ap.add_argument("--redo-p", action="store_true",
                    help="with --from: take only the vision encoder, LM and tokenizer, and run stages p and c")
    args = ap.parse_args()
    if args.redo_p and not args.from_:
        sys.exit("--redo-p needs --from")
    hp = dict(SMOKE if args.smoke else FULL)
    for kv in args.set:
        k, v = kv.split("=")
        hp[k] = ([float(x) for x in v.split(",")] if isinstance(hp[k], list) else
                 type(hp[k])(float(v)) if isinstance(hp[k], int) else float(v))
    if args.redo_p and hp["p_head_seed"] <= 0:       # else stage p's heads would be another draw
        sys.exit("--redo-p needs --set p_head_seed=N (N > 0), the same as the run it is to equal")
    out = args.out or (os.path.join(tempfile.mkdtemp(prefix="flamingo-smoke-"), "flamingo-tiny.safetensors")
                       if args.smoke else os.path.join(ROOT, "weights", "flamingo-tiny.safetensors"))
    torch.set_num_threads(1)       # see data_parallel
    openblas_core.set_threads(1)   # and OpenBLAS's own pool, which the line above does not size
    torch.manual_seed(SEED)
    T0 = time.time()
    times = {}
    log("hyperparameters", json.dumps(hp))
    log("OpenBLAS core", openblas_core.current_core())

    tok_json = text.make_tokenizer_json(SEED)
    tok = text.Tok(tok_json)
    tokens = {"media": tok.media, "endofchunk": tok.eoc, "pad": tok.pad, "eos": tok.eos}
    cfg = M.config(len(tok), tokens, count_latents=hp["p_count"] > 0)
    m = M.build(cfg)
    n_params = sum(p.numel() for p in m.parameters())
    log(f"tokenizer: vocab {len(tok)}; model: {n_params} parameters")

    t = time.time()
    cache = os.path.join(args.work, f"images-{SEED}-{hp['n_images']}.npz")
    if args.reuse_images and os.path.exists(cache):       # only to iterate faster; not from scratch
        z = np.load(cache, allow_pickle=False)
        images, truths = z["images"], json.loads(str(z["truths"]))
    else:
        images, truths = make_images(SEED, hp["n_images"], args.workers)
        if not args.smoke:
            os.makedirs(args.work, exist_ok=True)
            np.savez(cache, images=images, truths=json.dumps(truths))
    times["0_images"] = time.time() - t
    log(f"stage 0: {len(truths)} images in {times['0_images']:.0f}s")

    info_a = info_b = info_p = None     # with --from: in the earlier run's log
    if args.from_:
        reuse_stages(m, cfg, tok_json, args.from_, args.redo_p)
        times["from"] = args.from_
    else:
        t = time.time()
        na = hp["a_images"]           # stage a: the first a_images only (its held-out split in them)
        info_a = stage_a(m, images[:na], truths[:na], hp, SEED, args.procs)
        times["a_vision"] = time.time() - t
        t = time.time()
        info_b = stage_b(m, tok, hp, SEED, args.procs)
        times["b_lm"] = time.time() - t

    t = time.time()
    m.eval()
    with threads(args.procs):
        feats = M.vision_features(m, M.normalize(images))   # frozen: computed once
    times["c_features"] = time.time() - t
    if not args.from_ or args.redo_p:
        t = time.time()
        info_p = stage_p(m, feats, truths, hp, SEED, args.procs)
        times["p_perceiver"] = time.time() - t
    t = time.time()
    stage_c(m, tok, feats, truths, hp, SEED, args.procs)
    times["c_xattn"] = time.time() - t

    m.eval()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    export(m, cfg, tok_json, out)
    check_export(m, out, tok, images, truths)
    times["total"] = time.time() - T0
    log(f"wrote {out} ({os.path.getsize(out)} bytes); times " +
        json.dumps({k: (round(v) if isinstance(v, float) else v) for k, v in times.items()}))
    os.makedirs(args.work, exist_ok=True)
    with open(os.path.join(args.work, "smoke.json" if args.smoke else "train.json"), "w") as f:
        json.dump({"hp": hp, "times_s": times, "vision_heldout": info_a, "lm_context_answers": info_b, "perceiver": info_p, "params": n_params, "out": out}, f, indent=1)


if __name__ == "__main__":
    main()
