"""The bridge's Prometheus metrics object: one update per event, reads delegated to the scrape side.

:class:`PromMetrics` owns the families (definitions in ``families.py``) and writes them: one
:meth:`PromMetrics.observe` per finished request, plus the gauges of requests, streams, backends
and this process. Reading (the text exposition, the merged families, the summary's cumulative
totals) goes through ``scrape.py``. In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before
``prometheus_client`` was imported) values live in per-process files and every scrape merges them;
otherwise each :class:`PromMetrics` owns a private registry, which keeps tests isolated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TypeVar, cast

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from .families import LONG_BUCKETS, MAX_GAP_BUCKETS, QUEUE_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS, MetricFamilies
from .records import OUTCOMES, Record
from .scrape import Cumulative, cumulative_totals, prometheus_multiprocess, scrape_registry
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

_NO_MODEL = "none"

_M = TypeVar("_M", bound=MetricWrapperBase)


class PromMetrics(MetricFamilies):
    """The bridge's Prometheus metrics. One :meth:`observe` per finished request."""

    def __init__(self, *, version: str, multiproc_dir: str | None, backends: tuple[str, ...] = (),
                 keys: tuple[str, ...] = ()) -> None:
        self.multiprocess = prometheus_multiprocess()
        self.multiproc_dir = multiproc_dir
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
        if multiproc_dir and not self.multiprocess:
            log.warning(
                "metrics dir %s given but PROMETHEUS_MULTIPROC_DIR was not set before "
                "prometheus_client was imported: Prometheus figures are per worker",
                multiproc_dir,
            )
        self.version = version
        # ``*_created`` series double the output and do not exist in multiprocess mode; leave
        # them out everywhere so single- and multi-process expositions have the same shape.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
        self.registry = CollectorRegistry(auto_describe=True)
        super().__init__(self.registry, version=version, backends=backends, keys=keys)
        # Every configured backend and key name is exposed from 0.
        for name in backends:
            self._child(self.backend_requests, name, "ok")
            self._child(self.failovers, name)
            for kind in ("input", "output"):
                self._child(self.backend_tokens, name, kind)
        for name in keys:
            self._child(self.key_requests, name)
            for kind in ("input", "output"):
                self._child(self.key_tokens, name, kind)

    # -- writing ---------------------------------------------------------------------------

    def _child(self, metric: _M, *labels: str) -> _M:
        """The labelled child, cached: ``labels()`` validates and locks on every call (about 4 us),
        and label values are bounded, so the cache is too."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return cast(_M, child)

    def param_dropped_inc(self, param: str) -> None:
        """Count one backend call sent without ``param``, a field the bridge adds itself."""
        self._child(self.param_dropped, param).inc()

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

    # -- reading (scrape.py) ---------------------------------------------------------------

    def families(self) -> Iterable[Metric]:
        """All metric families, merged over every worker in multiprocess mode."""
        return self._scrape_registry().collect()

    def exposition(self) -> bytes:
        self.build_info.labels(self.version).set(1)  # survives a wipe of the dir after import
        return generate_latest(self._scrape_registry())

    def _scrape_registry(self) -> CollectorRegistry:
        return scrape_registry(self.registry, multiprocess=self.multiprocess, directory=self.multiproc_dir)

    def cumulative(self) -> Cumulative:
        """Exact cumulative totals over all workers, for the JSON summary."""
        return cumulative_totals(self.families(), self.backend_names, self.key_names)
