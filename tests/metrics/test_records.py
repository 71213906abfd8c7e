"""Record normalisation and the fixed-size packed form."""

from __future__ import annotations

import math

from bridge.metrics.records import PACKED_SIZE, Record, outcome_for_status, pack, unpack


def full_record(**kw) -> Record:
    base = dict(ts_s=1700000000.25, route="/api/chat", method="POST", status=200, duration_s=1.5,
                outcome="ok", model="llama3", stream=True, ttfb_s=0.01, ttft_s=0.2, tpot_s=0.02,
                max_gap_s=0.3, chunks=12, bytes_out=3456, bytes_in=78, tokens_in=10, tokens_out=11,
                queue_s=0.004)
    base.update(kw)
    return Record(**base)


def test_roundtrip_is_exact():
    rec = full_record().normalised()
    data = pack(rec)
    assert len(data) == PACKED_SIZE
    assert unpack(data) == rec


def test_unknown_values_survive_as_none():
    rec = Record(ts_s=1.0, route="/x", method="GET", status=404, duration_s=0.001,
                 outcome="not_found").normalised()
    back = unpack(pack(rec))
    assert back == rec
    assert back.model is None and back.ttft_s is None and back.tokens_out is None


def test_strings_truncated_to_fixed_width_without_breaking_utf8():
    rec = full_record(route="/r" * 100, model="é" * 100, method="PROPFINDXX").normalised()
    assert len(rec.route.encode()) <= 64
    assert len(rec.model.encode()) <= 48 and set(rec.model) == {"é"}
    assert len(pack(rec)) == PACKED_SIZE
    assert unpack(pack(rec)) == rec


def test_normalise_clamps_odd_values():
    rec = full_record(outcome="weird", duration_s=-1, ttft_s=math.nan, tokens_out=-5, chunks=-1).normalised()
    assert rec.outcome == "error"
    assert rec.duration_s == 0.0
    assert rec.ttft_s is None and rec.tokens_out is None and rec.chunks == 0


def test_outcome_for_status():
    assert [outcome_for_status(s) for s in (200, 304, 400, 401, 404, 413, 501, 502, 504)] == [
        "ok", "ok", "bad_request", "unauthorized", "not_found", "bad_request", "not_supported",
        "error", "error"]
