"""What every route family shares: the app's services, body parsing, timestamps."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from collections.abc import Callable

from flask import g, has_request_context, request

from ..backend_models import BackendModels
from ..backend_pool import BackendPool
from ..config import Settings
from ..errors import ClientRequestError, ModelNotFound, UpstreamHTTPError
from ..metrics.instrument import observation
from ..modelmap import ModelMap
from ..translate.backend_errors import model_not_found_in_body
from ..upstream import Deadline, UpstreamClient

__all__ = ["Services", "call_backend", "read_json_object", "now_rfc3339", "request_id", "require_listing", "resolve_model",
           "require_model_name", "translate_not_found"]


@dataclass(frozen=True)
class Services:
    """Everything a route needs, built once per worker by the app factory.

    ``pool`` holds every backend (one without BACKENDS_FILE); ``models`` is its merged catalogue
    (the pool itself by default) and ``upstream`` its first client (streams are read through it).
    """

    settings: Settings
    modelmap: ModelMap
    started_at: str
    pool: BackendPool = None  # type: ignore[assignment]
    upstream: UpstreamClient = None  # type: ignore[assignment]
    models: BackendPool | BackendModels = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        pool = self.pool or BackendPool(self.settings, on_ids=self.modelmap.set_known_labels)
        object.__setattr__(self, "pool", pool)
        if self.upstream is None:
            object.__setattr__(self, "upstream", pool.upstream)
        if self.models is None:
            object.__setattr__(self, "models", pool)
        # How routes translate ``think``: THINK_CONTROL, or "both" when a backend has its own
        # (``params.call_generation`` then keeps only the fields each backend wants).
        own = any(b.think_control for b in pool.backends)
        object.__setattr__(self, "think_control", "both" if own else self.settings.think_control)
        # Each backend's own THINK_CONTROL (None: all use the global one, nothing to adapt).
        object.__setattr__(self, "think_controls", {b.name: b.think_control or self.settings.think_control
                                                    for b in pool.backends} if own else None)

    def deadline(self) -> Deadline:
        """This request's deadline: one REQUEST_TIMEOUT budget shared by all its backend calls."""
        deadline = g.get("bridge_deadline")
        if deadline is None:
            deadline = g.bridge_deadline = Deadline.after(self.settings.request_timeout_s)
        return deadline


def read_json_object() -> dict:
    """The request body as a JSON object, or a 400 saying what is wrong."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ClientRequestError("request body is empty; expected a JSON object")
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float,
                          parse_int=_int64)
    except UnicodeDecodeError:
        raise ClientRequestError("request body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ClientRequestError(f"invalid JSON in request body: {exc.msg} at position {exc.pos}") from None
    except ValueError as exc:  # NaN / Infinity
        raise ClientRequestError(f"invalid JSON in request body: {exc}") from None
    except RecursionError:
        raise ClientRequestError("invalid JSON in request body: nested too deeply") from None
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    return body


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN and Infinity; JSON (and every backend) does not.
    raise ValueError(f"{name} is not valid JSON")


def _int64(text: str) -> int:
    # Ollama (Go) and OpenAI-compatible servers read integers as 64-bit: a bigger one is a 400
    # there, so it is one here too, not a request the backend may mis-read.
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"number {text[:40]} is out of range for a 64-bit integer")
    return value


def _finite_float(text: str) -> float:
    # 1e400 parses to infinity, which would leave the bridge as the non-JSON token Infinity.
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number {text[:40]} is out of range for a 64-bit float")
    return value


def require_model_name(body: dict, services: Services, *, keys: tuple[str, ...] = ("model",)) -> str:
    """The model name the client asked for (``DEFAULT_MODEL`` when absent)."""
    for key in keys:
        value = body.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ClientRequestError(f"'{key}' must be a string")
        if len(value) > 512 or any(ord(c) < 32 for c in value):
            raise ClientRequestError(f"'{key}' is not a valid model name")
        return value
    if services.settings.default_model:
        return services.settings.default_model
    raise ClientRequestError("model is required")


def resolve_model(requested: str, services: Services) -> str:
    """The backend id for a requested name; 404 when the backend lists models and lacks it."""
    backend = services.modelmap.to_backend(requested)
    ids = services.models.ids(request_id(), services.deadline())
    if ids is not None and not services.modelmap.is_known(requested, ids):
        raise ModelNotFound(requested)
    return backend


def call_backend(services: Services, path: str, openai_body: dict, requested: str, *, stream: bool,
                 deadline: Deadline | None = None, rid: str | None = None,
                 body_for: Callable[[str], dict] | None = None, accept: Callable[[str], bool] | None = None):
    """One backend call within the request's deadline, to a backend serving the model (failover
    before the first byte: ``BackendPool.open``); the backend saying it has no such model becomes
    our ``model 'x' not found`` (404). ``deadline``/``rid`` default to this request's (pass them
    when calling from a greenlet outside the request context). The response's ``bridge_backend``
    names the backend that answered; it is noted on the request's observation for the metrics."""
    try:
        resp = services.pool.open("POST", path, json_body=openai_body, body_for=body_for,
                                  model=openai_body.get("model") if isinstance(openai_body.get("model"), str) else None,
                                  stream=stream, deadline=deadline or services.deadline(),
                                  request_id=rid or request_id(), accept=accept)
    except UpstreamHTTPError as exc:
        raise translate_not_found(exc, requested) from None
    if has_request_context():
        observation().backend = resp.bridge_backend
    return resp


def require_listing(services: Services) -> None:
    """Raise the backend's error when it cannot list its models (cached listing first)."""
    if services.models.ids(request_id(), services.deadline()) is None:
        services.models.fetch(request_id(), services.deadline())


def translate_not_found(exc: UpstreamHTTPError, requested: str) -> Exception:
    """A backend 404 (or 400) about the model becomes our ``model 'x' not found``."""
    if exc.status in (400, 404) and model_not_found_in_body(exc.message):
        return ModelNotFound(requested)
    return exc


def request_id() -> str | None:
    return getattr(g, "request_id", None)


def now_rfc3339() -> str:
    """UTC RFC 3339 with microseconds and ``Z`` (what Go and Python clients parse)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def monotonic_ns() -> int:
    return time.monotonic_ns()


def stream_flag(body: dict, *, default: bool) -> bool:
    """The request's ``stream``: ``default`` when absent or null (Ollama streams by default; the
    Anthropic and Responses APIs do not), else it must be a boolean."""
    value = body.get("stream")
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ClientRequestError("'stream' must be true or false")
    return value
