"""bridge/translate/tool_call_buffer.py: streamed OpenAI tool-call deltas are grouped by index (else
id, else arrival order) and flushed as whole Ollama tool calls with object arguments."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bridge.errors import UpstreamProtocolError
from bridge.translate.tool_call_buffer import ToolCallBuffer


def fn(name=None, arguments=None) -> dict:
    out: dict = {}
    if name is not None:
        out["name"] = name
    if arguments is not None:
        out["arguments"] = arguments
    return out


def delta(index=None, id=None, name=None, arguments=None) -> dict:
    out: dict = {"function": fn(name, arguments)}
    if index is not None:
        out["index"] = index
    if id is not None:
        out["id"] = id
    return out


@contextmanager
def captured(name: str) -> Iterator[list[logging.LogRecord]]:
    """Records of one logger, whatever the ``bridge`` logger's propagation (configure_logging turns it off)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger(name)
    saved = log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)
        log.setLevel(saved)


def flushed(*batches: list) -> list:
    buf = ToolCallBuffer()
    for batch in batches:
        buf.add(batch)
    return buf.flush()


def test_fragments_under_one_index_make_one_call():
    calls = flushed([delta(0, "call_1", "get_weather", "")], [delta(0, arguments='{"city": ')],
                    [delta(0, arguments='"Paris"}')])
    assert calls == [{"id": "call_1", "function": {"index": 0, "name": "get_weather",
                                                   "arguments": {"city": "Paris"}}}]


def test_parallel_calls_are_ordered_by_the_backends_index_not_arrival():
    calls = flushed([delta(1, "b", "second", "{}")], [delta(0, "a", "first", '{"x": 1}')],
                    [delta(1, arguments="")])
    assert [(c["id"], c["function"]["name"], c["function"]["index"]) for c in calls] == [
        ("a", "first", 0), ("b", "second", 1)]
    assert calls[0]["function"]["arguments"] == {"x": 1}


def test_calls_without_an_index_come_after_indexed_ones_in_arrival_order():
    calls = flushed([delta(id="late-1", name="n1")], [delta(5, "idx", "indexed")], [delta(id="late-2", name="n2")])
    assert [c["id"] for c in calls] == ["idx", "late-1", "late-2"]
    assert [c["function"]["index"] for c in calls] == [0, 1, 2]  # renumbered from 0


def test_without_an_index_deltas_are_grouped_by_id():
    calls = flushed([delta(id="a", name="fa", arguments='{"p"')], [delta(id="b", name="fb", arguments="{}")],
                    [delta(id="a", arguments=": 2}")])
    assert [(c["id"], c["function"]["arguments"]) for c in calls] == [("a", {"p": 2}), ("b", {})]


def test_without_index_or_id_a_named_delta_opens_a_call_and_a_bare_fragment_continues_the_last():
    calls = flushed([delta(name="one", arguments='{"a":')], [delta(arguments="1}")],
                    [delta(name="two")], [delta(arguments='{"b": 2}')])
    assert calls == [{"function": {"index": 0, "name": "one", "arguments": {"a": 1}}},
                     {"function": {"index": 1, "name": "two", "arguments": {"b": 2}}}]


def test_a_named_delta_after_a_bare_fragment_starts_a_new_call():
    calls = flushed([delta(arguments='{"q": "x"}')], [delta(name="search")])
    # The first call never got a name (dropped); the named delta opened the second.
    assert calls == [{"function": {"index": 0, "name": "search", "arguments": {}}}]


def test_a_different_id_under_a_reused_index_is_a_new_call():
    calls = flushed([delta(0, "call_a", "fa", '{"n": 1}')], [delta(0, "call_b", "fb", '{"n": 2}')],
                    [delta(0, arguments="")])
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("call_a", "fa", {"n": 1}), ("call_b", "fb", {"n": 2})]


def test_the_same_id_under_its_index_or_an_id_only_on_the_first_delta_stays_one_call():
    calls = flushed([delta(0, "call_a", "fa", '{"n":')], [delta(0, "call_a", arguments=" 1}")])
    assert len(calls) == 1 and calls[0]["function"]["arguments"] == {"n": 1}
    calls = flushed([delta(0, name="fa", arguments="{")], [delta(0, "late-id", arguments="}")])
    assert calls == [{"id": "late-id", "function": {"index": 0, "name": "fa", "arguments": {}}}]


def test_without_an_index_a_new_id_opens_a_new_call():
    with captured("bridge.translate.responses") as records:
        calls = flushed([delta(name="fa", arguments='{"k":')], [delta(id="x", arguments=' "v"}')])
    # "fa" keeps only its own (cut) fragment; the id-only call has no name and is dropped.
    assert calls == [{"function": {"index": 0, "name": "fa", "arguments": {}}}]
    assert [r.getMessage() for r in records] == ["tool call 'fa': arguments are not valid JSON; sending {}"]


def test_the_first_name_wins_and_empty_ids_and_names_are_ignored():
    calls = flushed([delta(0, "", "", "")], [delta(0, "id0", "real", "{}")], [delta(0, "id0", "other")])
    assert calls == [{"id": "id0", "function": {"index": 0, "name": "real", "arguments": {}}}]


def test_arguments_sent_whole_as_an_object_win_over_fragments():
    calls = flushed([delta(0, "c", "f", '{"from": "text"}')], [delta(0, arguments={"from": "object"})])
    assert calls[0]["function"]["arguments"] == {"from": "object"}
    assert flushed([delta(0, "c", "f", ["not", "an", "object"])])[0]["function"]["arguments"] == {
        "value": ["not", "an", "object"]}


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}),
    ('{"a": [1, 2]}', {"a": [1, 2]}),
    ("[1, 2]", {"value": [1, 2]}),
    ("42", {"value": 42}),
])
def test_arguments_always_become_an_object(text, expected):
    assert flushed([delta(0, "c", "f", text)])[0]["function"]["arguments"] == expected


def test_arguments_that_are_not_json_become_an_empty_object_with_a_warning():
    with captured("bridge.translate.responses") as records:
        calls = flushed([delta(0, "c", "f", '{"cut": ')])
    assert calls[0]["function"]["arguments"] == {}
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "tool call 'f': arguments are not valid JSON; sending {}")]


def test_a_call_without_a_name_is_dropped_with_a_warning():
    with captured("bridge.translate.stream") as records:
        calls = flushed([delta(0, "c0", arguments="{}")], [delta(1, "c1", "kept", "{}")])
    assert calls == [{"id": "c1", "function": {"index": 0, "name": "kept", "arguments": {}}}]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "backend streamed a tool call without a function name; dropped")]


def test_a_boolean_index_is_not_an_index():
    calls = flushed([delta(True, name="a")], [delta(True, name="b")])
    assert [c["function"]["name"] for c in calls] == ["a", "b"]


def test_a_delta_without_a_function_object_only_contributes_its_id():
    buf = ToolCallBuffer()
    buf.add([{"index": 0, "id": "c", "function": "oops"}, {"index": 0, "function": {"name": "f"}}])
    assert buf.flush() == [{"id": "c", "function": {"index": 0, "name": "f", "arguments": {}}}]


def test_flush_empties_the_buffer():
    buf = ToolCallBuffer()
    buf.add([delta(0, "c", "f", "{}")])
    assert len(buf.flush()) == 1
    assert buf.flush() == []
    buf.add([delta(0, "d", "g", "{}")])  # index 0 again: a fresh call, not the flushed one
    assert buf.flush() == [{"id": "d", "function": {"index": 0, "name": "g", "arguments": {}}}]


def test_none_is_no_tool_calls_and_an_empty_list_adds_nothing():
    buf = ToolCallBuffer()
    buf.add(None)
    buf.add([])
    assert buf.flush() == []


@pytest.mark.parametrize(("deltas", "message"), [
    ({"index": 0}, "backend stream tool_calls is not a list"),
    ("calls", "backend stream tool_calls is not a list"),
    ([delta(0, "c", "f"), "x"], "backend stream tool call is not an object"),
    ([None], "backend stream tool call is not an object"),
])
def test_malformed_tool_calls_are_a_protocol_error(deltas, message):
    with pytest.raises(UpstreamProtocolError, match=f"^{message}$"):
        ToolCallBuffer().add(deltas)
