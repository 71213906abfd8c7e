"""bridge.errors (the exception tree) and bridge.error_handlers (one JSON error per API family)."""

from __future__ import annotations

import pytest
from flask import Flask

from bridge import error_handlers
from bridge.error_handlers import register_error_handlers
from bridge.errors import (
    BridgeError,
    ClientRequestError,
    ModelNotFound,
    NotSupported,
    RequestTooLarge,
    Unauthorized,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

# -- the tree -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "status", "outcome"), [
    (BridgeError("x"), 500, "error"),
    (ClientRequestError("x"), 400, "bad_request"),
    (RequestTooLarge("x"), 413, "bad_request"),
    (Unauthorized("x"), 401, "unauthorized"),
    (ModelNotFound("m"), 404, "not_found"),
    (NotSupported("x"), 501, "not_supported"),
    (UpstreamError("x"), 502, "upstream_error"),
    (UpstreamConnectError("x"), 502, "connect_error"),
    (UpstreamTimeout("x"), 504, "timeout"),
    (UpstreamProtocolError("x"), 502, "protocol_error"),
    (UpstreamHTTPError(429, "x"), 429, "http_429"),
    (UpstreamHTTPError(404, "x"), 404, "http_4xx"),
    (UpstreamHTTPError(503, "x"), 503, "http_5xx"),
    (UpstreamHTTPError(200, "x"), 502, "http_5xx"),  # not an error status: a bad gateway
])
def test_status_and_outcome(exc, status, outcome):
    assert (exc.status, exc.outcome) == (status, outcome)


def test_message():
    assert ModelNotFound("llama3").message == "model 'llama3' not found"
    assert BridgeError("").message == "internal error"


# -- the handlers ---------------------------------------------------------------------------------


class Spy:
    outcomes: list[str] = []

    def note_outcome(self, outcome: str) -> None:
        Spy.outcomes.append(outcome)


@pytest.fixture()
def client(monkeypatch):
    Spy.outcomes = []
    monkeypatch.setattr(error_handlers, "observation", Spy)
    app = Flask("errors")
    register_error_handlers(app)
    raises: dict[str, Exception] = {}

    def boom(path: str):
        raise raises["exc"]

    for rule in ("/api/<path:path>", "/v1/<path:path>", "/metrics/<path:path>"):
        app.add_url_rule(rule, rule, boom, methods=["POST"])
    c = app.test_client()
    c.raises = raises
    return c


@pytest.mark.parametrize(("path", "body"), [
    ("/api/chat", {"error": "model 'm' not found"}),
    ("/metrics/x", {"error": "model 'm' not found"}),
    ("/v1/metrics/x", {"error": "model 'm' not found"}),
    ("/v1/chat/completions", {"error": {"message": "model 'm' not found", "type": "not_found_error",
                                        "param": None, "code": None}}),
    ("/v1/messages", {"type": "error", "error": {"type": "not_found_error", "message": "model 'm' not found"}}),
])
def test_a_bridge_error_in_the_family_of_its_path(client, path, body):
    client.raises["exc"] = ModelNotFound("m")
    resp = client.post(path)
    assert resp.status_code == 404
    assert resp.mimetype == "application/json"
    assert resp.get_json() == body
    assert Spy.outcomes == ["not_found"]


def test_retry_after_is_whole_seconds_rounded_up(client):
    client.raises["exc"] = UpstreamHTTPError(429, "slow down", retry_after_s=1.2)
    resp = client.post("/api/chat")
    assert (resp.status_code, resp.headers["Retry-After"]) == (429, "2")
    client.raises["exc"] = UpstreamHTTPError(429, "slow down")
    assert "Retry-After" not in client.post("/api/chat").headers


def test_http_errors_say_what_was_not_found_or_allowed(client):
    resp = client.get("/nowhere")
    assert (resp.status_code, resp.get_json()) == (404, {"error": "not found: GET /nowhere"})
    resp = client.get("/v1/chat/completions")
    assert resp.status_code == 405
    assert resp.get_json()["error"]["message"] == "method GET not allowed on /v1/chat/completions"
    assert Spy.outcomes == []  # the status says it all


def test_413_from_werkzeug_is_a_bad_request(client):
    from werkzeug.exceptions import RequestEntityTooLarge

    client.raises["exc"] = RequestEntityTooLarge()
    resp = client.post("/api/chat")
    assert resp.get_json() == {"error": "request body is over the limit (MAX_REQUEST_BYTES)"}
    assert Spy.outcomes == ["bad_request"]


def test_anything_else_is_a_500_without_details(client):
    client.raises["exc"] = RuntimeError("secret internals")
    resp = client.post("/v1/messages")
    assert resp.status_code == 500
    assert resp.get_json() == {"type": "error", "error": {
        "type": "api_error", "message": "internal error in the bridge (see its log for the request id)"}}
    assert Spy.outcomes == ["error"]
