"""What every route family shares: the worker's services and the one way to call a backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import g, has_request_context

from ..backend_pool import BackendPool
from ..clock import rfc3339_utc
from ..config import Settings
from ..errors import ModelNotFound, UpstreamHTTPError
from ..metrics.instrument import observation
from ..modelmap import ModelMap
from ..request_ids import request_id
from ..translate.backend_errors import model_not_found_in_body
from ..transport import Answer
from ..upstream import Deadline

__all__ = ["Services", "call_backend", "now_rfc3339", "require_listing", "resolve_model", "translate_not_found"]


@dataclass(frozen=True)
class Services:
    """Everything a route needs, built once per worker by the app factory.

    ``pool`` holds every backend (one without BACKENDS_FILE) and is also the merged model catalogue.
    """

    settings: Settings
    modelmap: ModelMap
    started_at: str
    pool: BackendPool
    #: How routes translate ``think``: THINK_CONTROL, or "both" when a backend has its own
    #: (``params.call_generation`` then keeps only the fields each backend wants).
    think_control: str = field(init=False)
    #: Each backend's own THINK_CONTROL (None: all use the global one, nothing to adapt).
    think_controls: dict[str, str] | None = field(init=False)

    def __post_init__(self) -> None:
        own = any(b.think_control for b in self.pool.backends)
        object.__setattr__(self, "think_control", "both" if own else self.settings.think_control)
        object.__setattr__(self, "think_controls", {b.name: b.think_control or self.settings.think_control
                                                    for b in self.pool.backends} if own else None)

    @property
    def models(self) -> BackendPool:
        """The merged ``/v1/models`` catalogue of every backend."""
        return self.pool

    def deadline(self) -> Deadline:
        """This request's deadline: one REQUEST_TIMEOUT budget shared by all its backend calls."""
        deadline: Deadline | None = g.get("bridge_deadline")
        if deadline is None:
            deadline = g.bridge_deadline = Deadline.after(self.settings.request_timeout_s)
        return deadline


def resolve_model(requested: str, services: Services) -> str:
    """The backend id for a requested name; 404 when the backend lists models and lacks it."""
    backend = services.modelmap.to_backend(requested)
    ids = services.models.ids(request_id(), services.deadline())
    if ids is not None and not services.modelmap.is_known(requested, ids):
        raise ModelNotFound(requested)
    return backend


def call_backend(services: Services, path: str, openai_body: dict[str, Any], requested: str, *, stream: bool,
                 deadline: Deadline | None = None, rid: str | None = None,
                 body_for: Callable[[str], dict[str, Any]] | None = None,
                 accept: Callable[[str], bool] | None = None) -> Answer:
    """One backend call within the request's deadline, to a backend serving the model (failover
    before the first byte: ``BackendPool.open``); the backend saying it has no such model becomes
    our ``model 'x' not found`` (404). ``deadline``/``rid`` default to this request's (pass them
    when calling from a greenlet outside the request context). The answer's ``backend`` names the
    backend that answered; it is noted on the request's observation for the metrics."""
    try:
        resp = services.pool.open("POST", path, json_body=openai_body, body_for=body_for,
                                  model=openai_body.get("model") if isinstance(openai_body.get("model"), str) else None,
                                  stream=stream, deadline=deadline or services.deadline(),
                                  request_id=rid or request_id(), accept=accept)
    except UpstreamHTTPError as exc:
        raise translate_not_found(exc, requested) from None
    if has_request_context():
        observation().note_backend(resp.backend)
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


def now_rfc3339() -> str:
    """Now as UTC RFC 3339 with microseconds and ``Z`` (``created_at``, ``modified_at``)."""
    return rfc3339_utc(time.time())

