"""The one exception tree of the bridge.

Every failure a client can see is one of these. Each class knows the HTTP status it maps to and
the ``outcome`` label metrics record for it, so no code ever branches on message text::

    BridgeError
     +- ClientRequestError        400  bad_request     bad JSON, wrong types, missing fields
     |   +- RequestTooLarge       413  bad_request     body over MAX_REQUEST_BYTES
 |   +- ClientBodyTimeout     408  bad_request     body stalled for CLIENT_BODY_TIMEOUT
     |   +- Unauthorized          401  unauthorized    missing or wrong inbound key
     |   +- ModelNotFound         404  not_found       "model 'x' not found"
     |   +- NotSupported          501  not_supported   model management is the backend's job
     +- UpstreamError             502  upstream_error
         +- UpstreamConnectError  502  connect_error   backend unreachable
         +- UpstreamTimeout       504  timeout         connect/read/idle/deadline exceeded
         +- UpstreamHTTPError     the backend's status; http_4xx / http_429 / http_5xx
         +- UpstreamProtocolError 502  protocol_error  unusable SSE/JSON, error event mid-stream
"""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "ClientBodyTimeout",
    "ClientRequestError",
    "ModelNotFound",
    "NotSupported",
    "RequestTooLarge",
    "Unauthorized",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamHTTPError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
]


class BridgeError(Exception):
    """Base class: a message safe to show to the client, an HTTP status and an outcome label."""

    status = 500
    outcome = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message or "internal error"


class ClientRequestError(BridgeError):
    status = 400
    outcome = "bad_request"


class RequestTooLarge(ClientRequestError):
    status = 413


class ClientBodyTimeout(ClientRequestError):
    """The client stopped sending its request body (raised by the worker's socket, which then
    closes the connection: where the next request would start is unknown)."""

    status = 408


class Unauthorized(ClientRequestError):
    status = 401
    outcome = "unauthorized"


class ModelNotFound(ClientRequestError):
    status = 404
    outcome = "not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"model '{model}' not found")
        self.model = model


class NotSupported(ClientRequestError):
    status = 501
    outcome = "not_supported"


class UpstreamError(BridgeError):
    status = 502
    outcome = "upstream_error"
    #: The name of the backend that failed ("" until the backend pool names it).
    backend = ""


class UpstreamConnectError(UpstreamError):
    outcome = "connect_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    outcome = "timeout"


class UpstreamProtocolError(UpstreamError):
    outcome = "protocol_error"


class UpstreamHTTPError(UpstreamError):
    """The backend answered with an error status; we pass its status and message on."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status if 400 <= status <= 599 else 502
        self.retry_after_s = retry_after_s

    @property
    def outcome(self) -> str:  # type: ignore[override]
        if self.status == 429:
            return "http_429"
        return "http_4xx" if self.status < 500 else "http_5xx"
