"""Every backend of one worker: a client and a model listing each, one catalogue, failover.

* :meth:`BackendPool.open`: one backend call for a model, sent to the backends that serve it in
  :class:`bridge.routing.Router` order. Before the first byte reaches the client, a connect error,
  a timeout before the answer, a 429 or a 5xx moves on to the next backend (within the request's
  one deadline; every backend but the last gets no same-backend retries, so failover is quick).
  Once a response is returned, it is never retried elsewhere.
* :meth:`fetch` / :meth:`cached` / :meth:`ids` / :meth:`entry`: the merged ``/v1/models`` body of
  all backends (a name served by several is listed once, the lowest priority first). A backend
  that does not answer keeps its last listing; only when no backend answers does listing fail.
* :meth:`readiness`: ready while every known model has at least one usable backend.

With one backend (no ``BACKENDS_FILE``) every path is what it was before: the same listing calls,
errors and retries. Circuit state and in-flight counts are per worker process.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Protocol

import requests

from .backend_models import BackendModels, ListingLookups
from .backends import Backend
from .config import Settings
from .errors import UpstreamConnectError, UpstreamError, UpstreamHTTPError, UpstreamTimeout
from .routing import OPEN, STATE_NAMES, Router
from .upstream import Deadline, UpstreamClient

__all__ = ["BackendPool", "NoBackend", "Report"]

log = logging.getLogger(__name__)

_READY_TIMEOUT_S = 2.0


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


class BackendPool(ListingLookups):
    """The backends of one worker (see the module docstring)."""

    def __init__(self, settings: Settings, *, on_ids: Callable[[list[str]], None] = lambda ids: None,
                 report: Report | None = None, clock: Callable[[], float] = time.monotonic,
                 clients: Sequence[UpstreamClient] | None = None) -> None:
        self.settings = settings
        # Sorted by priority (stable: file order inside a priority): the catalogue's order too.
        self.backends: tuple[Backend, ...] = tuple(sorted(settings.backend_list(), key=lambda b: b.priority))
        self.names = tuple(b.name for b in self.backends)
        secrets = tuple(b.api_key for b in self.backends if b.api_key)
        self.clients = list(clients) if clients is not None else [
            UpstreamClient(settings, backend=b, secrets=secrets) for b in self.backends]
        self._on_ids = on_ids
        self._report = report or _NoReport()
        self._listed: list[frozenset[str] | None] = [
            frozenset(b.models) if b.models is not None else None for b in self.backends]
        self.listings: list[BackendModels | None] = [
            None if b.models is not None else
            BackendModels(c, settings.models_cache_s, on_ids=self._noter(i), clock=clock)
            for i, (b, c) in enumerate(zip(self.backends, self.clients))]
        self.router = Router([b.priority for b in self.backends], [b.weight for b in self.backends],
                             threshold=settings.backend_failure_threshold, cooldown_s=settings.backend_cooldown_s,
                             clock=clock)
        self._serving: dict[str, tuple[int, ...]] = {}
        self._merged: tuple[tuple, dict] | None = None
        self._states = [-1] * len(self.backends)
        self._all = tuple(range(len(self.backends)))
        self.single = len(self.backends) == 1
        for i in self._all:
            self._publish_state(i)

    @property
    def upstream(self) -> UpstreamClient:
        """The first backend's client (streams are read and messages redacted with any client)."""
        return self.clients[0]

    # -- which backends serve a model ------------------------------------------------------------
    def _noter(self, index: int) -> Callable[[list[str]], None]:
        def noted(ids: list[str]) -> None:
            self._listed[index] = frozenset(ids)
            self._serving = {}  # one assignment: greenlets see the old or the new map
            self._on_ids([i for listed in self._listed if listed for i in listed])
        return noted

    def serving(self, model: str | None) -> tuple[int, ...]:
        """Indices of the backends that serve ``model`` (or may: never listed yet); all when none does."""
        if self.single or model is None:
            return self._all
        found = self._serving.get(model)
        if found is None:
            found = tuple(i for i, listed in enumerate(self._listed) if listed is None or model in listed)
            if not found:
                found = self._all  # the backends decide (a 404 from each)
            if len(self._serving) < 4096:  # model names come from clients: bounded
                self._serving[model] = found
        return found

    # -- calls -----------------------------------------------------------------------------------
    def open(self, method: str, path: str, *, json_body: dict | None = None,
             body_for: Callable[[str], dict] | None = None, model: str | None = None, stream: bool,
             deadline: Deadline, request_id: str | None = None,
             accept: Callable[[str], bool] | None = None) -> requests.Response:
        """One backend call with failover; the response carries ``bridge_backend`` (its name).

        ``body_for(name)`` builds the body per backend (default ``json_body``); ``accept(name)``
        leaves backends out (:class:`NoBackend` when none is left). Errors carry ``.backend``.
        """
        candidates = self.serving(model)
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
            resp.bridge_backend = name
            if stream:
                _on_close(resp, lambda: self._end(index))
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

    # -- the merged catalogue (what BackendModels was for one backend) -----------------------------
    def fetch(self, request_id: str | None = None, deadline: Deadline | None = None) -> dict:
        """Fresh merged ``/v1/models`` body; raises the first error when no backend answers."""
        if self.single and self.listings[0] is not None:
            return self.listings[0].fetch(request_id, deadline)
        bodies, errors = self._bodies(fresh=True, request_id=request_id, deadline=deadline)
        if len(errors) == sum(1 for listing in self.listings if listing is not None) and errors and all(
                listing is not None for listing in self.listings):
            raise errors[0]  # nobody answered: the first backend's error (502/504), not stale lists
        if not any(body is not None for body in bodies):
            raise UpstreamConnectError("no backend answered")
        return self._merge(bodies)

    def cached(self, request_id: str | None = None, deadline: Deadline | None = None) -> dict | None:
        """The merged body from each backend's cached listing (refreshed past its TTL); None when
        no backend can list."""
        if self.single and self.listings[0] is not None:
            return self.listings[0].cached(request_id, deadline)
        bodies, _ = self._bodies(fresh=False, request_id=request_id, deadline=deadline)
        if not any(body is not None for body in bodies):
            return None
        return self._merge(bodies)


    def _bodies(self, *, fresh: bool, request_id: str | None, deadline: Deadline | None,
                ) -> tuple[list[dict | None], list[UpstreamError]]:
        errors: list[UpstreamError] = []

        def one(index: int) -> dict | None:
            listing = self.listings[index]
            if listing is None:
                return _configured_body(self.backends[index])
            if not fresh:
                return listing.cached(request_id, deadline)
            if self.router.state(index) == OPEN:  # skipped while its breaker is open: what it listed last
                errors.append(UpstreamConnectError(f"backend {self.names[index]} is failing (circuit open)"))
                return listing.last
            try:
                return listing.fetch(request_id, deadline)
            except UpstreamError as exc:
                log.warning("backend could not list its models", extra={"backend": self.names[index],
                                                                         "outcome": exc.outcome})
                errors.append(exc)
                return listing.last

        slow = [i for i in self._all if self.listings[i] is not None and (fresh or not self.listings[i].fresh())]
        if len(slow) > 1:
            results = dict(zip(slow, _concurrently(one, slow)))
            return [results[i] if i in results else one(i) for i in self._all], errors
        return [one(i) for i in self._all], errors

    def _merge(self, bodies: list[dict | None]) -> dict:
        key = tuple(id(body) for body in bodies)
        merged = self._merged
        if merged is not None and merged[0] == key:
            return merged[1]
        data: list[dict] = []
        seen: set[str] = set()
        for body in bodies:
            for item in (body or {}).get("data") or ():
                if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"] not in seen:
                    seen.add(item["id"])
                    data.append(item)
        out = {"object": "list", "data": data}
        self._merged = (key, out)
        return out

    # -- readiness -------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str, list[dict]]:
        """(ready, reason, one row per backend). Ready while every known model has a usable backend."""
        deadline = Deadline.after(_READY_TIMEOUT_S)
        if self.single and self.listings[0] is not None:
            try:
                self.listings[0].fetch(deadline=deadline)
                ok, reason = True, "backend reachable" + (
                    " (built-in demo backend)" if self.settings.demo_backend else "")
            except UpstreamError as exc:
                ok, reason = False, f"backend not ready: {exc.message}"
            return ok, reason, self._rows({0} if ok else set())
        answered: set[int] = set()
        self._bodies_for_ready(deadline, answered)
        models: dict[str, list[int]] = {}
        for index, listed in enumerate(self._listed):
            for model in listed or ():
                models.setdefault(model, []).append(index)
        usable = {i for i in answered if self.router.state(i) != OPEN}
        missing = sorted(m for m, served_by in models.items() if not usable.intersection(served_by))
        if not models:
            ok, reason = False, "no backend lists any model"
        elif missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            ok, reason = False, f"no usable backend for {shown}"
        else:
            ok, reason = True, f"every model has a usable backend ({len(usable)} of {len(self.backends)} usable)"
        return ok, reason, self._rows(usable)

    def _bodies_for_ready(self, deadline: Deadline, answered: set[int]) -> None:
        def one(index: int) -> None:
            listing = self.listings[index]
            if listing is None:
                answered.add(index)
                return
            try:
                listing.fetch(deadline=deadline)
                answered.add(index)
            except UpstreamError:
                pass

        _concurrently(one, list(self._all))

    def _rows(self, usable: set[int]) -> list[dict]:
        self.publish_states()
        return [{"name": name, "state": STATE_NAMES[self.router.state(i)], "usable": i in usable,
                 "in_flight": self.router.in_flight[i],
                 "models": len(self._listed[i]) if self._listed[i] is not None else None}
                for i, name in enumerate(self.names)]


def _fails_over(exc: UpstreamError) -> bool:
    """Errors another backend may fix: unreachable, too slow to answer, overloaded, broken."""
    if isinstance(exc, UpstreamHTTPError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (UpstreamConnectError, UpstreamTimeout))


def _configured_body(backend: Backend) -> dict:
    return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": backend.name}
                                       for m in backend.models or ()]}


def _on_close(resp: requests.Response, release: Callable[[], None]) -> None:
    """Run ``release`` once when the streamed response is closed (or collected, should a body never
    be iterated and so never closed)."""
    done = []

    def once() -> None:
        if not done:
            done.append(True)
            release()

    close = resp.close

    def closing() -> None:
        try:
            close()
        finally:
            once()

    resp.close = closing
    weakref.finalize(resp, once)


def _concurrently(fn: Callable[[int], object], items: list[int]) -> list:
    """``fn`` over ``items`` in greenlets (one slow backend does not hold up the others)."""
    if len(items) < 2:
        return [fn(i) for i in items]
    try:
        from gevent.pool import Group
    except ImportError:  # pragma: no cover - gevent is a hard dependency of the deployment
        return [fn(i) for i in items]
    return Group().map(fn, items)
