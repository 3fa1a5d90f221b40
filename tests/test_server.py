"""`flamingo serve` end to end over real HTTP (tests/server_util.py starts the
binary on a free loopback port):

- every endpoint; the answers of /v1/completions equal `flamingo run` and the
  reference's generations (greedy and 3 beams) on every golden case of the
  four golden models, with the real photographs as data URIs; chat, caption
  and few-shot chat equal `flamingo run` on the prompt the template gives;
- SSE framing byte for byte (data lines, blank lines, one id and created,
  role first, finish_reason last, the usage chunk, [DONE]), streamed text
  equal to the non-streamed text;
- n, logprobs, top_logprobs, stop, seed, max_tokens; the image cache;
- more than 40 malformed requests, each with its status, error.type,
  error.param and error.code, and the server still answering afterwards;
- --api-key, X-Request-Id, the body limit, the log line, /metrics;
- SIGTERM while streams are in flight: they finish, exit status 0.
"""
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "weights"))
import bpe_ref  # noqa: E402
import stfile  # noqa: E402
from server_util import BIN, FIX, Server, data_uri, sanitizer_report, sse_events  # noqa: E402

MODELS = ["of_mosaic", "of_mpt", "of_neox", "of_neox4"]
CAT = os.path.join(FIX, "img", "cat.jpg")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)
    return cond


def run_cli(model, prompt, images, n, *extra):
    args = [BIN, "run", "-m", model, "-p", prompt, "-n", str(n), *extra]
    for im in images:
        args += ["-i", im]
    p = subprocess.run(args, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode("utf-8")[:-1]  # run adds a newline


def png_header(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


# ---- answers equal the command line and the reference -----------------------------

def golden(srv, name):
    tok = bpe_ref.Tokenizer.from_file(os.path.join(FIX, "tiny.tokenizer.json"))
    model = os.path.join(FIX, name + ".safetensors")
    tensors, meta = stfile.read(os.path.join(FIX, name + ".io.safetensors"))
    for k, case in enumerate(json.loads(meta["cases"])):
        imgs = [data_uri(p) for p in case["images"]]
        for mode, beams in (("greedy", 1), ("beam3", 3)):
            body = {"prompt": case["prompt"], "images": imgs, "max_tokens": case["max_new_tokens"],
                    "temperature": 0, "num_beams": beams}
            st, r = srv.json("/v1/completions", body)
            want = tok.decode([int(i) for i in tensors[f"case{k}.{mode}"]])
            got = r["choices"][0]["text"] if st == 200 else r
            check(st == 200 and got == want, f"{name} case {k} {mode}: got {got!r}, want {want!r}")
        cli = run_cli(model, case["prompt"], case["images"], case["max_new_tokens"])
        st, r = srv.json("/v1/completions", {"prompt": case["prompt"], "images": imgs,
                                             "max_tokens": case["max_new_tokens"]})
        check(st == 200 and r["choices"][0]["text"] == cli, f"{name} case {k}: server != flamingo run ({cli!r})")
    print(f"ok   {name}: every golden case, greedy and 3 beams, equals the reference and flamingo run")


def chat_template(srv, model):
    astro = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"
    cases = [
        # (messages, the Flamingo prompt they render to, images)
        ([{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                       {"type": "image_url", "image_url": {"url": data_uri(CAT)}}]}],
         "<image>Question:What is this? Short answer:", [CAT]),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(CAT)}}]}],
         "<image>Output:", [CAT]),
        ([{"role": "system", "content": "A few examples."},
          {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(astro)}},
                                       {"type": "text", "text": "Who?"}]},
          {"role": "assistant", "content": "an astronaut"},
          {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(CAT)}},
                                       {"type": "text", "text": "Who?"}]}],
         "A few examples.<image>Question:Who? Short answer:an astronaut<|endofchunk|>"
         "<image>Question:Who? Short answer:", [astro, CAT]),
        ([{"role": "user", "content": "Say something."}], "Question:Say something. Short answer:", []),
    ]
    for msgs, prompt, images in cases:
        want = run_cli(model, prompt, images, 12)
        st, r = srv.json("/v1/chat/completions", {"messages": msgs, "max_tokens": 12})
        got = r["choices"][0]["message"]["content"] if st == 200 else r
        check(st == 200 and got == want, f"chat {prompt!r}: got {got!r}, want {want!r}")
        check(st == 200 and r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant",
              "chat.completion shape")
        check(st == 200 and r["usage"]["prompt_tokens"] > 8 * len(images), "usage counts the image latents")
    # caption: raw bytes, and JSON with a prompt
    want = run_cli(model, "<image>Output:", [CAT], 32)
    with open(CAT, "rb") as f:
        raw = f.read()
    st, hd, data = srv.post("/v1/caption", raw, headers={"Content-Type": "image/jpeg"})
    r = json.loads(data)
    check(st == 200 and r["caption"] == want and r["object"] == "caption", f"raw caption {r}")
    st, r = srv.json("/v1/caption", {"image": base64.b64encode(raw).decode(), "prompt": "A photo of",
                                     "max_tokens": 5})
    want = run_cli(model, "<image>A photo of", [CAT], 5)
    check(st == 200 and r["caption"] == want, f"JSON caption {r} != {want!r}")
    st, hd, data = srv.post("/v1/caption?max_tokens=3&prompt=Output:", raw, headers={"Content-Type": "image/jpeg"})
    check(st == 200 and json.loads(data)["usage"]["completion_tokens"] <= 3, "caption query arguments")
    print("ok   chat template (image + question, image only, few-shot with system, text only) and caption")


# ---- streaming -----------------------------------------------------------------------

def streaming(srv):
    for path, body in (
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_uri(CAT)}}, {"type": "text", "text": "Why?"}]}],
            "max_tokens": 20}),
        ("/v1/completions", {"prompt": "<image>Output:", "images": [data_uri(CAT)], "max_tokens": 20}),
    ):
        chat = path.endswith("chat/completions")
        st, r = srv.json(path, body)
        whole = r["choices"][0]["message"]["content"] if chat else r["choices"][0]["text"]
        for usage in (False, True):
            b = dict(body, stream=True)
            if usage:
                b["stream_options"] = {"include_usage": True}
            st, hd, raw = srv.post(path, b)
            check(st == 200 and hd.get("content-type") == "text/event-stream", f"{path} stream headers {hd}")
            ev = sse_events(raw)
            check(ev[-1] == "[DONE]", f"{path}: last event {ev[-1]!r}")
            chunks = [json.loads(e) for e in ev[:-1]]
            check(len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1,
                  f"{path}: one id and created")
            obj = "chat.completion.chunk" if chat else "text_completion"
            check(all(c["object"] == obj for c in chunks), f"{path}: object {obj}")
            if usage:
                last = chunks.pop()
                check(last["choices"] == [] and last["usage"]["completion_tokens"] == r["usage"]["completion_tokens"]
                      and last["usage"]["prompt_tokens"] == r["usage"]["prompt_tokens"], f"{path}: usage chunk {last}")
                check(all("usage" in c and c["usage"] is None for c in chunks), f"{path}: usage null in chunks")
            else:
                check(all("usage" not in c for c in chunks), f"{path}: no usage without include_usage")
            if chat:
                check(chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}, "role first")
                text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
            else:
                text = "".join(c["choices"][0]["text"] for c in chunks)
            fin = [c["choices"][0]["finish_reason"] for c in chunks]
            check(fin[-1] in ("stop", "length") and all(f is None for f in fin[:-1]), f"{path}: finish_reason {fin}")
            check(text == whole, f"{path}: streamed {text!r} != {whole!r}")
    # byte-exact framing of one event
    st, hd, raw = srv.post("/v1/completions", {"prompt": "x", "max_tokens": 1, "stream": True})
    check(raw.startswith(b"data: {\"id\":\"cmpl-") and raw.endswith(b"}\n\ndata: [DONE]\n\n"), f"framing {raw[:60]!r}")
    print("ok   SSE streaming of chat and completions, with and without usage")


# ---- n, logprobs, stop, seed --------------------------------------------------------------

def options(srv):
    base = {"prompt": "<image>Output:", "images": [data_uri(CAT)], "max_tokens": 12}
    st, r = srv.json("/v1/completions", dict(base, n=3, temperature=1.0, seed=7))
    check(st == 200 and [c["index"] for c in r["choices"]] == [0, 1, 2], "n=3 indexes")
    st, r2 = srv.json("/v1/completions", dict(base, n=3, temperature=1.0, seed=7))
    check([c["text"] for c in r["choices"]] == [c["text"] for c in r2["choices"]], "the same seed, the same samples")
    check(r["usage"]["completion_tokens"] == r2["usage"]["completion_tokens"], "usage over n")
    texts = set()
    for seed in range(8):
        st, r3 = srv.json("/v1/completions", dict(base, temperature=1.5, seed=seed))
        texts.add(r3["choices"][0]["text"])
    check(len(texts) > 1, f"different seeds sample differently: {texts}")
    # logprobs (chat): one entry per token, top-k sorted, greedy = the best alternative
    st, r = srv.json("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6,
                                              "logprobs": True, "top_logprobs": 3})
    lp = r["choices"][0]["logprobs"]["content"]
    check(len(lp) == r["usage"]["completion_tokens"], "a logprob per token")
    for e in lp:
        tops = e["top_logprobs"]
        check(len(tops) == 3 and all(tops[i]["logprob"] >= tops[i + 1]["logprob"] for i in range(2)), "top sorted")
        check(abs(tops[0]["logprob"] - e["logprob"]) < 1e-6 and e["logprob"] <= 0, "greedy picks the best")
        check(bytes(e["bytes"]).decode("utf-8", "replace") == e["token"] or "\ufffd" in e["token"], "bytes")
    check("".join(e["token"] for e in lp) == r["choices"][0]["message"]["content"] or
          any("\ufffd" in e["token"] for e in lp), "tokens spell the text")
    # logprobs (completions, legacy shape)
    st, r = srv.json("/v1/completions", dict(base, logprobs=2))
    lp = r["choices"][0]["logprobs"]
    n = r["usage"]["completion_tokens"]
    check(len(lp["tokens"]) == n and len(lp["token_logprobs"]) == n and len(lp["top_logprobs"]) == n
          and len(lp["text_offset"]) == n and lp["text_offset"] == sorted(lp["text_offset"]), f"legacy logprobs {lp}")
    # stop: the text ends before the stop string's first occurrence
    st, r = srv.json("/v1/completions", dict(base, max_tokens=30))
    full = r["choices"][0]["text"]
    if len(full) >= 4:
        s = full[2:4]
        st, r = srv.json("/v1/completions", dict(base, max_tokens=30, stop=[s, "\u2603never"]))
        check(r["choices"][0]["text"] == full[:full.index(s)] and r["choices"][0]["finish_reason"] == "stop",
              f"stop {s!r}: {r['choices'][0]}")
    st, r = srv.json("/v1/completions", dict(base, max_tokens=1))
    check(r["usage"]["completion_tokens"] == 1, "max_tokens 1")
    # the image cache: this image was sent before
    check(r["timings"]["cached_images"] == 1, f"timings.cached_images {r['timings']}")
    st, hd, m = srv.request("GET", "/metrics")
    hits = [ln for ln in m.decode().splitlines() if ln.startswith("flamingo_image_cache_hits_total ")]
    check(hits and int(hits[0].split()[1]) > 0, "image cache hits in /metrics")
    # the prefix cache: this prompt ran before, with this image; the answer is the full run's
    st, r = srv.json("/v1/completions", dict(base, max_tokens=30))
    cached = r["usage"].get("prompt_tokens_details", {}).get("cached_tokens")
    check(cached and cached >= 1 and cached == r["timings"]["cached_tokens"], f"prefix cache: {r['usage']}")
    check(r["choices"][0]["text"] == full, "the same answer from the prefix cache")
    st, hd, m = srv.request("GET", "/metrics")
    got = [ln for ln in m.decode().splitlines() if ln.startswith("flamingo_prompt_tokens_cached_total ")]
    check(got and int(got[0].split()[1]) >= cached, "cached prompt tokens in /metrics")
    print("ok   n, seed, logprobs (both shapes), stop, max_tokens, the image cache, the prefix cache")


# ---- bad requests -------------------------------------------------------------------------

def bad_requests(srv):
    cat = data_uri(CAT)
    with open(CAT, "rb") as f:
        cat_raw = f.read()
    b64 = base64.b64encode(cat_raw).decode()

    def chat(*parts, **kw):
        return dict({"messages": [{"role": "user", "content": list(parts)}]}, **kw)

    def img(url):
        return {"type": "image_url", "image_url": {"url": url}}

    txt = {"type": "text", "text": "What?"}
    C, P, K = "/v1/chat/completions", "/v1/completions", "/v1/caption"
    huge = "data:image/png;base64," + base64.b64encode(png_header(100000, 100000)).decode()
    U = "messages[0].content[0].image_url.url"
    cases = [
        # (path, body, status, param, code)
        (C, "{", 400, None, "invalid_json"),
        (C, "[]", 400, None, "invalid_json"),
        (C, "", 400, None, "invalid_json"),
        (C, '{"messages": [{"role": "user", "content": "hi"}], }', 400, None, "invalid_json"),
        (C, '{"messages": [{"role": "user", "content": "hi"}]} trailing', 400, None, "invalid_json"),
        (P, '{"prompt": "a\\u0000<image>"}', 400, None, "invalid_json"),
        (P, b'{"prompt": "a\x00b"}', 400, None, "invalid_json"),
        (P, {"prompt": "word " * 100000}, 400, "prompt", "context_length_exceeded"),
        (P, '{"prompt": "x", "ignored": [' + "0," * 200000 + '0]}', 400, None, "invalid_json"),
        (C, {}, 400, "messages", "missing_field"),
        (C, {"messages": "hi"}, 400, "messages", "invalid_type"),
        (C, {"messages": []}, 400, "messages", "invalid_value"),
        (C, {"messages": [5]}, 400, "messages[0]", "invalid_type"),
        (C, {"messages": [{"role": 1, "content": "x"}]}, 400, "messages[0].role", "invalid_type"),
        (C, {"messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0].role", "invalid_value"),
        (C, {"messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content", "invalid_type"),
        (C, {"messages": [{"role": "user", "content": [5]}]}, 400, "messages[0].content[0]", "invalid_type"),
        (C, chat({"text": "x"}), 400, "messages[0].content[0].type", "invalid_type"),
        (C, chat({"type": "input_audio"}), 400, "messages[0].content[0].type", "invalid_value"),
        (C, chat({"type": "text", "text": 3}), 400, "messages[0].content[0].text", "invalid_type"),
        (C, chat({"type": "image_url", "image_url": {"url": 7}}), 400, U, "invalid_type"),
        (C, chat(img("https://example.com/cat.jpg")), 400, U, "invalid_image_url"),
        (C, chat(img("data:image/png,abc")), 400, U, "invalid_image_url"),
        (C, chat(img("data:text/plain;base64,aGVsbG8=")), 400, U, "invalid_image_url"),
        (C, chat(img(b64)), 400, U, "invalid_image_url"),
        (C, chat(img("data:image/jpeg;base64,@@@@" + b64)), 400, U, "invalid_base64"),
        (C, chat(img(cat[:-3])), 400, U, "invalid_base64"),
        (C, chat(img("data:image/png;base64," + base64.b64encode(b"not an image at all").decode())), 400, U,
         "invalid_image"),
        (C, chat(img(huge)), 400, U, "image_too_large"),
        (C, chat(img("data:image/jpeg;base64," + base64.b64encode(cat_raw[:len(cat_raw) // 2]).decode())), 400, U,
         "invalid_image"),
        (C, chat(*[img(cat)] * 17), 400, "messages[0].content[16].image_url.url", "too_many_images"),
        (C, {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, 400, "messages",
         "invalid_value"),
        (C, {"messages": [{"role": "user", "content": ""}]}, 400, "messages[0].content", "invalid_value"),
        (C, {"messages": [{"role": "assistant", "content": [img(cat)]}, {"role": "user", "content": "x"}]}, 400,
         "messages[0].content[0].type", "invalid_value"),
        (C, chat(txt, max_tokens=-1), 400, "max_tokens", "invalid_value"),
        (C, chat(txt, max_tokens=10**9), 400, "max_tokens", "invalid_value"),
        (C, chat(txt, max_tokens="10"), 400, "max_tokens", "invalid_value"),
        (C, chat(txt, max_tokens=1.5), 400, "max_tokens", "invalid_value"),
        (C, chat(txt, max_completion_tokens=0), 400, "max_completion_tokens", "invalid_value"),
        (C, chat(txt, temperature=-1), 400, "temperature", "invalid_value"),
        (C, chat(txt, temperature="hot"), 400, "temperature", "invalid_value"),
        (C, chat(txt, top_p=0), 400, "top_p", "invalid_value"),
        (C, chat(txt, top_p=1.5), 400, "top_p", "invalid_value"),
        (C, chat(txt, top_k=1.5), 400, "top_k", "invalid_value"),
        (C, chat(txt, min_p=2), 400, "min_p", "invalid_value"),
        (C, chat(txt, presence_penalty=3), 400, "presence_penalty", "invalid_value"),
        (C, chat(txt, frequency_penalty=-2.5), 400, "frequency_penalty", "invalid_value"),
        (C, chat(txt, repetition_penalty=0), 400, "repetition_penalty", "invalid_value"),
        (C, chat(txt, n=0), 400, "n", "invalid_value"),
        (C, chat(txt, n=100), 400, "n", "invalid_value"),
        (C, chat(txt, stop=5), 400, "stop", "invalid_type"),
        (C, chat(txt, stop=["a", 3]), 400, "stop[1]", "invalid_type"),
        (C, chat(txt, stop=[str(i) for i in range(9)]), 400, "stop", "invalid_value"),
        (C, chat(txt, stop=""), 400, "stop", "invalid_value"),
        (C, chat(txt, stream="yes"), 400, "stream", "invalid_type"),
        (C, chat(txt, stream_options=True), 400, "stream_options", "invalid_type"),
        (C, chat(txt, stream_options={"include_usage": 1}), 400, "stream_options.include_usage", "invalid_type"),
        (C, chat(txt, logprobs="x"), 400, "logprobs", "invalid_type"),
        (C, chat(txt, logprobs=True, top_logprobs=21), 400, "top_logprobs", "invalid_value"),
        (C, chat(txt, top_logprobs=2), 400, "top_logprobs", "invalid_value"),
        (C, chat(txt, num_beams=0), 400, "num_beams", "invalid_value"),
        (C, chat(txt, num_beams=3, temperature=1), 400, "num_beams", "invalid_value"),
        (C, chat(txt, num_beams=2, logprobs=True), 400, "logprobs", "invalid_value"),
        (C, chat(txt, seed="abc"), 400, "seed", "invalid_value"),
        (C, chat(txt, model="gpt-4o"), 404, "model", "model_not_found"),
        (C, chat(txt, max_tokens=90), 400, "max_tokens", "context_length_exceeded"),
        (C, chat({"type": "text", "text": "word " * 500}), 400, "messages", "context_length_exceeded"),
        (C, chat({"type": "text", "text": "<image> what?"}), 400, "messages", "image_count_mismatch"),
        (P, {}, 400, "prompt", "missing_field"),
        (P, {"prompt": 5}, 400, "prompt", "invalid_type"),
        (P, {"prompt": ["a", "b"]}, 400, "prompt", "invalid_value"),
        (P, {"prompt": ""}, 400, "prompt", "invalid_value"),
        (P, {"prompt": "<image><image>Output:", "images": [cat]}, 400, "images", "image_count_mismatch"),
        (P, {"prompt": "Output:", "images": [cat]}, 400, "images", "image_count_mismatch"),
        (P, {"prompt": "<image>x", "images": cat}, 400, "images", "invalid_type"),
        (P, {"prompt": "<image>x", "images": [3]}, 400, "images[0]", "invalid_type"),
        (P, {"prompt": "<image>x", "images": ["!!!!"]}, 400, "images[0]", "invalid_base64"),
        (P, {"prompt": "<image>x", "images": [b64[:101]]}, 400, "images[0]", "invalid_base64"),
        (P, {"prompt": "<image>" * 17, "images": [cat] * 17}, 400, "images", "too_many_images"),
        (P, {"prompt": "x", "logprobs": 30}, 400, "logprobs", "invalid_value"),
        (P, {"prompt": "x " * 200}, 400, "prompt", "context_length_exceeded"),
        (K, {}, 400, "image", "missing_field"),
        (K, {"image": 1}, 400, "image", "invalid_type"),
        (K, {"image": b64, "prompt": 2}, 400, "prompt", "invalid_type"),
        (K, {"image": "data:image/jpeg;base64,AAAA"}, 400, "image", "invalid_image"),
    ]
    n = 0
    for path, body, status, param, code in cases:
        st, hd, data = srv.post(path, body)
        try:
            err = json.loads(data)["error"]
        except Exception:  # noqa: BLE001
            err = {}
        want_type = {400: "invalid_request_error", 404: "invalid_request_error"}[status]
        ok = (st == status and err.get("param") == param and err.get("code") == code and err.get("type") == want_type
              and isinstance(err.get("message"), str) and err["message"] and hd.get("x-request-id"))
        short = repr(body[:120]) if isinstance(body, (str, bytes)) else json.dumps(body)[:120]
        check(ok, f"{path} {short}: got {st} {err}, want {status} param={param} code={code}")
        n += 1
    # raw caption bodies
    for body, code in ((b"", "invalid_image"), (b"hello, this is not an image", "invalid_image"),
                       (png_header(100000, 100000), "image_too_large")):
        st, hd, data = srv.post(K, body, headers={"Content-Type": "image/png"})
        err = json.loads(data)["error"]
        check(st == 400 and err["param"] == "body" and err["code"] == code, f"raw caption {body[:10]!r}: {st} {err}")
        n += 1
    # routing
    for method, path, status in (("GET", "/v1/nothing", 404), ("GET", C, 405), ("POST", "/health", 405),
                                 ("DELETE", "/v1/models", 405), ("GET", "/v1", 404)):
        st, hd, data = srv.request(method, path)
        err = json.loads(data)["error"]
        check(st == status and err["type"] == "not_found_error", f"{method} {path}: {st} {err}")
        if status == 405:
            check("allow" in hd, f"{method} {path}: Allow header")
        n += 1
    st, hd, data = srv.request("GET", "/health")
    check(st == 200, "the server still answers after the bad requests")
    print(f"ok   {n} malformed requests: status, type, param and code each")
    return n


# ---- operations ----------------------------------------------------------------------------

def operations(model):
    # limits come from flags and from FLAMINGO_* variables alike
    srv = Server(model, "--max-body-bytes", "4096", env={"FLAMINGO_API_KEY": "s3cret", "FLAMINGO_MAX_TOKENS": "16"})
    try:
        body = {"prompt": "x", "max_tokens": 2}
        for hdrs, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "s3cret"}, 401),
                             ({"Authorization": "Bearer s3cret"}, 200)):
            st, hd, data = srv.post("/v1/completions", body, headers=hdrs)
            err = json.loads(data).get("error") or {}
            check(st == status and (status == 200 or err.get("type") == "authentication_error"),
                  f"api key {hdrs}: {st} {data[:100]!r}")
        st, hd, data = srv.request("GET", "/health")
        check(st == 200, "/health needs no key")
        st, hd, data = srv.post("/v1/completions", {"prompt": "x" * 5000},
                                headers={"Authorization": "Bearer s3cret"})
        err = json.loads(data)["error"]
        check(st == 413 and err["code"] == "body_too_large", f"body limit: {st} {err}")
        st, hd, data = srv.post("/v1/completions", dict(body, max_tokens=17), headers={"Authorization": "Bearer s3cret"})
        check(st == 400 and json.loads(data)["error"]["param"] == "max_tokens", "FLAMINGO_MAX_TOKENS caps max_tokens")
        st, hd, data = srv.request("GET", "/v1/models", headers={"Authorization": "Bearer s3cret",
                                                                 "X-Request-Id": "trace-42"})
        check(st == 200 and hd.get("x-request-id") == "trace-42" and json.loads(data)["data"][0]["id"] == "of_mpt",
              f"models + request id echo: {hd}")
        st, hd, data = srv.request("GET", "/v1/models", headers={"Authorization": "Bearer s3cret",
                                                                 "X-Request-Id": "bad id\u00e9".encode().decode('latin-1')})
        check(st == 200 and hd.get("x-request-id") not in (None, "") and " " not in hd["x-request-id"],
              "an unusable request id is replaced")
        # a chunked body over the limit: the whole body is read, then 413
        c = srv.conn()
        c.request("POST", "/v1/completions", body=iter([b'{"prompt": "' + b"x" * 3000, b"y" * 3000 + b'"}']),
                  headers={"Content-Type": "application/json", "Authorization": "Bearer s3cret"},
                  encode_chunked=True)
        r = c.getresponse()
        err = json.loads(r.read())["error"]
        c.close()
        check(r.status == 413 and err["code"] == "body_too_large", f"chunked body limit: {r.status} {err}")
        # a page of another site may not drive the server; our own page may
        base = {"Authorization": "Bearer s3cret", "Host": f"127.0.0.1:{srv.port}"}
        st, hd, data = srv.post("/v1/completions", body, headers=dict(base, Origin="https://evil.example"))
        check(st == 403 and json.loads(data)["error"]["code"] == "cross_origin", f"cross-origin: {st} {data!r}")
        st, hd, data = srv.post("/v1/completions", body, headers=dict(base, Origin=f"http://127.0.0.1:{srv.port}"))
        check(st == 200, f"same origin: {st} {data[:200]!r}")
        # an escaped backslash before "u0000" is text, not NUL
        st, hd, data = srv.post("/v1/completions", b'{"prompt": "a\\\\u0000", "max_tokens": 1}',
                                headers={"Authorization": "Bearer s3cret"})
        check(st == 200, f"escaped backslash: {st} {data[:200]!r}")
        st, hd, data = srv.request("HEAD", "/health")
        check(st == 200 and data == b"", f"HEAD /health: {st} {data!r}")
        st, hd, data = srv.request("GET", "/")
        page = data.decode()
        check(st == 200 and hd["content-type"].startswith("text/html") and 'type="file"' in page
              and "aria-live" in page and 'capture="environment"' in page, "the web page")
    finally:
        code, out = srv.stop()
    check(code == 0 and not sanitizer_report(out), f"exit {code}:\n{out[-3000:]}")
    check("id=trace-42" in out and "GET /v1/models 200 0 tokens" in out, "one log line per request")
    check("POST /v1/completions 401" in out and "POST /v1/completions 413" in out, "log lines of refusals")
    print("ok   the API key, X-Request-Id, the body limit, max_tokens cap (flags and environment), the log line, "
          "HEAD, the web page")


def drain(model):
    """SIGTERM with streams in flight: each one finishes, exit 0."""
    srv = Server(model, "--max-seqs", "1", env={"FLAMINGO_DEBUG_STEP_MS": "5"})
    results = []
    started = threading.Barrier(7)

    def client():
        c = srv.conn()
        # chat streams send their first event at once, even while queued
        c.request("POST", "/v1/chat/completions",
                  json.dumps({"messages": [{"role": "user", "content": "a"}], "max_tokens": 70,
                              "stream": True, "stream_options": {"include_usage": True}}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        first = r.readline()
        started.wait(timeout=60)
        rest = r.read()
        results.append((r.status, first + rest))

    ts = [threading.Thread(target=client) for _ in range(6)]
    for t in ts:
        t.start()
    started.wait(timeout=60)
    srv.proc.send_signal(15)
    for t in ts:
        t.join(timeout=120)
    code, out = srv.stop()
    check(code == 0 and not sanitizer_report(out), f"drain exit {code}:\n{out[-2000:]}")
    check(len(results) == 6, "every stream answered")
    for st, raw in results:
        ev = sse_events(raw)
        check(st == 200 and ev[-1] == "[DONE]" and json.loads(ev[-2])["usage"]["completion_tokens"] == 70,
              f"a drained stream: {ev[-2:]}")
    check("finishing the requests in flight" in out and "stopped" in out, "the shutdown is logged")
    after = out[out.find("finishing the requests in flight"):]
    check(after.count("200 70 tokens") >= 3, f"most streams finished after SIGTERM (one sequence at a time):\n{out}")
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        check(False, "the port still accepts after exit")
    except OSError:
        pass
    print("ok   SIGTERM drains 6 streams in flight and exits 0")


# Slows each engine step to 20 ms (a test aid of flamingo serve), so that a
# 70-token request holds its sequence for 1.4 s on any machine, sanitizers
# or not: a full queue or a waiting stream is then a state, not a race.
HOLD = {"FLAMINGO_DEBUG_STEP_MS": "20"}


def queue_full(model):
    """--max-seqs 1 --queue-len 1: one request runs, one waits, the next gets
    429 overloaded with Retry-After; the first two still complete."""
    srv = Server(model, "--max-seqs", "1", "--queue-len", "1", env=HOLD)

    def gauges():
        st, hd, m = srv.request("GET", "/metrics")
        g = dict(ln.split()[:2] for ln in m.decode().splitlines() if ln.startswith("flamingo_"))
        return int(g["flamingo_queue_depth"]), int(g["flamingo_active_sequences"])

    try:
        conns = []
        # chat streams answer their first event once submitted; the engine then
        # takes the first from the queue on its own thread: wait for that (on a
        # loaded machine the second request could otherwise find it still queued)
        for want in ((0, 1), (1, 1)):
            c = srv.conn()
            c.request("POST", "/v1/chat/completions", json.dumps({
                "messages": [{"role": "user", "content": "a"}], "max_tokens": 70, "stream": True}),
                {"Content-Type": "application/json"})
            r = c.getresponse()
            conns.append((c, r, r.readline()))
            deadline = time.time() + 10
            while gauges() != want and time.time() < deadline:
                time.sleep(0.01)
            check(gauges() == want, f"queue and active sequences {gauges()}, expected {want}")
        st, hd, data = srv.post("/v1/completions", {"prompt": "x", "max_tokens": 2})
        err = json.loads(data)["error"]
        check(st == 429 and err["type"] == "rate_limit_error" and err["code"] == "overloaded"
              and hd.get("retry-after") == "1", f"queue full: {st} {err} {hd}")
        for c, r, first in conns:
            ev = sse_events(first + r.read())
            check(ev[-1] == "[DONE]" and "error" not in ev[-2], "the admitted requests complete")
            c.close()
    finally:
        code, out = srv.stop()
    check(code == 0 and not sanitizer_report(out), f"queue server exit {code}")
    print("ok   a full queue answers 429 overloaded with Retry-After")


def keepalive(model):
    """A stream waiting for its turn (--max-seqs 1, another request ahead)
    gets ': keep-alive' comments, and its events stay well framed."""
    srv = Server(model, "--max-seqs", "1", "--keepalive-ms", "1", env=HOLD)
    try:
        c = srv.conn()  # a request ahead, admitted (its first event came) and 70 tokens long
        c.request("POST", "/v1/chat/completions", json.dumps({
            "messages": [{"role": "user", "content": "a"}], "max_tokens": 70, "stream": True}),
            {"Content-Type": "application/json"})
        r = c.getresponse()
        r.readline()
        st, hd, raw = srv.post("/v1/chat/completions", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_uri(CAT)}}]}], "max_tokens": 5, "stream": True})
        r.read()
        c.close()
        ev = sse_events(raw)
        check(st == 200 and b"\n\n: keep-alive\n\n" in raw and ev[-1] == "[DONE]",
              f"keep-alive comments while waiting: {raw[:300]!r}")
    finally:
        code, out = srv.stop()
    check(code == 0 and not sanitizer_report(out), f"keepalive server exit {code}")
    print("ok   keep-alive comments while a stream waits")


def main():
    t0 = time.time()
    for name in MODELS:
        srv = Server(os.path.join(FIX, name + ".safetensors"))
        try:
            golden(srv, name)
            if name == "of_mpt":
                model = os.path.join(FIX, name + ".safetensors")
                st, hd, data = srv.request("GET", "/health")
                check(st == 200 and json.loads(data) == {"status": "ok"} and hd.get("x-request-id"), "health")
                chat_template(srv, model)
                streaming(srv)
                options(srv)
                n = bad_requests(srv)
                check(n >= 40, "at least 40 bad requests")
        finally:
            code, out = srv.stop()
        check(code == 0 and not sanitizer_report(out), f"{name}: exit {code}:\n{out[-3000:]}")
    model = os.path.join(FIX, "of_mpt.safetensors")
    operations(model)
    drain(model)
    queue_full(model)
    keepalive(model)
    print(f"{len(failures)} failures ({time.time() - t0:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
