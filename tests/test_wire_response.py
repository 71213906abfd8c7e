"""WireResponse (HTTPWire's answer) against the fake backend over real sockets: the same behaviours as
tests/test_backend_response.py (bytes as they arrive, JSON, what happens to the pooled connection on
release() and close()), plus the chunked terminator drained off the caller's path."""

from __future__ import annotations

import gc
import time

import gevent
import pytest

from bridge.backend_response import BackendResponse
from bridge.config import Settings
from bridge.errors import UpstreamProtocolError, UpstreamTimeout
from bridge.http_wire import HTTPWire
from bridge.wire_response import WireResponse
from tests.fakes.backend import FakeBackend
from tests.test_http_wire import raw_server

pytestmark = pytest.mark.timeout(30)

CHAT = b'{"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
PLAIN = b'{"model": "m1", "messages": [{"role": "user", "content": "hi"}]}'
HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def fake():
    backend = FakeBackend().start()
    yield backend
    backend.stop()


@pytest.fixture()
def fb(fake):
    fake.reset()
    yield fake
    fake.reset()


def transport() -> HTTPWire:
    return HTTPWire(Settings(demo_backend=False))


def send(t: HTTPWire, fb, body: bytes = CHAT, *, stream: bool = True, idle_s: float = 2.0) -> WireResponse:
    return t.send("POST", fb.url + "/v1/chat/completions", body, dict(HEADERS), stream=stream,
                  timeout=(1.0, idle_s), idle_timeout_s=idle_s)


def test_the_public_surface_is_that_of_backend_response():
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    assert public(WireResponse) - {"read_whole_body"} == public(BackendResponse)


def test_stream_bytes_then_release_reuses_the_connection(fb):
    t = transport()
    for _ in range(3):
        resp = send(t, fb)
        data = b"".join(resp.iter_bytes())
        assert b"[DONE]" in data and resp.status == 200
        resp.release()
    assert t.connections_made(fb.url) == 1


def test_release_right_after_the_last_event_reuses_the_connection(fb):
    t = transport()
    for _ in range(3):
        resp = send(t, fb)
        for data in resp.iter_bytes():
            if b"[DONE]" in data:
                break  # what a pump does: the answer is complete, the terminator may be left
        resp.release()
        gevent.sleep(0.05)  # a drain greenlet, if one was needed
    assert t.connections_made(fb.url) == 1


def test_close_mid_stream_drops_the_connection_so_the_backend_stops(fb):
    fb.script(delay_s=0.2)
    t = transport()
    resp = send(t, fb)
    next(iter(resp.iter_bytes()))
    resp.close()
    assert fb.wait_closed(2.0)
    fb.reset()
    send(t, fb, PLAIN, stream=False).release()
    assert t.connections_made(fb.url) == 2  # never pooled


def test_when_done_runs_once_whatever_ends_the_answer(fb):
    t = transport()
    calls: list[str] = []
    resp = send(t, fb)
    resp.when_done(lambda: calls.append("done"))
    b"".join(resp.iter_bytes())
    resp.release()
    resp.close()
    assert calls == ["done"]


def test_when_done_runs_when_an_unclosed_answer_is_collected(fb):
    calls: list[str] = []
    resp = send(transport(), fb)
    resp.when_done(lambda: calls.append("done"))
    del resp
    gc.collect()
    assert calls == ["done"]


def test_json_of_a_non_streamed_answer(fb):
    resp = send(transport(), fb, PLAIN, stream=False)
    assert resp.json()["object"] == "chat.completion"
    assert resp.headers_received_ns > 0 and resp.content_type.startswith("application/json")
    assert resp.header("content-type") == resp.header("Content-Type") == resp.content_type
    assert resp.header("X-Absent") is None


def test_non_json_body_is_a_protocol_error(fb):
    fb.script(fault="invalid_json")
    with pytest.raises(UpstreamProtocolError):
        send(transport(), fb, PLAIN, stream=False).json()


def test_stall_mid_stream_is_a_timeout(fb):
    fb.script(fault="stall_mid_stream")
    resp = send(transport(), fb, idle_s=0.3)
    with pytest.raises(UpstreamTimeout, match="backend sent nothing for 0.3 s mid-stream"):
        for _ in resp.iter_bytes():
            pass
    resp.close()


@pytest.mark.parametrize("fault", ["reset_mid_stream", "close_mid_stream"])
def test_a_connection_broken_mid_stream_is_a_protocol_error(fb, fault):
    fb.script(fault=fault)
    resp = send(transport(), fb)
    with pytest.raises(UpstreamProtocolError, match="backend connection broke mid-stream"):
        for _ in resp.iter_bytes():
            pass
    resp.close()


@pytest.mark.parametrize("stream", [True, False])
def test_error_body_is_bounded_and_drops_the_connection(fb, stream):
    fb.script(status=500)
    t = transport()
    calls: list[str] = []
    resp = send(t, fb, stream=stream)
    resp.when_done(lambda: calls.append("done"))
    body = resp.error_body(10)
    assert resp.status == 500 and len(body) == 10 and calls == ["done"]
    fb.reset()
    send(t, fb, PLAIN, stream=False)
    assert t.connections_made(fb.url) == (2 if stream else 1)  # a whole non-streamed body was pooled at once


def test_a_large_non_streamed_body_is_read_whole(fb):
    fb.script(fault="huge", huge_bytes=3 * 1024 * 1024)
    t = transport()
    resp = send(t, fb, PLAIN, stream=False)
    assert len(resp.json()["choices"][0]["message"]["content"]) == 3 * 1024 * 1024
    send(t, fb, PLAIN, stream=False)
    assert t.connections_made(fb.url) == 1


def test_redact_uses_the_clients_rule(fb):
    resp = send(transport(), fb, PLAIN, stream=False).from_backend("b1", lambda text: text.replace("k", "*"))
    assert resp.backend == "b1" and resp.redact("key") == "*ey"


def test_a_burst_of_chunks_is_one_read():
    events = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in (b"data: %d\n\n" % i for i in range(50)))
    first = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

    def burst(conn, head, index):
        conn.sendall(first + b"7\r\nhello\n\n\r\n")
        time.sleep(0.05)
        conn.sendall(events + b"0\r\n\r\n")

    with raw_server(burst) as (url, _):
        t = transport()
        resp = t.send("GET", url + "/x", None, {}, stream=True, timeout=(1, 2), idle_timeout_s=2)
        parts = list(resp.iter_bytes())
        resp.release()
        assert parts == [b"hello\n\n", b"".join(b"data: %d\n\n" % i for i in range(50))]


def test_a_terminator_that_comes_later_is_drained_then_the_connection_pooled():
    def late_end(conn, head, index):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nlast!\r\n")
        time.sleep(0.1)
        conn.sendall(b"0\r\n\r\n")

    with raw_server(late_end) as (url, _):
        t = transport()
        calls: list[str] = []
        resp = t.send("GET", url + "/x", None, {}, stream=True, timeout=(1, 2), idle_timeout_s=2)
        resp.when_done(lambda: calls.append("done"))
        assert next(iter(resp.iter_bytes())) == b"last!"
        resp.release()
        assert calls == []  # the drain greenlet owns the connection until the body ends
        gevent.sleep(0.5)
        assert calls == ["done"]
        t.send("GET", url + "/x", None, {}, stream=False, timeout=(1, 2), idle_timeout_s=2)
        assert t.connections_made(url) == 1


def test_a_terminator_that_never_comes_costs_the_connection_only():
    def no_end(conn, head, index):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nlast!\r\n")
        time.sleep(3)

    with raw_server(no_end) as (url, _):
        t = transport()
        calls: list[str] = []
        resp = t.send("GET", url + "/x", None, {}, stream=True, timeout=(1, 5), idle_timeout_s=5)
        resp.when_done(lambda: calls.append("done"))
        next(iter(resp.iter_bytes()))
        started = time.monotonic()
        resp.release()
        gevent.sleep(2.5)
        assert calls == ["done"] and time.monotonic() - started < 2.9


def test_connection_close_from_the_backend_is_honoured():
    def once(conn, head, index):
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")

    with raw_server(once) as (url, _):
        t = transport()
        for _ in range(2):
            assert t.send("GET", url + "/x", None, {}, stream=False, timeout=(1, 2), idle_timeout_s=2).content == b"ok"
        assert t.connections_made(url) == 2
