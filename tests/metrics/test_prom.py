"""PromMetrics: what one observation writes, buckets, isolation; parses and passes promtool.

The family set itself (names, types, labels) is in test_families.py."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import Metrics
from bridge.metrics.prom import LONG_BUCKETS, MAX_GAP_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS
from bridge.metrics.records import Record

PROMTOOL = shutil.which("promtool") or next((p for p in ("/usr/bin/promtool",) if os.path.exists(p)), None)


def sample_metrics() -> Metrics:
    m = Metrics(window=100, version="1.2.3", multiproc_dir=None,
                model_labels=lambda name: name if name in ("m1", "m2") else "other")
    m.observe(Record(ts_s=1.0, route="/api/chat", method="POST", status=200, duration_s=3.0, model="m1",
                     stream=True, ttfb_s=0.05, ttft_s=0.5, tpot_s=0.02, max_gap_s=0.7, chunks=10,
                     bytes_out=1234, bytes_in=99, tokens_in=12, tokens_out=101, queue_s=0.003))
    m.observe(Record(ts_s=2.0, route="/api/chat", method="POST", status=200, duration_s=1.0, model="m1",
                     stream=True, ttft_s=0.3, outcome="client_disconnect", tokens_out=5))
    m.observe(Record(ts_s=3.0, route="/api/generate", method="POST", status=504, duration_s=60.0,
                     model="some/user-model\"x", outcome="timeout"))
    m.observe(Record(ts_s=4.0, route="unmatched", method="GET", status=404, duration_s=0.001,
                     outcome="not_found"))
    return m


def families(m: Metrics) -> dict:
    body, content_type = m.exposition()
    assert content_type.startswith("text/plain")
    assert body.endswith(b"\n")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def value(fams, family, sample, **labels) -> float:
    for s in fams[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((family, sample, labels))


def test_values_and_buckets():
    fams = families(sample_metrics())
    assert value(fams, "bridge_http_requests", "bridge_http_requests_total",
                 route="/api/chat", method="POST", code="200") == 2
    assert value(fams, "bridge_http_request_outcomes", "bridge_http_request_outcomes_total",
                 route="/api/chat", outcome="client_disconnect") == 1
    assert value(fams, "bridge_upstream_requests", "bridge_upstream_requests_total",
                 model="other", outcome="timeout") == 1  # the raw user string never becomes a label
    assert value(fams, "bridge_tokens", "bridge_tokens_total", model="m1", type="output") == 106
    assert value(fams, "bridge_tokens", "bridge_tokens_total", model="m1", type="input") == 12
    assert value(fams, "bridge_streams", "bridge_streams_total", route="/api/chat", outcome="ok") == 1
    assert value(fams, "bridge_build_info", "bridge_build_info", version="1.2.3") == 1
    assert value(fams, "bridge_response_bytes", "bridge_response_bytes_total", route="/api/chat") == 1234
    assert value(fams, "bridge_process_resident_memory_bytes", "bridge_process_resident_memory_bytes") > 0
    # TPOT only for completed streams; TTFT for every stream that produced a token
    assert value(fams, "bridge_time_per_output_token_seconds", "bridge_time_per_output_token_seconds_count",
                 model="m1") == 1
    assert value(fams, "bridge_time_to_first_token_seconds", "bridge_time_to_first_token_seconds_count",
                 model="m1") == 2

    def bounds(family, **labels):
        return [float(s.labels["le"]) for s in fams[family].samples
                if s.name.endswith("_bucket") and all(s.labels.get(k) == v for k, v in labels.items())]

    inf = float("inf")
    assert bounds("bridge_http_request_duration_seconds", route="/api/chat") == [*LONG_BUCKETS, inf]
    assert bounds("bridge_time_to_first_token_seconds", model="m1") == [*TTFT_BUCKETS, inf]
    assert bounds("bridge_time_per_output_token_seconds", model="m1") == [*TPOT_BUCKETS, inf]
    assert bounds("bridge_stream_max_gap_seconds") == [*MAX_GAP_BUCKETS, inf]
    assert value(fams, "bridge_http_request_duration_seconds", "bridge_http_request_duration_seconds_bucket",
                 route="/api/generate", le="81.92") == 1


def test_metrics_instances_are_isolated():
    a = sample_metrics()
    b = Metrics(window=10, version="x", multiproc_dir=None)
    assert "bridge_http_requests" not in {n for n, f in families(b).items() if f.samples}
    assert a.summary(endpoint=None, window_s=None, include_system=False)["total_requests"] == 4
    assert b.summary(endpoint=None, window_s=None, include_system=False)["total_requests"] == 0


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
def test_promtool_check_metrics():
    body, _ = sample_metrics().exposition()
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_param_dropped_inc_counts_the_child():
    from bridge.metrics.prom import PromMetrics

    prom = PromMetrics(version="t", multiproc_dir=None)
    prom.param_dropped_inc("stream_options")
    prom.param_dropped_inc("stream_options")
    assert prom.param_dropped.labels("stream_options")._value.get() == 2.0
    assert prom._child(prom.param_dropped, "stream_options") is prom.param_dropped.labels("stream_options")


def gauges(m: Metrics, route: str) -> tuple[float, float]:
    fams = families(m)
    return (value(fams, "bridge_http_requests_in_progress", "bridge_http_requests_in_progress", route=route),
            value(fams, "bridge_active_streams", "bridge_active_streams"))


def test_finished_brings_the_gauges_down_with_the_record():
    m = Metrics(window=10, version="x", multiproc_dir=None)
    m.request_started("/api/chat")
    m.stream_started()
    assert gauges(m, "/api/chat") == (1, 1)
    m.finished(Record(ts_s=1.0, route="/api/chat", method="POST", status=200, duration_s=0.1, stream=True),
               backend=None, key=None, stream_started=True)
    assert gauges(m, "/api/chat") == (0, 0)
    assert value(families(m), "bridge_streams", "bridge_streams_total", route="/api/chat", outcome="ok") == 1


def test_a_record_that_cannot_be_accounted_still_brings_the_gauges_down(monkeypatch):
    m = Metrics(window=10, version="x", multiproc_dir=None)
    m.request_started("/api/chat")
    m.stream_started()

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(m.prom, "observe", broken)
    m.finished(Record(ts_s=1.0, route="/api/chat", method="POST", status=200, duration_s=0.1, stream=True),
               backend=None, key=None, stream_started=True)  # never raises
    assert gauges(m, "/api/chat") == (0, 0)
