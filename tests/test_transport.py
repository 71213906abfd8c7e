"""The transport: one exchange on a pooled connection, failures as the bridge's errors, other
answerers mounted in (the demo backend), and the client taking any Transport."""

from __future__ import annotations

import pytest

from bridge.backend_response import BackendResponse
from bridge.config import DEMO_BACKEND_URL, Settings
from bridge.demo_backend import demo_transport
from bridge.errors import UpstreamConnectError, UpstreamHTTPError
from bridge.transport import ConnectTimeout, RequestsTransport, StaleConnection
from bridge.upstream import Deadline, UpstreamClient
from tests.bridgeproc import free_port
from tests.test_upstream import _keepalive_server_that_drops_the_second_request


def test_refused_connection_is_a_connect_error_not_a_stale_one():
    t = RequestsTransport(Settings(demo_backend=False))
    with pytest.raises(UpstreamConnectError) as err:
        t.send("GET", f"http://127.0.0.1:{free_port()}/v1/models", None, {}, stream=False, timeout=(1, 1),
               idle_timeout_s=1)
    assert not isinstance(err.value, (StaleConnection, ConnectTimeout))


def test_a_pooled_connection_closed_by_the_backend_is_stale():
    url, _, listener = _keepalive_server_that_drops_the_second_request()
    try:
        t = RequestsTransport(Settings(demo_backend=False))
        first = t.send("GET", url + "/models", None, {}, stream=False, timeout=(1, 2), idle_timeout_s=2)
        assert first.json() == {"object": "list", "data": []}
        with pytest.raises(StaleConnection):
            t.send("GET", url + "/models", None, {}, stream=False, timeout=(1, 2), idle_timeout_s=2)
    finally:
        listener.close()


def test_the_demo_backend_is_mounted_for_its_host_only():
    settings = Settings()
    t = demo_transport(settings)
    resp = t.send("GET", DEMO_BACKEND_URL + "/models", None, {}, stream=False, timeout=(1, 1), idle_timeout_s=1)
    assert [m["id"] for m in resp.json()["data"]] == ["demo", "demo-embed"]
    with pytest.raises(UpstreamConnectError):  # any other URL still goes over the network
        t.send("GET", f"http://127.0.0.1:{free_port()}/v1/models", None, {}, stream=False, timeout=(1, 1),
               idle_timeout_s=1)


class ScriptedTransport:
    """A transport answering from a script: an exception to raise or a status to answer with."""

    def __init__(self, script: list[object], answer: BackendResponse) -> None:
        self.script = script
        self.answer = answer
        self.sent: list[str] = []

    def send(self, method, url, body, headers, *, stream, timeout, idle_timeout_s):
        self.sent.append(url)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return self.answer


def test_the_client_retries_through_any_transport():
    demo = demo_transport(Settings()).send("GET", DEMO_BACKEND_URL + "/models", None, {}, stream=False,
                                           timeout=(1, 1), idle_timeout_s=1)
    t = ScriptedTransport([StaleConnection("x"), ConnectTimeout("y"), "ok"], demo)
    sleeps: list[float] = []
    up = UpstreamClient(Settings(backend_url="http://b.invalid/v1", demo_backend=False, max_retries=2),
                        sleep=sleeps.append, transport=t)
    assert up.json("GET", "/models", deadline=Deadline.after(5))["object"] == "list"
    assert t.sent == ["http://b.invalid/v1/models"] * 3 and len(sleeps) == 1  # stale: at once; timeout: backoff


def test_an_error_status_from_any_transport_is_an_http_error():
    class Answer500:
        status = 500

        def from_backend(self, name, redact):
            return self

        def header(self, name):
            return None

        def error_body(self, limit):
            return b'{"error": {"message": "boom"}}'

    t = ScriptedTransport(["x"], Answer500())  # type: ignore[arg-type]
    up = UpstreamClient(Settings(backend_url="http://b.invalid/v1", demo_backend=False, max_retries=0), transport=t)
    with pytest.raises(UpstreamHTTPError) as err:
        up.json("GET", "/models", deadline=Deadline.after(5))
    assert err.value.status == 500 and "boom" in err.value.message
