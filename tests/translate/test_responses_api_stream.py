"""translate/responses_api_stream.py: chat.completion.chunk events -> Responses stream events (tables and
properties)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import UpstreamProtocolError
from bridge.translate.responses_api_answer import response_object
from bridge.translate.responses_api_stream import ResponsesStream


def base(**body) -> dict:
    return response_object(body, response_id="resp_abc", created_at=1700000000, model="m")


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
