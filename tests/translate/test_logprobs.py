"""translate/logprobs.py: OpenAI logprobs (chat or legacy shape) -> Ollama's entries; backend bytes kept."""

from __future__ import annotations

import json
import math

from bridge.translate.logprobs import logprobs_from_choice


def test_logprobs_keep_backend_bytes_even_for_partial_utf8():
    # A token that is half of a multi-byte character: the text is lossy, the bytes are the truth.
    choice = {"logprobs": {"content": [{"token": "\ufffd", "logprob": -1.5, "bytes": [240, 159],
                                        "top_logprobs": [{"token": "\ufffd", "logprob": -1.5, "bytes": [240, 159]}]}]}}
    assert logprobs_from_choice(choice) == [
        {"token": "\ufffd", "logprob": -1.5, "bytes": [240, 159],
         "top_logprobs": [{"token": "\ufffd", "logprob": -1.5, "bytes": [240, 159]}]}]


def test_logprobs_unusable_values():
    choice = {"logprobs": {"content": [
        {"token": "a", "logprob": float("-inf")},
        {"token": "b", "logprob": float("nan")},
        {"token": None, "logprob": -1},
        {"token": "c", "logprob": -2, "bytes": [999, -1]},
        {"token": "", "logprob": -3},
        "junk",
    ]}}
    out = logprobs_from_choice(choice)
    assert out == [{"token": "a", "logprob": -9999.0, "bytes": [97]},
                   {"token": "c", "logprob": -2.0, "bytes": [99]},
                   {"token": "", "logprob": -3.0}]
    json.dumps(out, allow_nan=False)
    assert all(not math.isnan(e["logprob"]) for e in out)


def test_legacy_logprobs_sorted_most_likely_first():
    choice = {"text": "a", "logprobs": {"tokens": ["a"], "token_logprobs": [-1.0],
                                         "top_logprobs": [{"x": -4.0, "a": -1.0, "é": -2.0}]}}
    out = logprobs_from_choice(choice)
    assert [t["token"] for t in out[0]["top_logprobs"]] == ["a", "é", "x"]
    assert out[0]["top_logprobs"][1]["bytes"] == [195, 169]
