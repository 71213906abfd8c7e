"""bridge/translate/completion.py: reading a backend's OpenAI answer (the choice of an answer or of a
stream event, the error an event carries, reasoning text, tool-call arguments)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bridge.errors import UpstreamProtocolError
from bridge.translate.completion import error_message, first_choice, parse_arguments, reasoning_text, stream_choice


@contextmanager
def warnings_logged() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("bridge.translate.responses")
    saved = log.level
    log.setLevel(logging.DEBUG)  # whatever level an app built by another test left on "bridge"
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)
        log.setLevel(saved)


# -- first_choice ----------------------------------------------------------------------------------------
def test_first_choice_is_choices_0():
    choice = {"index": 0, "message": {"content": "a"}}
    assert first_choice({"choices": [choice, {"index": 1}]}) is choice


@pytest.mark.parametrize("resp", [None, [], "text", 3])
def test_a_response_that_is_not_an_object_is_a_protocol_error(resp):
    with pytest.raises(UpstreamProtocolError, match="^backend response is not a JSON object$"):
        first_choice(resp)


@pytest.mark.parametrize("resp", [{}, {"choices": None}, {"choices": []}, {"choices": {"0": {}}},
                                  {"choices": ["text"]}, {"choices": [None]}])
def test_a_response_without_a_usable_choice_is_a_protocol_error(resp):
    with pytest.raises(UpstreamProtocolError, match="^backend response has no choices$") as info:
        first_choice(resp)
    assert info.value.status == 502 and info.value.outcome == "protocol_error"


# -- stream_choice ---------------------------------------------------------------------------------------
def test_stream_choice_is_choices_0():
    choice = {"index": 0, "delta": {"content": "x"}}
    assert stream_choice({"choices": [choice]}) is choice


@pytest.mark.parametrize("event", [{"usage": {"prompt_tokens": 1}}, {"choices": None}, {"choices": []}])
def test_usage_only_events_have_no_choice(event):
    assert stream_choice(event) is None


@pytest.mark.parametrize("choices", [{}, "x", 0, [None], ["x"], [[{"delta": {}}]]])
def test_malformed_stream_choices_are_a_protocol_error(choices):
    with pytest.raises(UpstreamProtocolError, match="^backend stream event has malformed choices$"):
        stream_choice({"choices": choices})


# -- error_message ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("event", [
    {"choices": []}, {}, {"error": None}, {"error": ""}, {"error": {}}, {"error": False}, {"error": []},
    {"object": "error", "choices": [], "message": "a chunk merely named so"},
])
def test_events_without_an_error(event):
    assert error_message(event) is None


@pytest.mark.parametrize(("event", "message"), [
    ({"error": {"message": "context length exceeded", "type": "invalid_request_error"}}, "context length exceeded"),
    ({"error": "overloaded"}, "overloaded"),
    ({"error": {"code": 500}}, '{"code": 500}'),
    ({"error": {"message": "", "code": 1}}, '{"message": "", "code": 1}'),
    ({"error": {"message": {"detail": "x"}}}, '{"detail": "x"}'),
    ({"error": ["a", "b"]}, '["a", "b"]'),
    ({"error": 7}, "7"),
])
def test_the_error_an_event_carries(event, message):
    assert error_message(event) == message


@pytest.mark.parametrize(("event", "message"), [
    ({"object": "error", "message": "vLLM failed", "code": 400}, "vLLM failed"),
    ({"object": "error"}, "backend stream error"),
    ({"object": "error", "message": ""}, "backend stream error"),
    ({"object": "error", "message": {"why": 1}}, '{"why": 1}'),
])
def test_vllm_error_objects(event, message):
    assert error_message(event) == message


# -- reasoning_text --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("source", "text"), [
    ({"reasoning_content": "deepseek"}, "deepseek"),
    ({"reasoning": "openrouter"}, "openrouter"),
    ({"reasoning_content": "first", "reasoning": "second"}, "first"),
    ({"reasoning_content": "", "reasoning": "second"}, "second"),
    ({"reasoning_content": None, "reasoning": {"effort": "high"}}, ""),
    ({"reasoning_content": ["x"]}, ""),
    ({"content": "not reasoning"}, ""),
])
def test_reasoning_under_either_name(source, text):
    assert reasoning_text(source) == text


# -- parse_arguments -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("arguments", "expected"), [
    (None, {}),
    ("", {}),
    ("null", {}),
    (" null ", {}),
    ({"a": 1}, {"a": 1}),
    ('{"a": {"b": [1, null]}}', {"a": {"b": [1, None]}}),
    ("[1, 2]", {"value": [1, 2]}),
    ('"text"', {"value": "text"}),
    ("3.5", {"value": 3.5}),
    ([1, 2], {"value": [1, 2]}),
    (7, {"value": 7}),
    (False, {"value": False}),
])
def test_arguments_always_become_an_object(arguments, expected):
    with warnings_logged() as records:
        assert parse_arguments(arguments, "f") == expected
    assert records == []


def test_an_object_is_passed_through_as_is():
    arguments = {"a": 1}
    assert parse_arguments(arguments) is arguments


@pytest.mark.parametrize("text", ['{"cut": ', "not json", "{'single': 1}", "NaN-ish"])
def test_arguments_that_are_not_json_become_empty_with_a_warning_naming_the_tool(text):
    with warnings_logged() as records:
        assert parse_arguments(text, "get_weather") == {}
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "tool call 'get_weather': arguments are not valid JSON; sending {}")]
