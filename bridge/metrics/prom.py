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
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any, TypeVar, cast

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.metrics import Histogram, MetricWrapperBase
from prometheus_client.metrics_core import Metric

from . import mmap_value
from .families import LONG_BUCKETS, MAX_GAP_BUCKETS, QUEUE_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS, MetricFamilies
from .mmap_value import Value, add_all
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

# A series' values: (the value, or a histogram's sum; its bucket bounds; its bucket values).
_Targets = tuple[Value, tuple[float, ...], tuple[Value, ...]]


class PromMetrics(MetricFamilies):
    """The bridge's Prometheus metrics. One :meth:`observe` per finished request."""

    def __init__(self, *, version: str, multiproc_dir: str | None, backends: tuple[str, ...] = (),
                 keys: tuple[str, ...] = ()) -> None:
        # Before the first metric is built: every value then takes batched writes (mmap_value.py).
        mmap_value.install()
        self.multiprocess = prometheus_multiprocess()
        self.multiproc_dir = multiproc_dir
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
        self._values: dict[tuple[MetricWrapperBase, tuple[str, ...]], _Targets] = {}
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

    def stream_started(self) -> None:
        self.active_streams.inc()

    def gauges_down(self, route: str, streamed: bool) -> None:
        """What :meth:`observe` does to the in-progress gauges, alone (when a record could not be
        accounted)."""
        self._child(self.in_progress, route).dec()
        if streamed:
            self.active_streams.dec()

    def observe(self, rec: Record, *, backend: str | None = None, key: str | None = None,
                open_gauges: tuple[str, bool] | None = None) -> None:
        """Every metric update for one finished request (``rec`` normalised; ``backend`` that
        answered it and inbound ``key`` name, when known), written as one batch: one lock and one
        fork check in multiprocess mode (``mmap_value.add_all``). ``open_gauges`` (route, whether
        a stream was counted open) brings the in-progress gauges down in the same batch."""
        batch = _Batch(self)
        route, method = rec.route, rec.method
        if open_gauges is not None:
            batch.inc(self.in_progress, -1, open_gauges[0])
            if open_gauges[1]:
                batch.inc(self.active_streams, -1)
        batch.inc(self.requests, 1, route, method, str(rec.status))
        batch.observe(self.duration, rec.duration_s, route, method)
        batch.inc(self.outcomes, 1, route, rec.outcome)
        if rec.bytes_out:
            batch.inc(self.response_bytes, rec.bytes_out, route)
        if rec.queue_s is not None:
            batch.observe(self.queue, rec.queue_s)
        model = rec.model or _NO_MODEL
        if rec.model is not None:
            batch.inc(self.upstream, 1, model, rec.outcome)
        if rec.tokens_in:
            batch.inc(self.tokens, rec.tokens_in, model, "input")
        if rec.tokens_out:
            batch.inc(self.tokens, rec.tokens_out, model, "output")
        if rec.stream:
            batch.inc(self.streams, 1, route, rec.outcome)
            if rec.ttft_s is not None:
                batch.observe(self.ttft, rec.ttft_s, model)
            if rec.tpot_s is not None and rec.outcome == "ok":
                batch.observe(self.tpot, rec.tpot_s, model)
            if rec.max_gap_s is not None:
                batch.observe(self.max_gap, rec.max_gap_s)
        if backend in self.backend_names:
            if rec.tokens_in:
                batch.inc(self.backend_tokens, rec.tokens_in, backend, "input")
            if rec.tokens_out:
                batch.inc(self.backend_tokens, rec.tokens_out, backend, "output")
            if rec.stream and rec.ttft_s is not None:
                batch.observe(self.backend_ttft, rec.ttft_s, backend)
        if key in self.key_names:
            batch.inc(self.key_requests, 1, key)
            if rec.tokens_in:
                batch.inc(self.key_tokens, rec.tokens_in, key, "input")
            if rec.tokens_out:
                batch.inc(self.key_tokens, rec.tokens_out, key, "output")
        add_all(batch.updates)

    def _targets(self, metric: MetricWrapperBase, labels: tuple[str, ...]) -> _Targets:
        """The value objects behind one series, cached like the children (bounded the same way)."""
        found = self._values.get((metric, labels))
        if found is None:
            series = self._child(metric, *labels) if labels else metric
            # prometheus_client keeps a series' values in these attributes (pinned version; the
            # exactness tests in tests/metrics/test_prom.py fail if that ever changes).
            if isinstance(series, Histogram):
                found = (series._sum, tuple(series._upper_bounds), tuple(series._buckets))
            else:
                found = (cast(Any, series)._value, (), ())
            self._values[(metric, labels)] = found
        return found

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


class _Batch:
    """One request's metric updates, gathered so they are written together."""

    __slots__ = ("targets", "updates")

    def __init__(self, prom: PromMetrics) -> None:
        self.targets = prom._targets
        self.updates: list[tuple[Value, float]] = []

    def inc(self, metric: MetricWrapperBase, amount: float, *labels: str) -> None:
        self.updates.append((self.targets(metric, labels)[0], amount))

    def observe(self, metric: MetricWrapperBase, amount: float, *labels: str) -> None:
        total, bounds, buckets = self.targets(metric, labels)
        self.updates.append((total, amount))
        # The first bucket whose bound is >= amount (stored per bucket, not cumulative, as
        # prometheus_client does in multiprocess mode); NaN lands in none, as there.
        i = bisect_left(bounds, amount)
        if i < len(bounds) and amount <= bounds[i]:
            self.updates.append((buckets[i], 1.0))
