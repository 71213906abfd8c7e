"""StreamTranslator: OpenAI SSE events -> Ollama NDJSON chunks (reference 2.11, 3.1; cases 9, 13-15, 20, 21, 25,
26, 28)."""

from __future__ import annotations

import itertools
import json
import logging

import pytest

from bridge.errors import UpstreamProtocolError
from bridge.translate.responses import Timings
from bridge.translate.stream import StreamTranslator

TIMINGS = Timings(total_ns=9_000, load_ns=0, prompt_eval_ns=1_000, eval_ns=7_000)


def clock():
    counter = itertools.count()
    return lambda: f"2025-01-01T00:00:00.{next(counter):06d}Z"


def translator(kind="chat", keep_thinking=True, completions=False):
    return StreamTranslator(kind, model="m1:latest", created_at=clock(), keep_thinking=keep_thinking,
                            completions=completions)


def delta(finish_reason=None, **fields):
    return {"object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": fields, "finish_reason": finish_reason}]}


def usage(prompt=7, completion=3, choices=()):
    event = {"object": "chat.completion.chunk", "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}
    if choices != "missing":
        event["choices"] = list(choices) if choices is not None else None
    return event


def run(t, events):
    chunks = []
    for event in events:
        chunks += t.feed(event)
    return chunks


def tool_delta(index=None, id=None, name=None, arguments=None, type_=None):
    call: dict = {}
    if index is not None:
        call["index"] = index
    if id is not None:
        call["id"] = id
    if type_:
        call["type"] = type_
    fn = {}
    if name is not None:
        fn["name"] = name
    if arguments is not None:
        fn["arguments"] = arguments
    if fn:
        call["function"] = fn
    return delta(tool_calls=[call])


# --------------------------------------------------------------------------- text


def test_case_9_content_streams_then_one_final_chunk():
    t = translator()
    events = [delta(role="assistant", content=""), delta(content="Hel"), delta(content="lo"),
              delta(finish_reason="stop"), usage()]
    chunks = run(t, events)
    assert [c["message"]["content"] for c in chunks] == ["Hel", "lo"]
    assert all(c["done"] is False and c["message"]["role"] == "assistant" for c in chunks)
    assert all(c["model"] == "m1:latest" for c in chunks)
    final = t.finish(TIMINGS)
    assert final == {
        "model": "m1:latest", "created_at": final["created_at"], "message": {"role": "assistant", "content": ""},
        "done": True, "done_reason": "stop", "total_duration": 9_000, "load_duration": 1, "prompt_eval_count": 7,
        "prompt_eval_duration": 1_000, "eval_count": 3, "eval_duration": 7_000,
    }
    assert t.usage == (7, 3) and t.finish_reason == "stop" and t.has_output


def test_each_chunk_gets_a_fresh_timestamp():
    t = translator()
    chunks = run(t, [delta(content="a"), delta(content="b")])
    assert chunks[0]["created_at"] != chunks[1]["created_at"]


def test_role_only_and_empty_deltas_emit_nothing():
    t = translator()
    assert run(t, [delta(role="assistant"), delta(content=""), delta(content=None), delta(),
                   {"choices": [{"index": 0, "delta": None}]}]) == []
    assert not t.has_output


@pytest.mark.parametrize("choices", [(), None, "missing"])
def test_usage_after_finish_with_empty_null_or_missing_choices(choices):
    t = translator()
    chunks = run(t, [delta(content="x"), delta(finish_reason="length"), usage(5, 1, choices)])
    assert len(chunks) == 1
    assert t.usage == (5, 1)
    final = t.finish(TIMINGS)
    assert (final["done_reason"], final["prompt_eval_count"], final["eval_count"]) == ("length", 5, 1)


def test_finish_reason_never_produces_a_done_chunk():
    t = translator()
    chunks = run(t, [delta(content="x", finish_reason="stop")])
    assert [c["done"] for c in chunks] == [False]
    assert chunks[0]["message"]["content"] == "x"


# Issue 18: this test asserted the old behaviour (no counts without usage), which made frameworks
# crash with int + None after the whole answer had streamed. Counts are now always ints.
def test_no_usage_still_gives_int_counts_and_durations():
    t = StreamTranslator("chat", model="m1", created_at=clock(), keep_thinking=True, prompt_estimate=5)
    run(t, [delta(content="x"), delta(content="yz"), delta(finish_reason="stop")])
    final = t.finish(TIMINGS)
    assert (final["prompt_eval_count"], final["eval_count"]) == (5, 2)  # estimate; one token per delta
    assert all(type(final[k]) is int and final[k] >= 1
               for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"))
    assert t.usage == (None, None)


def test_stream_cut_leaves_finish_reason_none():
    t = translator()
    run(t, [delta(content="a")])
    assert t.finish_reason is None
    assert t.finish(TIMINGS)["done_reason"] == "stop"


def test_usage_on_every_chunk_last_one_wins():
    t = translator()
    run(t, [{**delta(content="a"), "usage": {"prompt_tokens": 2, "completion_tokens": 1}},
            {**delta(content="b"), "usage": None},
            {**delta(finish_reason="stop"), "usage": {"prompt_tokens": 2, "completion_tokens": 2.0}}])
    assert t.usage == (2, 2)


@pytest.mark.parametrize("reason, expected", [("stop", "stop"), ("length", "length"), ("tool_calls", "stop"),
                                              ("content_filter", "stop"), ("function_call", "stop")])
def test_done_reason_mapping(reason, expected):
    t = translator()
    run(t, [delta(content="a"), delta(finish_reason=reason)])
    assert t.finish_reason == reason
    assert t.finish(TIMINGS)["done_reason"] == expected


def test_finish_only_once_and_no_feed_after():
    t = translator()
    t.finish(TIMINGS)
    with pytest.raises(RuntimeError):
        t.finish(TIMINGS)
    with pytest.raises(RuntimeError):
        t.feed(delta(content="late"))


def test_chunks_are_json_serialisable():
    t = translator()
    for chunk in run(t, [delta(content="a", reasoning_content="r")]) + [t.finish(TIMINGS)]:
        json.dumps(chunk)


# --------------------------------------------------------------------------- thinking (cases 25, 26)


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_case_25_reasoning_then_content(key):
    t = translator()
    chunks = run(t, [delta(**{key: "hmm"}), delta(**{key: " ok"}), delta(content="42"), delta(finish_reason="stop")])
    assert [c["message"].get("thinking") for c in chunks] == ["hmm", " ok", None]
    assert [c["message"]["content"] for c in chunks] == ["", "", "42"]


def test_reasoning_and_content_in_one_delta_make_one_chunk():
    t = translator()
    chunks = run(t, [delta(reasoning="r", content="c")])
    assert chunks == [{"model": "m1:latest", "created_at": chunks[0]["created_at"],
                       "message": {"role": "assistant", "content": "c", "thinking": "r"}, "done": False}]


def test_case_26_reasoning_dropped_when_think_false():
    t = translator(keep_thinking=False)
    chunks = run(t, [delta(reasoning_content="secret"), delta(content="answer"), delta(finish_reason="stop")])
    assert len(chunks) == 1 and "thinking" not in chunks[0]["message"]
    assert chunks[0]["message"]["content"] == "answer"


def test_generate_thinking_is_top_level():
    t = translator("generate")
    chunks = run(t, [delta(reasoning_content="r"), delta(content="x")])
    assert chunks[0] == {"model": "m1:latest", "created_at": chunks[0]["created_at"], "response": "", "thinking": "r",
                         "done": False}
    assert chunks[1]["response"] == "x"


# --------------------------------------------------------------------------- generate + completions (cases 28, 29)


def test_case_28_generate_stream():
    t = translator("generate")
    chunks = run(t, [delta(role="assistant", content=""), delta(content="Hi"), delta(content="!"),
                     delta(finish_reason="stop"), usage(4, 2)])
    assert [c["response"] for c in chunks] == ["Hi", "!"]
    assert all("message" not in c for c in chunks)
    final = t.finish(TIMINGS)
    assert final["response"] == "" and final["done"] is True and final["context"] == []
    assert (final["prompt_eval_count"], final["eval_count"], final["done_reason"]) == (4, 2, "stop")


def test_completions_mode_reads_text():
    t = translator("generate", completions=True)
    events = [{"object": "text_completion", "choices": [{"index": 0, "text": "    return", "finish_reason": None}]},
              {"object": "text_completion", "choices": [{"index": 0, "text": " x", "finish_reason": None}]},
              {"object": "text_completion", "choices": [{"index": 0, "text": "", "finish_reason": "length"}]},
              usage(3, 2)]
    chunks = run(t, events)
    assert [c["response"] for c in chunks] == ["    return", " x"]
    final = t.finish(TIMINGS)
    assert final["done_reason"] == "length" and final["eval_count"] == 2


def test_generate_ignores_tool_call_deltas():
    t = translator("generate")
    chunks = run(t, [tool_delta(0, "c", "fn", "{}"), delta(finish_reason="tool_calls")])
    assert chunks == []
    assert "tool_calls" not in t.finish(TIMINGS)


def test_stream_logprobs_attached():
    t = translator()
    event = delta(content="Hi")
    event["choices"][0]["logprobs"] = {"content": [{"token": "Hi", "logprob": -0.5, "top_logprobs": []}]}
    chunks = run(t, [event])
    # bytes derived from the token when the backend sends none; an empty top_logprobs is left out (Ollama omits it)
    assert chunks[0]["logprobs"] == [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}]


# --------------------------------------------------------------------------- tool calls (cases 20, 21)


def test_case_20_fragmented_parallel_calls_make_one_chunk():
    t = translator()
    events = [
        delta(role="assistant", content=None),
        tool_delta(0, "call_a", "get_weather", "", "function"),
        tool_delta(0, arguments='{"ci'),
        tool_delta(0, arguments='ty": "Pa'),
        tool_delta(1, "call_b", "get_time", "", "function"),
        tool_delta(0, arguments='ris"'),
        tool_delta(1, arguments='{"tz": "CET"}'),
        tool_delta(0, arguments="}"),
        delta(finish_reason="tool_calls"),
        usage(),
    ]
    chunks = run(t, events)
    assert len(chunks) == 1
    chunk = chunks[0]
    assert chunk["done"] is False and chunk["message"]["content"] == ""
    assert chunk["message"]["tool_calls"] == [
        {"id": "call_a", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}},
        {"id": "call_b", "function": {"index": 1, "name": "get_time", "arguments": {"tz": "CET"}}},
    ]
    final = t.finish(TIMINGS)
    assert final["done"] is True and final["done_reason"] == "stop" and "tool_calls" not in final["message"]
    assert t.has_output


def test_tool_calls_chunk_comes_after_text_in_same_event():
    t = translator()
    run(t, [tool_delta(0, "c", "fn", '{"a":1}')])
    chunks = t.feed(delta(content="tail", finish_reason="tool_calls"))
    assert [c["message"]["content"] for c in chunks] == ["tail", ""]
    assert chunks[1]["message"]["tool_calls"][0]["function"]["arguments"] == {"a": 1}


def test_whole_call_in_one_delta_with_object_arguments():
    t = translator()
    chunks = run(t, [tool_delta(0, "c1", "fn", {"a": 1}), delta(finish_reason="tool_calls")])
    assert chunks[0]["message"]["tool_calls"] == [
        {"id": "c1", "function": {"index": 0, "name": "fn", "arguments": {"a": 1}}}]


def test_calls_without_index_keyed_by_id():
    t = translator()
    chunks = run(t, [tool_delta(None, "x", "a", '{"p":'), tool_delta(None, "y", "b", "{}"),
                     tool_delta(None, "x", None, "1}"), delta(finish_reason="tool_calls")])
    calls = chunks[0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("x", "a", {"p": 1}), ("y", "b", {})]


def test_calls_without_index_or_id_use_arrival_order():
    t = translator()
    chunks = run(t, [tool_delta(name="a", arguments='{"p"'), tool_delta(arguments=": 2}"),
                     tool_delta(name="b", arguments={"q": 3}), delta(finish_reason="stop")])
    calls = chunks[0]["message"]["tool_calls"]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [("a", {"p": 2}), ("b", {"q": 3})]
    assert all("id" not in c for c in calls)


def test_reused_index_with_new_id_is_a_new_call():
    t = translator()
    chunks = run(t, [tool_delta(0, "a1", "a", "{}"), tool_delta(0, "b1", "b", "{}"), delta(finish_reason="tool_calls")])
    assert [c["function"]["name"] for c in chunks[0]["message"]["tool_calls"]] == ["a", "b"]


def test_case_21_malformed_arguments_become_object(caplog):
    t = translator()
    with caplog.at_level(logging.WARNING):
        chunks = run(t, [tool_delta(0, "c", "fn", '{"a":'), delta(finish_reason="tool_calls")])
    assert chunks[0]["message"]["tool_calls"][0]["function"]["arguments"] == {}
    assert caplog.records


def test_non_object_and_empty_arguments():
    t = translator()
    chunks = run(t, [tool_delta(0, "c", "a", "[1]"), tool_delta(1, "d", "b", ""), tool_delta(2, "e", "c"),
                     delta(finish_reason="tool_calls")])
    assert [c["function"]["arguments"] for c in chunks[0]["message"]["tool_calls"]] == [{"value": [1]}, {}, {}]


def test_nameless_call_dropped_with_warning(caplog):
    t = translator()
    with caplog.at_level(logging.WARNING):
        chunks = run(t, [tool_delta(0, "c", None, "{}"), delta(finish_reason="tool_calls")])
    assert chunks == []
    assert caplog.records


def test_calls_pending_at_finish_ride_on_final_chunk():
    t = translator()
    assert run(t, [tool_delta(0, "c", "fn", '{"a": 1}')]) == []
    final = t.finish(TIMINGS)
    assert final["done"] is True
    assert final["message"]["tool_calls"] == [
        {"id": "c", "function": {"index": 0, "name": "fn", "arguments": {"a": 1}}}]
    assert t.has_output


# --------------------------------------------------------------------------- errors (cases 13, 14)


@pytest.mark.parametrize(
    "event, message",
    [
        ({"error": {"message": "overloaded", "type": "server_error"}}, "overloaded"),
        ({"error": "boom"}, "boom"),
        ({"error": {"code": 500}}, '{"code": 500}'),
        ({"object": "error", "message": "old vllm", "code": 400}, "old vllm"),
    ],
)
def test_case_14_error_event_raises_with_string_message(event, message):
    t = translator()
    run(t, [delta(content="a")])
    with pytest.raises(UpstreamProtocolError) as err:
        t.feed(event)
    assert err.value.message == message
    assert isinstance(err.value.message, str)


def test_null_error_field_is_not_an_error():
    t = translator()
    assert run(t, [{**delta(content="a"), "error": None}])[0]["message"]["content"] == "a"


@pytest.mark.parametrize("event", ["text", [], {"choices": "x"}, {"choices": [5]},
                                   delta(tool_calls="x"), delta(tool_calls=[5])])
def test_unusable_events_are_protocol_errors(event):
    with pytest.raises(UpstreamProtocolError):
        translator().feed(event)


def test_unknown_kind_rejected():
    with pytest.raises(ValueError):
        StreamTranslator("embed", model="m", created_at=clock(), keep_thinking=True)


# --------------------------------------------------------------------------- issue 18


def test_llama_server_timings_on_the_last_chunk_win():
    t = translator()
    last = delta(finish_reason="stop")
    last["timings"] = {"prompt_n": 9, "prompt_ms": 1.5, "predicted_n": 2, "predicted_ms": 4.0}
    run(t, [delta(content="a"), delta(content="b"), last])
    final = t.finish(Timings(total_ns=100, load_ns=1, prompt_eval_ns=50, eval_ns=40))
    assert (final["prompt_eval_duration"], final["eval_duration"]) == (1_500_000, 4_000_000)
    assert (final["prompt_eval_count"], final["eval_count"]) == (9, 2)  # no usage: timings' counts
    assert final["total_duration"] >= 5_500_000
    assert t.usage == (9, 2)


def test_usage_beats_timings_counts():
    t = translator()
    last = delta(finish_reason="stop")
    last["timings"] = {"prompt_n": 1, "predicted_n": 1}
    run(t, [delta(content="a"), last, usage(30, 5)])
    final = t.finish(TIMINGS)
    assert (final["prompt_eval_count"], final["eval_count"]) == (30, 5)


def test_logprobs_only_chunk_is_sent_and_counts_tokens():
    t = translator(kind="generate")
    event = delta(content="")
    event["choices"][0]["logprobs"] = {"content": [{"token": "\ufffd", "logprob": -0.2, "bytes": [226, 156]}]}
    second = delta(content="✓")
    second["choices"][0]["logprobs"] = {"content": [{"token": "\ufffd", "logprob": -0.3, "bytes": [147]}]}
    chunks = run(t, [event, second, delta(finish_reason="stop")])
    assert [c["response"] for c in chunks] == ["", "✓"]
    assert [c["logprobs"][0]["bytes"] for c in chunks] == [[226, 156], [147]]
    final = t.finish(TIMINGS)
    assert final["eval_count"] == 2 and "logprobs" not in final


def test_no_usage_counts_tool_call_fragments_and_text_length():
    t = translator()
    run(t, [tool_delta(index=0, id="c1", name="f", arguments='{"a"'), tool_delta(index=0, arguments=": 1}"),
            delta(finish_reason="tool_calls")])
    final = t.finish(TIMINGS)
    assert final["eval_count"] == 2 and type(final["prompt_eval_count"]) is int
    t = translator()
    run(t, [delta(finish_reason="stop")])
    assert t.finish(TIMINGS)["eval_count"] == 0  # nothing generated, still an int


def test_chunks_of_one_read_share_one_timestamp_and_the_next_read_gets_a_new_one():
    t = translator()
    t.begin_read()  # these two events arrived in one backend read
    first = run(t, [delta(content="a"), delta(content="b")])
    t.begin_read()
    second = run(t, [delta(content="c")])
    assert first[0]["created_at"] == first[1]["created_at"] != second[0]["created_at"]
