"""bridge.guards: inbound keys, the size limit, chunked bodies, close-instead-of-drain and CORS.

A bare Flask app with only the guards and the error handlers; requests are plain WSGI calls, so the
environ (the close flag, a chunked body without Content-Length) is exactly the one we build and can be
inspected afterwards.
"""

from __future__ import annotations

import io
import json

import pytest
from flask import Flask, request
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder

from bridge import CLOSE_CONNECTION, guards
from bridge.config import Settings
from bridge.error_handlers import register_error_handlers

LIMIT = 1024


class CountingStream(io.BytesIO):
    """A request body that counts how much of it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


class BrokenChunks(io.RawIOBase):
    """What gunicorn's chunk parser does with broken framing: raise from read()."""

    def read(self, size: int = -1) -> bytes:
        raise ValueError("invalid chunk size")


def make_app(**settings) -> Flask:
    app = Flask("guards")
    guards.install_guards(app, Settings(max_request_bytes=LIMIT, **settings))
    register_error_handlers(app)

    @app.route("/api/echo", methods=["GET", "POST", "OPTIONS"])
    def echo():
        return {"bytes": len(request.get_data()), "content_length": request.headers.get("Content-Length")}

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics():
        return {"metrics": True}

    return app


def call(app: Flask, path: str = "/api/echo", *, method: str = "POST", headers: dict | None = None,
         body: bytes | None = None, stream=None, length: int = 0, chunked: bool = False):
    """(status, json body, response headers, environ). ``stream`` is put in the environ as is."""
    headers = dict(headers or {})
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    env = EnvironBuilder(path=path, method=method, headers=headers, data=body).get_environ()
    if stream is not None:
        env["wsgi.input"] = stream
        env["CONTENT_LENGTH"] = str(length)
    if chunked:
        env.pop("CONTENT_LENGTH", None)  # as a server passes a chunked body on
        env["wsgi.input_terminated"] = True
    started = []
    app_iter = app(env, lambda status, resp_headers, exc_info=None: started.append((status, resp_headers)))
    data = b"".join(app_iter)
    status, resp_headers = started[0]
    return int(status.split()[0]), json.loads(data) if data else None, Headers(resp_headers), env


# -- inbound keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"},
                                     {"Authorization": "Basic k1"}])
def test_missing_or_wrong_key_is_401_before_the_body_is_read(headers):
    app = make_app(api_keys=("k1",))
    stream = CountingStream(b"x" * 100)
    status, body, _, env = call(app, headers=headers, stream=stream, length=100)
    assert status == 401
    assert "missing or invalid API key" in body["error"]
    assert stream.read_bytes == 0
    assert env[CLOSE_CONNECTION] is True  # the unread body is not drained


def test_401_without_a_body_keeps_the_connection():
    status, _, _, env = call(make_app(api_keys=("k1",)), method="GET")
    assert status == 401
    assert CLOSE_CONNECTION not in env


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer k2"}, {"authorization": "bearer k2"},
                                     {"x-api-key": "k2"}])
def test_a_right_key_passes_and_its_name_is_noted(monkeypatch, headers):
    noted = []

    class Spy:
        def note_key(self, name):
            noted.append(name)

    monkeypatch.setattr(guards, "observation", Spy)
    app = make_app(api_keys=("k1", "k2"), api_key_names=("alice", "bob"))
    status, body, _, _ = call(app, headers=headers, body=b"hello")
    assert (status, body["bytes"]) == (200, 5)
    assert noted == ["bob"]  # the key's name, never the key


def test_public_paths_and_preflights_need_no_key():
    app = make_app(api_keys=("k1",))
    assert call(app, "/health", method="GET")[0] == 200
    assert call(app, method="OPTIONS")[0] == 200
    assert call(app, "/api/echo", method="GET")[0] == 401


def test_metrics_routes_skip_the_keys_only_when_a_metrics_token_guards_them():
    assert call(make_app(api_keys=("k1",)), "/metrics", method="GET")[0] == 401
    assert call(make_app(api_keys=("k1",), metrics_token="t"), "/metrics", method="GET")[0] == 200


def test_no_keys_configured_means_open():
    assert call(make_app(), body=b"hi")[:2] == (200, {"bytes": 2, "content_length": "2"})


# -- size limit -----------------------------------------------------------------------------------


def test_oversize_content_length_is_413_unread_and_closes():
    stream = CountingStream(b"x" * (LIMIT + 1))
    status, body, _, env = call(make_app(), stream=stream, length=LIMIT + 1)
    assert status == 413
    assert body["error"] == f"request body of {LIMIT + 1} bytes is over the limit of {LIMIT} bytes (MAX_REQUEST_BYTES)"
    assert stream.read_bytes == 0
    assert env[CLOSE_CONNECTION] is True


def test_a_body_at_the_limit_passes():
    status, body, _, env = call(make_app(), body=b"x" * LIMIT)
    assert (status, body["bytes"]) == (200, LIMIT)
    assert CLOSE_CONNECTION not in env


def test_the_key_is_checked_before_the_size():
    status, _, _, _ = call(make_app(api_keys=("k1",)), stream=CountingStream(b""), length=LIMIT * 10)
    assert status == 401


# -- chunked bodies -------------------------------------------------------------------------------


def test_chunked_body_within_the_limit_is_served_with_a_length():
    status, body, _, env = call(make_app(), stream=io.BytesIO(b"y" * LIMIT), chunked=True)
    assert (status, body) == (200, {"bytes": LIMIT, "content_length": str(LIMIT)})
    assert "HTTP_TRANSFER_ENCODING" not in env
    assert CLOSE_CONNECTION not in env


def test_chunked_body_over_the_limit_is_413_and_stops_reading():
    stream = CountingStream(b"z" * (LIMIT * 10))
    status, body, _, env = call(make_app(), stream=stream, chunked=True)
    assert status == 413
    assert body["error"] == f"request body is over the limit of {LIMIT} bytes (MAX_REQUEST_BYTES)"
    assert stream.read_bytes == LIMIT + 1  # one byte past the limit is enough to know
    assert env[CLOSE_CONNECTION] is True


def test_malformed_chunked_body_is_400_and_closes():
    status, body, _, env = call(make_app(), stream=BrokenChunks(), chunked=True)
    assert status == 400
    assert body["error"] == "malformed chunked request body (ValueError)"
    assert env[CLOSE_CONNECTION] is True


# -- CORS -----------------------------------------------------------------------------------------


def test_cors_headers_for_an_allowed_origin_only():
    app = make_app(cors_origins=("https://ok.example",))
    _, _, headers, _ = call(app, method="GET", headers={"Origin": "https://ok.example"})
    assert headers["Access-Control-Allow-Origin"] == "https://ok.example"
    assert headers["Vary"] == "Origin"
    assert "x-api-key" in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Allow-Methods"] == "GET, POST, DELETE, HEAD, OPTIONS"
    assert headers["Access-Control-Expose-Headers"] == "X-Request-ID"
    _, _, headers, _ = call(app, method="GET", headers={"Origin": "https://evil.example"})
    assert not any(name.startswith("Access-Control-") for name in headers.keys())
    _, _, headers, _ = call(app, method="GET")
    assert "Access-Control-Allow-Origin" not in headers


def test_cors_wildcard_allows_any_origin_without_vary():
    _, _, headers, _ = call(make_app(cors_origins=("*",)), method="GET", headers={"Origin": "https://any.example"})
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in headers


def test_cors_headers_on_errors_too_and_none_when_unconfigured():
    _, _, headers, _ = call(make_app(api_keys=("k1",), cors_origins=("https://ok.example",)), method="GET",
                            headers={"Origin": "https://ok.example"})
    assert headers["Access-Control-Allow-Origin"] == "https://ok.example"
    _, _, headers, _ = call(make_app(), method="GET", headers={"Origin": "https://ok.example"})
    assert "Access-Control-Allow-Origin" not in headers
