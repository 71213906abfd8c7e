"""Client faults through the real bridge: disconnects, slow uploads, oversize bodies, bad and odd input.

Every bad input gets a clear ``{"error": "<string>"}`` with the right status: never a stack trace,
never a 500, never a hang.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from tests.fakes.backend import DEFAULT_TEXT
from tests.faults import TIMEOUT, body_of, raw_request, start_bridge, status_of

pytestmark = pytest.mark.integration
LIMIT = 4096


@pytest.fixture(scope="module")
def small(fake_backend, tmp_path_factory):
    """One worker (so "the same worker" is certain) and a 4 KiB body limit."""
    proc = start_bridge(fake_backend, tmp_path_factory.mktemp("small"), name="small", workers=1,
                        MAX_REQUEST_BYTES=str(LIMIT))
    yield proc
    proc.stop()


# -- disconnects ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path,body", [
    ("/api/chat", {"model": "m1", "messages": [{"role": "user", "content": "go"}]}),
    ("/api/generate", {"model": "m1", "prompt": "go"}),
    ("/v1/chat/completions", {"model": "m1", "messages": [{"role": "user", "content": "go"}], "stream": True}),
])
def test_client_disconnect_mid_stream_closes_backend(bridge, backend, reliability, path, body):
    backend.script(tokens=[f"t{i} " for i in range(400)], delay_s=0.03)
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", bridge.port), timeout=5)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    got = b""
    while got.count(b"t") < 8:
        got += sock.recv(4096)
    left_at = time.monotonic()
    sock.close()
    assert backend.wait_closed(timeout_s=3.0), "backend stream still open after the client left"
    lag = time.monotonic() - left_at
    reliability.row(f"client disconnect mid-stream {path}", outcome=f"backend request closed {lag:.2f} s later")


def test_client_disconnect_then_bridge_still_serves(bridge, backend):
    backend.script(tokens=["a"] * 100, delay_s=0.02)
    for _ in range(5):
        with requests.post(bridge.url + "/api/generate", json={"model": "m1", "prompt": "x"}, stream=True,
                           timeout=TIMEOUT) as resp:
            next(resp.iter_lines())
    backend.reset()
    resp = requests.post(bridge.url + "/api/generate", json={"model": "m1", "prompt": "x", "stream": False},
                         timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.json()["response"] == DEFAULT_TEXT


# -- slow and oversize uploads ------------------------------------------------------------------------

def test_slow_upload_does_not_block_the_worker(small, backend, reliability):
    body = json.dumps({"model": "m1", "prompt": "x" * 500, "stream": False}).encode()
    sock = socket.create_connection(("127.0.0.1", small.port), timeout=10)
    sock.sendall(f"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode())
    sent = 0
    stop = threading.Event()

    def trickle():
        nonlocal sent
        for i in range(0, len(body), 20):
            if stop.is_set():
                return
            sock.sendall(body[i:i + 20])
            sent = i + 20
            time.sleep(0.06)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            resp = requests.post(small.url + "/api/chat", json={"model": "m1", "messages": [], "stream": False},
                                 timeout=TIMEOUT)
            latencies.append(time.monotonic() - started)
            assert resp.status_code == 200
        assert sent < len(body), "upload finished before the other requests were tried"
        assert max(latencies) < 1.0, latencies
        thread.join(10)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        assert status_of(reply) == 200 and json.loads(body_of(reply))["response"] == DEFAULT_TEXT
    finally:
        stop.set()
        sock.close()
    reliability.row("slow upload (20 B / 60 ms) on a 1-worker bridge",
                    outcome=f"other requests answered in <= {max(latencies) * 1000:.0f} ms; upload then 200")


def test_oversize_content_length_is_413_before_the_body(small, backend, reliability):
    started = time.monotonic()
    raw = raw_request(small.port, b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000000\r\n\r\n" + b"{" * 100, timeout_s=5, read_all=False)
    elapsed = time.monotonic() - started
    assert status_of(raw) == 413, raw[:300]
    message = json.loads(body_of(raw))["error"]
    assert "MAX_REQUEST_BYTES" in message and elapsed < 2
    reliability.row("body over MAX_REQUEST_BYTES (Content-Length 100 MB, body not sent)",
                    outcome=f"413 {message!r} after {elapsed * 1000:.0f} ms")


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/api/embed", "/v1/chat/completions"])
def test_oversize_body_with_content_length_is_413(small, backend, path):
    resp = requests.post(small.url + path, json={"model": "m1", "prompt": "x" * (LIMIT * 2)}, timeout=TIMEOUT)
    assert resp.status_code == 413 and "error" in resp.json()
    assert backend.requests_to("/v1/chat/completions") == []


def test_oversize_chunked_body_is_413_without_reading_it_all(small, backend, reliability):
    first = b"x" * (LIMIT * 2)
    started = time.monotonic()
    # One chunk over the limit and no terminating chunk: the bridge must answer without waiting for more.
    raw = raw_request(small.port, b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(first), first),
                      timeout_s=5, read_all=False)
    elapsed = time.monotonic() - started
    assert status_of(raw) == 413, raw[:300]
    message = json.loads(body_of(raw))["error"]
    assert elapsed < 2, elapsed
    reliability.row("chunked upload over MAX_REQUEST_BYTES, no Content-Length",
                    outcome=f"413 {message!r} after {elapsed * 1000:.0f} ms")


def test_chunked_body_under_the_limit_is_fine(small, backend):
    def gen():
        yield b'{"model": "m1", '
        yield b'"prompt": "hi", "stream": false}'

    resp = requests.post(small.url + "/api/generate", data=gen(), headers={"Content-Type": "application/json"},
                         timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.json()["response"] == DEFAULT_TEXT


# -- bad input --------------------------------------------------------------------------------------------

MSG = [{"role": "user", "content": "hi"}]
BAD_INPUTS = [
    # (name, path, raw body, expected status)
    ("malformed JSON", "/api/chat", b'{"model": "m1", "messages": [', 400),
    ("not JSON at all", "/api/generate", b"hello", 400),
    ("empty body", "/api/chat", b"", 400),
    ("JSON array", "/api/chat", b"[1, 2]", 400),
    ("JSON null", "/api/generate", b"null", 400),
    ("JSON string", "/api/embed", b'"m1"', 400),
    ("invalid UTF-8", "/api/chat", b'{"model": "m1", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400),
    ("deeply nested", "/api/chat", b'{"model": "m1", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}", 400),
    ("model missing", "/api/chat", json.dumps({"messages": MSG}).encode(), 400),
    ("model a number", "/api/chat", json.dumps({"model": 5, "messages": MSG}).encode(), 400),
    ("model null", "/api/generate", json.dumps({"model": None, "prompt": "x"}).encode(), 400),
    ("messages not a list", "/api/chat", json.dumps({"model": "m1", "messages": "hi"}).encode(), 400),
    ("messages items not objects", "/api/chat", json.dumps({"model": "m1", "messages": [1, 2]}).encode(), 400),
    ("message content an object", "/api/chat",
     json.dumps({"model": "m1", "messages": [{"role": "user", "content": {"a": 1}}]}).encode(), 400),
    ("message role a number", "/api/chat",
     json.dumps({"model": "m1", "messages": [{"role": 5, "content": "x"}]}).encode(), 400),
    ("stream \"yes\"", "/api/chat", json.dumps({"model": "m1", "messages": MSG, "stream": "yes"}).encode(), 400),
    ("stream \"yes\" (/v1)", "/v1/chat/completions",
     json.dumps({"model": "m1", "messages": MSG, "stream": "yes"}).encode(), 400),
    ("options a string", "/api/chat", json.dumps({"model": "m1", "messages": MSG, "options": "hot"}).encode(), 400),
    ("options.temperature a string", "/api/generate",
     json.dumps({"model": "m1", "prompt": "x", "options": {"temperature": "hot"}}).encode(), 400),
    ("prompt a list", "/api/generate", json.dumps({"model": "m1", "prompt": ["x"]}).encode(), 400),
    ("images not a list", "/api/generate", json.dumps({"model": "m1", "prompt": "x", "images": "abc"}).encode(), 400),
    ("tools a string", "/api/chat", json.dumps({"model": "m1", "messages": MSG, "tools": "x"}).encode(), 400),
    ("embed input a number", "/api/embed", json.dumps({"model": "e1", "input": 5}).encode(), 400),
    ("model with control chars", "/api/chat", json.dumps({"model": "m1\r\nX: y", "messages": MSG}).encode(), 400),
    ("model with a lone surrogate", "/api/chat", b'{"model": "m\\ud800", "messages": []}', (200, 400, 404)),
    ("unknown model", "/api/chat", json.dumps({"model": "nope", "messages": MSG}).encode(), 404),
    ("number 1e999 in options", "/api/generate",
     b'{"model": "m1", "prompt": "x", "stream": false, "options": {"temperature": 1e999}}', (200, 400)),
]


@pytest.mark.parametrize("name,path,raw,expected", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_a_clear_error(bridge, backend, reliability, name, path, raw, expected):
    started = time.monotonic()
    resp = requests.post(bridge.url + path, data=raw, headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert resp.status_code in expected, (resp.status_code, resp.text[:300])
    assert elapsed < 3
    body = resp.json()
    if resp.status_code != 200:
        error = body["error"]
        message = error["message"] if path.startswith("/v1/") else error
        assert isinstance(message, str) and message and len(message) < 400, body
        assert "Traceback" not in resp.text and "File \"" not in resp.text
        outcome = f"{resp.status_code} {message!r}"
    else:
        outcome = "200"
    reliability.row(f"bad input: {name}", outcome=outcome)


ODD_TEXT = [
    ("lone surrogate (escaped)", '"a\\ud800b"'),
    ("NUL", '"a\\u0000b"'),
    ("RTL and BOM", json.dumps("\u202eabc\u200f\ufeff")),
    ("emoji and ZWJ", json.dumps("👩‍👩‍👧 🎉 é")),
    ("1 MB string", json.dumps("x" * 1_000_000)),
]


@pytest.mark.parametrize("name,text", ODD_TEXT, ids=[o[0] for o in ODD_TEXT])
@pytest.mark.parametrize("stream", [False, True])
def test_odd_unicode_is_forwarded(bridge, backend, reliability, name, text, stream):
    raw = ('{"model": "m1", "stream": %s, "messages": [{"role": "user", "content": %s}]}'
           % ("true" if stream else "false", text)).encode()
    resp = requests.post(bridge.url + "/api/chat", data=raw, headers={"Content-Type": "application/json"},
                         timeout=TIMEOUT)
    assert resp.status_code in (200, 400), resp.text[:300]
    if resp.status_code == 200:
        lines = [json.loads(line) for line in resp.content.splitlines() if line]
        assert "".join((o.get("message") or {}).get("content", "") for o in lines) == DEFAULT_TEXT
        sent = backend.requests_to("/v1/chat/completions")[-1]
        assert sent.json["messages"][-1]["content"] == json.loads(text)
        outcome = "200, forwarded exactly"
    else:
        assert isinstance(resp.json()["error"], str)
        outcome = f"400 {resp.json()['error']!r}"
    reliability.row(f"odd Unicode: {name} ({'stream' if stream else 'non-stream'})", outcome=outcome)


def test_odd_unicode_model_name_in_error_message(bridge, backend):
    for name in ("\u202eevil", "👩‍👩‍👧", "a\u0000b", "x" * 600):
        resp = requests.post(bridge.url + "/api/chat", json={"model": name, "messages": MSG}, timeout=TIMEOUT)
        assert resp.status_code in (400, 404) and isinstance(resp.json()["error"], str)


@pytest.mark.parametrize("method,path", [("GET", "/api/chat"), ("PUT", "/api/generate"), ("POST", "/api/nope"),
                                         ("DELETE", "/v1/chat/completions")])
def test_wrong_method_or_path_is_json(bridge, method, path):
    resp = requests.request(method, bridge.url + path, timeout=TIMEOUT)
    assert resp.status_code in (404, 405) and resp.headers["Content-Type"].startswith("application/json")
    assert "error" in resp.json()


def test_garbage_http_does_not_hang(bridge):
    for raw in (b"GARBAGE\r\n\r\n", b"POST /api/chat HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"):
        started = time.monotonic()
        raw_request(bridge.port, raw, timeout_s=4)
        assert time.monotonic() - started < 4.5
    assert requests.get(bridge.url + "/health", timeout=TIMEOUT).status_code == 200
