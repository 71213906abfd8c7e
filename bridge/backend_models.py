"""One backend's model list (``GET /v1/models``), cached per worker for a short time.

The catalogue of all backends (``backend_catalogue.py``) keeps one per backend that lists its
models and shares the look-ups (:class:`ListingLookups`). Routes use them to answer "unknown
model" with a real 404 before calling the backend, and to list models. A failed refresh never
blocks traffic: callers get ``None`` and let the backend decide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .errors import UpstreamError
from .translate.catalog import backend_ids
from .upstream import Deadline, UpstreamClient

__all__ = ["BackendModels", "ListingLookups"]

log = logging.getLogger(__name__)

_LIST_TIMEOUT_S = 10.0


class ListingLookups:
    """Look-ups over a ``/v1/models`` body: shared by one backend's listing and the merged one of
    all backends (``backend_catalogue.BackendCatalogue``), which both provide ``cached()``."""

    def cached(self, request_id: str | None = None, deadline: Deadline | None = None) -> dict | None:
        raise NotImplementedError

    def ids(self, request_id: str | None = None, deadline: Deadline | None = None) -> list[str] | None:
        body = self.cached(request_id, deadline)
        return None if body is None else backend_ids(body)

    def entry(self, backend_id: str, request_id: str | None = None) -> dict | None:
        """The ``data[]`` entry for one backend id, when listed."""
        body = self.cached(request_id) or {}
        for item in body.get("data") or ():
            if isinstance(item, dict) and item.get("id") == backend_id:
                return item
        return None


class BackendModels(ListingLookups):
    """Cached ``/v1/models`` body with a time-to-live."""

    def __init__(self, upstream: UpstreamClient, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._upstream = upstream
        self._ttl_s = ttl_s
        self._clock = clock
        self._body: dict | None = None
        self._fetched_at = float("-inf")

    def fetch(self, request_id: str | None = None, deadline: Deadline | None = None) -> dict:
        """Fresh ``/v1/models`` body (raises UpstreamError); refreshes the cache.

        Bounded by the request's own deadline when it is sooner than the listing timeout.
        """
        bound = Deadline.after(_LIST_TIMEOUT_S)
        if deadline is not None and deadline.at_s < bound.at_s:
            bound = deadline
        body = self._upstream.json("GET", "/models", deadline=bound, request_id=request_id)
        backend_ids(body)  # a body that is not a model list raises here, before it is cached
        self._body, self._fetched_at = body, self._clock()
        return body

    def cached(self, request_id: str | None = None, deadline: Deadline | None = None) -> dict | None:
        """The cached body, refreshed when older than the TTL; None when the backend can't list."""
        if self._body is not None and self._clock() - self._fetched_at < self._ttl_s:
            return self._body
        try:
            return self.fetch(request_id, deadline)
        except UpstreamError as exc:
            log.warning("could not list backend models", extra={"outcome": exc.outcome})
            # Don't hammer a failing backend: keep serving the stale list (or None) for one TTL.
            self._fetched_at = self._clock()
            return self._body

    @property
    def last(self) -> dict | None:
        """The last body listed (however old), or None."""
        return self._body

    def fresh(self) -> bool:
        """True while the cached body (or the last failure) is younger than the TTL."""
        return self._clock() - self._fetched_at < self._ttl_s

