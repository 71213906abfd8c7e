"""Summary math on known records: sections, filters, window_s, cumulative totals (percentiles: test_stats.py)."""

from __future__ import annotations

import json

import pytest

from bridge.metrics.records import Record
from bridge.metrics.summary import build_summary

NOW = 10_000.0


def r(ts, route="/api/chat", dur=0.1, outcome="ok", status=200, **kw) -> Record:
    return Record(ts_s=ts, route=route, method=kw.pop("method", "POST"), status=status, duration_s=dur,
                  outcome=outcome, **kw)


def test_performance_and_endpoints():
    recs = [r(NOW - 100 + i, dur=(i + 1) / 1000) for i in range(10)]  # 1..10 ms on /api/chat
    recs += [r(NOW - 5, route="/api/tags", method="GET", dur=0.5, status=502, outcome="upstream_error")]
    s = build_summary(recs, now=NOW)
    perf = s["performance"]
    assert perf["count"] == 11
    assert perf["min_ms"] == 1.0 and perf["max_ms"] == 500.0
    assert perf["avg_ms"] == pytest.approx((55 + 500) / 11, abs=1e-3)
    assert perf["p50_ms"] == 6.0
    chat = s["endpoints"]["/api/chat"]
    assert chat["count"] == 10 and chat["errors"] == 0
    assert chat["p50_ms"] == 5.5 and chat["p95_ms"] == 9.55 and chat["p99_ms"] == 9.91
    tags = s["endpoints"]["/api/tags"]
    assert tags["errors"] == 1 and tags["error_rate"] == 1.0
    # without cumulative counts the window stands in for them
    assert (s["total_requests"], s["successful_requests"], s["failed_requests"]) == (11, 10, 1)
    assert s["success_rate"] == pytest.approx(10 / 11, abs=1e-6)
    assert s["outcomes"] == {"ok": 10, "upstream_error": 1}


def test_filters_endpoint_substring_and_window():
    recs = [r(NOW - 500, route="/api/chat"), r(NOW - 50, route="/api/chat"),
            r(NOW - 40, route="/api/generate"), r(NOW - 10, route="/v1/chat/completions")]
    s = build_summary(recs, now=NOW, endpoint="CHAT", window_s=60)
    assert s["period"]["window_records"] == 2
    assert set(s["endpoints"]) == {"/api/chat", "/v1/chat/completions"}
    assert s["filters"] == {"endpoint": "CHAT", "window_s": 60}
    assert s["filtered_requests"] == 2
    assert build_summary(recs, now=NOW, window_s=45)["period"]["window_records"] == 2


def test_cumulative_counts_come_from_counters_not_window():
    cumulative = {"outcomes": {"ok": 900, "client_disconnect": 50, "timeout": 30, "not_found": 20},
                  "codes": {"200": 950, "404": 20, "504": 30}, "in_progress": 3}
    s = build_summary([r(NOW - 1)], now=NOW, cumulative=cumulative)
    assert s["total_requests"] == 1000
    assert s["successful_requests"] == 900
    assert s["cancelled_requests"] == 50
    assert s["failed_requests"] == 50
    assert s["success_rate"] == pytest.approx(900 / 950, abs=1e-6)
    assert s["active_requests"] == 3
    assert s["status_codes"] == {"200": 950, "404": 20, "504": 30}


def test_streaming_and_models():
    recs = [
        r(NOW - 3, stream=True, model="m1", ttft_s=0.2, tpot_s=0.05, tokens_in=10, tokens_out=21,
          ttfb_s=0.01, max_gap_s=0.4, chunks=22, bytes_out=2000),
        r(NOW - 2, stream=True, model="m1", ttft_s=0.4, tpot_s=0.1, tokens_in=5, tokens_out=11,
          outcome="client_disconnect", max_gap_s=1.5, chunks=5, bytes_out=500),
        r(NOW - 1, stream=True, model="m2", ttft_s=None, outcome="timeout", max_gap_s=None),
        r(NOW - 1, stream=False, model="m2", dur=2.0, tokens_in=4, tokens_out=40),
    ]
    s = build_summary(recs, now=NOW)
    st = s["streaming"]
    assert st["total_streams"] == 3
    assert st["ttft_p50_ms"] == 300.0
    assert st["tokens_per_s_p50"] == 15.0  # median of 20/s and 10/s
    assert st["cancelled"] == 1 and st["timed_out"] == 1
    assert st["outcomes"] == {"client_disconnect": 1, "ok": 1, "timeout": 1}
    assert st["max_gap_ms"] == 1500.0 and st["total_chunks"] == 27 and st["bytes_out"] == 2500
    m1 = s["models"]["m1"]
    assert (m1["requests"], m1["tokens_in"], m1["tokens_out"]) == (2, 15, 32)
    assert m1["ttft_p50_ms"] == 300.0 and m1["tokens_per_s"] == 15.0
    assert s["models"]["m2"]["tokens_per_s"] == 20.0
    # a cancelled stream is neither a success nor a failure
    assert (s["successful_requests"], s["failed_requests"], s["cancelled_requests"]) == (2, 1, 1)
    assert s["window"]["server_errors"] == 1


def test_recent_is_last_20_newest_first_and_has_no_prompt():
    recs = [r(NOW - 100 + i, tokens_out=i) for i in range(30)]
    recent = build_summary(recs, now=NOW)["recent"]
    assert len(recent) == 20
    assert [x["tokens"]["out"] for x in recent] == list(range(29, 9, -1))
    assert set(recent[0]) == {"ts", "route", "method", "model", "status", "duration_ms", "stream",
                              "ttft_ms", "tokens", "outcome"}


def test_empty_window_is_well_formed_and_json():
    s = build_summary([], now=NOW, endpoint="nothing", window_s=0.001,
                      cumulative={"outcomes": {}, "codes": {}, "in_progress": 0})
    assert s["total_requests"] == 0 and s["success_rate"] == 1.0
    assert s["performance"]["p50_ms"] is None and s["endpoints"] == {}
    assert s["period"]["window_records"] == 0 and s["period"]["start"] is None
    for key in ("total_requests", "successful_requests", "failed_requests", "success_rate", "performance",
                "endpoints", "streaming", "period", "models", "outcomes", "recent"):
        assert key in s
    json.dumps(s, allow_nan=False)
