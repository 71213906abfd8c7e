"""bridge/translate/anthropic_input.py: a Messages API request's system, messages (content blocks)
and tools -> OpenAI chat messages and function tools; 400s with Anthropic-style paths such as
``messages.1.content.0``."""

from __future__ import annotations

import json

import pytest

from bridge.errors import ClientRequestError
from bridge.translate.anthropic_input import translate_messages, translate_system, translate_tools


def refused(call, value, message: str) -> None:
    with pytest.raises(ClientRequestError) as info:
        call(value)
    assert info.value.message == message and info.value.status == 400


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def b64_image(data="AAAA", media_type="image/png") -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


# -- system --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("system", [None, "", []])
def test_no_system(system):
    assert translate_system(system) == []


def test_system_string_and_text_blocks():
    assert translate_system("be brief") == [{"role": "system", "content": "be brief"}]
    assert translate_system([text("one"), {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}]) == [
        {"role": "system", "content": "one\n\ntwo"}]


@pytest.mark.parametrize(("system", "message"), [
    (5, "system: must be a string or a list of text blocks"),
    ({"type": "text", "text": "x"}, "system: must be a string or a list of text blocks"),
    ([text("ok"), "plain"], "system.1: must be a text block"),
    ([b64_image()], "system.0: must be a text block"),
    ([{"type": "text", "text": None}], "system.0: must be a text block"),
])
def test_invalid_system(system, message):
    refused(translate_system, system, message)


# -- messages: shape -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("messages", [None, [], "hi", {"role": "user"}])
def test_messages_are_a_non_empty_list(messages):
    refused(translate_messages, messages, "messages: field required (a non-empty list)")


@pytest.mark.parametrize(("messages", "message"), [
    (["hi"], "messages.0: must be an object"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}],
     "messages.1.role: must be 'user' or 'assistant'"),
    ([{"role": "tool", "content": "x"}], "messages.0.role: must be 'user' or 'assistant'"),
    ([{"role": "User", "content": "x"}], "messages.0.role: must be 'user' or 'assistant'"),
    ([{"role": "user"}], "messages.0.content: must be a string or a list of content blocks"),
    ([{"role": "user", "content": {"type": "text"}}],
     "messages.0.content: must be a string or a list of content blocks"),
    ([{"role": "user", "content": [text("a"), {"text": "no type"}]}],
     "messages.0.content.1: must be a content block with a type"),
    ([{"role": "user", "content": ["plain"]}], "messages.0.content.0: must be a content block with a type"),
    ([{"role": "user", "content": [{"type": "text", "text": 5}]}], "messages.0.content.0.text: must be a string"),
])
def test_invalid_messages_name_the_path(messages, message):
    refused(translate_messages, messages, message)


@pytest.mark.parametrize(("role", "kind"), [("user", "document"), ("user", "tool_use"), ("user", "thinking"),
                                            ("assistant", "image"), ("assistant", "tool_result"),
                                            ("assistant", "server_tool_use")])
def test_unsupported_blocks_are_refused_naming_their_type(role, kind):
    refused(translate_messages, [{"role": role, "content": [text("ok"), {"type": kind}]}],
            f"messages.0.content.1: content blocks of type '{kind}' are not supported by this server")


# -- user turns --------------------------------------------------------------------------------------------------
def test_plain_turns_in_order():
    out = translate_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                              {"role": "user", "content": [text("a"), text("b")]}])
    assert out == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                   {"role": "user", "content": "ab"}]  # text-only blocks: one string


def test_images_make_the_content_a_parts_list():
    out = translate_messages([{"role": "user", "content": [
        text("what is"), b64_image("QUJD", "image/webp"),
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}, text("?")]}])
    assert out == [{"role": "user", "content": [
        {"type": "text", "text": "what is"},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,QUJD"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "?"}]}]


@pytest.mark.parametrize("source", [
    None, {}, {"type": "base64", "data": "AAAA"}, {"type": "base64", "media_type": "image/png"},
    {"type": "url"}, {"type": "file", "file_id": "f1"},
])
def test_images_must_be_base64_with_a_media_type_or_url(source):
    refused(translate_messages, [{"role": "user", "content": [{"type": "image", "source": source}]}],
            "messages.0.content.0.source: images must be base64 (with media_type) or url sources")


def test_an_empty_user_content_list_sends_nothing():
    assert translate_messages([{"role": "user", "content": []}]) == []


def test_tool_results_come_first_as_tool_messages_then_the_rest_of_the_turn():
    out = translate_messages([{"role": "user", "content": [
        text("and also"),
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": [text("line 1"), text("line 2")]},
    ]}])
    assert out == [{"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"},
                   {"role": "tool", "tool_call_id": "toolu_2", "content": "line 1\nline 2"},
                   {"role": "user", "content": "and also"}]


def test_a_turn_of_tool_results_only_has_no_user_message():
    out = translate_messages([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}])
    assert out == [{"role": "tool", "tool_call_id": "t", "content": ""}]


def test_tool_result_errors_are_marked():
    out = translate_messages([{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "a", "content": "timeout", "is_error": True},
        {"type": "tool_result", "tool_use_id": "b", "is_error": True},
        {"type": "tool_result", "tool_use_id": "c", "content": "fine", "is_error": "yes"},
    ]}])
    assert [m["content"] for m in out] == ["Error: timeout", "Error", "fine"]


def test_images_in_a_tool_result_follow_in_the_user_message():
    out = translate_messages([{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [text("screenshot:"), b64_image("SU1H")]},
    ]}])
    assert out == [{"role": "tool", "tool_call_id": "t", "content": "screenshot:"},
                   {"role": "user", "content": [{"type": "image_url",
                                                 "image_url": {"url": "data:image/png;base64,SU1H"}}]}]


@pytest.mark.parametrize(("block", "message"), [
    ({"type": "tool_result"}, "messages.0.content.0.tool_use_id: must be a non-empty string"),
    ({"type": "tool_result", "tool_use_id": ""}, "messages.0.content.0.tool_use_id: must be a non-empty string"),
    ({"type": "tool_result", "tool_use_id": 3}, "messages.0.content.0.tool_use_id: must be a non-empty string"),
    ({"type": "tool_result", "tool_use_id": "t", "content": 5},
     "messages.0.content.0.content: must be a string or a list of blocks"),
    ({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]},
     "messages.0.content.0.content.0: content blocks of type 'document' are not supported by this server"),
    ({"type": "tool_result", "tool_use_id": "t", "content": ["plain"]},
     "messages.0.content.0.content.0: content blocks of type None are not supported by this server"),
    ({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text"}]},
     "messages.0.content.0.content.0.text: must be a string"),
])
def test_invalid_tool_results(block, message):
    refused(translate_messages, [{"role": "user", "content": [block]}], message)


# -- assistant turns -------------------------------------------------------------------------------------------
def test_assistant_text_and_tool_use_become_one_message_with_tool_calls():
    out = translate_messages([{"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        text("Let me "), text("check."),
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Zürich"}},
        {"type": "redacted_thinking", "data": "xx"},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time"},
    ]}])
    (message,) = out
    assert message["role"] == "assistant" and message["content"] == "Let me check."
    first, second = message["tool_calls"]
    assert first == {"id": "toolu_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}}  # not \u-escaped
    assert second["function"] == {"name": "get_time", "arguments": "{}"}
    assert json.loads(first["function"]["arguments"]) == {"city": "Zürich"}


def test_assistant_content_is_null_with_only_calls_and_empty_without_anything():
    calls_only = translate_messages([{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}])
    assert calls_only[0]["content"] is None
    thinking_only = translate_messages([{"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]}])
    assert thinking_only == [{"role": "assistant", "content": ""}]
    assert translate_messages([{"role": "assistant", "content": ""}]) == [{"role": "assistant", "content": ""}]


@pytest.mark.parametrize(("block", "message"), [
    ({"type": "tool_use", "name": "f"}, "messages.0.content.0: tool_use needs a string id and name"),
    ({"type": "tool_use", "id": "t"}, "messages.0.content.0: tool_use needs a string id and name"),
    ({"type": "tool_use", "id": "", "name": "f"}, "messages.0.content.0: tool_use needs a string id and name"),
    ({"type": "tool_use", "id": "t", "name": ""}, "messages.0.content.0: tool_use needs a string id and name"),
    ({"type": "tool_use", "id": "t", "name": "f", "input": "{}"}, "messages.0.content.0.input: must be an object"),
    ({"type": "tool_use", "id": "t", "name": "f", "input": None}, "messages.0.content.0.input: must be an object"),
])
def test_invalid_tool_use(block, message):
    refused(translate_messages, [{"role": "assistant", "content": [block]}], message)


def test_paths_count_messages_and_blocks_from_zero():
    refused(translate_messages, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                 {"role": "user", "content": [text("c"), b64_image(), {"type": "image"}]}],
            "messages.2.content.2.source: images must be base64 (with media_type) or url sources")


# -- tools ---------------------------------------------------------------------------------------------------
def test_custom_tools_become_function_tools():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    out = translate_tools([
        {"name": "get_weather", "description": "Weather now", "input_schema": schema},
        {"type": "custom", "name": "noop", "input_schema": {"type": "object"}, "description": 5,
         "cache_control": {"type": "ephemeral"}},
    ])
    assert out == [
        {"type": "function", "function": {"name": "get_weather", "parameters": schema, "description": "Weather now"}},
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
    ]


def test_no_tools():
    assert translate_tools(None) == [] and translate_tools([]) == []


@pytest.mark.parametrize(("tools", "message"), [
    ({"name": "f"}, "tools: must be a list"),
    ("f", "tools: must be a list"),
    (["f"], "tools.0: must be an object"),
    ([{"name": "ok", "input_schema": {}}, {"type": "web_search_20250305", "name": "web_search"}],
     "tools.1: server tools (type 'web_search_20250305') are not supported by this server; "
     "only custom tools with an input_schema"),
    ([{"name": "", "input_schema": {}}], "tools.0.name: must be a non-empty string"),
    ([{"input_schema": {}}], "tools.0.name: must be a non-empty string"),
    ([{"name": "f"}], "tools.0.input_schema: must be an object"),
    ([{"name": "f", "input_schema": "{}"}], "tools.0.input_schema: must be an object"),
])
def test_invalid_tools(tools, message):
    refused(translate_tools, tools, message)
