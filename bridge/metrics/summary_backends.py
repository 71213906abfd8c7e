"""The JSON summary's ``backends`` and ``keys`` sections, shaped from the raw cumulative figures.

Exact counts over all workers, read from the Prometheus families (``scrape.cumulative_totals``);
each backend's TTFT p50 is interpolated inside its histogram bucket, as Prometheus'
``histogram_quantile`` does. Only configured backend and key names ever appear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .stats import bucket_quantile, ms

if TYPE_CHECKING:
    from .scrape import UsageFigures

__all__ = ["CIRCUIT_STATES", "backend_row", "key_row"]

#: bridge_backend_circuit_state values (bridge/routing.py).
CIRCUIT_STATES = {0: "closed", 1: "half_open", 2: "open"}


def backend_row(raw: UsageFigures) -> dict[str, object]:
    """One backend over all workers, from its raw Prometheus figures."""
    outcomes = {k: int(v) for k, v in sorted(raw.get("outcomes", {}).items()) if v}
    requests = sum(outcomes.values())
    return {
        "state": CIRCUIT_STATES.get(int(raw.get("state", 0)), "closed"),
        "requests": requests,
        "errors": requests - outcomes.get("ok", 0),
        "outcomes": outcomes,
        "failovers": int(raw.get("failovers", 0)),
        "in_flight": max(0, int(raw.get("in_flight", 0))),
        "tokens_in": int(raw.get("tokens_input", 0)),
        "tokens_out": int(raw.get("tokens_output", 0)),
        "ttft_p50_ms": ms(bucket_quantile(raw.get("ttft_buckets", {}), 0.5)),
    }


def key_row(raw: UsageFigures) -> dict[str, int]:
    """One inbound key name over all workers."""
    return {"requests": int(raw.get("requests", 0)), "tokens_in": int(raw.get("tokens_input", 0)),
            "tokens_out": int(raw.get("tokens_output", 0))}
