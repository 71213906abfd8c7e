"""translate/anthropic_stream.py: chat.completion.chunk events -> Anthropic stream events (tables and properties)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import UpstreamProtocolError
from bridge.translate.anthropic_stream import MessagesStream

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
