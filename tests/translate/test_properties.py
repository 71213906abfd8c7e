"""Property tests: valid Ollama requests always translate; valid backend streams always end in one done chunk."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.translate.chat import THINK_CONTROLS, chat_request, generate_request, short_circuit
from bridge.translate.responses import Timings
from bridge.translate.stream import StreamTranslator

text = st.text(max_size=20)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,11}", fullmatch=True)
json_scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6)
                | st.floats(allow_nan=False, allow_infinity=False) | text)
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=8)
json_objects = st.dictionaries(text, json_values, max_size=4)

base64_body = st.from_regex(r"[A-Za-z0-9+/]{0,24}={0,2}", fullmatch=True)
images = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR", ""]), base64_body).map("".join),
        base64_body.map(lambda b: f"data:image/png;base64,{b}"),
    ),
    max_size=3,
)
finite = st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(-100, 100)
options = st.fixed_dictionaries(
    {},
    optional={
        "temperature": finite, "top_p": finite, "presence_penalty": finite, "frequency_penalty": finite,
        "num_predict": st.integers(-2, 4096), "seed": st.integers(-2**31, 2**31),
        "stop": text | st.lists(text, max_size=4),
        "num_ctx": st.integers(0, 2**17), "top_k": st.integers(-1, 100), "num_gpu": st.integers(0, 8),
        "repeat_penalty": finite, "mirostat": st.integers(0, 2), "use_mmap": st.booleans(), "custom": json_values,
    },
)
schema = st.fixed_dictionaries({"type": st.just("object")}, optional={"title": text, "properties": json_objects})
formats = st.none() | st.just("") | st.just("json") | schema
thinks = st.none() | st.booleans() | st.sampled_from(["low", "medium", "high", "max"])
tool = names.map(lambda n: {"type": "function",
                            "function": {"name": n, "parameters": {"type": "object", "properties": {}}}})
tools = st.none() | st.lists(tool, max_size=3)
tool_call = st.fixed_dictionaries(
    {"function": st.fixed_dictionaries({"name": names}, optional={"arguments": json_objects})},
    optional={"id": st.from_regex(r"call_[a-z0-9]{8}", fullmatch=True)},
)


def plain_message(role):
    return st.fixed_dictionaries(
        {"role": st.just(role)},
        optional={"content": st.none() | text, "images": images, "thinking": text},
    )


@st.composite
def tool_turn(draw):
    """An assistant message with calls, followed by results for some of them (by name, id or order)."""
    calls = draw(st.lists(tool_call, min_size=1, max_size=3))
    assistant = {"role": "assistant", "tool_calls": calls}
    if draw(st.booleans()):
        assistant["content"] = draw(text)
    results = []
    for call in calls[: draw(st.integers(0, len(calls)))]:
        result = {"role": "tool", "content": draw(text)}
        how = draw(st.sampled_from(["tool_name", "name", "none", "id"]))
        if how == "id" and "id" in call:
            result["tool_call_id"] = call["id"]
        elif how in ("tool_name", "name"):
            result[how] = call["function"]["name"]
        results.append(result)
    return [assistant, *results]


turn = st.one_of(
    plain_message("user").map(lambda m: [m]),
    plain_message("system").map(lambda m: [m]),
    plain_message("assistant").map(lambda m: [m]),
    tool_turn(),
)
messages = st.lists(turn, min_size=1, max_size=5).map(lambda turns: list(itertools.chain(*turns)))


def common_fields():
    return {
        "options": options, "format": formats, "think": thinks,
        "keep_alive": st.none() | st.integers(-1, 600) | st.just("5m"),
        "logprobs": st.booleans(), "top_logprobs": st.integers(0, 20), "stream": st.booleans(),
    }


chat_bodies = st.fixed_dictionaries({"model": st.just("m1"), "messages": messages},
                                    optional={**common_fields(), "tools": tools})
generate_bodies = st.fixed_dictionaries(
    {"model": st.just("m1"), "prompt": text},
    optional={**common_fields(), "system": text, "images": images, "template": text,
              "context": st.lists(st.integers(0, 9))},
)


def check_chat_body(out):
    assert isinstance(out, dict)
    assert out["model"] == "backend"
    assert isinstance(out["messages"], list) and out["messages"]
    assert all(isinstance(m, dict) and isinstance(m["role"], str) for m in out["messages"])
    json.dumps(out, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(chat_bodies, st.booleans(), st.sampled_from(THINK_CONTROLS))
def test_valid_chat_requests_always_translate(body, stream, control):
    out = chat_request(body, "backend", stream=stream, think_control=control)
    check_chat_body(out)
    assert short_circuit("chat", body) is None
    # Every tool result answers a call OpenAI can see.
    ids = {c["id"] for m in out["messages"] for c in m.get("tool_calls") or []}
    assert all(m["tool_call_id"] in ids for m in out["messages"] if m["role"] == "tool")
    assert "tools" not in out or out["tools"]


@settings(max_examples=200, deadline=None)
@given(generate_bodies, st.booleans(), st.sampled_from(THINK_CONTROLS))
def test_valid_generate_requests_always_translate(body, stream, control):
    kind, out = generate_request(body, "backend", stream=stream, think_control=control)
    assert kind == "chat"
    check_chat_body(out)
    assert out["messages"][-1]["role"] == "user"


# --------------------------------------------------------------------------- streams


@st.composite
def stream_events(draw):
    """Valid chunk sequences: content, reasoning and fragmented tool calls interleaved, then finish/usage."""
    sources = []
    contents = draw(st.lists(text, max_size=6))
    sources.append([{"choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]} for c in contents])
    reasoning_key = draw(st.sampled_from(["reasoning_content", "reasoning"]))
    sources.append([{"choices": [{"index": 0, "delta": {reasoning_key: r}}]} for r in draw(st.lists(text, max_size=4))])
    sources.append([{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}] * draw(st.integers(0, 2)))
    calls = draw(st.lists(st.tuples(names, json_objects), max_size=3))
    for index, (name, args) in enumerate(calls):
        encoded = json.dumps(args)
        cuts = sorted(draw(st.lists(st.integers(0, len(encoded)), max_size=3)))
        pieces = [encoded[a:b] for a, b in zip([0, *cuts], [*cuts, len(encoded)])]
        first = {"index": index, "id": f"call_{index}", "type": "function", "function": {"name": name, "arguments": ""}}
        deltas = [first] + [{"index": index, "function": {"arguments": p}} for p in pieces]
        sources.append([{"choices": [{"index": 0, "delta": {"tool_calls": [d]}}]} for d in deltas])
    events = []
    queues = [list(s) for s in sources if s]
    while queues:
        queue = queues[draw(st.integers(0, len(queues) - 1))]
        events.append(queue.pop(0))
        queues = [q for q in queues if q]
    if draw(st.booleans()):
        reason = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"]))
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    if draw(st.booleans()):
        events.append({"choices": draw(st.sampled_from([[], None])),
                       "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    return events, "".join(contents), calls


@settings(max_examples=300, deadline=None)
@given(stream_events(), st.sampled_from(["chat", "generate"]), st.booleans())
def test_streams_always_end_in_exactly_one_done_chunk(generated, kind, keep_thinking):
    events, content, calls = generated
    t = StreamTranslator(kind, model="m1", created_at=lambda: "2025-01-01T00:00:00Z", keep_thinking=keep_thinking)
    chunks = []
    for event in events:
        chunks += t.feed(event)
    final = t.finish(Timings(total_ns=10, load_ns=0, prompt_eval_ns=2, eval_ns=5))
    assert all(c["done"] is False for c in chunks)
    assert final["done"] is True and final["done_reason"] in ("stop", "length")
    for chunk in [*chunks, final]:
        json.dumps(chunk, allow_nan=False)
    if kind == "chat":
        assert "".join(c["message"]["content"] for c in chunks) == content
        got = [tc for c in [*chunks, final] for tc in c["message"].get("tool_calls", [])]
        assert [(tc["function"]["name"], tc["function"]["arguments"]) for tc in got] == calls
        assert sum(1 for c in [*chunks, final] if c["message"].get("tool_calls")) == (1 if calls else 0)
    else:
        assert "".join(c["response"] for c in chunks) == content
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert type(final[key]) is int
