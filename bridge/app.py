"""The app factory: builds one worker's services once, wires hooks, routes and error handlers."""

from __future__ import annotations

import io
import logging
import time

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from . import CLOSE_CONNECTION, __version__
from .backend_pool import BackendPool
from .config import Settings
from .errors import BridgeError, ClientRequestError, RequestTooLarge, Unauthorized, UpstreamError
from .logs import configure_logging, set_instance
from .metrics import Metrics
from .metrics.instrument import install, observation
from .metrics.push import start_pusher
from .modelmap import ModelMap
from .ndjson import json_bytes
from .routes.anthropic import anthropic_blueprint
from .routes.auth import inbound_key, matching_key
from .routes.common import Services, now_rfc3339
from .routes.dashboard import dashboard_blueprint
from .routes.monitoring import monitoring_blueprint
from .routes.ollama import ollama_blueprint
from .routes.openai import openai_blueprint
from .routes.responses_api import responses_blueprint
from .translate import anthropic as anthropic_api
from .translate.backend_errors import openai_error_body

__all__ = ["create_app"]

log = logging.getLogger("bridge")

_PUBLIC_PATHS = frozenset({"/", "/health"})
_METRICS_PREFIXES = ("/metrics", "/v1/metrics", "/dashboard")
# Probes and scrapes are not traffic: they would crowd the recent-request window.
_UNCOUNTED_PREFIXES = _METRICS_PREFIXES + ("/health", "/ready")
_READY_CACHE_S = 5.0


def create_app(settings: Settings | None = None) -> Flask:
    """Build the WSGI app. ``settings`` default to the environment (read here, once)."""
    settings = settings or Settings.from_env()
    # DEBUG only turns on debug logs: Flask's debugger is never exposed on a gateway.
    configure_logging("DEBUG" if settings.debug else settings.log_level, settings.log_format)
    set_instance(settings.instance_name)
    app = Flask("bridge")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes  # chunked uploads without a length too

    modelmap = ModelMap(dict(settings.model_mapping), settings.default_model)
    metrics = Metrics(window=settings.metrics_window, version=__version__, multiproc_dir=settings.metrics_dir,
                      model_labels=modelmap.label, enabled=settings.metrics_enabled,
                      backends=tuple(b.name for b in settings.backend_list()), keys=settings.key_names())
    # Every backend (one without BACKENDS_FILE): clients, merged catalogue, failover, breakers.
    pool = BackendPool(settings, on_ids=modelmap.set_known_labels, report=metrics)
    metrics.before_scrape(pool.publish_states)
    services = Services(settings=settings, modelmap=modelmap, pool=pool, started_at=now_rfc3339())
    app.extensions["bridge"] = services
    app.extensions["bridge.metrics"] = metrics

    install(app, metrics, excluded_prefixes=_UNCOUNTED_PREFIXES)
    app.before_request(_guard(settings))
    if settings.cors_origins:
        app.after_request(_cors(settings.cors_origins))
    _register_errors(app)

    app.register_blueprint(ollama_blueprint(services))
    app.register_blueprint(openai_blueprint(services))
    app.register_blueprint(anthropic_blueprint(services))
    app.register_blueprint(responses_blueprint(services))
    app.register_blueprint(monitoring_blueprint(metrics, token=settings.metrics_token, ready=_ready_check(services),
                                            instance=settings.instance_name))
    app.register_blueprint(dashboard_blueprint(token=settings.metrics_token))

    if settings.demo_backend:
        log.warning("no backend configured (OPENAI_API_BASE_URL unset): serving the built-in DEMO backend "
                    "with models 'demo' and 'demo-embed'")
    # Push mode (PUSHGATEWAY_URL): one elected worker per instance pushes; None when unset.
    app.extensions["bridge.pusher"] = start_pusher(metrics, url=settings.pushgateway_url,
                                                   instance=settings.instance_name,
                                                   interval_s=settings.push_interval_s)
    log.info("bridge ready", extra={"version": __version__, "settings": settings.describe()})
    return app


def _guard(settings: Settings):
    """Inbound keys first, then the size limit: nothing of an unauthenticated body is read."""
    keys = [key.encode() for key in settings.api_keys]
    names = settings.key_names()

    def guard():
        if keys and not _exempt_from_keys(settings):
            index = matching_key(inbound_key(), *keys)
            if index is None:
                _close_after_response()  # its body, possibly huge, is never read: don't drain it
                raise Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>' "
                                   "(or 'x-api-key: <key>')")
            observation().key = names[index]  # usage per key name (never the key itself)
        length = request.content_length
        if length is not None and length > settings.max_request_bytes:
            _close_after_response()
            raise RequestTooLarge(f"request body of {length} bytes is over the limit of "
                                  f"{settings.max_request_bytes} bytes (MAX_REQUEST_BYTES)")
        if length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            _buffer_chunked_body(settings.max_request_bytes)
        return None

    return guard


def _exempt_from_keys(settings: Settings) -> bool:
    if request.path in _PUBLIC_PATHS or request.method == "OPTIONS":
        return True
    # The metrics routes check METRICS_TOKEN themselves.
    return bool(settings.metrics_token) and request.path.startswith(_METRICS_PREFIXES)


def _close_after_response() -> None:
    """Ask the server to close this connection after the response instead of reading the unread
    body to its end (a request without a body keeps its keep-alive connection)."""
    if request.content_length or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        request.environ[CLOSE_CONNECTION] = True


def _buffer_chunked_body(limit: int) -> None:
    """Read a body without Content-Length (chunked) up to ``limit``; 413 as soon as it goes over.

    The body is then served from memory with a real Content-Length, so nothing later can read past
    the limit (werkzeug's own limit on terminated streams is not applied by ``get_data``).
    """
    stream = request.environ["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while True:
        try:
            data = stream.read(min(64 * 1024, limit + 1 - size))
        except Exception as exc:  # the server's chunk parser: bad chunk size, missing CRLF, cut short
            _close_after_response()  # where the next request would start is unknown
            raise ClientRequestError(f"malformed chunked request body ({type(exc).__name__})") from None
        if not data:
            break
        parts.append(data)
        size += len(data)
        if size > limit:
            _close_after_response()
            raise RequestTooLarge(f"request body is over the limit of {limit} bytes (MAX_REQUEST_BYTES)")
    body = b"".join(parts)
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["CONTENT_LENGTH"] = str(len(body))
    request.environ.pop("HTTP_TRANSFER_ENCODING", None)
    request.__dict__.pop("stream", None)  # drop a cached stream wrapper, if one was made


def _cors(origins: tuple[str, ...]):
    allow_any = "*" in origins

    def add_cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin and (allow_any or origin in origins):
            response.headers["Access-Control-Allow-Origin"] = "*" if allow_any else origin
            response.headers["Access-Control-Allow-Headers"] = ("Authorization, Content-Type, X-Request-ID, x-api-key, "
                                                                "anthropic-version, anthropic-beta")
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, HEAD, OPTIONS"
            response.headers["Access-Control-Expose-Headers"] = "X-Request-ID"
            if not allow_any:
                response.headers["Vary"] = "Origin"
        return response

    return add_cors


def _register_errors(app: Flask) -> None:
    def respond(status: int, message: str, headers: dict | None = None) -> Response:
        openai_shape = request.path.startswith("/v1/") and not request.path.startswith("/v1/metrics")
        body = openai_error_body(status, message) if openai_shape else {"error": message}
        if request.path == "/v1/messages" or request.path.startswith("/v1/messages/"):
            body = anthropic_api.error_body(status, message)  # what the anthropic SDKs parse
        return Response(json_bytes(body), status=status, mimetype="application/json", headers=headers)

    @app.errorhandler(BridgeError)
    def bridge_error(exc: BridgeError):
        observation().outcome = exc.outcome
        retry_after = getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(int(retry_after + 0.999))} if retry_after else None
        if isinstance(exc, UpstreamError):
            log.warning("backend call failed", extra={"status": exc.status, "outcome": exc.outcome,
                                                      "error": exc.message})
        return respond(exc.status, exc.message, headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        if status == 413:
            observation().outcome = "bad_request"
        message = {404: f"not found: {request.method} {request.path}",
                   405: f"method {request.method} not allowed on {request.path}",
                   413: "request body is over the limit (MAX_REQUEST_BYTES)"}.get(status, exc.description or exc.name)
        return respond(status, message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        observation().outcome = "error"
        log.exception("unexpected error")
        return respond(500, "internal error in the bridge (see its log for the request id)")


def _ready_check(services: Services):
    """Ready while every model has a usable backend: short, cached ``/v1/models`` calls (the
    listings the routes use, refreshed as a side benefit); the result lists each backend's state."""
    state = {"at": float("-inf"), "result": (False, "not checked", {})}

    def ready() -> tuple[bool, str, dict]:
        now = time.monotonic()
        if now - state["at"] < _READY_CACHE_S:
            return state["result"]
        ok, reason, rows = services.pool.readiness()
        state["at"], state["result"] = now, (ok, reason, {"backends": rows})
        return state["result"]

    return ready
