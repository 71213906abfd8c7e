"""Calls to the backends of one worker: a client each, failover, breakers, what the metrics see.

* :meth:`BackendPool.open`: one backend call for a model, sent to the backends that serve it in
  :class:`bridge.routing.Router` order. Before the first byte reaches the client, a connect error,
  a timeout before the answer, a 429 or a 5xx moves on to the next backend (within the request's
  one deadline; every backend but the last gets no same-backend retries, so failover is quick).
  Once a response is returned, it is never retried elsewhere. Every attempt, failover, breaker
  state and in-flight count is reported (:class:`Report`).
* The pool owns its parts and puts them together: the merged catalogue
  (:class:`bridge.backend_catalogue.BackendCatalogue`, which also says who serves a model) and the
  readiness check (:mod:`bridge.backend_readiness`); :meth:`fetch` / :meth:`cached` / :meth:`ids` /
  :meth:`entry` / :meth:`readiness` pass the breakers' state on to them.

With one backend (no ``BACKENDS_FILE``) every path is what it was before: the same listing calls,
errors and retries. Circuit state and in-flight counts are per worker process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from . import backend_readiness
from .backend_catalogue import BackendCatalogue
from .backends import Backend
from .config import Settings
from .errors import UpstreamConnectError, UpstreamError, UpstreamHTTPError, UpstreamTimeout
from .http_wire import HTTPWire
from .routing import OPEN, Router
from .transport import Answer, RequestsTransport, Transport
from .upstream import Deadline, UpstreamClient

__all__ = ["BackendPool", "NoBackend", "Report"]

log = logging.getLogger(__name__)


class NoBackend(UpstreamConnectError):
    """No configured backend may take this request (e.g. every one was excluded by the caller)."""


class Report(Protocol):
    """Where the pool reports to the metrics (``bridge.metrics.Metrics`` implements it)."""

    def backend_attempt(self, backend: str, outcome: str) -> None: ...
    def backend_failover(self, backend: str) -> None: ...
    def backend_state(self, backend: str, state: int) -> None: ...
    def backend_in_flight(self, backend: str, delta: int) -> None: ...


class _NoReport:
    def backend_attempt(self, backend: str, outcome: str) -> None:
        pass

    def backend_failover(self, backend: str) -> None:
        pass

    def backend_state(self, backend: str, state: int) -> None:
        pass

    def backend_in_flight(self, backend: str, delta: int) -> None:
        pass


class BackendPool:
    """The backends of one worker (see the module docstring)."""

    def __init__(self, settings: Settings, *, on_ids: Callable[[list[str]], None] = lambda ids: None,
                 report: Report | None = None, clock: Callable[[], float] = time.monotonic,
                 clients: Sequence[UpstreamClient] | None = None,
                 transport_for: Callable[[Backend], Transport] | None = None) -> None:
        """``transport_for(backend)``: the wire for each backend's client (default: pooled HTTP;
        the app factory plugs the demo backend in here)."""
        self.settings = settings
        # Sorted by priority (stable: file order inside a priority): the catalogue's order too.
        self.backends: tuple[Backend, ...] = tuple(sorted(settings.backend_list(), key=lambda b: b.priority))
        self.names = tuple(b.name for b in self.backends)
        secrets = tuple(b.api_key for b in self.backends if b.api_key)
        wire = transport_for or (lambda backend: default_transport(settings, backend))
        self.clients = list(clients) if clients is not None else [
            UpstreamClient(settings, backend=b, secrets=secrets, transport=wire(b)) for b in self.backends]
        self._report = report or _NoReport()
        #: Who lists which models, and the merged ``/v1/models`` body.
        self.catalogue = BackendCatalogue(self.backends, self.clients, ttl_s=settings.models_cache_s,
                                          on_ids=on_ids, clock=clock)
        self.router = Router([b.priority for b in self.backends], [b.weight for b in self.backends],
                             threshold=settings.backend_failure_threshold, cooldown_s=settings.backend_cooldown_s,
                             clock=clock)
        self._states = [-1] * len(self.backends)
        self._all = tuple(range(len(self.backends)))
        for i in self._all:
            self._publish_state(i)

    def serving(self, model: str | None) -> tuple[int, ...]:
        """Indices of the backends that serve ``model`` (or may: never listed yet); all when none does."""
        return self.catalogue.serving(model)

    # -- calls -----------------------------------------------------------------------------------
    def open(self, method: str, path: str, *, json_body: dict | None = None,
             body_for: Callable[[str], dict] | None = None, model: str | None = None, stream: bool,
             deadline: Deadline, request_id: str | None = None,
             accept: Callable[[str], bool] | None = None) -> Answer:
        """One backend call with failover; the answer's ``backend`` names who sent it.

        ``body_for(name)`` builds the body per backend (default ``json_body``); ``accept(name)``
        leaves backends out (:class:`NoBackend` when none is left). Errors carry ``.backend``.
        """
        candidates = self.catalogue.serving(model)
        if accept is not None:
            candidates = tuple(i for i in candidates if accept(self.names[i]))
            if not candidates:
                raise NoBackend("no backend takes this request")
        order = candidates if len(candidates) == 1 else self.router.order(candidates)
        last = len(order) - 1
        for n, index in enumerate(order):
            name = self.names[index]
            client = self.clients[index]
            body = body_for(name) if body_for is not None else json_body
            bound = deadline
            if client.request_timeout_s < self.settings.request_timeout_s:  # a per-backend REQUEST_TIMEOUT
                own = Deadline.after(client.request_timeout_s)
                bound = own if own.at_s < deadline.at_s else deadline
            self._begin(index)
            try:
                resp = client.open(method, path, json_body=body, stream=stream, deadline=bound,
                                   request_id=request_id, max_retries=None if n == last else 0)
            except UpstreamError as exc:
                self._end(index)
                exc.backend = name
                moves_on = _fails_over(exc)
                if isinstance(exc, UpstreamHTTPError) and not moves_on:
                    self.router.success(index)  # it answered: alive, whatever it thought of the request
                else:
                    self.router.failure(index)  # unreachable, too slow, overloaded or broken
                self._attempted(index, exc.outcome)
                if not moves_on or n == last or deadline.remaining_s() <= 0:
                    raise
                self._report.backend_failover(name)
                log.warning("backend failed before answering; trying the next one",
                            extra={"backend": name, "outcome": exc.outcome, "next": self.names[order[n + 1]]})
                continue
            except BaseException:  # the caller went away (greenlet killed) or a bug: no verdict
                self._end(index)
                self.router.abandon(index)
                raise
            self.router.success(index)
            self._attempted(index, "ok")
            if stream:
                resp.when_done(partial(self._end, index))
            else:
                self._end(index)  # the body is read already
            return resp
        raise AssertionError("unreachable: the last backend's error is raised")  # pragma: no cover

    def _begin(self, index: int) -> None:
        self.router.begin(index)
        self._report.backend_in_flight(self.names[index], 1)
        self._publish_state(index)

    def _end(self, index: int) -> None:
        self.router.end(index)
        self._report.backend_in_flight(self.names[index], -1)

    def _attempted(self, index: int, outcome: str) -> None:
        self._report.backend_attempt(self.names[index], outcome)
        self._publish_state(index)

    def _publish_state(self, index: int) -> None:
        state = self.router.state(index)
        if state != self._states[index]:
            self._states[index] = state
            self._report.backend_state(self.names[index], state)

    def publish_states(self) -> None:
        """Refresh the circuit gauges (an open breaker turns half-open with time alone)."""
        for index in self._all:
            self._publish_state(index)

    # -- the merged catalogue and readiness (bridge/backend_catalogue.py, bridge/backend_readiness.py) --
    def fetch(self, request_id: str | None = None, deadline: Deadline | None = None) -> dict:
        """Fresh merged ``/v1/models`` body (backends whose breaker is open are not asked); raises
        the first error when no backend answers."""
        skip = [i for i in self._all if self.router.state(i) == OPEN]
        return self.catalogue.fetch(request_id, deadline, skip=skip)

    def cached(self, request_id: str | None = None, deadline: Deadline | None = None) -> dict | None:
        """The merged body from each backend's cached listing; None when no backend can list."""
        return self.catalogue.cached(request_id, deadline)

    def ids(self, request_id: str | None = None, deadline: Deadline | None = None) -> list[str] | None:
        """The ids of the merged catalogue (cached); None when no backend can list."""
        return self.catalogue.ids(request_id, deadline)

    def entry(self, backend_id: str, request_id: str | None = None) -> dict | None:
        """The merged catalogue's ``data[]`` entry for one backend id, when listed."""
        return self.catalogue.entry(backend_id, request_id)

    def readiness(self) -> tuple[bool, str, list[dict]]:
        """(ready, reason, one row per backend). Ready while every known model has a usable backend."""
        ok, reason, usable = backend_readiness.verdict(self.catalogue, self.router, demo=self.settings.demo_backend)
        self.publish_states()
        return ok, reason, backend_readiness.rows(self.catalogue, self.router, usable)


def _fails_over(exc: UpstreamError) -> bool:
    """Errors another backend may fix: unreachable, too slow to answer, overloaded, broken."""
    if isinstance(exc, UpstreamHTTPError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (UpstreamConnectError, UpstreamTimeout))


def default_transport(settings: Settings, backend: Backend) -> Transport:
    """The bridge's own HTTP/1.1 client for plain ``http://`` backends (``BACKEND_HTTP_CLIENT=wire``,
    the default: a quarter of the CPU per call), ``requests`` for TLS and when configured."""
    if settings.http_client == "wire" and backend.base_url.startswith("http://"):
        return HTTPWire(settings)
    return RequestsTransport(settings)
