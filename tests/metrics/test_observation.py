"""Observation without Flask: what is noted becomes exactly one record, durations from one clock."""

from __future__ import annotations

import time

from bridge.clock import RequestClock
from bridge.errors import UpstreamTimeout
from bridge.metrics import Metrics
from bridge.metrics.observation import Observation


def metrics() -> Metrics:
    return Metrics(window=10, version="t", multiproc_dir=None)


def test_noted_fields_become_the_record():
    m = metrics()
    obs = Observation(m, route="/api/chat", method="POST", request_id="r1", bytes_in=12)
    obs.note_model("m1")
    obs.note_tokens(5, 3)
    obs.note_backend("default")
    obs.responded(200, streamed=False, content_length=40)
    obs.torn_down(None)
    (rec,) = m.collector.local()
    assert (rec.route, rec.model, rec.tokens_in, rec.tokens_out, rec.bytes_in, rec.bytes_out, rec.outcome) == (
        "/api/chat", "m1", 5, 3, 12, 40, "ok")
    obs.torn_down(None)  # never twice
    assert len(m.collector.local()) == 1


def test_stream_times_come_from_the_request_clock():
    m = metrics()
    clock = RequestClock(started_ns=time.monotonic_ns() - 50_000_000)  # received 50 ms ago
    obs = Observation(m, route="/api/chat", method="POST", clock=clock)

    def body():
        obs.first_token()
        yield b"a"
        yield b"b"

    wrapped = obs.stream_wrap(body())
    obs.responded(200, streamed=True, content_length=None)
    obs.torn_down(None)  # deferred: the body records
    assert m.collector.local() == []
    assert list(wrapped) == [b"a", b"b"]
    (rec,) = m.collector.local()
    assert rec.stream and rec.chunks == 2 and rec.bytes_out == 2
    assert rec.ttft_s == clock.ttft_s and 0.05 <= rec.ttft_s <= rec.duration_s
    assert 0.05 <= rec.ttfb_s <= rec.duration_s


def test_noted_outcome_wins_over_the_status():
    m = metrics()
    obs = Observation(m, route="/api/chat", method="POST")
    wrapped = obs.stream_wrap(iter([b"x"]))
    obs.note_outcome(UpstreamTimeout.outcome)
    obs.responded(200, streamed=True, content_length=None)
    list(wrapped)
    assert m.collector.local()[0].outcome == "timeout"


def test_a_detached_observation_records_nothing():
    obs = Observation(None)
    obs.note_model("x")
    assert list(obs.stream_wrap([b"a"])) == [b"a"]
    obs.torn_down(None)
