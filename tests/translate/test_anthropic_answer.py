"""translate/anthropic_answer.py: a chat.completion -> an Anthropic message; Anthropic's error envelope."""

from __future__ import annotations

import pytest

from bridge.errors import UpstreamProtocolError
from bridge.translate.anthropic_answer import error_body, messages_response

# -- non-stream responses -------------------------------------------------------------------------------


def completion(message: dict, finish: str = "stop", **choice_extra) -> dict:
    return {"id": "x", "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice_extra}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}}}


def test_response_text_thinking_tools_usage():
    resp = completion({"role": "assistant", "content": "ok", "reasoning_content": "why",
                       "tool_calls": [{"id": "c1", "type": "function",
                                       "function": {"name": "w", "arguments": '{"a": 1}'}}]}, "tool_calls")
    out = messages_response(resp, model="m:latest", message_id="msg_1")
    assert out == {"id": "msg_1", "type": "message", "role": "assistant", "model": "m:latest", "content": [
        {"type": "thinking", "thinking": "why", "signature": ""}, {"type": "text", "text": "ok"},
        {"type": "tool_use", "id": "c1", "name": "w", "input": {"a": 1}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 2, "output_tokens": 3}}
    assert [b["type"] for b in messages_response(resp, model="m", message_id="i", keep_thinking=False)["content"]] \
        == ["text", "tool_use"]


@pytest.mark.parametrize(("finish", "extra", "expected"), [
    ("stop", {}, ("end_turn", None)),
    ("length", {}, ("max_tokens", None)),
    ("content_filter", {}, ("refusal", None)),
    ("stop", {"stop_reason": "END"}, ("stop_sequence", "END")),   # vLLM names the matched string
    ("stop", {"matched_stop": "END"}, ("stop_sequence", "END")),  # SGLang
    ("stop", {"stop_reason": "OTHER"}, ("end_turn", None)),
    (None, {}, ("end_turn", None)),
])
def test_stop_reasons(finish, extra, expected):
    out = messages_response(completion({"content": "x"}, finish, **extra), model="m", message_id="i", stop=("END",))
    assert (out["stop_reason"], out["stop_sequence"]) == expected


def test_empty_answer_has_one_empty_text_block_and_bad_bodies_are_protocol_errors():
    assert messages_response({"choices": [{"message": {"content": None}}]}, model="m",
                             message_id="i")["content"] == [{"type": "text", "text": ""}]
    for bad in ({}, {"choices": []}, [], {"choices": [{"message": {"tool_calls": [{"function": {}}]}}]}):
        with pytest.raises(UpstreamProtocolError):
            messages_response(bad, model="m", message_id="i")


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"),
    (502, "api_error"), (503, "overloaded_error"), (504, "timeout_error"), (529, "overloaded_error"),
    (418, "invalid_request_error"), (501, "api_error"),
])
def test_error_body(status, kind):
    assert error_body(status, "why") == {"type": "error", "error": {"type": kind, "message": "why"}}
