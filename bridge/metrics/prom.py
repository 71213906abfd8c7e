"""Prometheus metric definitions, observation of a finished request, and the text exposition.

Names, labels and buckets follow ``reference/anchors.md`` section 2.6: ``bridge_`` prefix, base
units, ``_total`` counters, histograms with explicit buckets, bounded labels only (route template,
method, status code, the app's model label, an outcome from a closed set).

Multiprocess mode (gunicorn with several workers) is what ``prometheus_client`` chose at import
time from ``PROMETHEUS_MULTIPROC_DIR``. Then values live in per-process mmap files and every scrape
merges them with a fresh ``CollectorRegistry`` + ``MultiProcessCollector``. Otherwise each
:class:`PromMetrics` owns a private registry, which keeps tests isolated.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from ..translate.fallback import ADDED_PARAMS  # the closed set of the ``param`` label
from .archive import scrape_lock
from .host import include_host
from .records import OUTCOMES, Record
from .system import ProcessSnapshot

__all__ = [
    "CONTENT_TYPE_LATEST",
    "LONG_BUCKETS",
    "MAX_GAP_BUCKETS",
    "QUEUE_BUCKETS",
    "TPOT_BUCKETS",
    "TTFT_BUCKETS",
    "PromMetrics",
    "prometheus_multiprocess",
]

log = logging.getLogger(__name__)

#: Whole request, streaming included (OTel client-duration x2 series, extended both ways).
LONG_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                20.48, 40.96, 81.92, 163.84, 327.68)
#: Time to first token (OTel server TTFT buckets + vLLM's extension).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0)
#: Time per output token (OTel buckets + 5 ms).
TPOT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
#: Longest silence inside a stream; 30 and 55 s are Heroku's router windows.
MAX_GAP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 55.0, 90.0)
#: Router -> app wait, from X-Request-Start.
QUEUE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_NO_MODEL = "none"


def _param_dropped_counter(registry: CollectorRegistry) -> Counter:
    """``bridge_upstream_param_dropped_total{param}``: backend calls sent without a field the bridge
    adds itself, because the backend refused it; every ``param`` of the closed set starts at 0."""
    counter = Counter(
        "bridge_upstream_param_dropped_total",
        "Backend calls sent without a field the bridge adds itself (the backend refused it), by field.",
        ["param"], registry=registry)
    for param in ADDED_PARAMS:
        counter.labels(param)
    return counter


def prometheus_multiprocess() -> bool:
    """True when prometheus_client stores values in per-process files (decided at its import)."""
    return values.ValueClass is not values.MutexValue


class _FoldSafeCollector(MultiProcessCollector):
    """Reads the directory under the shared lock, so a dead worker being folded into the archive
    (bridge.metrics.archive) is counted exactly once and never half-deleted mid-scrape."""

    def collect(self):
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
            return list(self.merge(files, accumulate=True))


class PromMetrics:
    """The bridge's Prometheus metrics. One :meth:`observe` per finished request."""

    def __init__(self, *, version: str, multiproc_dir: str | None, backends: tuple[str, ...] = (),
                 keys: tuple[str, ...] = ()) -> None:
        self.multiprocess = prometheus_multiprocess()
        self.multiproc_dir = multiproc_dir
        self._children: dict[tuple, object] = {}
        if multiproc_dir and not self.multiprocess:
            log.warning(
                "metrics dir %s given but PROMETHEUS_MULTIPROC_DIR was not set before "
                "prometheus_client was imported: Prometheus figures are per worker",
                multiproc_dir,
            )
        self.version = version
        # ``*_created`` series double the output and do not exist in multiprocess mode; leave
        # them out everywhere so single- and multi-process expositions have the same shape.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        self.requests = Counter(
            "bridge_http_requests_total", "Inbound HTTP requests, counted when the response ends.",
            ["route", "method", "code"], registry=r)
        self.duration = Histogram(
            "bridge_http_request_duration_seconds",
            "Inbound request duration, streaming included (until the body closes).",
            ["route", "method"], buckets=LONG_BUCKETS, registry=r)
        self.in_progress = Gauge(
            "bridge_http_requests_in_progress", "Inbound requests being served (streams included).",
            ["route"], multiprocess_mode="livesum", registry=r)
        self.outcomes = Counter(
            "bridge_http_request_outcomes_total",
            "Inbound requests by how they ended (ok, client_disconnect, timeout, ...).",
            ["route", "outcome"], registry=r)
        self.queue = Histogram(
            "bridge_http_request_queue_seconds",
            "Router to app wait, from the X-Request-Start header.",
            buckets=QUEUE_BUCKETS, registry=r)
        self.upstream = Counter(
            "bridge_upstream_requests_total", "Requests forwarded to the backend, by outcome.",
            ["model", "outcome"], registry=r)
        self.ttft = Histogram(
            "bridge_time_to_first_token_seconds",
            "Request received to first content line written, per stream.",
            ["model"], buckets=TTFT_BUCKETS, registry=r)
        self.tpot = Histogram(
            "bridge_time_per_output_token_seconds",
            "(duration - TTFT) / (output tokens - 1), one observation per completed stream.",
            ["model"], buckets=TPOT_BUCKETS, registry=r)
        self.max_gap = Histogram(
            "bridge_stream_max_gap_seconds", "Longest silence between two chunks of a stream.",
            buckets=MAX_GAP_BUCKETS, registry=r)
        self.tokens = Counter(
            "bridge_tokens_total", "Tokens reported by the backend, by type (input/output).",
            ["model", "type"], registry=r)
        self.streams = Counter(
            "bridge_streams_total", "Streamed responses, counted when the body closes, by outcome.",
            ["route", "outcome"], registry=r)
        self.response_bytes = Counter(
            "bridge_response_bytes_total", "Response body bytes sent.", ["route"], registry=r)
        self.build_info = Gauge(
            "bridge_build_info", "Build information; the value is always 1.", ["version"],
            multiprocess_mode="mostrecent", registry=r)
        self.active_streams = Gauge(
            "bridge_active_streams", "Streams being sent by this worker.",
            multiprocess_mode="liveall", registry=r)
        self.rss = Gauge(
            "bridge_process_resident_memory_bytes", "Resident memory of this worker (psutil).",
            multiprocess_mode="liveall", registry=r)
        self.cpu = Gauge(
            "bridge_process_cpu_seconds",
            "User + system CPU time of this worker (psutil); cumulative, use rate().",
            multiprocess_mode="liveall", registry=r)
        self.fds = Gauge(
            "bridge_process_open_fds", "Open file descriptors of this worker (psutil).",
            multiprocess_mode="liveall", registry=r)
        self.start_time = Gauge(
            "bridge_process_start_time_seconds", "Start time of this worker, epoch seconds.",
            multiprocess_mode="liveall", registry=r)
        # Push mode (PUSHGATEWAY_URL, bridge/metrics/push.py): outcome in push.OUTCOMES.
        self.pushes = Counter(
            "bridge_pushes_total", "Pushes of the instance's metrics to the Pushgateway, by outcome.",
            ["outcome"], registry=r)
        self.param_dropped = _param_dropped_counter(r)
        self.build_info.labels(version).set(1)
        self._backend_metrics(r, backends, keys)

    def _backend_metrics(self, r: CollectorRegistry, backends: tuple[str, ...], keys: tuple[str, ...]) -> None:
        """Per backend (names from BACKENDS_FILE, or "default") and per inbound key name (from
        BRIDGE_API_KEYS): both closed configured sets; any other value is never a label."""
        self.backend_names = frozenset(backends)
        self.key_names = frozenset(keys)
        self.backend_requests = Counter(
            "bridge_backend_requests_total",
            "Calls sent to each backend (every attempt, failovers included), by outcome at the answer's start.",
            ["backend", "outcome"], registry=r)
        self.backend_ttft = Histogram(
            "bridge_backend_time_to_first_token_seconds",
            "Request received to first content line written, per stream, by the backend that answered.",
            ["backend"], buckets=TTFT_BUCKETS, registry=r)
        self.backend_tokens = Counter(
            "bridge_backend_tokens_total", "Tokens reported by each backend, by type (input/output).",
            ["backend", "type"], registry=r)
        self.backend_in_flight = Gauge(
            "bridge_backend_in_flight", "Calls to each backend in progress (streams until they close).",
            ["backend"], multiprocess_mode="livesum", registry=r)
        # The worst worker's breaker (each worker keeps its own): max over live workers.
        self.backend_circuit = Gauge(
            "bridge_backend_circuit_state",
            "Circuit breaker of each backend: 0 closed, 1 half-open, 2 open (the worst live worker's).",
            ["backend"], multiprocess_mode="livemax", registry=r)
        self.failovers = Counter(
            "bridge_upstream_failovers_total",
            "Calls moved on to another backend before the first byte, by the backend that failed.",
            ["backend"], registry=r)
        self.key_requests = Counter(
            "bridge_key_requests_total", "Requests per inbound key name (BRIDGE_API_KEYS name:key).",
            ["key"], registry=r)
        self.key_tokens = Counter(
            "bridge_key_tokens_total", "Tokens per inbound key name, by type (input/output).",
            ["key", "type"], registry=r)
        for name in backends:
            self._child(self.backend_requests, name, "ok")
            self._child(self.failovers, name)
            for kind in ("input", "output"):
                self._child(self.backend_tokens, name, kind)
        for name in keys:
            self._child(self.key_requests, name)
            for kind in ("input", "output"):
                self._child(self.key_tokens, name, kind)

    def observe_usage(self, rec: Record, backend: str | None, key: str | None) -> None:
        """The per-backend and per-key figures of one finished request (``rec`` normalised)."""
        child = self._child
        if backend in self.backend_names:
            if rec.tokens_in:
                child(self.backend_tokens, backend, "input").inc(rec.tokens_in)
            if rec.tokens_out:
                child(self.backend_tokens, backend, "output").inc(rec.tokens_out)
            if rec.stream and rec.ttft_s is not None:
                child(self.backend_ttft, backend).observe(rec.ttft_s)
        if key in self.key_names:
            child(self.key_requests, key).inc()
            if rec.tokens_in:
                child(self.key_tokens, key, "input").inc(rec.tokens_in)
            if rec.tokens_out:
                child(self.key_tokens, key, "output").inc(rec.tokens_out)

    def backend_attempt(self, backend: str, outcome: str) -> None:
        if backend in self.backend_names:
            self._child(self.backend_requests, backend, outcome if outcome in OUTCOMES else "error").inc()

    def backend_failover(self, backend: str) -> None:
        if backend in self.backend_names:
            self._child(self.failovers, backend).inc()

    def backend_state(self, backend: str, state: int) -> None:
        if backend in self.backend_names:
            self._child(self.backend_circuit, backend).set(state)

    def backend_in_flight_add(self, backend: str, delta: int) -> None:
        if backend in self.backend_names:
            self._child(self.backend_in_flight, backend).inc(delta)

    # -- writing ---------------------------------------------------------------------------

    def _child(self, metric, *labels: str):
        """The labelled child, cached: ``labels()`` validates and locks on every call (about 4 us),
        and label values are bounded, so the cache is too."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request_started(self, route: str) -> None:
        self._child(self.in_progress, route).inc()

    def request_finished(self, route: str) -> None:
        self._child(self.in_progress, route).dec()

    def stream_started(self) -> None:
        self.active_streams.inc()

    def stream_finished(self) -> None:
        self.active_streams.dec()

    def observe(self, rec: Record) -> None:
        """Every metric update for one finished request (a fixed, small number of updates)."""
        child = self._child
        route, method = rec.route, rec.method
        child(self.requests, route, method, str(rec.status)).inc()
        child(self.duration, route, method).observe(rec.duration_s)
        child(self.outcomes, route, rec.outcome).inc()
        if rec.bytes_out:
            child(self.response_bytes, route).inc(rec.bytes_out)
        if rec.queue_s is not None:
            self.queue.observe(rec.queue_s)
        model = rec.model or _NO_MODEL
        if rec.model is not None:
            child(self.upstream, model, rec.outcome).inc()
        if rec.tokens_in:
            child(self.tokens, model, "input").inc(rec.tokens_in)
        if rec.tokens_out:
            child(self.tokens, model, "output").inc(rec.tokens_out)
        if rec.stream:
            child(self.streams, route, rec.outcome).inc()
            if rec.ttft_s is not None:
                child(self.ttft, model).observe(rec.ttft_s)
            if rec.tpot_s is not None and rec.outcome == "ok":
                child(self.tpot, model).observe(rec.tpot_s)
            if rec.max_gap_s is not None:
                self.max_gap.observe(rec.max_gap_s)

    def set_process(self, snap: ProcessSnapshot) -> None:
        self.rss.set(snap.rss_bytes)
        self.cpu.set(snap.cpu_seconds)
        self.fds.set(snap.open_fds)
        self.start_time.set(snap.start_time_s)

    # -- reading ---------------------------------------------------------------------------

    def families(self) -> Iterable[Metric]:
        """All metric families, merged over every worker in multiprocess mode."""
        return self._scrape_registry().collect()

    def exposition(self) -> bytes:
        self.build_info.labels(self.version).set(1)  # survives a wipe of the dir after import
        return generate_latest(self._scrape_registry())

    def _scrape_registry(self) -> CollectorRegistry:
        if not self.multiprocess:
            return include_host(self.registry)  # bridge_host_* gauges, read at scrape time (host.py)
        registry = CollectorRegistry()
        _FoldSafeCollector(registry, path=self.multiproc_dir)
        return include_host(registry)

    def cumulative(self) -> dict:
        """Exact cumulative totals over all workers, for the JSON summary."""
        outcomes: dict[str, float] = {}
        codes: dict[str, float] = {}
        in_progress = active_streams = 0.0
        backends: dict[str, dict] = {name: {} for name in sorted(self.backend_names)}
        keys: dict[str, dict] = {name: {} for name in sorted(self.key_names)}
        for family in self.families():
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


def _usage_sample(family: Metric, backends: dict[str, dict], keys: dict[str, dict]) -> None:
    """Fold one per-backend / per-key family into raw figures (summary.py shapes them)."""
    for s in family.samples:
        name, labels = s.name, s.labels
        row = backends.get(labels.get("backend", "")) if "backend" in labels else keys.get(labels.get("key", ""))
        if row is None:
            continue
        if name == "bridge_backend_requests_total":
            outcomes = row.setdefault("outcomes", {})
            outcomes[labels["outcome"]] = outcomes.get(labels["outcome"], 0.0) + s.value
        elif name in ("bridge_backend_tokens_total", "bridge_key_tokens_total"):
            row[f"tokens_{labels['type']}"] = row.get(f"tokens_{labels['type']}", 0.0) + s.value
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
