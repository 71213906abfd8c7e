"""The ``/ready`` check: the backend pool's readiness, cached for a few seconds.

Orchestrators and load balancers probe ``/ready`` often; each check lists every backend's models
(short ``/v1/models`` calls, which also refresh the listings the routes use), so one result serves
all probes within :data:`READY_CACHE_S`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["READY_CACHE_S", "Readiness", "ReadinessSource", "cached_readiness"]

#: How long one readiness result is served before the backends are asked again.
READY_CACHE_S = 5.0

#: ``(ready, reason, extra)``; ``extra`` is merged into the ``/ready`` body (``{"backends": [...]}``).
Readiness = tuple[bool, str, dict]


class ReadinessSource(Protocol):
    """What the check asks: the backend pool (``BackendPool.readiness``)."""

    def readiness(self) -> tuple[bool, str, list[dict]]: ...


def cached_readiness(
    pool: ReadinessSource, *, ttl_s: float = READY_CACHE_S, clock: Callable[[], float] = time.monotonic
) -> Callable[[], Readiness]:
    """A ``ready()`` for the monitoring blueprint: ready while every model has a usable backend; the
    result lists each backend's state and is reused for ``ttl_s`` seconds."""
    state: dict = {"at": float("-inf"), "result": (False, "not checked", {})}

    def ready() -> Readiness:
        now = clock()
        if now - state["at"] < ttl_s:
            return state["result"]
        ok, reason, rows = pool.readiness()
        state["at"], state["result"] = now, (ok, reason, {"backends": rows})
        return state["result"]

    return ready
