"""Is the backend pool ready? Ready while every known model has at least one usable backend.

* :func:`verdict`: every backend asked for its model list at once (within a short deadline);
  usable are those that answered and whose breaker is not open. Not ready when a listed model has
  no usable backend, or when no backend lists any model. With one backend that lists its models
  (no ``BACKENDS_FILE``) ready means that it answers its listing, as before there were several.
* :func:`rows`: one row per backend for the readiness answer (breaker state, in-flight requests,
  how many models it lists).

Pure reading: the catalogue (:class:`bridge.backend_catalogue.BackendCatalogue`) and the breakers
(:class:`bridge.routing.Router`) are only asked, never changed. ``BackendPool.readiness`` runs both.
"""

from __future__ import annotations

from .backend_catalogue import BackendCatalogue
from .routing import OPEN, STATE_NAMES, Router
from .upstream import Deadline

__all__ = ["READY_TIMEOUT_S", "rows", "verdict"]

READY_TIMEOUT_S = 2.0
_SHOWN = 5  # models named in the reason; the rest are counted


def verdict(catalogue: BackendCatalogue, router: Router, *, demo: bool = False) -> tuple[bool, str, set[int]]:
    """(ready, reason, indices of the usable backends). ``demo``: the one backend is the built-in one."""
    errors = catalogue.probe(Deadline.after(READY_TIMEOUT_S))
    if catalogue.single_listing:
        error = errors[0]
        if error is not None:
            return False, f"backend not ready: {error.message}", set()
        return True, "backend reachable" + (" (built-in demo backend)" if demo else ""), {0}
    models = catalogue.served_by()
    usable = {i for i, error in enumerate(errors) if error is None and router.state(i) != OPEN}
    missing = sorted(m for m, served_by in models.items() if not usable.intersection(served_by))
    if not models:
        return False, "no backend lists any model", usable
    if missing:
        shown = ", ".join(missing[:_SHOWN]) + (f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else "")
        return False, f"no usable backend for {shown}", usable
    return True, f"every model has a usable backend ({len(usable)} of {len(errors)} usable)", usable


def rows(catalogue: BackendCatalogue, router: Router, usable: set[int]) -> list[dict]:
    """One row per backend: name, breaker state, usable, requests in flight, models listed (None: not yet)."""
    return [{"name": name, "state": STATE_NAMES[router.state(i)], "usable": i in usable,
             "in_flight": router.in_flight[i], "models": len(listed) if listed is not None else None}
            for i, (name, listed) in enumerate(zip(catalogue.names, catalogue.listed))]
