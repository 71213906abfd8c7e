"""HTTPWire, the hand-written HTTP/1.1 transport: requests on the wire, body framings, connection
errors as the bridge's errors, the keep-alive pool, and the upstream client running on it. Real
sockets on 127.0.0.1: the fake backend, or a tiny raw server answering exactly the bytes a test
gives it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from bridge.config import Settings
from bridge.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from bridge.http_wire import HTTPWire
from bridge.transport import ConnectTimeout, StaleConnection
from bridge.upstream import Deadline, UpstreamClient
from tests.bridgeproc import free_port
from tests.fakes.backend import FakeBackend, parse_sse
from tests.test_upstream import _keepalive_server_that_drops_the_second_request

pytestmark = pytest.mark.timeout(30)

#: handler(conn, request_head, index_on_this_connection) sends an answer; False closes the connection.
Handler = Callable[[socket.socket, bytes, int], "bool | None"]


def _read_request(conn: socket.socket, buf: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end])
    length = 0
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(buf) < end + length:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    del buf[:end + length]
    return head


@contextmanager
def raw_server(handler: Handler) -> Iterator[tuple[str, list[socket.socket]]]:
    """``(url, accepted connections)`` of a raw HTTP server calling ``handler`` per request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        with conn:
            try:
                for index in range(1000):
                    head = _read_request(conn, buf)
                    if head is None or handler(conn, head, index) is False:
                        return
            except OSError:
                return

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()


def answer(data: bytes) -> Handler:
    def handler(conn: socket.socket, head: bytes, index: int) -> bool | None:
        conn.sendall(data)
        return None
    return handler


def wire(**kw) -> HTTPWire:
    return HTTPWire(Settings(demo_backend=False, **kw))


def get(w: HTTPWire, url: str, *, stream: bool = False, method: str = "GET", read_s: float = 2.0):
    return w.send(method, url, None, {"Accept-Encoding": "identity"}, stream=stream, timeout=(1.0, read_s),
                  idle_timeout_s=read_s)


# -- the request ----------------------------------------------------------------------------------
def test_the_request_is_one_well_formed_http11_message():
    seen: list[bytes] = []

    def record(conn, head, index):
        seen.append(head)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_server(record) as (url, _):
        w = wire()
        resp = w.send("POST", url + "/v1/x?a=1", b"{}", {"Content-Type": "application/json", "X-Request-ID": "r1"},
                      stream=False, timeout=(1, 2), idle_timeout_s=2)
        assert resp.content == b"ok"
    port = url.rsplit(":", 1)[1]
    assert seen[0] == (f"POST /v1/x?a=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                       "X-Request-ID: r1\r\nContent-Length: 2\r\n\r\n").encode()


def test_only_plain_http_and_clean_headers_are_accepted():
    w = wire()
    for url in ("https://example.com/v1", "ftp://example.com/x", "/v1/models"):
        with pytest.raises(ValueError):
            get(w, url)
    with pytest.raises(ValueError):
        w.send("GET", f"http://127.0.0.1:{free_port()}/x", None, {"X-Evil": "a\r\nInjected: 1"}, stream=False,
               timeout=(1, 1), idle_timeout_s=1)


# -- connection errors ----------------------------------------------------------------------------
def test_refused_connection_is_a_connect_error_not_a_stale_one():
    with pytest.raises(UpstreamConnectError) as err:
        get(wire(), f"http://127.0.0.1:{free_port()}/v1/models")
    assert not isinstance(err.value, (StaleConnection, ConnectTimeout))


def test_a_backend_that_never_accepts_is_a_connect_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued: list[socket.socket] = []
    try:
        for _ in range(64):  # fill the accept queue until the kernel drops our SYNs
            try:
                queued.append(socket.create_connection(("127.0.0.1", port), timeout=0.2))
            except TimeoutError:
                break
        else:
            pytest.skip("this kernel never dropped a SYN")
        with pytest.raises(ConnectTimeout):
            wire().send("GET", f"http://127.0.0.1:{port}/x", None, {}, stream=False, timeout=(0.2, 1),
                        idle_timeout_s=1)
    finally:
        for sock in queued:
            sock.close()
        listener.close()


def test_a_pooled_connection_closed_by_the_backend_is_stale():
    url, connections, listener = _keepalive_server_that_drops_the_second_request()
    try:
        w = wire()
        assert get(w, url + "/models").json() == {"object": "list", "data": []}
        with pytest.raises(StaleConnection):
            get(w, url + "/models")
        assert get(w, url + "/models").json() == {"object": "list", "data": []}  # a fresh connection
        assert w.connections_made(url) == len(connections) == 2
    finally:
        listener.close()  # type: ignore[attr-defined]


def test_a_fresh_connection_closed_without_an_answer_is_a_connect_error():
    with raw_server(lambda conn, head, index: False) as (url, _):
        with pytest.raises(UpstreamConnectError) as err:
            get(wire(), url + "/x")
    assert not isinstance(err.value, StaleConnection)


def test_no_headers_within_the_read_timeout_is_a_timeout():
    with FakeBackend() as fb:
        fb.script(fault="slow_headers", first_delay_s=5)
        with pytest.raises(UpstreamTimeout, match="backend timed out"):
            get(wire(), fb.url + "/v1/models", read_s=0.3)


# -- framing --------------------------------------------------------------------------------------
def test_content_length_body_and_the_connection_is_reused():
    with raw_server(answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")) as (
            url, accepted):
        w = wire()
        for _ in range(3):
            resp = get(w, url + "/x")
            assert (resp.status, resp.content, resp.content_type) == (200, b"hello", "text/plain")
            resp.release()
        assert w.connections_made(url) == len(accepted) == 1


def test_a_body_read_until_close_is_whole_and_its_connection_not_reused():
    def close_delimited(conn, head, index):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\": ")
        time.sleep(0.02)
        conn.sendall(b"1}")
        return False

    with raw_server(close_delimited) as (url, _):
        w = wire()
        assert get(w, url + "/x").json() == {"a": 1}
        resp = get(w, url + "/x", stream=True)
        assert b"".join(resp.iter_bytes()) == b'{"a": 1}'
        resp.release()
        assert w.connections_made(url) == 2


def test_head_204_and_304_have_no_body():
    def no_body(conn, head, index):
        status = {0: b"200 OK", 1: b"204 No Content", 2: b"304 Not Modified"}[index % 3]
        conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 99\r\n\r\n")

    with raw_server(no_body) as (url, _):
        w = wire()
        assert get(w, url + "/x", method="HEAD").content == b""
        assert get(w, url + "/x").status == 204
        resp = get(w, url + "/x", stream=True)
        assert (resp.status, list(resp.iter_bytes())) == (304, [])
        resp.release()
        assert w.connections_made(url) == 1


def test_interim_answers_are_skipped():
    with raw_server(answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as (url, _):
        assert get(wire(), url + "/x").content == b"ok"


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-Many: b\r\n" * 7000 + b"\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n" * 3000 + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nBad header\r\n\r\n",
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nContent-",
])
def test_an_answer_the_bridge_cannot_frame_is_a_protocol_error(reply):
    with raw_server(lambda conn, head, index: conn.sendall(reply) or False) as (url, _):
        with pytest.raises(UpstreamProtocolError):
            get(wire(), url + "/x")


def test_a_chunked_body_sent_byte_by_byte():
    body = b"4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\n"

    def trickle(conn, head, index):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(len(body)):
            conn.sendall(body[i:i + 1])
            time.sleep(0.001)

    with raw_server(trickle) as (url, _):
        w = wire()
        resp = get(w, url + "/x", stream=True)
        parts = list(resp.iter_bytes())
        assert b"".join(parts) == b"Wikipedia in \r\n\r\nchunks." and all(parts)
        resp.release()
        assert get(w, url + "/x").content == b"Wikipedia in \r\n\r\nchunks."
        assert w.connections_made(url) == 1


# -- the pool -------------------------------------------------------------------------------------
def _port_echo(conn, head, index):
    port = str(conn.getpeername()[1]).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(port), port))


def test_the_newest_idle_connection_is_reused_and_the_pool_is_bounded():
    with raw_server(_port_echo) as (url, _):
        w = wire(pool_maxsize=2)
        a, b, c = (get(w, url + "/x", stream=True) for _ in range(3))
        ports = [b"".join(r.iter_bytes()) for r in (a, b, c)]  # each pooled as its body ends: a, b; c closed
        for r in (a, b, c):
            r.release()
        assert get(w, url + "/x").content == ports[1]  # newest first
        assert get(w, url + "/x").content == ports[1]
        assert w.connections_made(url) == 3


def test_a_forked_process_starts_with_empty_pools(monkeypatch):
    with raw_server(_port_echo) as (url, _):
        w = wire()
        get(w, url + "/x")
        monkeypatch.setattr(os, "getpid", lambda: -1)
        get(w, url + "/x")
        assert w.connections_made(url) == 1  # the new process's first


def test_a_connection_the_backend_closed_while_idle_is_not_reused():
    with raw_server(lambda conn, head, index: _port_echo(conn, head, index) or False) as (url, _):
        w = wire()
        first = get(w, url + "/x").content
        time.sleep(0.05)
        assert get(w, url + "/x").content != first  # found closed before sending: no stale error
        assert w.connections_made(url) == 2


# -- the upstream client on it --------------------------------------------------------------------
def test_the_upstream_client_streams_through_the_wire_with_retries():
    with FakeBackend() as fb:
        fb.script(status=503, fail_times=2, headers={"Retry-After": "0"})
        settings = Settings(backend_url=fb.url + "/v1", demo_backend=False, api_key="sk-unit", max_retries=2,
                            retry_backoff_s=0.01, stream_idle_timeout_s=2.0, connect_timeout_s=1.0)
        w = HTTPWire(settings)
        sleeps: list[float] = []
        up = UpstreamClient(settings, sleep=sleeps.append, transport=w)
        body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        resp = up.open("POST", "/chat/completions", json_body=body, stream=True, deadline=Deadline.after(10))
        events = parse_sse(b"".join(resp.iter_bytes()))
        resp.release()
        assert resp.status == 200 and resp.backend == up.name and events[-1] == "[DONE]"
        assert len(fb.requests_to("/v1/chat/completions")) == 3 and len(sleeps) == 2
        assert fb.requests[-1].headers["authorization"] == "Bearer sk-unit"
        assert up.json("GET", "/models", deadline=Deadline.after(5))["object"] == "list"
        assert w.connections_made(fb.url) <= 3  # error answers drop their connection; the last one is reused


def test_a_pooled_connection_closed_under_the_client_is_replaced_at_once():
    url, connections, listener = _keepalive_server_that_drops_the_second_request()
    try:
        settings = Settings(backend_url=url, demo_backend=False, max_retries=0)
        sleeps: list[float] = []
        up = UpstreamClient(settings, sleep=sleeps.append, transport=HTTPWire(settings))
        for _ in range(3):
            assert up.json("GET", "/models", deadline=Deadline.after(5)) == {"object": "list", "data": []}
        assert sleeps == [] and len(connections) == 3
    finally:
        listener.close()  # type: ignore[attr-defined]
