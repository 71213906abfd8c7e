"""Reading the Prometheus figures back: what a scrape collects, and the exact totals the summary uses.

Multiprocess mode (gunicorn with several workers) is what ``prometheus_client`` chose at import
time from ``PROMETHEUS_MULTIPROC_DIR``. Then values live in per-process mmap files and every scrape
merges them with a fresh ``CollectorRegistry`` + :class:`FoldSafeCollector`. Otherwise the
process's own registry is read. Either way the ``bridge_host_*`` gauges are added (host.py).
:func:`cumulative_totals` folds the collected families into the raw figures ``summary.py`` shapes.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from typing import Literal, TypedDict

from prometheus_client import CollectorRegistry, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .archive import scrape_lock
from .host import include_host

__all__ = [
    "Cumulative",
    "FoldSafeCollector",
    "UsageFigures",
    "cumulative_totals",
    "prometheus_multiprocess",
    "scrape_registry",
]


class UsageFigures(TypedDict, total=False):
    """Raw figures of one backend or inbound key name, summed over every worker."""

    outcomes: dict[str, float]  # bridge_backend_requests_total by outcome
    tokens_input: float
    tokens_output: float
    in_flight: float
    state: float  # the worst live worker's circuit state
    failovers: float
    requests: float  # per key name
    ttft_buckets: dict[float, float]  # cumulative TTFT histogram buckets {upper bound: count}


class Cumulative(TypedDict, total=False):
    """Exact cumulative totals over all workers (:func:`cumulative_totals` fills every field)."""

    outcomes: dict[str, int]
    codes: dict[str, int]
    in_progress: int
    active_streams: int
    backends: dict[str, UsageFigures]
    keys: dict[str, UsageFigures]


_TOKEN_FIELDS: dict[str, Literal["tokens_input", "tokens_output"]] = {
    "input": "tokens_input", "output": "tokens_output"}


def prometheus_multiprocess() -> bool:
    """True when prometheus_client stores values in per-process files (decided at its import)."""
    return values.ValueClass is not values.MutexValue


class FoldSafeCollector(MultiProcessCollector):
    """Reads the directory under the shared lock, so a dead worker being folded into the archive
    (bridge.metrics.archive) is counted exactly once and never half-deleted mid-scrape."""

    def __init__(self, registry: CollectorRegistry | None, path: str | None = None) -> None:
        super().__init__(registry, path=path)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated

    def collect(self) -> list[Metric]:
        with scrape_lock(self._path):
            files = []
            for path in glob.glob(os.path.join(self._path, "*.db")):
                try:
                    # A worker being born (or killed while being born) has an empty file for an
                    # instant; prometheus-client's reader would fail the whole scrape on it.
                    if os.path.getsize(path) >= 8:
                        files.append(path)
                except OSError:
                    continue
            return list(self.merge(files, accumulate=True))  # type: ignore[no-untyped-call]  # unannotated upstream


def scrape_registry(registry: CollectorRegistry, *, multiprocess: bool, directory: str | None) -> CollectorRegistry:
    """What a scrape collects: ``registry`` itself, or in multiprocess mode a fresh registry merging
    every worker's files in ``directory``; with the ``bridge_host_*`` gauges, read at scrape time."""
    if not multiprocess:
        return include_host(registry)
    merged = CollectorRegistry()
    FoldSafeCollector(merged, path=directory)
    return include_host(merged)


def cumulative_totals(families: Iterable[Metric], backend_names: Iterable[str],
                      key_names: Iterable[str]) -> Cumulative:
    """Exact cumulative totals over the collected ``families``, for the JSON summary."""
    outcomes: dict[str, float] = {}
    codes: dict[str, float] = {}
    in_progress = active_streams = 0.0
    backends: dict[str, UsageFigures] = {name: {} for name in sorted(backend_names)}
    keys: dict[str, UsageFigures] = {name: {} for name in sorted(key_names)}
    for family in families:
        if family.name == "bridge_http_request_outcomes":
            for s in family.samples:
                if s.name.endswith("_total"):
                    key = s.labels.get("outcome", "error")
                    outcomes[key] = outcomes.get(key, 0.0) + s.value
        elif family.name == "bridge_http_requests":
            for s in family.samples:
                if s.name.endswith("_total"):
                    key = s.labels.get("code", "0")
                    codes[key] = codes.get(key, 0.0) + s.value
        elif family.name == "bridge_http_requests_in_progress":
            in_progress += sum(s.value for s in family.samples)
        elif family.name == "bridge_active_streams":
            active_streams += sum(s.value for s in family.samples)
        elif family.name.startswith(("bridge_backend_", "bridge_upstream_failovers", "bridge_key_")):
            _usage_sample(family, backends, keys)
    return {
        "outcomes": {k: int(v) for k, v in outcomes.items() if v},
        "codes": {k: int(v) for k, v in codes.items() if v},
        "in_progress": max(0, int(in_progress)),
        "active_streams": max(0, int(active_streams)),
        "backends": backends,
        "keys": keys,
    }


def _usage_sample(family: Metric, backends: dict[str, UsageFigures], keys: dict[str, UsageFigures]) -> None:
    """Fold one per-backend / per-key family into raw figures (summary_backends.py shapes them)."""
    for s in family.samples:
        name, labels = s.name, s.labels
        row = backends.get(labels.get("backend", "")) if "backend" in labels else keys.get(labels.get("key", ""))
        if row is None:
            continue
        if name == "bridge_backend_requests_total":
            outcomes = row.setdefault("outcomes", {})
            outcomes[labels["outcome"]] = outcomes.get(labels["outcome"], 0.0) + s.value
        elif name in ("bridge_backend_tokens_total", "bridge_key_tokens_total"):
            field = _TOKEN_FIELDS.get(labels["type"])  # "input" / "output": the only values ever written
            if field is not None:
                row[field] = row.get(field, 0.0) + s.value
        elif name == "bridge_backend_in_flight":
            row["in_flight"] = row.get("in_flight", 0.0) + s.value
        elif name == "bridge_backend_circuit_state":
            row["state"] = max(row.get("state", 0.0), s.value)
        elif name == "bridge_upstream_failovers_total":
            row["failovers"] = row.get("failovers", 0.0) + s.value
        elif name == "bridge_key_requests_total":
            row["requests"] = row.get("requests", 0.0) + s.value
        elif name == "bridge_backend_time_to_first_token_seconds_bucket":
            buckets = row.setdefault("ttft_buckets", {})
            le = float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + s.value
