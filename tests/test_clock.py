"""The request clock: one set of marks for the metrics and Ollama's duration fields."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from bridge.clock import RequestClock, rfc3339_utc


def test_first_token_is_marked_once():
    clock = RequestClock()
    assert clock.ttft_s is None
    assert clock.mark_first_token() is True
    first = clock.first_token_ns
    assert clock.mark_first_token() is False and clock.first_token_ns == first
    assert clock.ttft_s is not None and clock.ttft_s >= 0


def test_ollama_timings_add_up_and_follow_the_marks():
    clock = RequestClock(started_ns=time.monotonic_ns() - 3_000_000)
    clock.mark_sent()
    time.sleep(0.002)
    clock.mark_first_token()
    t = clock.ollama_timings()
    assert t.load_ns >= 3_000_000 and t.prompt_eval_ns >= 2_000_000
    assert t.total_ns == t.load_ns + t.prompt_eval_ns + t.eval_ns


def test_timings_before_anything_is_marked_are_still_positive():
    t = RequestClock().ollama_timings()
    assert min(t.total_ns, t.load_ns, t.prompt_eval_ns, t.eval_ns) >= 1


def test_headers_time_stands_in_for_the_first_token():
    clock = RequestClock()
    clock.mark_sent()
    time.sleep(0.002)
    headers_ns = time.monotonic_ns()
    time.sleep(0.001)
    t = clock.ollama_timings(first_ns=headers_ns)
    assert t.prompt_eval_ns >= 2_000_000 and t.eval_ns >= 1_000_000


def test_elapsed():
    clock = RequestClock(started_ns=time.monotonic_ns() - 2_000_000_000)
    assert 2.0 <= clock.elapsed_s() < 3.0


def test_rfc3339_matches_datetime_formatting():
    for now_s in (0.0, 1_767_225_599.999999, 1_767_225_600.000001, time.time()):
        expected = datetime.fromtimestamp(now_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        got = rfc3339_utc(now_s)
        assert got[:20] == expected[:20] and abs(int(got[20:26]) - int(expected[20:26])) <= 1
        assert got.endswith("Z") and len(got) == 27
