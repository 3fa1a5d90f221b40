"""What the server tests share: start `flamingo serve` on a free loopback
port and wait for its "listening on" line, make raw HTTP requests (http.client,
so that status, headers and bytes are exactly what went over the wire), read
SSE streams, build data URIs, and stop the server with SIGTERM checking that
it exits 0 (and, under ASan, without a sanitizer report)."""
import base64
import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import time

BIN = os.environ.get("FLAMINGO_BIN", "./flamingo")
HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")
# sanitizer builds are slower: wait longer for them
SLOW = "asan" in BIN or "tsan" in BIN


class Server:
    def __init__(self, model, *args, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="serve-", suffix=".log", delete=False)
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        if env:
            e.update(env)
        self.proc = subprocess.Popen([BIN, "serve", "-m", model, "--port", "0", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=e)
        self.port = None
        deadline = time.time() + (300 if SLOW else 60)
        while time.time() < deadline:
            text = self.output()
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", text)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"flamingo serve exited {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        if not self.port:
            self.proc.kill()
            raise RuntimeError("flamingo serve did not start:\n" + self.output())
        self.base = f"http://127.0.0.1:{self.port}"

    def output(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def conn(self, timeout=300):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=300):
        """-> (status, headers dict (lower-case names), body bytes)"""
        c = self.conn(timeout)
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, data

    def post(self, path, body, **kw):
        status, hdrs, data = self.request("POST", path, body, **kw)
        return status, hdrs, data

    def json(self, path, body, **kw):
        status, hdrs, data = self.post(path, body, **kw)
        return status, json.loads(data) if data else None

    def stop(self, timeout=120):
        """SIGTERM; returns (exit code, output)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        out = self.output()
        os.unlink(self.log.name)
        return self.proc.returncode, out


def sanitizer_report(text):
    return any(k in text for k in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                                   "WARNING: ThreadSanitizer"))


def data_uri(path, mime=None):
    with open(path, "rb") as f:
        raw = f.read()
    if mime is None:
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        mime = "image/" + {"jpg": "jpeg"}.get(ext, ext)
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def sse_events(raw):
    """Splits an SSE body into its events, checking the framing byte for byte:
    every event is 'data: ...' or a ': comment' line followed by a blank line.
    Returns the data payloads (comments dropped)."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n"), f"stream does not end with a blank line: {text[-80:]!r}"
    events = []
    for block in text[:-2].split("\n\n"):
        assert "\n" not in block, f"an event of several lines: {block[:200]!r}"
        if block.startswith(":"):
            continue
        assert block.startswith("data: "), f"not a data line: {block[:200]!r}"
        events.append(block[len("data: "):])
    return events
