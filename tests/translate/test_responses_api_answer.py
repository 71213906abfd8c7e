"""translate/responses_api_answer.py: the ``response`` object, and a chat.completion as a finished one."""

from __future__ import annotations

import pytest

from bridge.errors import UpstreamProtocolError
from bridge.translate.responses_api_answer import response_object, responses_response


def base(**body) -> dict:
    return response_object(body, response_id="resp_abc", created_at=1700000000, model="m")


# -- non-stream responses -------------------------------------------------------------------------------


def test_response_object_echoes_settings():
    out = base(instructions="i", max_output_tokens=5, temperature=0.1, store=True, metadata={"k": "v"},
               text={"format": {"type": "json_object"}}, tools=[{"type": "function", "name": "w"}])
    assert out["status"] == "in_progress" and out["output"] == [] and out["store"] is False
    assert (out["instructions"], out["max_output_tokens"], out["temperature"]) == ("i", 5, 0.1)
    assert out["metadata"] == {"k": "v"} and out["text"] == {"format": {"type": "json_object"}}
    assert out["previous_response_id"] is None and out["usage"] is None


def test_response_items_and_usage():
    resp = {"choices": [{"message": {"content": "ok", "reasoning": "why", "tool_calls": [
        {"id": "c1", "function": {"name": "w", "arguments": '{"a": 1}'}},
        {"function": {"name": "v", "arguments": {"b": 2}}}]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 1}}}
    out = responses_response(resp, base=base())
    assert out["status"] == "completed" and out["incomplete_details"] is None
    assert out["output"] == [
        {"id": "rs_abc_0", "type": "reasoning", "status": "completed", "summary": [],
         "content": [{"type": "reasoning_text", "text": "why"}]},
        {"id": "msg_abc_1", "type": "message", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "ok", "annotations": [], "logprobs": []}]},
        {"id": "fc_abc_2", "type": "function_call", "status": "completed", "call_id": "c1", "name": "w",
         "arguments": '{"a": 1}'},
        {"id": "fc_abc_3", "type": "function_call", "status": "completed", "call_id": "call_fc_abc_3", "name": "v",
         "arguments": '{"b": 2}'}]
    assert out["usage"] == {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 3,
                            "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 8}
    assert [i["type"] for i in responses_response(resp, base=base(), keep_reasoning=False)["output"]][0] == "message"


@pytest.mark.parametrize(("finish", "status", "reason"), [
    ("stop", "completed", None), ("length", "incomplete", "max_output_tokens"),
    ("content_filter", "incomplete", "content_filter"), (None, "completed", None)])
def test_response_status(finish, status, reason):
    out = responses_response({"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}, base=base())
    assert out["status"] == status
    assert out["incomplete_details"] == ({"reason": reason} if reason else None)


def test_bad_backend_bodies():
    for bad in ({}, {"choices": []}, [], {"choices": [{"message": {"tool_calls": [{"function": {}}]}}]}):
        with pytest.raises(UpstreamProtocolError):
            responses_response(bad, base=base())
