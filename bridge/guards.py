"""Request guards: what every request passes before a route sees it, and the CORS headers after.

In order, before any of the body is read:

1. the inbound key (``API_KEYS``), unless the path is public, an ``OPTIONS`` preflight, or a metrics
   route guarded by ``METRICS_TOKEN`` instead -> 401;
2. the size limit (``MAX_REQUEST_BYTES``) on ``Content-Length`` -> 413;
3. a chunked body (no ``Content-Length``) is read into memory up to the limit -> 413 when over,
   400 when its chunk framing is broken.

A rejected body is never read: the connection is marked to close after the response
(:data:`bridge.CLOSE_CONNECTION`) instead of being drained.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from flask import Flask, Response, request

from . import CLOSE_CONNECTION
from .config import Settings
from .errors import ClientBodyTimeout, ClientRequestError, RequestTooLarge, Unauthorized
from .metrics.instrument import observation
from .paths import METRICS_PREFIXES, PUBLIC_PATHS
from .routes.auth import inbound_key, matching_key

__all__ = ["buffer_chunked_body", "close_after_response", "cors_headers", "install_guards", "request_guard"]

_READ_SIZE = 64 * 1024
_CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID, x-api-key, anthropic-version, anthropic-beta"
_CORS_ALLOW_METHODS = "GET, POST, DELETE, HEAD, OPTIONS"


def install_guards(app: Flask, settings: Settings) -> None:
    """Register the request guard and, when ``CORS_ORIGINS`` is set, the CORS after-hook."""
    app.before_request(request_guard(settings))
    if settings.cors_origins:
        app.after_request(cors_headers(settings.cors_origins))


def request_guard(settings: Settings) -> Callable[[], None]:
    """The ``before_request`` hook: inbound keys first, then the size limit, so nothing of an
    unauthenticated body is read."""
    keys = [key.encode() for key in settings.api_keys]
    names = settings.key_names()
    limit = settings.max_request_bytes

    def guard() -> None:
        if keys and not _exempt_from_keys(settings):
            index = matching_key(inbound_key(), *keys)
            if index is None:
                close_after_response()  # its body, possibly huge, is never read: don't drain it
                raise Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>' "
                                   "(or 'x-api-key: <key>')")
            observation().note_key(names[index])  # usage per key name (never the key itself)
        length = request.content_length
        if length is not None and length > limit:
            close_after_response()
            raise RequestTooLarge(f"request body of {length} bytes is over the limit of "
                                  f"{limit} bytes (MAX_REQUEST_BYTES)")
        if length is None and _is_chunked():
            buffer_chunked_body(limit)

    return guard


def _exempt_from_keys(settings: Settings) -> bool:
    if request.path in PUBLIC_PATHS or request.method == "OPTIONS":
        return True
    # The metrics routes check METRICS_TOKEN themselves.
    return bool(settings.metrics_token) and request.path.startswith(METRICS_PREFIXES)


def _is_chunked() -> bool:
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def close_after_response() -> None:
    """Ask the server to close this connection after the response instead of reading the unread
    body to its end (a request without a body keeps its keep-alive connection)."""
    if request.content_length or _is_chunked():
        request.environ[CLOSE_CONNECTION] = True


def buffer_chunked_body(limit: int) -> None:
    """Read a body without Content-Length (chunked) up to ``limit``; 413 as soon as it goes over.

    The body is then served from memory with a real Content-Length, so nothing later can read past
    the limit (werkzeug's own limit on terminated streams is not applied by ``get_data``).
    """
    stream = request.environ["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while True:
        try:
            data = stream.read(min(_READ_SIZE, limit + 1 - size))
        except ClientBodyTimeout:
            raise  # the client went silent: 408, and the worker closes the connection
        except Exception as exc:  # the server's chunk parser: bad chunk size, missing CRLF, cut short
            close_after_response()  # where the next request would start is unknown
            raise ClientRequestError(f"malformed chunked request body ({type(exc).__name__})") from None
        if not data:
            break
        parts.append(data)
        size += len(data)
        if size > limit:
            close_after_response()
            raise RequestTooLarge(f"request body is over the limit of {limit} bytes (MAX_REQUEST_BYTES)")
    body = b"".join(parts)
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["CONTENT_LENGTH"] = str(len(body))
    request.environ.pop("HTTP_TRANSFER_ENCODING", None)
    request.__dict__.pop("stream", None)  # drop a cached stream wrapper, if one was made


def cors_headers(origins: tuple[str, ...]) -> Callable[[Response], Response]:
    """The ``after_request`` hook adding CORS headers for an allowed ``Origin`` (``*``: any)."""
    allow_any = "*" in origins

    def add_cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin and (allow_any or origin in origins):
            response.headers["Access-Control-Allow-Origin"] = "*" if allow_any else origin
            response.headers["Access-Control-Allow-Headers"] = _CORS_ALLOW_HEADERS
            response.headers["Access-Control-Allow-Methods"] = _CORS_ALLOW_METHODS
            response.headers["Access-Control-Expose-Headers"] = "X-Request-ID"
            if not allow_any:
                response.headers["Vary"] = "Origin"
        return response

    return add_cors
