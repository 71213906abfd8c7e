"""Micro-benchmarks: the per-request cost of recording (run with --benchmark-only to see them)."""

from __future__ import annotations

import pytest

from bridge.metrics import Metrics
from bridge.metrics.collector import Collector
from bridge.metrics.records import Record

REC = Record(ts_s=1.0, route="/api/chat", method="POST", status=200, duration_s=1.2, model="m1",
             stream=True, ttfb_s=0.01, ttft_s=0.2, tpot_s=0.02, max_gap_s=0.3, chunks=50,
             bytes_out=5000, bytes_in=300, tokens_in=20, tokens_out=50)


def test_bench_metrics_observe(benchmark, tmp_path):
    metrics = Metrics(window=1000, version="b", multiproc_dir=str(tmp_path))
    benchmark(metrics.observe, REC)
    assert 1 <= len(metrics.collector.local()) <= 1000  # a ring: never more than the window


def test_bench_collector_append(benchmark, tmp_path):
    collector = Collector(1000, str(tmp_path))
    rec = REC.normalised()
    benchmark(collector.append, rec)
    assert 1 <= len(collector.local()) <= 1000


def test_bench_summary_full_window(benchmark, tmp_path):
    metrics = Metrics(window=2000, version="b", multiproc_dir=str(tmp_path))
    for _ in range(2000):
        metrics.observe(REC)
    s = benchmark(metrics.summary, endpoint=None, window_s=None, include_system=False)
    assert s["period"]["window_records"] == 2000


OTHER_PID = 3_999_201  # a second "worker" writing into the same directory (above pid_max: looks dead)


def _full(window: int, directory: str, pid: int | None = None) -> Collector:
    collector = Collector(window, directory) if pid is None else Collector(window, directory, pid=lambda: pid)
    rec = REC.normalised()
    for _ in range(window):
        collector.append(rec)
    return collector


@pytest.mark.parametrize("window", [2_000, 20_000])
def test_bench_collector_append_window(benchmark, tmp_path, window):
    """One append into a full ring (the steady state of a busy worker)."""
    collector = _full(window, str(tmp_path))
    benchmark(collector.append, REC.normalised())
    assert len(collector.local()) == window
    collector.close()


@pytest.mark.parametrize("window", [2_000, 20_000])
def test_bench_collector_merged(benchmark, tmp_path, window):
    """merged() over two full windows: this worker's own and one other worker's ring file."""
    this = _full(window, str(tmp_path))
    other = _full(window, str(tmp_path), pid=OTHER_PID)
    records = benchmark(this.merged)
    assert len(records) == 2 * window
    this.close()
    other.close()
