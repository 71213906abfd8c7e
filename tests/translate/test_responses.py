"""Issue 18 rules of translate/responses.py: durations never zero, counts always ints, logprobs kept.

(The rules themselves are tested in test_ollama_metrics.py and test_logprobs.py; here, that the
bodies apply them.)"""

from __future__ import annotations

import json

from bridge.translate.responses import Timings, chat_response, generate_response

CREATED = "2025-01-01T00:00:00.000000Z"


def reply(**extra):
    resp = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"},
                         "finish_reason": "stop"}]}
    resp.update(extra)
    return resp


# --------------------------------------------------------------------------- durations


def test_chat_and_generate_use_timings_from_the_body():
    resp = reply(timings={"prompt_n": 5, "prompt_ms": 2.0, "predicted_n": 3, "predicted_ms": 6.0})
    for make in (chat_response, generate_response):
        out = make(resp, model="m", created_at=CREATED, timings=Timings(10**9, 5, 7, 9), keep_thinking=True)
        assert (out["prompt_eval_duration"], out["eval_duration"]) == (2_000_000, 6_000_000)
        assert (out["prompt_eval_count"], out["eval_count"]) == (5, 3)


# --------------------------------------------------------------------------- counts


def test_counts_fall_back_to_estimates():
    out = chat_response(reply(), model="m", created_at=CREATED, timings=Timings(9, 1, 1, 1), keep_thinking=False,
                        prompt_estimate=13)
    assert (out["prompt_eval_count"], out["eval_count"]) == (13, 3)  # "Hello there!" = 12 chars -> 3
    json.dumps(out, allow_nan=False)


def test_eval_estimate_counts_reasoning_and_tool_calls():
    resp = reply()
    resp["choices"][0]["message"].update(content="", reasoning_content="abcdefgh",
                                         tool_calls=[{"id": "c", "function": {"name": "f", "arguments": "{}"}}])
    out = chat_response(resp, model="m", created_at=CREATED, timings=Timings(9, 1, 1, 1), keep_thinking=False)
    assert out["eval_count"] > 2 and "thinking" not in out["message"]


def test_eval_count_from_logprobs_when_no_usage():
    resp = reply()
    resp["choices"][0]["logprobs"] = {"content": [{"token": t, "logprob": -0.1} for t in ("a", "b", "c", "d", "e")]}
    out = chat_response(resp, model="m", created_at=CREATED, timings=Timings(9, 1, 1, 1), keep_thinking=True)
    assert out["eval_count"] == 5


# --------------------------------------------------------------------------- logprobs


def test_no_logprobs_key_without_logprobs():
    out = generate_response(reply(), model="m", created_at=CREATED, timings=Timings(9, 1, 1, 1), keep_thinking=True)
    assert "logprobs" not in out
