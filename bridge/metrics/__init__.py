"""Metrics: one record per finished request feeds Prometheus (cumulative) and a recent window.

:class:`Metrics` is the facade the app creates once per worker. Routes never touch it directly:
they note what they know on the request's observation (:mod:`bridge.metrics.observation`, reached
through :func:`bridge.metrics.instrument.observation`), which hands the finished record here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..translate.fallback import ADDED_PARAMS
from .collector import Collector
from .prom import CONTENT_TYPE_LATEST, PromMetrics
from .records import Record
from .summary import build_summary
from .system import host_snapshot, process_snapshot

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "Record"]

log = logging.getLogger(__name__)

#: Each worker refreshes its process gauges from the request path at most this often, so the
#: per-worker figures of workers that do not answer the scrape stay fresh without a thread.
PROCESS_REFRESH_S = 10.0


class Metrics:
    """The per-worker metrics facade: Prometheus metrics + the shared recent window."""

    def __init__(
        self,
        *,
        window: int,
        version: str,
        multiproc_dir: str | None,
        clock: Callable[[], float] = time.time,
        model_labels: Callable[[str], str] = lambda m: m,
        enabled: bool = True,
        backends: tuple[str, ...] = (),
        keys: tuple[str, ...] = (),
    ) -> None:
        self.version = version
        self.clock = clock
        self.model_labels = model_labels
        self.multiproc_dir = multiproc_dir
        self.started_s = clock()
        # Disabled (METRICS_ENABLED=false): requests still get ids and access lines, but nothing
        # is counted or kept; the metrics routes say so. Benchmarks compare the two.
        self.enabled = enabled
        self.prom = PromMetrics(version=version, multiproc_dir=multiproc_dir if enabled else None,
                                backends=backends, keys=tuple(dict.fromkeys(keys)))
        self._before_scrape: list[Callable[[], None]] = []
        self.collector = Collector(window, multiproc_dir if enabled else None)
        self._next_process_refresh = 0.0

    # -- writing ---------------------------------------------------------------------------

    def request_started(self, route: str) -> None:
        """A counted request began (the in-progress gauge)."""
        if self.enabled:
            self._safely(self.prom.request_started, route)

    def stream_started(self) -> None:
        """A streamed body began (the open-streams gauge)."""
        if self.enabled:
            self._safely(self.prom.stream_started)

    def finished(self, record: Record, *, backend: str | None, key: str | None, stream_started: bool) -> None:
        """A counted request is over: its gauges come down and its record is accounted, in one
        batch of metric writes."""
        self._account(record, backend, key, open_gauges=(record.route, stream_started))

    def observe(self, record: Record, *, backend: str | None = None, key: str | None = None) -> None:
        """Account one finished request (``backend`` that answered it, inbound ``key`` name)."""
        self._account(record, backend, key, open_gauges=None)

    def _account(self, record: Record, backend: str | None, key: str | None,
                 open_gauges: tuple[str, bool] | None) -> None:
        """Never raises: metrics must not break a response."""
        if not self.enabled:
            return
        written = False
        try:
            label = None
            if record.model is not None:
                try:
                    label = self.model_labels(record.model)
                except Exception:  # a broken mapping must not lose the record
                    label = "other"
            rec = record.normalised(model=label)
            self.prom.observe(rec, backend=backend, key=key, open_gauges=open_gauges)  # all or nothing
            written = True
            self.collector.append(rec)
            now = time.monotonic()
            if now >= self._next_process_refresh:
                self._next_process_refresh = now + PROCESS_REFRESH_S
                self.refresh_process()
        except Exception:
            log.exception("metrics: failed to record a request")
            if open_gauges is not None and not written:  # never leave a finished request in progress
                self._safely(self.prom.gauges_down, *open_gauges)

    def param_dropped(self, param: str) -> None:
        """Count a backend call sent without a field the bridge added (issue 18; bridge/routes/params.py)."""
        if self.enabled and param in ADDED_PARAMS:
            self._safely(self.prom.param_dropped_inc, param)

    # -- backends (bridge/backend_pool.py reports here; names from a closed configured set) ----------

    def backend_attempt(self, backend: str, outcome: str) -> None:
        if self.enabled:
            self._safely(self.prom.backend_attempt, backend, outcome)

    def backend_failover(self, backend: str) -> None:
        if self.enabled:
            self._safely(self.prom.backend_failover, backend)

    def backend_state(self, backend: str, state: int) -> None:
        if self.enabled:
            self._safely(self.prom.backend_state, backend, state)

    def backend_in_flight(self, backend: str, delta: int) -> None:
        if self.enabled:
            self._safely(self.prom.backend_in_flight_add, backend, delta)

    def before_scrape(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` before each exposition and summary (e.g. refresh the circuit gauges)."""
        self._before_scrape.append(hook)

    def _scraping(self) -> None:
        for hook in self._before_scrape:
            self._safely(hook)

    @staticmethod
    def _safely(fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # pragma: no cover - defensive: metrics must never break a call
            log.exception("metrics: update failed")

    def refresh_process(self) -> dict[str, Any]:
        """Read this worker's process figures now (psutil) and publish them."""
        snap = process_snapshot()
        self.prom.set_process(snap)
        self.collector.write_snapshot(snap.rss_bytes, snap.cpu_seconds, snap.open_fds)
        return snap.as_dict()

    # -- reading ---------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition over all workers, and its content type."""
        self.refresh_process()
        self._next_process_refresh = time.monotonic() + PROCESS_REFRESH_S
        self._scraping()
        return self.prom.exposition(), CONTENT_TYPE_LATEST

    def summary(self, *, endpoint: str | None, window_s: float | None, include_system: bool) -> dict[str, Any]:
        """The JSON summary over all workers (see :mod:`bridge.metrics.summary`)."""
        system = self.system() if include_system else None
        self._scraping()
        return build_summary(
            self.collector.merged(),
            now=self.clock(),
            cumulative=self.prom.cumulative(),
            endpoint=endpoint or None,
            window_s=window_s,
            system=system,
            version=self.version,
        )

    def system(self) -> dict[str, Any]:
        this = self.refresh_process()
        rings = self.collector.rings()
        live = [r for r in rings if r.alive]
        return {
            "process": this,
            "host": host_snapshot().as_dict(),  # the machine's figures, sampled at most once a second
            "workers": max(1, len(live)) if self.collector.directory else 1,
            "worker_processes": [
                {
                    "pid": r.pid,
                    "rss_bytes": r.rss_bytes,
                    "cpu_seconds": round(r.cpu_seconds, 3),
                    "open_fds": r.open_fds,
                    "records_written": r.written,
                    "snapshot_age_s": round(max(0.0, time.time() - r.snapshot_ts), 3) if r.snapshot_ts else None,
                }
                for r in sorted(live, key=lambda r: r.pid)
            ],
            "window_size": self.collector.window,
            "multiprocess": self.prom.multiprocess,
        }
