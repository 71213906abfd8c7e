"""BackendResponse against the fake backend over real sockets: bytes as they arrive, JSON, and what
happens to the pooled connection on release() and close()."""

from __future__ import annotations

import pytest

from bridge.config import Settings
from bridge.errors import UpstreamProtocolError, UpstreamTimeout
from bridge.transport import RequestsTransport
from tests.fakes.backend import FakeBackend

CHAT = b'{"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
PLAIN = b'{"model": "m1", "messages": [{"role": "user", "content": "hi"}]}'
HEADERS = {"Content-Type": "application/json"}


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


def transport() -> RequestsTransport:
    return RequestsTransport(Settings(demo_backend=False))


def send(t: RequestsTransport, fb, body: bytes = CHAT, *, stream: bool = True, idle_s: float = 2.0):
    return t.send("POST", fb.url + "/v1/chat/completions", body, dict(HEADERS), stream=stream,
                  timeout=(1.0, idle_s), idle_timeout_s=idle_s)


def connections_made(t: RequestsTransport, fb) -> int:
    pools = t.session().get_adapter(fb.url).poolmanager.pools
    return sum(pools[key].num_connections for key in pools.keys())


def test_stream_bytes_then_release_reuses_the_connection(fb):
    t = transport()
    for _ in range(3):
        resp = send(t, fb)
        data = b"".join(resp.iter_bytes())
        assert b"[DONE]" in data and resp.status == 200
        resp.release()
    assert connections_made(t, fb) == 1


def test_close_mid_stream_drops_the_connection_so_the_backend_stops(fb):
    fb.script(delay_s=0.2)
    resp = send(transport(), fb)
    next(iter(resp.iter_bytes()))
    resp.close()
    assert fb.wait_closed(2.0)


def test_when_done_runs_once_whatever_ends_the_answer(fb):
    t = transport()
    calls: list[str] = []
    resp = send(t, fb)
    resp.when_done(lambda: calls.append("done"))
    b"".join(resp.iter_bytes())
    resp.release()
    resp.close()
    assert calls == ["done"]


def test_json_of_a_non_streamed_answer(fb):
    resp = send(transport(), fb, PLAIN, stream=False)
    assert resp.json()["object"] == "chat.completion"
    assert resp.headers_received_ns > 0 and resp.content_type.startswith("application/json")


def test_non_json_body_is_a_protocol_error(fb):
    fb.script(fault="invalid_json")
    with pytest.raises(UpstreamProtocolError):
        send(transport(), fb, PLAIN, stream=False).json()


def test_stall_mid_stream_is_a_timeout(fb):
    fb.script(fault="stall_mid_stream")
    resp = send(transport(), fb, idle_s=0.3)
    with pytest.raises(UpstreamTimeout):
        for _ in resp.iter_bytes():
            pass
    resp.close()


def test_reset_mid_stream_is_a_protocol_error(fb):
    fb.script(fault="reset_mid_stream")
    resp = send(transport(), fb)
    with pytest.raises(UpstreamProtocolError):
        for _ in resp.iter_bytes():
            pass
    resp.close()


def test_error_body_is_bounded_and_drops_the_connection(fb):
    fb.script(status=500)
    t = transport()
    resp = send(t, fb)
    body = resp.error_body(10)
    assert resp.status == 500 and len(body) == 10


def test_redact_uses_the_clients_rule(fb):
    resp = send(transport(), fb, PLAIN, stream=False).from_backend("b1", lambda text: text.replace("k", "*"))
    assert resp.backend == "b1" and resp.redact("key") == "*ey"
