"""bridge/translate/chat_messages.py: Ollama chat messages (text, images, tool calls, tool results)
-> OpenAI chat messages, tool results linked to the calls they answer; 400s naming the field."""

from __future__ import annotations

import json

import pytest

from bridge.errors import ClientRequestError
from bridge.translate.chat_messages import image_list, translate_messages, with_images

PNG = "iVBORw0KGgoAAAANSUhEUg"
JPEG = "/9j/4AAQSkZJRg"
GIF = "R0lGODlhAQABAIAAAP"
WEBP = "UklGRhYAAABXRUJQ"


def refused(messages, message: str) -> None:
    with pytest.raises(ClientRequestError) as info:
        translate_messages(messages)
    assert info.value.message == message and info.value.status == 400


def assistant_calls(*names: str, ids: tuple[str | None, ...] | None = None) -> dict:
    calls = []
    for k, name in enumerate(names):
        call: dict = {"function": {"name": name, "arguments": {"k": k}}}
        if ids is not None and ids[k] is not None:
            call["id"] = ids[k]
        calls.append(call)
    return {"role": "assistant", "content": "", "tool_calls": calls}


# -- plain messages ------------------------------------------------------------------------------------------
def test_text_messages_keep_their_order_and_roles():
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}]
    assert translate_messages(messages) == messages


def test_roles_are_lower_cased_and_other_fields_dropped():
    out = translate_messages([{"role": "USER", "content": "hi", "thinking": "x", "extra": 1},
                              {"role": "Developer", "content": "d"}])
    assert out == [{"role": "user", "content": "hi"}, {"role": "developer", "content": "d"}]


def test_missing_or_null_content_is_empty_text():
    assert translate_messages([{"role": "user"}, {"role": "user", "content": None}]) == [
        {"role": "user", "content": ""}, {"role": "user", "content": ""}]


def test_no_messages_is_no_messages():
    assert translate_messages([]) == []


@pytest.mark.parametrize(("messages", "error"), [
    (["hi"], "messages[0] must be an object"),
    ([{"role": "user", "content": "ok"}, None], "messages[1] must be an object"),
    ([{"content": "x"}], "messages[0].role must be a non-empty string"),
    ([{"role": "", "content": "x"}], "messages[0].role must be a non-empty string"),
    ([{"role": 1, "content": "x"}], "messages[0].role must be a non-empty string"),
    ([{"role": "user", "content": ["parts"]}], "messages[0].content must be a string"),
    ([{"role": "user", "content": 5}], "messages[0].content must be a string"),
    ([{"role": "user", "content": "x", "images": "abc"}], "messages[0].images must be a list of base64 strings"),
    ([{"role": "user", "content": "x", "images": [1]}], "messages[0].images must be a list of base64 strings"),
    ([{"role": "user", "content": "x", "images": [None]}], "messages[0].images must be a list of base64 strings"),
])
def test_malformed_messages_are_a_400_naming_the_field(messages, error):
    refused(messages, error)


# -- images ------------------------------------------------------------------------------------------------
def test_images_become_content_parts_with_sniffed_data_uris():
    out = translate_messages([{"role": "user", "content": "what is this?",
                               "images": [PNG, JPEG, GIF, WEBP, "AAAAunknown", "data:image/avif;base64,AAA"]}])
    assert out == [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"}},
        {"type": "image_url", "image_url": {"url": f"data:image/gif;base64,{GIF}"}},
        {"type": "image_url", "image_url": {"url": f"data:image/webp;base64,{WEBP}"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAAunknown"}},  # jpeg by default
        {"type": "image_url", "image_url": {"url": "data:image/avif;base64,AAA"}},  # data: URIs kept
    ]}]


def test_empty_images_are_skipped_and_no_images_leave_text_content():
    assert translate_messages([{"role": "user", "content": "x", "images": ["", ""]}]) == [
        {"role": "user", "content": "x"}]
    assert translate_messages([{"role": "user", "content": "x", "images": None}]) == [{"role": "user", "content": "x"}]
    assert translate_messages([{"role": "user", "content": "x", "images": []}]) == [{"role": "user", "content": "x"}]


def test_image_list_and_with_images_directly():
    assert image_list(None, "w") == []
    assert image_list(["a", "", "b"], "w") == ["a", "b"]
    with pytest.raises(ClientRequestError, match=r"^images\[0\] must be a list of base64 strings$"):
        image_list({"a": 1}, "images[0]")
    message = {"role": "user", "content": "t"}
    assert with_images(message, []) is message
    assert with_images(message, [PNG]) == {"role": "user", "content": [
        {"type": "text", "text": "t"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}
    assert message == {"role": "user", "content": "t"}  # not modified


# -- tool calls and their results --------------------------------------------------------------------------
def test_assistant_tool_calls_get_string_arguments_and_ids():
    out = translate_messages([{"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_x", "function": {"name": "get_weather", "arguments": {"city": "Paris", "n": 2}}},
        {"function": {"name": "get_time", "arguments": None}},
        {"function": {"name": "raw", "arguments": '{"already": "json"}'}},
    ]}])
    (message,) = out
    assert message["role"] == "assistant" and message["content"] is None
    calls = message["tool_calls"]
    assert [c["id"] for c in calls] == ["call_x", "call_0_1", "call_0_2"]  # synthesised: call_<message>_<call>
    assert all(c["type"] == "function" for c in calls)
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris", "n": 2}
    assert calls[1]["function"] == {"name": "get_time", "arguments": "{}"}
    assert calls[2]["function"]["arguments"] == '{"already": "json"}'  # a string goes through as is


def test_assistant_text_beside_tool_calls_is_kept():
    (message,) = translate_messages([{"role": "assistant", "content": "let me check",
                                      "tool_calls": [{"function": {"name": "f"}}]}])
    assert message["content"] == "let me check"


def test_an_empty_tool_calls_list_is_a_plain_assistant_message():
    assert translate_messages([{"role": "assistant", "content": "hi", "tool_calls": []}]) == [
        {"role": "assistant", "content": "hi"}]


@pytest.mark.parametrize(("tool_calls", "error"), [
    ({"function": {"name": "f"}}, "messages[0].tool_calls must be a list"),
    ("f", "messages[0].tool_calls must be a list"),
    (["f"], "messages[0].tool_calls[0].function.name must be a non-empty string"),
    ([{"function": {"name": "ok"}}, {"function": {}}],
     "messages[0].tool_calls[1].function.name must be a non-empty string"),
    ([{"function": {"name": ""}}], "messages[0].tool_calls[0].function.name must be a non-empty string"),
    ([{"function": "f"}], "messages[0].tool_calls[0].function.name must be a non-empty string"),
    ([{"function": {"name": "f", "arguments": [1]}}], "messages[0].tool_calls[0].function.arguments must be an object"),
    ([{"function": {"name": "f", "arguments": 3}}], "messages[0].tool_calls[0].function.arguments must be an object"),
])
def test_malformed_tool_calls_are_a_400(tool_calls, error):
    refused([{"role": "assistant", "tool_calls": tool_calls}], error)


def test_tool_results_are_linked_to_calls_in_order_when_clients_send_no_id():
    out = translate_messages([{"role": "user", "content": "q"}, assistant_calls("a", "b"),
                              {"role": "tool", "content": "ra"}, {"role": "tool", "content": "rb"}])
    assert out[2:] == [{"role": "tool", "content": "ra", "tool_call_id": "call_1_0"},
                       {"role": "tool", "content": "rb", "tool_call_id": "call_1_1"}]


@pytest.mark.parametrize("key", ["tool_name", "name"])
def test_tool_results_are_linked_by_tool_name(key):
    out = translate_messages([assistant_calls("a", "b", "a"), {"role": "tool", "content": "rb", key: "b"},
                              {"role": "tool", "content": "ra1", key: "a"},
                              {"role": "tool", "content": "ra2", key: "a"}])
    assert [m["tool_call_id"] for m in out[1:]] == ["call_0_1", "call_0_0", "call_0_2"]


def test_an_unknown_tool_name_takes_the_first_unanswered_call():
    out = translate_messages([assistant_calls("a", "b"), {"role": "tool", "content": "r", "tool_name": "zzz"}])
    assert out[1]["tool_call_id"] == "call_0_0"


def test_an_explicit_tool_call_id_is_used_and_marks_that_call_answered():
    out = translate_messages([assistant_calls("a", "b", ids=("id-a", "id-b")),
                              {"role": "tool", "content": "rb", "tool_call_id": "id-b"},
                              {"role": "tool", "content": "ra"}])
    assert [m["tool_call_id"] for m in out[1:]] == ["id-b", "id-a"]
    # An id nobody asked for is passed on: the backend judges it.
    assert translate_messages([{"role": "tool", "content": "r", "tool_call_id": "elsewhere"}]) == [
        {"role": "tool", "content": "r", "tool_call_id": "elsewhere"}]


def test_tool_role_is_case_insensitive():
    out = translate_messages([assistant_calls("a"), {"role": "TOOL", "content": "r"}])
    assert out[1] == {"role": "tool", "content": "r", "tool_call_id": "call_0_0"}


def test_a_tool_result_must_answer_a_preceding_call():
    error = "messages[0]: a message with role 'tool' must answer a preceding assistant tool call"
    refused([{"role": "tool", "content": "r"}], error)
    # Every call answered already:
    refused([assistant_calls("a"), {"role": "tool", "content": "r"}, {"role": "tool", "content": "again"}],
            error.replace("[0]", "[2]"))
    # A later assistant turn without calls ends the previous turn's calls:
    refused([assistant_calls("a"), {"role": "assistant", "content": "done"}, {"role": "tool", "content": "r"}],
            error.replace("[0]", "[2]"))


def test_a_new_assistant_turn_replaces_the_pending_calls():
    out = translate_messages([assistant_calls("a", "b"), {"role": "tool", "content": "ra"},
                              assistant_calls("c"), {"role": "tool", "content": "rc"}])
    assert out[3]["tool_call_id"] == "call_2_0"


def test_user_messages_between_calls_and_results_keep_the_calls_pending():
    out = translate_messages([assistant_calls("a"), {"role": "user", "content": "meanwhile"},
                              {"role": "tool", "content": "ra"}])
    assert out[2]["tool_call_id"] == "call_0_0"
