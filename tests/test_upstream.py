"""UpstreamClient unit tests against the in-process fake backend: retries, backoff, Retry-After, deadline."""

from __future__ import annotations

import random

import pytest

from bridge.config import Settings
from bridge.errors import UpstreamConnectError, UpstreamHTTPError, UpstreamProtocolError, UpstreamTimeout
from bridge.upstream import Deadline, UpstreamClient, _retry_after_s
from tests.bridgeproc import free_port
from tests.fakes.backend import FakeBackend

CHAT = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


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


def client(url: str, *, retries: int, backoff: float = 0.2, idle: float = 2.0, timeout: float = 5.0):
    sleeps: list[float] = []
    settings = Settings(backend_url=url + "/v1", demo_backend=False, api_key="sk-unit", max_retries=retries,
                        retry_backoff_s=backoff, stream_idle_timeout_s=idle, request_timeout_s=timeout,
                        connect_timeout_s=1.0)
    return UpstreamClient(settings, sleep=sleeps.append), sleeps


def attempts(fb) -> int:
    return len(fb.requests_to("/v1/chat/completions"))


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_max_retries_zero_makes_exactly_one_attempt(fb, status):
    fb.script(status=status)
    up, sleeps = client(fb.url, retries=0)
    with pytest.raises(UpstreamHTTPError) as err:
        up.json("POST", "/chat/completions", json_body=CHAT, deadline=Deadline.after(5))
    assert err.value.status == status and attempts(fb) == 1 and sleeps == []


def test_max_retries_zero_connect_error_one_attempt():
    up, sleeps = client(f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(UpstreamConnectError):
        up.json("GET", "/models", deadline=Deadline.after(5))
    assert sleeps == []


def test_connect_errors_are_retried_with_growing_jittered_backoff():
    random.seed(1)
    up, sleeps = client(f"http://127.0.0.1:{free_port()}", retries=3, backoff=0.1)
    with pytest.raises(UpstreamConnectError):
        up.json("GET", "/models", deadline=Deadline.after(30))
    assert len(sleeps) == 3
    for n, delay in enumerate(sleeps):
        assert 0 <= delay <= 0.1 * 2 ** n


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried(fb, status):
    fb.script(status=status)
    up, sleeps = client(fb.url, retries=2, backoff=0.01)
    with pytest.raises(UpstreamHTTPError) as err:
        up.json("POST", "/chat/completions", json_body=CHAT, deadline=Deadline.after(5))
    assert err.value.status == status and attempts(fb) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422, 500, 501])
def test_other_statuses_are_never_retried(fb, status):
    fb.script(status=status)
    up, sleeps = client(fb.url, retries=3)
    with pytest.raises(UpstreamHTTPError) as err:
        up.json("POST", "/chat/completions", json_body=CHAT, deadline=Deadline.after(5))
    assert err.value.status == status and attempts(fb) == 1 and sleeps == []


def test_a_retry_that_succeeds_returns_the_answer(fb):
    fb.script(status=503, fail_times=2)
    up, sleeps = client(fb.url, retries=2, backoff=0.01)
    data = up.json("POST", "/chat/completions", json_body=CHAT, deadline=Deadline.after(5))
    assert data["choices"][0]["message"]["content"] and attempts(fb) == 3 and len(sleeps) == 2


def test_retry_after_is_honoured(fb):
    fb.script(status=429, headers={"Retry-After": "2"}, fail_times=1)
    up, sleeps = client(fb.url, retries=2, backoff=0.01)
    up.json("POST", "/chat/completions", json_body=CHAT, deadline=Deadline.after(10))
    assert sleeps == [2.0] and attempts(fb) == 2


def test_retry_after_past_the_deadline_is_not_waited_for(fb):
    fb.script(status=429, headers={"Retry-After": "30"})
    up, sleeps = client(fb.url, retries=5)
    with pytest.raises(UpstreamHTTPError) as err:
        up.json("POST", "/chat/completions", json_body=CHAT, deadline=Deadline.after(3))
    assert err.value.status == 429 and err.value.retry_after_s == 30.0
    assert attempts(fb) == 1 and sleeps == []


def test_backoff_is_bounded_by_the_deadline(fb):
    fb.script(status=503)
    up, sleeps = client(fb.url, retries=10, backoff=5.0)
    random.seed(7)
    with pytest.raises(UpstreamHTTPError):
        up.json("POST", "/chat/completions", json_body=CHAT, deadline=Deadline.after(0.5))
    assert sum(sleeps) < 0.5


def test_expired_deadline_fails_without_calling(fb):
    up, _ = client(fb.url, retries=2)
    with pytest.raises(UpstreamTimeout):
        up.json("GET", "/models", deadline=Deadline(at_s=0.0))
    assert fb.requests == []


def test_jitter_spreads_delays():
    up, _ = client("http://127.0.0.1:9", retries=5, backoff=1.0)
    error = UpstreamHTTPError(503, "x")
    delays = {up._retry_delay_s(error, 2, Deadline.after(100)) for _ in range(50)}
    assert len(delays) > 40 and all(0 <= d <= 4.0 for d in delays)


def test_read_timeout_on_headers_is_not_retried(fb):
    fb.script(fault="accept_no_answer")
    up, sleeps = client(fb.url, retries=3, idle=0.5, timeout=0.5)
    with pytest.raises(UpstreamTimeout):
        up.open("POST", "/chat/completions", json_body={**CHAT, "stream": True}, stream=True,
                deadline=Deadline.after(5))
    assert attempts(fb) == 1 and sleeps == []


@pytest.mark.parametrize("fault", ["reset_mid_stream", "close_mid_stream", "stall_mid_stream"])
def test_mid_stream_failures_are_raised_never_retried(fb, fault):
    fb.script(fault=fault)
    up, sleeps = client(fb.url, retries=3, idle=0.5)
    resp = up.open("POST", "/chat/completions", json_body={**CHAT, "stream": True}, stream=True,
                   deadline=Deadline.after(5))
    got = b""
    expected = UpstreamTimeout if fault == "stall_mid_stream" else UpstreamProtocolError
    with pytest.raises(expected):
        try:
            for data in resp.iter_bytes():
                got += data
        finally:
            resp.close()
    assert b"Hello" in got and attempts(fb) == 1 and sleeps == []


def test_backend_key_is_sent_and_not_in_errors(fb):
    fb.script(status=401)
    up, _ = client(fb.url, retries=0)
    with pytest.raises(UpstreamHTTPError) as err:
        up.json("GET", "/models", deadline=Deadline.after(5))
    assert fb.requests[0].headers.get("authorization") == "Bearer sk-unit"
    assert "sk-unit" not in err.value.message


@pytest.mark.parametrize("value,expected", [("1", 1.0), ("0.5", 0.5), ("-3", 0.0), (None, None), ("", None),
                                            ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("nan", None),
                                            ("inf", None), ("1e400", None), ("soon", None),
                                            ("99999999", 86400.0)])
def test_retry_after_parsing(value, expected):
    assert _retry_after_s(value) == expected


def test_retry_after_http_date_in_the_future():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after_s(when) <= 31


def _keepalive_server_that_drops_the_second_request() -> tuple[str, list[int], object]:
    """A raw HTTP/1.1 server: answers the first request on a connection with keep-alive, then
    closes that connection when the next request arrives on it (as a backend with a short idle
    timeout does when the close races our reuse). New connections are served normally."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    connections: list[int] = []
    body = b'{"object":"list","data":[]}'
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)

    def serve(conn: socket.socket) -> None:
        with conn:
            served = 0
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                if served:
                    return  # drop the reused connection without answering
                conn.sendall(answer)
                served += 1

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", connections, listener


def test_a_pooled_connection_closed_under_us_is_replaced_even_with_no_retries():
    url, connections, listener = _keepalive_server_that_drops_the_second_request()
    try:
        up, sleeps = client(url, retries=0)
        for _ in range(3):
            assert up.json("GET", "/models", deadline=Deadline.after(5)) == {"object": "list", "data": []}
        assert sleeps == []  # not a backoff retry: an immediate new connection
        assert len(connections) == 3
    finally:
        listener.close()


def test_refused_connection_is_not_mistaken_for_a_stale_one():
    up, sleeps = client(f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(UpstreamConnectError):
        up.json("GET", "/models", deadline=Deadline.after(5))
    assert sleeps == []
