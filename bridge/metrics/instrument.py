"""The Flask hooks that give every counted request an :class:`Observation` and finish it.

* ``before_request``: start the request's clock, route template, in-progress +1.
* ``after_request``: the status is noted (a streamed body defers the record to its close).
* ``teardown_request``: a non-streamed request is recorded.
* Monitoring routes (``excluded_prefixes``) are never counted.

``install`` should be called before the app registers its own ``before_request`` hooks (auth,
size limit), so that requests those hooks reject are still counted, with their start time.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, Response, g, has_request_context, request

from ..clock import RequestClock
from ..paths import UNCOUNTED_PREFIXES
from ..request_ids import request_id
from . import Metrics
from .observation import Observation

__all__ = ["KNOWN_METHODS", "install", "method_label", "observation"]

_G_OBS = "_bridge_observation"
# gunicorn accepts any 3-20 upper-case letters as a method: a label per made-up method would let
# any client grow every worker's series without bound. Everything else counts as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The ``method`` label: the method itself when standard, else ``other`` (a closed set)."""
    return method if method in KNOWN_METHODS else "other"


def observation() -> Observation:
    """The current request's observation; a detached one (records nothing) outside a counted request."""
    obs = g.get(_G_OBS) if has_request_context() else None
    if obs is None:
        return Observation(None)
    return obs  # type: ignore[no-any-return]


def install(app: Flask, metrics: Metrics, *, excluded_prefixes: Iterable[str] = UNCOUNTED_PREFIXES) -> None:
    """Register the request hooks that turn every counted request into one record."""
    prefixes = tuple(p.rstrip("/") for p in excluded_prefixes)

    def excluded(path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in prefixes)

    def start() -> None:
        if _G_OBS in g:
            return
        if excluded(request.path):
            g.setdefault(_G_OBS, None)
            return
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        obs = Observation(metrics, route=route, method=method_label(request.method),
                          request_id=request_id() or "", bytes_in=request.content_length or 0,
                          queue_s=_queue_seconds(request.headers.get("X-Request-Start"), metrics.clock()),
                          clock=RequestClock())
        metrics.request_started(route)
        setattr(g, _G_OBS, obs)

    def after(response: Response) -> Response:
        start()  # no-op normally; covers requests an earlier before_request hook answered
        obs: Observation | None = g.get(_G_OBS)
        if obs is not None:
            obs.responded(response.status_code, streamed=response.is_streamed,
                          content_length=None if response.is_streamed else response.content_length)
        return response

    def teardown(exc: BaseException | None) -> None:
        obs: Observation | None = g.pop(_G_OBS, None)
        if obs is not None:
            obs.torn_down(exc)

    app.before_request(start)
    app.after_request(after)
    app.teardown_request(teardown)


def _queue_seconds(header: str | None, now: float) -> float | None:
    """Router wait from ``X-Request-Start`` (Heroku: ms epoch; nginx: ``t=<s.ms>``), clamped."""
    if not header:
        return None
    raw = header.strip()
    if raw.startswith("t="):
        raw = raw[2:]
    try:
        value = float(raw)
    except ValueError:
        return None
    if value > 1e14:  # microseconds
        value /= 1e6
    elif value > 1e11:  # milliseconds
        value /= 1e3
    wait = now - value
    if wait < 0:
        return 0.0  # clock skew
    return wait if wait < 3600 else None
