"""bridge.metrics.scrape: the registry a scrape collects (per-process files merged under the fold
lock, short files skipped, host gauges added) and the exact cumulative totals for the summary.
The two-process merge end to end is in test_multiprocess.py."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from bridge.metrics.prom import PromMetrics
from bridge.metrics.records import Record
from bridge.metrics.scrape import FoldSafeCollector, cumulative_totals, prometheus_multiprocess, scrape_registry


def _counter_file(path, value: float) -> None:
    f = MmapedDict(str(path))
    f.write_value(mmap_key("bridge_x", "bridge_x_total", ["route"], ["/r"], "x"), value, 0.0)
    f.close()


def _x_total(registry: CollectorRegistry) -> float:
    return sum(s.value for f in registry.collect() if f.name == "bridge_x" for s in f.samples)


def test_tests_run_single_process():
    assert prometheus_multiprocess() is False


def test_fold_safe_collector_merges_files_and_skips_a_file_being_born(tmp_path):
    _counter_file(tmp_path / "counter_1.db", 2.0)
    _counter_file(tmp_path / "counter_2.db", 3.0)
    (tmp_path / "counter_3.db").write_bytes(b"")  # a worker being born: would fail prometheus' reader
    (tmp_path / "push.lock").write_text("1\n")  # not a *.db file: never read
    registry = CollectorRegistry()
    FoldSafeCollector(registry, path=str(tmp_path))
    assert _x_total(registry) == 5.0
    assert (tmp_path / "fold.lock").exists()  # read under the archive's shared lock


def test_scrape_registry_merges_the_directory_in_multiprocess_mode_and_adds_host_gauges(tmp_path):
    _counter_file(tmp_path / "counter_1.db", 4.0)
    own = CollectorRegistry()
    merged = scrape_registry(own, multiprocess=True, directory=str(tmp_path))
    assert merged is not own and _x_total(merged) == 4.0
    names = {f.name for f in merged.collect()}
    assert "bridge_host_memory_total_bytes" in names
    assert scrape_registry(own, multiprocess=False, directory=str(tmp_path)) is own
    assert _x_total(own) == 0.0


def test_cumulative_totals_from_families():
    prom = PromMetrics(version="t", multiproc_dir=None, backends=("a", "b"), keys=("k",))
    rec = Record(ts_s=1.0, route="/api/chat", method="POST", status=200, duration_s=0.5, stream=True,
                 ttft_s=0.05, tokens_in=7, tokens_out=4, model="m1")
    prom.observe(rec, backend="a", key="k")
    prom.observe(Record(ts_s=2.0, route="/api/chat", method="POST", status=504, duration_s=9.0, outcome="timeout"))
    prom.backend_attempt("a", "ok")
    prom.backend_state("b", 2)
    prom.backend_in_flight_add("b", 1)
    prom.backend_failover("b")
    prom.request_started("/api/chat")
    prom.stream_started()
    totals = cumulative_totals(prom.families(), prom.backend_names, prom.key_names)
    assert totals == prom.cumulative()
    assert totals["outcomes"] == {"ok": 1, "timeout": 1}
    assert totals["codes"] == {"200": 1, "504": 1}
    assert (totals["in_progress"], totals["active_streams"]) == (1, 1)
    a, b = totals["backends"]["a"], totals["backends"]["b"]
    assert (a["outcomes"], a["tokens_input"], a["tokens_output"]) == ({"ok": 1.0}, 7.0, 4.0)
    assert a["ttft_buckets"][0.06] == 1.0 and a["ttft_buckets"][math.inf] == 1.0 and a["ttft_buckets"][0.04] == 0.0
    assert (b["state"], b["in_flight"], b["failovers"]) == (2.0, 1.0, 1.0)
    assert totals["keys"] == {"k": {"requests": 1.0, "tokens_input": 7.0, "tokens_output": 4.0}}
    assert list(cumulative_totals([], ["z", "y"], [])["backends"]) == ["y", "z"]  # sorted, present from the start
