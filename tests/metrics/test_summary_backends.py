"""The summary's ``backends`` and ``keys`` sections: exact counts from the Prometheus families of
one process (the same code reads the merged families of all workers)."""

from __future__ import annotations

from bridge.metrics import Metrics
from bridge.metrics.records import Record


def test_backends_and_keys_sections_count_exactly_and_only_configured_names():
    m = Metrics(window=100, version="t", multiproc_dir=None, backends=("a", "b"), keys=("alice", "default"))
    for outcome in ("ok", "ok", "http_5xx", "made-up"):
        m.backend_attempt("a", outcome)
    m.backend_attempt("zzz", "ok")  # not configured: never a label
    m.backend_failover("a")
    m.backend_state("a", 2)
    m.backend_in_flight("b", 1)
    rec = Record(ts_s=1.0, route="/api/chat", method="POST", status=200, duration_s=0.5, stream=True,
                 ttft_s=0.05, tokens_in=7, tokens_out=4, model="m1")
    m.observe(rec, backend="b", key="alice")
    m.observe(rec, backend="b", key="mallory")  # an unknown key name is not counted
    s = m.summary(endpoint=None, window_s=None, include_system=False)
    a, b = s["backends"]["a"], s["backends"]["b"]
    assert (a["state"], a["requests"], a["errors"], a["failovers"]) == ("open", 4, 2, 1)
    assert a["outcomes"] == {"error": 1, "http_5xx": 1, "ok": 2}
    assert (b["state"], b["requests"], b["in_flight"], b["tokens_in"], b["tokens_out"]) == ("closed", 0, 1, 14, 8)
    assert 0.04 <= b["ttft_p50_ms"] / 1000 <= 0.06
    assert s["keys"] == {"alice": {"requests": 1, "tokens_in": 7, "tokens_out": 4},
                         "default": {"requests": 0, "tokens_in": 0, "tokens_out": 0}}
    text = m.exposition()[0].decode()
    assert "zzz" not in text and "mallory" not in text and 'backend="a",outcome="error"' in text


def test_rows_from_raw_figures():
    from bridge.metrics.summary_backends import backend_row, key_row

    raw = {"outcomes": {"ok": 3.0, "timeout": 1.0, "http_5xx": 0.0}, "state": 1.0, "failovers": 2.0,
           "in_flight": -1.0, "tokens_input": 5.0, "tokens_output": 7.0,
           "ttft_buckets": {0.1: 0.0, 1.0: 4.0, float("inf"): 4.0}}
    assert backend_row(raw) == {"state": "half_open", "requests": 4, "errors": 1, "outcomes": {"ok": 3, "timeout": 1},
                                "failovers": 2, "in_flight": 0, "tokens_in": 5, "tokens_out": 7,
                                "ttft_p50_ms": 550.0}
    assert backend_row({})["state"] == "closed" and backend_row({})["ttft_p50_ms"] is None
    assert key_row({"requests": 2.0, "tokens_output": 9.0}) == {"requests": 2, "tokens_in": 0, "tokens_out": 9}
