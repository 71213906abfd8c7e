"""Issue 18 rules of translate/ollama_metrics.py: durations never zero, counts always ints (reported or estimated)."""

from __future__ import annotations

import pytest

from bridge.translate.ollama_metrics import (
    BackendTimings,
    Timings,
    backend_timings,
    estimate_tokens,
    metrics,
    prompt_tokens_estimate,
    reported_counts,
)

KEYS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")


# --------------------------------------------------------------------------- durations


def test_measured_timings_split_and_floor():
    t = Timings.measured(started_ns=100, sent_ns=150, first_ns=400, end_ns=1000)
    assert t == Timings(total_ns=900, load_ns=50, prompt_eval_ns=250, eval_ns=600)
    # everything at the same instant: still 1 ns each, never 0
    t = Timings.measured(started_ns=5, sent_ns=5, first_ns=5, end_ns=5)
    assert t == Timings(total_ns=1, load_ns=1, prompt_eval_ns=1, eval_ns=1)
    # a first mark outside [sent, end] is clamped
    t = Timings.measured(started_ns=0, sent_ns=10, first_ns=99, end_ns=20)
    assert (t.prompt_eval_ns, t.eval_ns) == (10, 1)


@pytest.mark.parametrize("bad", [0, -5, 0.4, None, "x", float("nan"), float("inf")])
def test_metrics_durations_at_least_one_ns(bad):
    out = metrics(1, 1, Timings(total_ns=bad, load_ns=bad, prompt_eval_ns=bad, eval_ns=bad))  # type: ignore[arg-type]
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert type(out[key]) is int and out[key] >= 1
    assert list(out) == list(KEYS)


def test_backend_timings_win_and_total_covers_them():
    measured = Timings(total_ns=1_000, load_ns=10, prompt_eval_ns=300, eval_ns=600)
    found = backend_timings({"timings": {"prompt_n": 12, "prompt_ms": 0.25, "predicted_n": 3, "predicted_ms": 7.5}})
    assert found == BackendTimings(prompt_ns=250_000, eval_ns=7_500_000, prompt_n=12, eval_n=3)
    out = metrics(None, None, measured, backend=found)
    assert (out["prompt_eval_duration"], out["eval_duration"]) == (250_000, 7_500_000)
    assert (out["prompt_eval_count"], out["eval_count"]) == (12, 3)
    assert out["total_duration"] == 10 + 250_000 + 7_500_000  # never less than its parts
    # usage still beats the timings' counts
    out = metrics(20, 4, measured, backend=found)
    assert (out["prompt_eval_count"], out["eval_count"]) == (20, 4)


@pytest.mark.parametrize("timings", [None, [], {}, {"prompt_ms": -1, "predicted_ms": "9"},
                                     {"prompt_ms": float("nan")}, {"prompt_n": True}])
def test_unusable_timings_are_ignored(timings):
    assert backend_timings({"timings": timings}) is None


def test_backend_zero_ms_still_one_ns():
    out = metrics(1, 1, Timings(5, 1, 1, 1), backend=backend_timings({"timings": {"prompt_ms": 0, "predicted_ms": 0}}))
    assert out["prompt_eval_duration"] == 1 and out["eval_duration"] == 1


# --------------------------------------------------------------------------- counts


def test_estimates():
    assert [estimate_tokens(s) for s in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    assert prompt_tokens_estimate({"messages": []}) == 1
    body = {"messages": [{"role": "user", "content": "x" * 40},
                         {"role": "user", "content": [{"type": "text", "text": "y" * 8}, {"type": "image_url"}]}]}
    assert prompt_tokens_estimate(body) == 12
    assert prompt_tokens_estimate({"prompt": "z" * 9, "suffix": "w" * 3}) == 3
    assert prompt_tokens_estimate({"messages": [{"role": "user", "content": "hi"}], "tools": [{"a": 1}]}) > 1
    assert prompt_tokens_estimate(None) == 1  # type: ignore[arg-type]


def test_reported_counts():
    assert reported_counts({"usage": {"prompt_tokens": 3, "completion_tokens": 2}}) == (3, 2)
    assert reported_counts({"timings": {"prompt_n": 4, "predicted_n": 1}}) == (4, 1)
    assert reported_counts({}) == (None, None)
    assert reported_counts({"usage": {"prompt_tokens": 2.5}}) == (None, None)
