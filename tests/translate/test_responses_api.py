"""translate/responses_api.py: Responses API <-> chat completions, with plain dicts (tables and properties)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import ClientRequestError, UpstreamProtocolError
from bridge.translate.responses_api import ResponsesStream, response_object, responses_request, responses_response


def request(**fields) -> dict:
    return responses_request({"input": "hi", **fields}, "backend-m", stream=False, think_control="reasoning_effort")


def base(**body) -> dict:
    return response_object(body, response_id="resp_abc", created_at=1700000000, model="m")


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


# -- streams -------------------------------------------------------------------------------------------


def chunk(delta: dict | None = None, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}


def tool_delta(index: int, args: str, call_id: str | None = None, name: str | None = None) -> dict:
    call: dict = {"index": index, "function": {"arguments": args}}
    if call_id:
        call["id"], call["function"]["name"] = call_id, name
    return chunk({"tool_calls": [call]})


def run(events: list[dict]) -> list[tuple[str, dict]]:
    stream = ResponsesStream(base=base())
    out = stream.start()
    for event in events:
        out += stream.feed(event)
    return out + stream.finish()


def replay(events: list[tuple[str, dict]]) -> dict:
    """Rebuild the output from the events the way a client does, checking the protocol's rules."""
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    assert all(name == data["type"] for name, data in events)
    assert events[0][0] == "response.created" and events[1][0] == "response.in_progress"
    items: dict[int, dict] = {}
    done: set[int] = set()
    for name, data in events[2:-1]:
        if name == "response.output_item.added":
            assert data["output_index"] == len(items)
            items[data["output_index"]] = {**data["item"], "text": ""}
        elif name.endswith(".delta"):
            item = items[data["output_index"]]
            assert data["item_id"] == item["id"] and data["output_index"] not in done
            item["text"] += data["delta"]
        elif name == "response.output_item.done":
            index = data["output_index"]
            assert index not in done and data["item"]["id"] == items[index]["id"]
            done.add(index)
            items[index]["final"] = data["item"]
    assert done == set(items)
    final = events[-1][1]["response"]
    assert [i["id"] for i in final["output"]] == [items[k]["id"] for k in sorted(items)]
    return {"final": final, "items": [items[k] for k in sorted(items)]}


def test_stream_text_then_calls():
    out = run([chunk({"role": "assistant", "content": ""}), chunk({"content": "a"}), chunk({"content": "b"}),
               tool_delta(0, "", "c1", "w"), tool_delta(0, '{"x": 1}'), chunk(finish="tool_calls"),
               {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 4}}])
    state = replay(out)
    assert [(i["type"], i["text"]) for i in state["items"]] == [("message", "ab"), ("function_call", '{"x": 1}')]
    final = state["final"]
    assert out[-1][0] == "response.completed" and final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "ab"
    assert final["output"][1] == {"id": "fc_abc_1", "type": "function_call", "status": "completed",
                                  "call_id": "c1", "name": "w", "arguments": '{"x": 1}'}
    assert final["usage"]["input_tokens"] == 2 and final["usage"]["output_tokens"] == 4
    names = [n for n, _ in out]
    assert names.index("response.output_text.done") < names.index("response.function_call_arguments.delta")


def test_stream_incomplete_and_failed():
    out = run([chunk({"content": "a"}), chunk(finish="length")])
    assert out[-1][0] == "response.incomplete"
    assert out[-1][1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    stream = ResponsesStream(base=base())
    events = stream.start() + stream.feed(chunk({"content": "a"}))
    name, data = stream.failed("backend broke")
    assert name == "response.failed" and data["sequence_number"] == len(events)
    assert data["response"]["status"] == "failed"
    assert data["response"]["error"] == {"code": "server_error", "message": "backend broke"}
    assert data["response"]["output"][0]["id"] == "msg_abc_0"
    with pytest.raises(UpstreamProtocolError, match="boom"):
        stream.feed({"error": "boom"})


texts = st.text(min_size=1, max_size=6)


@st.composite
def backend_streams(draw):
    reasoning = draw(st.lists(texts, max_size=3))
    content = draw(st.lists(texts, max_size=4))
    calls = [(f"c{i}", json.dumps(draw(st.dictionaries(st.text(max_size=3), st.integers(), max_size=3))))
             for i in range(draw(st.integers(0, 3)))]
    events = [chunk({"reasoning_content": r}) for r in reasoning] + [chunk({"content": c}) for c in content]
    queues = []
    for i, (call_id, args) in enumerate(calls):
        cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=4)))
        pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)])]
        queues.append([tool_delta(i, pieces[0], call_id, "f")] + [tool_delta(i, p) for p in pieces[1:]])
    if draw(st.booleans()):
        while any(queues):
            for queue in queues:
                if queue:
                    events.append(queue.pop(0))
    else:
        events += [e for queue in queues for e in queue]
    events.append(chunk(finish="tool_calls" if calls else draw(st.sampled_from(["stop", "length"]))))
    return events, "".join(reasoning), "".join(content), calls


@settings(max_examples=150, deadline=None)
@given(backend_streams())
def test_property_streams_replay_to_the_same_output(case):
    events, reasoning, content, calls = case
    state = replay(run(events))
    expected = ([("reasoning", reasoning)] if reasoning else []) + ([("message", content)] if content else [])
    expected += [("function_call", args) for _, args in calls]
    assert [(i["type"], i["text"]) for i in state["items"]] == expected
    for item, final in zip(state["items"], state["final"]["output"]):
        assert item["final"] == final
        if final["type"] == "function_call":
            assert final["arguments"] == item["text"]
    json.dumps(state["final"])


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
