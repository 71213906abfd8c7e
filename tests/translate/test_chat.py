"""/api/chat + /api/generate request and non-stream response translation (reference 2.1-2.13, 3.1, 3.2)."""

from __future__ import annotations

import json
import logging

import pytest

from bridge.errors import ClientRequestError, UpstreamProtocolError
from bridge.translate.chat import THINK_CONTROLS, chat_request, generate_request, keeps_thinking
from bridge.translate.responses import Timings, chat_response, generate_response

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"
JPEG = "/9j/4AAQSkZJRgABAQ"
GIF = "R0lGODlhAQABAIAAAP"
WEBP = "UklGRiQAAABXRUJQVlA4"
TIMINGS = Timings(total_ns=5_000_000, load_ns=0, prompt_eval_ns=1_000_000, eval_ns=3_000_000)
CREATED = "2025-07-07T20:22:19.184789Z"


def chat(body, *, stream=False, think_control="reasoning_effort"):
    return chat_request({"model": "m1", **body}, "backend-m1", stream=stream, think_control=think_control)


def gen(body, *, stream=False, think_control="reasoning_effort"):
    return generate_request({"model": "m1", **body}, "backend-m1", stream=stream, think_control=think_control)


USER = [{"role": "user", "content": "hi"}]


# --------------------------------------------------------------------------- chat requests


def test_minimal_chat_request():
    out = chat({"messages": USER})
    assert out == {"model": "backend-m1", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    json.dumps(out)


def test_stream_asks_for_usage():
    out = chat({"messages": USER}, stream=True)
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


def test_non_stream_has_no_stream_options():
    assert "stream_options" not in chat({"messages": USER}, stream=False)


def test_backend_model_used_not_client_name():
    out = chat_request({"model": "m1:latest", "messages": USER}, "m1", stream=False, think_control="off")
    assert out["model"] == "m1"


def test_roles_lowercased_and_missing_content_becomes_empty():
    out = chat({"messages": [{"role": "SYSTEM", "content": "s"}, {"role": "user"}]})
    assert out["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": ""}]


def test_assistant_thinking_dropped_from_history():
    out = chat({"messages": USER + [{"role": "assistant", "content": "a", "thinking": "hmm"}]})
    assert out["messages"][1] == {"role": "assistant", "content": "a"}


def test_case_15_options_reach_the_body():
    out = chat({"messages": USER,
                "options": {"num_predict": 5, "stop": ["\n"], "temperature": 0, "seed": 1, "top_p": 0.5}})
    assert (out["max_tokens"], out["stop"], out["temperature"], out["seed"], out["top_p"]) == (5, ["\n"], 0, 1, 0.5)


def test_case_16_unknown_options_do_not_reach_the_body():
    out = chat({"messages": USER, "options": {"num_ctx": 8192, "num_gpu": 1, "top_k": -1, "num_predict": -1}})
    assert set(out) == {"model", "messages", "stream"}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"messages": "hi"}, "messages"),
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": 1, "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x", "images": "abc"}]}, "messages[0].images"),
        ({"messages": [{"role": "user", "content": "x", "images": [1]}]}, "messages[0].images"),
        ({"messages": USER, "options": "x"}, "options"),
        ({"messages": USER, "options": {"temperature": "hot"}}, "temperature"),
        ({"messages": USER, "tools": "x"}, "tools"),
        ({"messages": USER, "tools": ["x"]}, "tools"),
        ({"messages": USER, "format": "yaml"}, "format"),
        ({"messages": USER, "format": 5}, "format"),
        ({"messages": USER, "think": "extreme"}, "think"),
        ({"messages": USER, "think": 1}, "think"),
        ({"messages": USER, "logprobs": "yes"}, "logprobs"),
        ({"messages": USER, "top_logprobs": 21}, "top_logprobs"),
        ({"messages": USER, "top_logprobs": "3"}, "top_logprobs"),
        ({"messages": USER, "model": 5}, "model"),
    ],
)
def test_invalid_chat_input_is_a_400_naming_the_field(body, field):
    with pytest.raises(ClientRequestError) as err:
        chat_request({"model": "m1", **body}, "backend-m1", stream=False, think_control="both")
    assert field in err.value.message
    assert err.value.status == 400


def test_body_not_an_object_rejected():
    with pytest.raises(ClientRequestError):
        chat_request(["x"], "m", stream=False, think_control="off")  # type: ignore[arg-type]


@pytest.mark.parametrize("model", ["", None, 5])
def test_backend_model_must_be_non_empty_string(model):
    with pytest.raises(ClientRequestError, match="model"):
        chat_request({"messages": USER}, model, stream=False, think_control="off")  # type: ignore[arg-type]


def test_unknown_think_control_is_a_programming_error():
    with pytest.raises(ValueError):
        chat_request({"model": "m", "messages": USER}, "m", stream=False, think_control="maybe")


# images (2.12, case 24)


def test_case_24_png_image_becomes_parts():
    out = chat({"messages": [{"role": "user", "content": "what?", "images": [PNG]}]})
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]


@pytest.mark.parametrize(
    "data, mime",
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp"), ("AAAA", "image/jpeg")],
)
def test_mime_sniffed_from_base64_prefix(data, mime):
    out = chat({"messages": [{"role": "user", "content": "x", "images": [data]}]})
    assert out["messages"][0]["content"][1]["image_url"]["url"] == f"data:{mime};base64,{data}"


def test_data_uri_kept_as_is_and_several_images_in_order():
    uri = "data:image/webp;base64,UklGR"
    out = chat({"messages": [{"role": "user", "content": "x", "images": [uri, PNG]}]})
    urls = [p["image_url"]["url"] for p in out["messages"][0]["content"][1:]]
    assert urls == [uri, f"data:image/png;base64,{PNG}"]


def test_empty_images_skipped():
    out = chat({"messages": [{"role": "user", "content": "x", "images": []},
                             {"role": "user", "content": "y", "images": None}]})
    assert out["messages"] == [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]
    out = chat({"messages": [{"role": "user", "content": "x", "images": [""]}]})
    assert out["messages"][0]["content"] == "x"


# tools (2.11, cases 19, 22, 23)

FN = {"type": "function",
      "function": {"name": "fn", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}


def test_case_23_empty_tools_dropped():
    assert "tools" not in chat({"messages": USER, "tools": []})
    assert "tools" not in chat({"messages": USER, "tools": None})


def test_tools_passed_through_unchanged():
    assert chat({"messages": USER, "tools": [FN]})["tools"] == [FN]


def test_case_22_tool_history_links_synthesised_id():
    msgs = [
        {"role": "user", "content": "add"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "fn", "arguments": {"a": 1}}}]},
        {"role": "tool", "content": "3", "tool_name": "fn"},
    ]
    out = chat({"messages": msgs, "tools": [FN]})["messages"]
    call = out[1]["tool_calls"][0]
    assert out[1]["role"] == "assistant" and out[1]["content"] is None
    assert call == {"id": "call_1_0", "type": "function", "function": {"name": "fn", "arguments": '{"a": 1}'}}
    assert json.loads(call["function"]["arguments"]) == {"a": 1}
    assert out[2] == {"role": "tool", "content": "3", "tool_call_id": "call_1_0"}


def test_client_call_id_kept_and_tool_call_id_used():
    msgs = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "call_abc", "function": {"name": "fn", "arguments": {}}}]},
        {"role": "tool", "content": "r", "tool_call_id": "call_abc"},
    ]
    out = chat({"messages": msgs})["messages"]
    assert out[1]["tool_calls"][0]["id"] == "call_abc"
    assert out[2]["tool_call_id"] == "call_abc"


def test_assistant_content_kept_when_not_empty():
    msgs = USER + [{"role": "assistant", "content": "let me",
                    "tool_calls": [{"function": {"name": "fn", "arguments": {}}}]},
                   {"role": "tool", "content": "r"}]
    assert chat({"messages": msgs})["messages"][1]["content"] == "let me"


def test_parallel_results_matched_by_name_then_order():
    msgs = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [
            {"function": {"name": "a", "arguments": {}}},
            {"function": {"name": "b", "arguments": {}}},
            {"function": {"name": "a", "arguments": {"n": 2}}},
        ]},
        {"role": "tool", "content": "rb", "tool_name": "b"},
        {"role": "tool", "content": "ra1", "name": "a"},  # legacy key
        {"role": "tool", "content": "r?"},  # no name: next unanswered
    ]
    out = chat({"messages": msgs})["messages"]
    assert [m["tool_call_id"] for m in out[2:]] == ["call_1_1", "call_1_0", "call_1_2"]


def test_unknown_tool_name_falls_back_to_next_unanswered():
    msgs = [USER[0], {"role": "assistant", "tool_calls": [{"function": {"name": "a", "arguments": {}}}]},
            {"role": "tool", "content": "r", "tool_name": "zzz"}]
    assert chat({"messages": msgs})["messages"][2]["tool_call_id"] == "call_1_0"


def test_ids_synthesised_per_message_index_across_turns():
    msgs = [
        USER[0],
        {"role": "assistant", "tool_calls": [{"function": {"name": "a", "arguments": {}}}]},
        {"role": "tool", "content": "1", "tool_name": "a"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "a", "arguments": {}}}]},
        {"role": "tool", "content": "2", "tool_name": "a"},
    ]
    out = chat({"messages": msgs})["messages"]
    assert out[2]["tool_call_id"] == "call_1_0"
    assert out[4]["tool_call_id"] == "call_3_0"


def test_tool_message_without_preceding_call_is_400():
    with pytest.raises(ClientRequestError, match="tool"):
        chat({"messages": [USER[0], {"role": "tool", "content": "3", "tool_name": "fn"}]})


def test_more_tool_results_than_calls_is_400():
    msgs = [USER[0], {"role": "assistant", "tool_calls": [{"function": {"name": "a", "arguments": {}}}]},
            {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}]
    with pytest.raises(ClientRequestError, match=r"messages\[3\]"):
        chat({"messages": msgs})


def test_string_and_missing_arguments_accepted():
    msgs = [USER[0], {"role": "assistant", "tool_calls": [
        {"function": {"name": "a", "arguments": '{"x": 1}'}}, {"function": {"name": "b"}}]}]
    calls = chat({"messages": msgs})["messages"][1]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"x": 1}', "{}"]


@pytest.mark.parametrize(
    "tool_calls",
    ["x", [{"function": {}}], [{"function": {"name": ""}}], ["fn"], [{"function": {"name": "a", "arguments": [1]}}]],
)
def test_bad_tool_calls_history_is_400(tool_calls):
    with pytest.raises(ClientRequestError, match="tool_calls"):
        chat({"messages": [USER[0], {"role": "assistant", "tool_calls": tool_calls}]})


# format (2.8, cases 17, 18)


def test_case_17_format_json():
    assert chat({"messages": USER, "format": "json"})["response_format"] == {"type": "json_object"}


def test_case_18_format_schema():
    schema = {"title": "Weather report!", "type": "object", "properties": {"t": {"type": "number"}}}
    rf = chat({"messages": USER, "format": schema})["response_format"]
    assert rf == {"type": "json_schema", "json_schema": {"name": "Weather_report_", "schema": schema, "strict": False}}


@pytest.mark.parametrize("title", [None, 5, "", "!!!", "   "])
def test_schema_name_defaults_to_response(title):
    schema = {"type": "object"} if title is None else {"type": "object", "title": title}
    assert chat({"messages": USER, "format": schema})["response_format"]["json_schema"]["name"] == "response"


def test_schema_name_capped_at_64():
    rf = chat({"messages": USER, "format": {"title": "x" * 100}})["response_format"]
    assert rf["json_schema"]["name"] == "x" * 64


@pytest.mark.parametrize("fmt", ["", None])
def test_empty_format_sends_nothing(fmt):
    assert "response_format" not in chat({"messages": USER, "format": fmt})


# think (2.9, cases 25, 26)


@pytest.mark.parametrize(
    "think, effort", [(True, "medium"), ("low", "low"), ("medium", "medium"), ("high", "high"), ("max", "high")]
)
def test_think_levels_to_reasoning_effort(think, effort):
    assert chat({"messages": USER, "think": think})["reasoning_effort"] == effort


def test_think_unset_sends_nothing():
    for control in THINK_CONTROLS:
        out = chat({"messages": USER}, think_control=control)
        assert "reasoning_effort" not in out and "chat_template_kwargs" not in out


@pytest.mark.parametrize(
    "control, expected",
    [
        ("reasoning_effort", {"reasoning_effort": "none"}),
        ("chat_template_kwargs", {"chat_template_kwargs": {"enable_thinking": False}}),
        ("both", {"reasoning_effort": "none", "chat_template_kwargs": {"enable_thinking": False}}),
        ("off", {}),
    ],
)
def test_case_26_think_false_per_control(control, expected):
    out = chat({"messages": USER, "think": False}, think_control=control)
    got = {k: out[k] for k in ("reasoning_effort", "chat_template_kwargs") if k in out}
    assert got == expected


@pytest.mark.parametrize(
    "control, expected",
    [
        ("reasoning_effort", {"reasoning_effort": "high"}),
        ("chat_template_kwargs", {"chat_template_kwargs": {"enable_thinking": True}}),
        ("both", {"reasoning_effort": "high", "chat_template_kwargs": {"enable_thinking": True}}),
        ("off", {}),
    ],
)
def test_think_on_per_control(control, expected):
    out = chat({"messages": USER, "think": "high"}, think_control=control)
    got = {k: out[k] for k in ("reasoning_effort", "chat_template_kwargs") if k in out}
    assert got == expected


def test_logprobs_forwarded():
    out = chat({"messages": USER, "logprobs": True, "top_logprobs": 3})
    assert (out["logprobs"], out["top_logprobs"]) == (True, 3)


def test_keeps_thinking():
    assert keeps_thinking({}) is True
    assert keeps_thinking({"think": True}) is True
    assert keeps_thinking({"think": "high"}) is True
    assert keeps_thinking({"think": None}) is True
    assert keeps_thinking({"think": False}) is False


# --------------------------------------------------------------------------- generate requests


def test_case_27_generate_prompt_becomes_user_message():
    kind, out = gen({"prompt": "hi"})
    assert kind == "chat"
    assert out["messages"] == [{"role": "user", "content": "hi"}]
    assert out["model"] == "backend-m1"


def test_case_28_generate_system_first_and_stream_usage():
    kind, out = gen({"prompt": "hi", "system": "be brief"}, stream=True)
    assert kind == "chat"
    assert out["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert out["stream_options"] == {"include_usage": True}


def test_generate_images_options_format_think():
    kind, out = gen({"prompt": "what?", "images": [JPEG], "options": {"temperature": 0.2},
                     "format": "json", "think": False}, think_control="chat_template_kwargs")
    assert out["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert out["temperature"] == 0.2
    assert out["response_format"] == {"type": "json_object"}
    assert out["chat_template_kwargs"] == {"enable_thinking": False}


def test_generate_ignores_template_and_context_without_raw():
    kind, out = gen({"prompt": "hi", "template": "{{ .Prompt }}", "context": [1, 2]})
    assert kind == "chat" and out["messages"] == [{"role": "user", "content": "hi"}]


def test_case_29_raw_with_suffix_goes_to_completions_verbatim():
    kind, out = gen({"prompt": "def f(", "suffix": "return x", "raw": True, "options": {"num_predict": 10}},
                    stream=True)
    assert kind == "completions"
    assert out == {"model": "backend-m1", "prompt": "def f(", "suffix": "return x", "stream": True,
                   "stream_options": {"include_usage": True}, "max_tokens": 10}


def test_suffix_alone_goes_to_completions():
    kind, out = gen({"prompt": "a", "suffix": "b"})
    assert kind == "completions" and out["suffix"] == "b" and "stream_options" not in out


def test_raw_alone_goes_to_completions_without_suffix():
    kind, out = gen({"prompt": "<s>[INST] hi [/INST]", "raw": True})
    assert kind == "completions" and out["prompt"] == "<s>[INST] hi [/INST]" and "suffix" not in out


def test_completions_logprobs_as_integer():
    _, out = gen({"prompt": "a", "raw": True, "logprobs": True, "top_logprobs": 2})
    assert out["logprobs"] == 2
    _, out = gen({"prompt": "a", "raw": True, "logprobs": True})
    assert out["logprobs"] == 0
    _, out = gen({"prompt": "a", "raw": True, "logprobs": False})
    assert "logprobs" not in out


@pytest.mark.parametrize("extra", [{"system": "s"}, {"template": "t"}, {"context": [1]}])
def test_raw_with_system_template_or_context_is_400(extra):
    with pytest.raises(ClientRequestError, match="raw"):
        gen({"prompt": "x", "raw": True, **extra})


def test_raw_with_images_is_400():
    with pytest.raises(ClientRequestError, match="images"):
        gen({"prompt": "x", "raw": True, "images": [PNG]})


@pytest.mark.parametrize(
    "body, field",
    [({"prompt": 5}, "prompt"), ({"prompt": "x", "system": 1}, "system"), ({"prompt": "x", "suffix": []}, "suffix"),
     ({"prompt": "x", "raw": "yes"}, "raw"), ({"prompt": "x", "images": "abc"}, "images"),
     ({"prompt": "x", "template": 1}, "template"), ({"prompt": "x", "options": {"seed": "s"}}, "seed")],
)
def test_invalid_generate_input_is_400(body, field):
    with pytest.raises(ClientRequestError) as err:
        gen(body)
    assert field in err.value.message


# --------------------------------------------------------------------------- responses


def completion(message=None, finish_reason="stop", usage=None, **choice):
    resp = {"id": "x", "object": "chat.completion", "created": 1, "model": "backend-m1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", **(message or {})},
                         "finish_reason": finish_reason, **choice}]}
    resp["usage"] = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10} if usage is None else usage
    return resp


def chat_out(resp, keep_thinking=True, timings=TIMINGS):
    return chat_response(resp, model="m1:latest", created_at=CREATED, timings=timings, keep_thinking=keep_thinking)


def gen_out(resp, keep_thinking=True):
    return generate_response(resp, model="m1", created_at=CREATED, timings=TIMINGS, keep_thinking=keep_thinking)


def test_case_8_chat_response():
    out = chat_out(completion())
    assert out == {
        "model": "m1:latest", "created_at": CREATED, "message": {"role": "assistant", "content": "Hello!"},
        "done": True, "done_reason": "stop", "total_duration": 5_000_000, "load_duration": 1,
        "prompt_eval_count": 7, "prompt_eval_duration": 1_000_000, "eval_count": 3, "eval_duration": 3_000_000,
    }
    assert out["total_duration"] >= out["eval_duration"] > 0


def test_durations_always_ints():
    out = chat_out(completion(), timings=Timings(total_ns=1.5e6, load_ns=0.0, prompt_eval_ns=2.7, eval_ns=-1))  # type: ignore[arg-type]
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert type(out[key]) is int and out[key] >= 1  # never zero (Ollama's own API tests reject 0)


# Issue 18: counts are always present ints (estimates when the backend reports none); this test
# asserted the old behaviour (counts omitted without usage), which crashed frameworks adding them.
def test_counts_always_ints_estimated_when_usage_missing():
    out = chat_out(completion(usage={}))
    assert (out["prompt_eval_count"], out["eval_count"]) == (0, 2)  # no prompt estimate given; "Hello!" -> 2
    resp = completion()
    del resp["usage"]
    out = chat_response(resp, model="m1", created_at=CREATED, timings=TIMINGS, keep_thinking=True, prompt_estimate=9)
    assert (out["prompt_eval_count"], out["eval_count"]) == (9, 2) and out["total_duration"] == 5_000_000
    out = chat_out(completion(usage={"prompt_tokens": 4.0, "completion_tokens": None}))
    assert out["prompt_eval_count"] == 4 and type(out["prompt_eval_count"]) is int and out["eval_count"] == 2
    for value in (float("nan"), float("inf"), -3, True, "5"):
        out = chat_out(completion(usage={"prompt_tokens": value, "completion_tokens": value}))
        assert type(out["prompt_eval_count"]) is int and type(out["eval_count"]) is int
        assert out["prompt_eval_count"] >= 0 and out["eval_count"] >= 0


def test_content_null_and_part_lists():
    assert chat_out(completion({"content": None}))["message"]["content"] == ""
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert chat_out(completion({"content": parts}))["message"]["content"] == "ab"


def test_role_always_assistant():
    assert chat_out(completion({"role": "model"}))["message"]["role"] == "assistant"


@pytest.mark.parametrize(
    "reason, expected",
    [("stop", "stop"), ("length", "length"), ("tool_calls", "stop"), ("function_call", "stop"),
     ("content_filter", "stop"), (None, "stop")],
)
def test_done_reason_mapping(reason, expected):
    assert chat_out(completion(finish_reason=reason))["done_reason"] == expected
    assert gen_out(completion(finish_reason=reason))["done_reason"] == expected


def test_case_15_length_finish():
    assert chat_out(completion(finish_reason="length"))["done_reason"] == "length"


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_case_25_reasoning_to_thinking(key):
    out = chat_out(completion({key: "let me think", "content": "42"}))
    assert out["message"] == {"role": "assistant", "content": "42", "thinking": "let me think"}
    out = gen_out(completion({key: "let me think", "content": "42"}))
    assert (out["response"], out["thinking"]) == ("42", "let me think")


def test_case_26_thinking_dropped_when_think_false():
    out = chat_out(completion({"reasoning_content": "secret"}), keep_thinking=False)
    assert "thinking" not in out["message"]
    assert "thinking" not in gen_out(completion({"reasoning": "secret"}), keep_thinking=False)


def test_case_19_tool_call_response():
    calls = [{"id": "call_1", "type": "function", "function": {"name": "fn", "arguments": '{"a":1}'}}]
    out = chat_out(completion({"content": None, "tool_calls": calls}, finish_reason="tool_calls"))
    assert out["message"]["tool_calls"] == [
        {"id": "call_1", "function": {"index": 0, "name": "fn", "arguments": {"a": 1}}}]
    assert out["message"]["content"] == ""
    assert out["done_reason"] == "stop"


def test_tool_call_arguments_edge_cases(caplog):
    calls = [
        {"id": "c0", "function": {"name": "a", "arguments": ""}},
        {"id": "c1", "function": {"name": "b", "arguments": "[1, 2]"}},
        {"id": "c2", "function": {"name": "c", "arguments": '{"a":'}},
        {"function": {"name": "d", "arguments": {"already": "object"}}},
        {"id": "c4", "function": {"name": "e"}},
        {"id": "c5", "function": {"name": "f", "arguments": "7"}},
    ]
    with caplog.at_level(logging.WARNING, logger="bridge.translate.chat"):
        out = chat_out(completion({"tool_calls": calls}))
    args = [c["function"]["arguments"] for c in out["message"]["tool_calls"]]
    assert args == [{}, {"value": [1, 2]}, {}, {"already": "object"}, {}, {"value": 7}]
    assert "id" not in out["message"]["tool_calls"][3]
    assert [c["function"]["index"] for c in out["message"]["tool_calls"]] == [0, 1, 2, 3, 4, 5]
    assert any("not valid JSON" in r.message for r in caplog.records)


def test_malformed_tool_calls_from_backend_is_protocol_error():
    with pytest.raises(UpstreamProtocolError):
        chat_out(completion({"tool_calls": [{"function": {}}]}))
    with pytest.raises(UpstreamProtocolError):
        chat_out(completion({"tool_calls": "x"}))


@pytest.mark.parametrize("resp", [None, [], {}, {"choices": []}, {"choices": None}, {"choices": ["x"]},
                                  {"choices": [{"finish_reason": "stop"}]}])
def test_unusable_backend_response_is_protocol_error(resp):
    with pytest.raises(UpstreamProtocolError):
        chat_out(resp)


def test_case_27_generate_response_from_chat_completion():
    out = gen_out(completion())
    assert out == {
        "model": "m1", "created_at": CREATED, "response": "Hello!", "done": True, "done_reason": "stop",
        "total_duration": 5_000_000, "load_duration": 1, "prompt_eval_count": 7, "prompt_eval_duration": 1_000_000,
        "eval_count": 3, "eval_duration": 3_000_000, "context": [],
    }


def test_generate_response_from_text_completion():
    resp = {"object": "text_completion", "choices": [{"index": 0, "text": "    return x", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    out = gen_out(resp)
    assert (out["response"], out["done_reason"], out["eval_count"], out["context"]) == ("    return x", "length", 4, [])


def test_generate_response_without_text_is_protocol_error():
    with pytest.raises(UpstreamProtocolError):
        gen_out({"choices": []})


def test_chat_response_accepts_text_completion():
    resp = {"choices": [{"text": "hey", "finish_reason": "stop"}]}
    assert chat_out(resp)["message"]["content"] == "hey"


def test_chat_logprobs_mapped():
    lp = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
                       "top_logprobs": [{"token": "Hi", "logprob": -0.1}, {"token": "Hey", "logprob": -2.0}]}]}
    out = chat_out(completion(logprobs=lp))
    # The backend's bytes are kept; alternatives without bytes get their token's UTF-8 (Ollama's shape).
    assert out["logprobs"] == [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [
        {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
        {"token": "Hey", "logprob": -2.0, "bytes": [72, 101, 121]}]}]


def test_legacy_logprobs_mapped():
    resp = {"choices": [{"text": "ab", "finish_reason": "stop", "logprobs": {
        "tokens": ["a", "b"], "token_logprobs": [-1.0, -2.0], "top_logprobs": [{"a": -1.0, "c": -3.0}, None]}}]}
    out = gen_out(resp)
    assert out["logprobs"] == [
        {"token": "a", "logprob": -1.0, "bytes": [97], "top_logprobs": [
            {"token": "a", "logprob": -1.0, "bytes": [97]}, {"token": "c", "logprob": -3.0, "bytes": [99]}]},
        {"token": "b", "logprob": -2.0, "bytes": [98]},
    ]


def test_responses_are_json_serialisable():
    json.dumps(chat_out(completion({"reasoning": "r",
                                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]})))
    json.dumps(gen_out(completion()))


def test_top_logprobs_only_with_logprobs():
    # Issue 18: like Ollama, top_logprobs alone means nothing (OpenAI would refuse it without
    # logprobs) and logprobs false is the same as absent.
    out = chat({"messages": USER, "top_logprobs": 3})
    assert "logprobs" not in out and "top_logprobs" not in out
    out = chat({"messages": USER, "logprobs": False, "top_logprobs": 3})
    assert "logprobs" not in out and "top_logprobs" not in out
    out = chat({"messages": USER, "logprobs": True})
    assert out["logprobs"] is True and "top_logprobs" not in out
    _, out = gen({"prompt": "a", "logprobs": True, "top_logprobs": 0})
    assert (out["logprobs"], out["top_logprobs"]) == (True, 0)
