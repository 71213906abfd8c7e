"""translate/anthropic.py: Messages API <-> chat completions, with plain dicts (tables and properties)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import ClientRequestError, UpstreamProtocolError
from bridge.translate.anthropic import (
    count_tokens,
    error_body,
    messages_request,
    messages_response,
    reasoning_controls,
)
from bridge.translate.anthropic_stream import MessagesStream

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


def test_reasoning_controls_rejects_unknown_effort():
    with pytest.raises(ValueError):
        reasoning_controls("extreme", "both")


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


# -- streams -------------------------------------------------------------------------------------------


def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> dict:
    return {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}


def run(events: list[dict], **kwargs) -> list[tuple[str, dict]]:
    stream = MessagesStream(message_id="msg_1", model="m", **kwargs)
    out = stream.start()
    for event in events:
        out += stream.feed(event)
    return out + stream.finish()


def test_stream_thinking_then_text_then_usage():
    out = run([chunk({"role": "assistant", "content": ""}), chunk({"reasoning_content": "hm"}),
               chunk({"content": "a"}), chunk({"content": "b"}), chunk(finish="stop"),
               {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}}])
    assert [name for name, _ in out] == [
        "message_start", "ping", "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    assert out[2][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert out[3][1]["delta"] == {"type": "thinking_delta", "thinking": "hm"}
    assert out[5][1] == {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}
    assert out[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                          "usage": {"input_tokens": 4, "output_tokens": 3}}


def test_stream_without_usage_counts_deltas():
    out = run([chunk({"content": "a"}), chunk({"content": "b"}), chunk(finish="length")])
    assert out[-2][1]["usage"] == {"output_tokens": 2}
    assert out[-2][1]["delta"]["stop_reason"] == "max_tokens"


def tool_delta(index: int, args: str, call_id: str | None = None, name: str | None = None) -> dict:
    call: dict = {"index": index, "function": {"arguments": args}}
    if call_id:
        call["id"], call["type"], call["function"]["name"] = call_id, "function", name
    return chunk({"tool_calls": [call]})


def test_stream_tool_call_fragments_are_partial_json():
    out = run([chunk({"content": "Sure."}), tool_delta(0, "", "c1", "w"), tool_delta(0, '{"a"'),
               tool_delta(0, ": 1}"), chunk(finish="tool_calls")])
    starts = [d["content_block"] for n, d in out if n == "content_block_start"]
    assert starts[1] == {"type": "tool_use", "id": "c1", "name": "w", "input": {}}
    partial = [d["delta"]["partial_json"] for n, d in out if n == "content_block_delta" and d["index"] == 1]
    assert partial == ['{"a"', ": 1}"]
    assert out[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_stream_interleaved_parallel_calls_never_interleave_blocks():
    out = run([tool_delta(0, "", "c1", "a"), tool_delta(1, "", "c2", "b"), tool_delta(0, '{"x":'),
               tool_delta(1, '{"y":'), tool_delta(0, " 1}"), tool_delta(1, " 2}"), chunk(finish="tool_calls")])
    assert blocks(out) == [("tool_use", "c1", '{"x": 1}'), ("tool_use", "c2", '{"y": 2}')]


def test_stream_error_event_raises():
    stream = MessagesStream(message_id="i", model="m")
    with pytest.raises(UpstreamProtocolError, match="boom"):
        stream.feed({"error": {"message": "boom"}})
    assert MessagesStream.error("gone", 502) == ("error", {"type": "error", "error": {
        "type": "api_error", "message": "gone"}})


def blocks(events: list[tuple[str, dict]]) -> list[tuple]:
    """(type, id, accumulated text/json) per block, checking blocks open and close one at a time."""
    out, open_index = [], None
    for name, data in events:
        if name == "content_block_start":
            assert open_index is None and data["index"] == len(out)
            open_index = data["index"]
            block = data["content_block"]
            out.append([block["type"], block.get("id"), ""])
        elif name == "content_block_delta":
            assert data["index"] == open_index
            delta = data["delta"]
            out[-1][2] += delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
    assert open_index is None
    return [tuple(b) for b in out]


# -- properties ----------------------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=6)
arg_values = st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3)


@st.composite
def backend_streams(draw):
    """A valid chat-completions stream: reasoning, text, then tool calls split anyhow (maybe interleaved)."""
    reasoning = draw(st.lists(texts, max_size=3))
    content = draw(st.lists(texts, max_size=4))
    calls = [(f"c{i}", f"f{i}", json.dumps(draw(arg_values))) for i in range(draw(st.integers(0, 3)))]
    events = [chunk({"reasoning_content": r}) for r in reasoning] + [chunk({"content": c}) for c in content]
    per_call = []
    for i, (call_id, name, args) in enumerate(calls):
        cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=4)))
        pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)])]
        per_call.append([tool_delta(i, pieces[0], call_id, name)] + [tool_delta(i, p) for p in pieces[1:]])
    if draw(st.booleans()):
        while any(per_call):
            for queue in per_call:
                if queue:
                    events.append(queue.pop(0))
    else:
        events += [e for queue in per_call for e in queue]
    events.append(chunk(finish="tool_calls" if calls else draw(st.sampled_from(["stop", "length"]))))
    if draw(st.booleans()):
        events.append({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}})
    return events, "".join(reasoning), "".join(content), calls


@settings(max_examples=150, deadline=None)
@given(backend_streams())
def test_property_streams_are_well_formed_and_lossless(case):
    events, reasoning, content, calls = case
    out = run(events)
    assert out[0][0] == "message_start" and [n for n, _ in out[-2:]] == ["message_delta", "message_stop"]
    got = blocks(out)
    expected = ([("thinking", None, reasoning)] if reasoning else []) + ([("text", None, content)] if content else [])
    expected += [("tool_use", call_id, args) for call_id, _, args in calls]
    assert got == expected
    assert out[-2][1]["delta"]["stop_reason"] in ("end_turn", "max_tokens", "tool_use")
    assert isinstance(out[-2][1]["usage"]["output_tokens"], int)


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


# -- count_tokens and errors -------------------------------------------------------------------------------


def test_count_tokens_estimate():
    base = count_tokens({"messages": USER})
    assert base == 1 + 4  # "hi": ceil(2 / 4) + 4 per message
    assert count_tokens({"messages": USER, "system": "x" * 400}) == base + 100 + 4
    image = {"type": "image", "source": {"type": "url", "url": "u"}}
    assert count_tokens({"messages": [{"role": "user", "content": [image]}]}) == 1600 + 4
    with pytest.raises(ClientRequestError):
        count_tokens({"messages": "hi"})


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"),
    (502, "api_error"), (503, "overloaded_error"), (504, "timeout_error"), (529, "overloaded_error"),
    (418, "invalid_request_error"), (501, "api_error"),
])
def test_error_body(status, kind):
    assert error_body(status, "why") == {"type": "error", "error": {"type": kind, "message": "why"}}
