"""The app's error handlers: every error a route or guard raises becomes one JSON response, shaped
for the API family of the request's path (:func:`bridge.error_bodies.for_path`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .error_bodies import for_path
from .errors import BridgeError, UpstreamError
from .metrics.instrument import observation
from .ndjson import json_bytes

__all__ = ["error_response", "register_error_handlers"]

log = logging.getLogger("bridge")


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON error response in the shape the current request's API family expects."""
    body = for_path(request.path)(status, message)
    return Response(json_bytes(body), status=status, mimetype="application/json", headers=headers)


def register_error_handlers(app: Flask) -> None:
    """Handlers for :class:`BridgeError`, werkzeug's HTTP errors and anything unexpected (500)."""
    app.register_error_handler(BridgeError, _bridge_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _bridge_error(exc: BridgeError) -> Response:
    observation().note_outcome(exc.outcome)
    retry_after = getattr(exc, "retry_after_s", None)
    headers = {"Retry-After": str(int(retry_after + 0.999))} if retry_after else None
    if isinstance(exc, UpstreamError):
        log.warning("backend call failed", extra={"status": exc.status, "outcome": exc.outcome,
                                                  "error": exc.message})
    return error_response(exc.status, exc.message, headers)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 413:
        observation().note_outcome("bad_request")
    message = {404: f"not found: {request.method} {request.path}",
               405: f"method {request.method} not allowed on {request.path}",
               413: "request body is over the limit (MAX_REQUEST_BYTES)"}.get(status, exc.description or exc.name)
    return error_response(status, message)


def _unexpected(exc: Exception) -> Response:
    observation().note_outcome("error")
    log.exception("unexpected error")
    return error_response(500, "internal error in the bridge (see its log for the request id)")
