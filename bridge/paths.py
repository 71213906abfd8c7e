"""Path sets shared by the request guards and the metrics hooks: the one definition of each."""

from __future__ import annotations

__all__ = ["METRICS_PREFIXES", "PUBLIC_PATHS", "UNCOUNTED_PREFIXES"]

#: Open without an inbound key (the liveness probe and the root banner).
PUBLIC_PATHS = frozenset({"/", "/health"})

#: The metrics and dashboard routes: guarded by METRICS_TOKEN (when set) instead of the inbound keys,
#: and never counted in the request metrics.
METRICS_PREFIXES = ("/metrics", "/v1/metrics", "/dashboard")

#: Not counted in the request metrics: probes and scrapes are not traffic, they would crowd the
#: recent-request window.
UNCOUNTED_PREFIXES = METRICS_PREFIXES + ("/health", "/ready")
