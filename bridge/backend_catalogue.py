"""The model catalogue of all backends: who lists what, and the merged ``/v1/models`` body.

* :meth:`BackendCatalogue.serving`: which backends serve a model (a backend that has not listed
  yet may; a model nobody lists goes to every backend, which then decide).
* :meth:`fetch` / :meth:`cached` / :meth:`ids` / :meth:`entry`: the merged ``/v1/models`` body of
  all backends (a name served by several is listed once, the lowest priority first). A backend
  that does not answer keeps its last listing; only when no backend answers does listing fail.
* :meth:`probe`: every backend asked for its list at once (what readiness needs to know).

Each backend either has configured ``models`` (never asked) or its own cached listing
(:class:`bridge.backend_models.BackendModels`). With one backend that lists its models (no
``BACKENDS_FILE``) every call is that backend's listing, as it was before there were several.
The catalogue knows nothing of breakers: the caller says which backends to leave alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence

from gevent.pool import Group

from .backend_models import BackendModels, ListingLookups
from .backends import Backend
from .errors import UpstreamConnectError, UpstreamError
from .translate.catalog import backend_ids
from .upstream import Deadline, UpstreamClient

__all__ = ["BackendCatalogue"]

log = logging.getLogger(__name__)

_MAX_REMEMBERED = 4096  # model names come from clients: the ``serving`` memo is bounded


class BackendCatalogue(ListingLookups):
    """The listings of ``backends`` (in priority order), each read through its ``clients`` entry."""

    def __init__(self, backends: Sequence[Backend], clients: Sequence[UpstreamClient], *, ttl_s: float,
                 on_ids: Callable[[list[str]], None] = lambda ids: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``on_ids(ids)``: every listed id, each time a backend lists its models."""
        self.names = tuple(b.name for b in backends)
        self._backends = tuple(backends)
        self._on_ids = on_ids
        #: What each backend serves (None: not listed yet), read from its newest listing.
        self.listed: list[frozenset[str] | None] = [
            frozenset(b.models) if b.models is not None else None for b in backends]
        self._listings: list[BackendModels | None] = [
            None if b.models is not None else BackendModels(c, ttl_s, clock=clock) for b, c in zip(backends, clients)]
        self._noted: list[dict | None] = [None] * len(self._listings)  # the body ``listed`` was read from
        self._serving: dict[str, tuple[int, ...]] = {}
        self._merged: tuple[tuple[int, ...], dict] | None = None
        self._all = tuple(range(len(self.names)))
        self._only = self._listings[0] if len(self._listings) == 1 else None
        #: One backend that lists its models: every answer is its own (the single-backend bridge).
        self.single_listing = self._only is not None

    # -- each backend's listing ------------------------------------------------------------------
    def _fetch(self, index: int, listing: BackendModels, request_id: str | None, deadline: Deadline | None) -> dict:
        body = listing.fetch(request_id, deadline)
        self._note(index, body)
        return body

    def _cached(self, index: int, listing: BackendModels, request_id: str | None,
                deadline: Deadline | None) -> dict | None:
        body = listing.cached(request_id, deadline)
        self._note(index, body)
        return body

    def _note(self, index: int, body: dict | None) -> None:
        """A listing answered: when it is a new body, what the backend serves is read from it."""
        if body is None or body is self._noted[index]:
            return
        self._noted[index] = body
        self.listed[index] = frozenset(backend_ids(body))
        self._serving = {}  # one assignment: greenlets see the old or the new map
        self._on_ids([i for listed in self.listed if listed for i in listed])

    # -- which backends serve a model ------------------------------------------------------------
    def serving(self, model: str | None) -> tuple[int, ...]:
        """Indices of the backends that serve ``model`` (or may: never listed yet); all when none does."""
        if len(self._all) == 1 or model is None:
            return self._all
        found = self._serving.get(model)
        if found is None:
            found = tuple(i for i, listed in enumerate(self.listed) if listed is None or model in listed)
            if not found:
                found = self._all  # the backends decide (a 404 from each)
            if len(self._serving) < _MAX_REMEMBERED:
                self._serving[model] = found
        return found

    def served_by(self) -> dict[str, list[int]]:
        """Every listed model with the backends that list it (priority order)."""
        models: dict[str, list[int]] = {}
        for index, listed in enumerate(self.listed):
            for model in listed or ():
                models.setdefault(model, []).append(index)
        return models

    # -- the merged body -------------------------------------------------------------------------
    def fetch(self, request_id: str | None = None, deadline: Deadline | None = None, *,
              skip: Collection[int] = ()) -> dict:
        """Fresh merged ``/v1/models`` body; raises the first error when no backend answers.

        Backends in ``skip`` (their breaker is open) are not asked: their last listing stands.
        """
        if self._only is not None:
            return self._fetch(0, self._only, request_id, deadline)
        bodies, errors = self._bodies(fresh=True, skip=skip, request_id=request_id, deadline=deadline)
        if errors and len(errors) == len(self._listings) and all(lst is not None for lst in self._listings):
            raise errors[0]  # nobody answered: the first backend's error (502/504), not stale lists
        if not any(body is not None for body in bodies):
            raise UpstreamConnectError("no backend answered")
        return self._merge(bodies)

    def cached(self, request_id: str | None = None, deadline: Deadline | None = None) -> dict | None:
        """The merged body from each backend's cached listing (refreshed past its TTL); None when
        no backend can list."""
        if self._only is not None:
            return self._cached(0, self._only, request_id, deadline)
        bodies, _ = self._bodies(fresh=False, skip=(), request_id=request_id, deadline=deadline)
        if not any(body is not None for body in bodies):
            return None
        return self._merge(bodies)

    def _bodies(self, *, fresh: bool, skip: Collection[int], request_id: str | None, deadline: Deadline | None,
                ) -> tuple[list[dict | None], list[UpstreamError]]:
        errors: list[UpstreamError] = []

        def one(index: int) -> dict | None:
            listing = self._listings[index]
            if listing is None:
                return _configured_body(self._backends[index])
            if not fresh:
                return self._cached(index, listing, request_id, deadline)
            if index in skip:  # its breaker is open: what it listed last
                errors.append(UpstreamConnectError(f"backend {self.names[index]} is failing (circuit open)"))
                return listing.last
            try:
                return self._fetch(index, listing, request_id, deadline)
            except UpstreamError as exc:
                log.warning("backend could not list its models", extra={"backend": self.names[index],
                                                                         "outcome": exc.outcome})
                errors.append(exc)
                return listing.last

        slow = [i for i, listing in enumerate(self._listings)
                if listing is not None and (fresh or not listing.fresh())]
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

    # -- all backends asked at once ----------------------------------------------------------------
    def probe(self, deadline: Deadline) -> list[UpstreamError | None]:
        """Each backend's listing fetched now (concurrently): None when it answered (or has
        configured models), else its error."""
        def one(index: int) -> UpstreamError | None:
            listing = self._listings[index]
            if listing is None:
                return None
            try:
                self._fetch(index, listing, None, deadline)
            except UpstreamError as exc:
                return exc
            return None

        return _concurrently(one, list(self._all))


def _configured_body(backend: Backend) -> dict:
    return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": backend.name}
                                       for m in backend.models or ()]}


def _concurrently(fn: Callable[[int], object], items: list[int]) -> list:
    """``fn`` over ``items`` in greenlets (one slow backend does not hold up the others)."""
    if len(items) < 2:
        return [fn(i) for i in items]
    return Group().map(fn, items)
