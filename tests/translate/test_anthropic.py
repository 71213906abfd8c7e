"""translate/anthropic.py (and anthropic_input.py through it): Messages API requests -> chat completions (tables
and properties)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import ClientRequestError
from bridge.translate.anthropic import messages_request
from bridge.translate.anthropic_count import count_tokens

USER = [{"role": "user", "content": "hi"}]


def request(**fields) -> dict:
    return messages_request({"max_tokens": 64, "messages": USER, **fields}, "backend-m", stream=False,
                            think_control="reasoning_effort")


# -- requests ------------------------------------------------------------------------------------------


def test_minimal_request():
    assert request() == {"model": "backend-m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64,
                         "stream": False}
    streamed = messages_request({"max_tokens": 1, "messages": USER}, "b", stream=True, think_control="off")
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}


def test_sampling_stop_metadata_and_system_blocks():
    out = request(system=[{"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}},
                          {"type": "text", "text": "two"}],
                  temperature=0.5, top_p=1, top_k=40, stop_sequences=["", "END"], metadata={"user_id": "u"})
    assert out["messages"][0] == {"role": "system", "content": "one\n\ntwo"}
    assert (out["temperature"], out["top_p"], out["top_k"], out["stop"], out["user"]) == (0.5, 1, 40, ["END"], "u")


def test_tool_use_and_results_in_order():
    out = request(messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "t2", "name": "w", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "here you go"},
            {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "-3"}]},
            {"type": "tool_result", "tool_use_id": "t1", "content": "21", "is_error": True}]}])
    assert out["messages"][1:] == [
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Paris"}'}},
            {"id": "t2", "type": "function", "function": {"name": "w", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "t2", "content": "-3"},
        {"role": "tool", "tool_call_id": "t1", "content": "Error: 21"},
        {"role": "user", "content": "here you go"}]


def test_images_base64_and_url():
    out = request(messages=[{"role": "user", "content": [
        {"type": "text", "text": "a"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/x"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/i.png"}}]}])
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/x"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/i.png"}}]


def test_tools_and_tool_choice():
    tool = {"name": "w", "description": "d", "input_schema": {"type": "object"}, "cache_control": {}}
    out = request(tools=[tool], tool_choice={"type": "tool", "name": "w", "disable_parallel_tool_use": True})
    assert out["tools"] == [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"},
                                                              "description": "d"}}]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert out["parallel_tool_calls"] is False
    assert request(tools=[tool], tool_choice={"type": "any"})["tool_choice"] == "required"
    assert request(tools=[tool], tool_choice={"type": "none"})["tool_choice"] == "none"
    assert "tool_choice" not in request(tool_choice={"type": "auto"})  # no tools: nothing to choose


@pytest.mark.parametrize(("thinking", "control", "expected"), [
    ({"type": "enabled", "budget_tokens": 1024}, "reasoning_effort", {"reasoning_effort": "low"}),
    ({"type": "enabled", "budget_tokens": 8000}, "reasoning_effort", {"reasoning_effort": "medium"}),
    ({"type": "enabled", "budget_tokens": 32000}, "both",
     {"reasoning_effort": "high", "chat_template_kwargs": {"enable_thinking": True}}),
    ({"type": "disabled"}, "chat_template_kwargs", {"chat_template_kwargs": {"enable_thinking": False}}),
    ({"type": "disabled"}, "reasoning_effort", {"reasoning_effort": "none"}),
    ({"type": "adaptive"}, "off", {}),
])
def test_thinking_like_think(thinking, control, expected):
    out = messages_request({"max_tokens": 9, "messages": USER, "thinking": thinking}, "b", stream=False,
                           think_control=control)
    assert {k: out[k] for k in ("reasoning_effort", "chat_template_kwargs") if k in out} == expected


def test_output_format_to_json_schema():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = request(output_config={"format": {"type": "json_schema", "schema": schema}})
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


@pytest.mark.parametrize(("fields", "needle"), [
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": [{"type": "document"}]}]}, "messages.0.content.0"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]}, "source"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, "tool_use_id"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "x", "name": "n", "input": []}]}]},
     "input"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tools"),
    ({"tools": [{"name": "x"}]}, "input_schema"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({"thinking": {"type": "maybe"}}, "thinking"),
    ({"temperature": "hot"}, "temperature"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"metadata": {"user_id": 5}}, "user_id"),
    ({"mcp_servers": [{"url": "x"}]}, "mcp_servers"),
    ({"system": 5}, "system"),
])
def test_invalid_requests_say_where(fields, needle):
    body = {"max_tokens": 64, "messages": USER, **fields}
    with pytest.raises(ClientRequestError, match=needle.replace(".", r"\.")):
        messages_request(body, "b", stream=False, think_control="off")


# -- properties ----------------------------------------------------------------------------------------

arg_values = st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3)
messages_strategy = st.lists(
    st.one_of(
        st.fixed_dictionaries({"role": st.just("user"), "content": st.text(max_size=8)}),
        st.fixed_dictionaries({"role": st.just("user"), "content": st.lists(
            st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=8)}), min_size=1, max_size=3)}),
        st.fixed_dictionaries({"role": st.just("assistant"), "content": st.lists(st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=8)}),
            st.fixed_dictionaries({"type": st.just("tool_use"), "id": st.from_regex(r"t[0-9]{1,3}", fullmatch=True),
                                   "name": st.just("f"), "input": arg_values})), max_size=3)}),
        st.fixed_dictionaries({"role": st.just("user"), "content": st.lists(st.fixed_dictionaries({
            "type": st.just("tool_result"), "tool_use_id": st.from_regex(r"t[0-9]{1,3}", fullmatch=True),
            "content": st.text(max_size=8)}), min_size=1, max_size=2)}),
    ),
    min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(messages_strategy, st.sampled_from(["reasoning_effort", "chat_template_kwargs", "both", "off"]))
def test_property_valid_requests_translate(messages, control):
    body = {"max_tokens": 10, "messages": messages, "system": "s"}
    out = messages_request(body, "b", stream=True, think_control=control)
    assert out["messages"][0] == {"role": "system", "content": "s"}
    for message in out["messages"]:
        assert message["role"] in ("system", "user", "assistant", "tool")
        if message["role"] == "tool":
            assert isinstance(message["tool_call_id"], str) and isinstance(message["content"], str)
        for call in message.get("tool_calls", ()):
            assert isinstance(json.loads(call["function"]["arguments"]), dict)
    assert count_tokens(body) >= 4 * len(out["messages"])
    json.dumps(out)
