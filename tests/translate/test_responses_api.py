"""translate/responses_api.py: Responses API requests -> chat completions, with plain dicts (tables and properties)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import ClientRequestError
from bridge.translate.responses_api import responses_request


def request(**fields) -> dict:
    return responses_request({"input": "hi", **fields}, "backend-m", stream=False, think_control="reasoning_effort")


# -- requests ------------------------------------------------------------------------------------------


def test_minimal_and_streamed():
    assert request() == {"model": "backend-m", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    out = responses_request({"input": "hi"}, "b", stream=True, think_control="off")
    assert out["stream_options"] == {"include_usage": True}


def test_instructions_sampling_limits_user():
    out = request(instructions="Be brief.", max_output_tokens=20, temperature=0, top_p=0.5, store=True,
                  user="u1", metadata={"a": "b"}, truncation="auto", include=["x"])
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (out["max_tokens"], out["temperature"], out["top_p"], out["user"]) == (20, 0, 0.5, "u1")
    assert "store" not in out and "metadata" not in out


def test_input_items_with_calls_and_outputs():
    out = request(input=[
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look "},
            {"type": "input_image", "image_url": "data:image/png;base64,AAA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"a":1}'},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"a":2}'},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
    ])
    assert out["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "look "},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"a":1}'}},
            {"id": "c2", "type": "function", "function": {"name": "w", "arguments": '{"a":2}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"}]


def test_tools_choice_format_reasoning():
    tool = {"type": "function", "name": "w", "description": "d", "parameters": {"type": "object"}, "strict": True}
    schema = {"type": "object", "properties": {}}
    out = request(tools=[tool], tool_choice={"type": "function", "name": "w"}, parallel_tool_calls=False,
                  text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}},
                  reasoning={"effort": "xhigh"})
    assert out["tools"] == [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"},
                                                              "description": "d", "strict": True}}]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert out["parallel_tool_calls"] is False
    assert out["response_format"] == {"type": "json_schema",
                                      "json_schema": {"name": "out", "schema": schema, "strict": True}}
    assert out["reasoning_effort"] == "high"
    assert request(text={"format": {"type": "json_object"}})["response_format"] == {"type": "json_object"}
    assert "response_format" not in request(text={"format": {"type": "text"}, "verbosity": "low"})
    assert request(reasoning={"effort": "none"})["reasoning_effort"] == "none"
    assert "tool_choice" not in request(tool_choice="auto")  # no tools: nothing to choose


@pytest.mark.parametrize(("fields", "needle"), [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"background": True}, "background"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item references"),
    ({"input": [{"type": "web_search_call"}]}, "web_search_call"),
    ({"input": []}, "empty"),
    ({"input": 5}, "input"),
    ({"input": [{"role": "tool", "content": "x"}]}, "role"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input_file"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "image_url"),
    ({"input": [{"type": "function_call", "name": "w"}]}, "call_id"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}, "output"),
    ({"tools": [{"type": "web_search"}]}, "web_search"),
    ({"tools": [{"type": "function"}]}, "name"),
    ({"tools": [{"type": "function", "name": "w"}], "tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "schema"),
    ({"reasoning": {"effort": "max"}}, "reasoning.effort"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"temperature": "warm"}, "temperature"),
])
def test_refused_with_reason(fields, needle):
    with pytest.raises(ClientRequestError, match=needle.replace(".", r"\.")):
        request(**fields)


# -- properties ----------------------------------------------------------------------------------------


input_items = st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "developer"]),
                           "content": st.text(max_size=8)}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": st.from_regex(r"c[0-9]", fullmatch=True),
                           "name": st.just("f"), "arguments": st.just("{}")}),
    st.fixed_dictionaries({"type": st.just("function_call_output"),
                           "call_id": st.from_regex(r"c[0-9]", fullmatch=True), "output": st.text(max_size=8)}),
), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(input_items)
def test_property_valid_inputs_translate(items):
    out = responses_request({"input": items, "instructions": "i"}, "b", stream=False, think_control="both")
    assert out["messages"][0] == {"role": "system", "content": "i"}
    calls = sum(len(m.get("tool_calls", ())) for m in out["messages"])
    assert calls == sum(1 for i in items if i.get("type") == "function_call")
    assert all(m["role"] in ("system", "user", "assistant", "tool") for m in out["messages"])
