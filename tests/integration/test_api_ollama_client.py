"""The whole Ollama API surface through the official ``ollama`` Python client (sync).

Each test names the compatibility case(s) of ``reference/ollama_api.md`` section 5 it covers. The
bridge runs as in production (gunicorn, 2 gevent workers) in front of the scripted fake backend, and
every test checks both what the client got and what the backend received.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime

import httpx
import ollama
import pytest
import requests

# func_only: the session fixture (gunicorn) stops in the last test's teardown, outside this budget.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(10, func_only=True)]

TEXT = "Hello from fake backend."
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
USER = [{"role": "user", "content": "hi"}]
# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
FN_TOOL = {"type": "function", "function": {
    "name": "fn", "description": "adds", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}


@pytest.fixture()
def c(bridge):
    """An ollama.Client on the bridge, closed after the test (idle keep-alive connections would
    otherwise hold gunicorn's graceful shutdown at the end of the session)."""
    with ollama.Client(host=bridge.url, timeout=10) as cl:
        yield cl


def chat_sent(backend) -> list[dict]:
    """Bodies the fake backend received on /v1/chat/completions, oldest first."""
    return [r.json for r in backend.requests_to("/v1/chat/completions")]


def generation_calls(backend) -> list:
    return [r for r in backend.requests if r.path in ("/v1/chat/completions", "/v1/completions")]


# --- 1, 2: root and version ------------------------------------------------------------------------

def test_01_root_get_and_head(bridge, backend):
    got = httpx.get(bridge.url + "/")
    assert got.status_code == 200 and got.text == "Ollama is running"
    assert got.headers["content-type"].startswith("text/plain")
    head = httpx.head(bridge.url + "/")
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/plain")
    assert head.content == b""


def test_02_version_numeric_and_recent(bridge, backend):
    resp = httpx.get(bridge.url + "/api/version")
    assert resp.status_code == 200
    version = resp.json()["version"]
    assert re.fullmatch(r"\d+(\.\d+)+", version)
    assert tuple(int(p) for p in version.split(".")) >= (0, 6, 4)


# --- 3, 4: list -------------------------------------------------------------------------------------

def test_03_list_models(bridge, backend, c):
    listed = c.list()
    names = [m.model for m in listed.models]
    # The backend's three ids plus the configured alias (MODEL_MAPPING {"alias-1": "m1"}).
    assert {"m1:latest", "m2:latest", "e1:latest", "alias-1:latest"} == set(names)
    for entry in listed.models:
        assert entry.model
        assert isinstance(entry.modified_at, datetime) and entry.modified_at.tzinfo is not None
        assert isinstance(entry.size, int)
        assert isinstance(entry.details.families, list) and entry.details.families
    raw = httpx.get(bridge.url + "/api/tags").json()["models"]
    for entry in raw:
        assert entry["name"] == entry["model"]
        assert HEX64.match(entry["digest"])
        assert RFC3339_Z.match(entry["modified_at"]) or "+" in entry["modified_at"]
    assert backend.requests_to("/v1/models")


@pytest.mark.parametrize("script", [{"fault": "html_502"}, {"status": 502}, {"fault": "invalid_json"}],
                         ids=["nginx-html", "502-json", "not-json"])
def test_04_list_when_backend_models_fails_is_response_error_502(bridge, backend, script, c):
    backend.script(match_path="/v1/models", **script)
    with pytest.raises(ollama.ResponseError) as err:
        c.list()
    assert err.value.status_code == 502
    assert isinstance(err.value.error, str) and err.value.error


def test_04_list_when_backend_models_500_is_a_response_error(bridge, backend, c):
    backend.script(match_path="/v1/models", status=500)
    with pytest.raises(ollama.ResponseError) as err:
        c.list()
    assert err.value.status_code >= 500 and isinstance(err.value.error, str)


# --- 5, 6, 7: show ----------------------------------------------------------------------------------

def test_05_show(bridge, backend, c):
    shown = c.show("m1")
    arch = shown.modelinfo["general.architecture"]
    assert isinstance(arch, str) and arch
    assert isinstance(shown.modelinfo[f"{arch}.context_length"], int)
    assert "completion" in shown.capabilities
    for field in ("parameters", "template", "license"):
        assert isinstance(getattr(shown, field), str)
    assert isinstance(shown.details.families, list)


def test_05_show_alias_and_latest(bridge, backend, c):
    for name in ("alias-1", "m1:latest"):
        shown = c.show(name)
        assert "completion" in shown.capabilities
        assert shown.modelinfo["general.basename"] == name


def test_05_show_embedding_model_capabilities(bridge, backend, c):
    # The fake's "e1" has no embedding marker in its name; an embedding-looking id must say so.
    backend.script(models=["m1", "text-embed-1"])
    shown = c.show("text-embed-1")
    assert shown.capabilities == ["embedding"]


def test_06_show_unknown_is_404(bridge, backend, c):
    with pytest.raises(ollama.ResponseError) as err:
        c.show("nope")
    assert err.value.status_code == 404 and "not found" in err.value.error


@pytest.mark.parametrize("script", [{"status": 500}, {"fault": "html_502"}], ids=["500", "nginx-502"])
def test_06_show_when_backend_cannot_list_is_an_error_not_invented(bridge, backend, c, script):
    # Peer bug: /api/show answered 200 with made-up metadata for any name when the backend was down.
    # A worker that listed models before keeps its last good list (so "nope" is a 404 there); one
    # that never could says the backend failed. Either way an unknown name is never described.
    backend.script(match_path="/v1/models", **script)
    for _ in range(4):  # both workers
        with pytest.raises(ollama.ResponseError) as err:
            c.show("nope")
        assert err.value.status_code == 404 or err.value.status_code >= 500
        assert isinstance(err.value.error, str) and err.value.error


def test_07_show_with_legacy_name_key(bridge, backend):
    legacy = httpx.post(bridge.url + "/api/show", json={"name": "m1"})
    modern = httpx.post(bridge.url + "/api/show", json={"model": "m1"})
    assert legacy.status_code == 200
    assert legacy.json() == modern.json()
    assert "model_info" in legacy.json()


# --- 8-11: chat -------------------------------------------------------------------------------------

def test_08_chat_non_stream(bridge, backend, c):
    reply = c.chat("m1", messages=USER)
    assert reply.done is True and reply.done_reason == "stop"
    assert reply.message.role == "assistant" and reply.message.content == TEXT
    assert RFC3339_Z.match(reply.created_at)
    assert reply.prompt_eval_count == 7 and reply.eval_count == 4
    assert isinstance(reply.eval_count, int) and isinstance(reply.prompt_eval_count, int)
    assert reply.total_duration >= reply.eval_duration > 0
    assert reply.model == "m1"
    sent = chat_sent(backend)
    assert len(sent) == 1
    assert sent[0]["model"] == "m1" and sent[0]["stream"] is False
    assert sent[0]["messages"] == [{"role": "user", "content": "hi"}]


def test_09_chat_stream(bridge, backend, c):
    chunks = list(c.chat("m1", messages=USER, stream=True))
    assert len(chunks) >= 2
    assert all(c.done is False for c in chunks[:-1])
    last = chunks[-1]
    assert last.done is True and last.done_reason == "stop"
    assert last.eval_count == 4 and last.prompt_eval_count == 7
    assert "".join(c.message.content or "" for c in chunks) == TEXT
    assert all(c.message.role == "assistant" for c in chunks)
    assert all(RFC3339_Z.match(c.created_at) for c in chunks)
    # No empty chunk for the backend's role-only first delta; one chunk per token.
    assert [c.message.content for c in chunks[:-1]] == ["Hello", " from", " fake", " backend."]
    sent = chat_sent(backend)[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_09_chat_stream_wire_format(bridge, backend):
    with httpx.stream("POST", bridge.url + "/api/chat",
                      json={"model": "m1", "messages": USER, "stream": True}) as resp:
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        body = resp.read()
    assert body.endswith(b"\n") and b"\n\n" not in body and b"data:" not in body
    lines = body.split(b"\n")[:-1]
    objs = [json.loads(line) for line in lines]
    assert [o["done"] for o in objs] == [False] * (len(objs) - 1) + [True]
    assert all(b": " not in line and b"\n" not in line for line in lines)  # compact, one per line


def test_10_chat_without_stream_field_streams(bridge, backend):
    resp = requests.post(bridge.url + "/api/chat", json={"model": "m1", "messages": USER}, timeout=10)
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    objs = [json.loads(line) for line in resp.text.splitlines()]
    assert len(objs) > 1 and objs[-1]["done"] is True
    assert chat_sent(backend)[-1]["stream"] is True


def test_10_curl_style_form_content_type_is_read_as_json(bridge, backend):
    # curl -d sends application/x-www-form-urlencoded; Ollama reads the body as JSON anyway.
    resp = requests.post(bridge.url + "/api/generate", data=json.dumps({"model": "m1", "prompt": "x"}),
                         headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    objs = [json.loads(line) for line in resp.text.splitlines()]
    assert resp.status_code == 200 and "".join(o["response"] for o in objs) == TEXT


@pytest.mark.parametrize("stream", [False, True])
def test_09_multibyte_text_split_across_reads(bridge, backend, c, stream):
    # Peer bug: SSE parsed per TCP read, so a UTF-8 character split between reads killed the stream.
    from tests.fakes.backend import SPLIT_UTF8_TEXT
    backend.script(fault="split_utf8")
    result = c.chat("m1", messages=USER, stream=stream)
    chunks = list(result) if stream else [result]
    assert "".join(ch.message.content for ch in chunks) == SPLIT_UTF8_TEXT
    assert chunks[-1].done is True


def test_11_unknown_model_stream_is_http_404(bridge, backend, c):
    stream = c.chat("unknown", messages=USER, stream=True)
    with pytest.raises(ollama.ResponseError) as err:
        next(iter(stream))
    assert err.value.status_code == 404 and "not found" in err.value.error
    assert not generation_calls(backend)


def test_11_backend_404_for_a_listed_model_is_404(bridge, backend, c):
    # The model list says m1 exists but the backend refuses it: still a 404 the client understands.
    backend.script(match_path="/v1/chat/completions", status=404,
                   error_body={"error": {"message": "The model `m1` does not exist", "code": "model_not_found"}})
    with pytest.raises(ollama.ResponseError) as err:
        next(iter(c.chat("m1", messages=USER, stream=True)))
    assert err.value.status_code == 404 and err.value.error == "model 'm1' not found"


# --- 12-14: errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_12_backend_400_message_is_a_string(bridge, backend, stream, c):
    backend.script(status=400, error_body={"error": {"message": "context too long", "type": "invalid_request_error"}})
    with pytest.raises(ollama.ResponseError) as err:
        result = c.chat("m1", messages=USER, stream=stream)
        if stream:
            list(result)
    assert err.value.status_code == 400
    assert err.value.error == "context too long" and str(err.value.error) == "context too long"


def test_12_backend_429_keeps_status(bridge, backend):
    backend.script(status=429, headers={"Retry-After": "1"})
    resp = requests.post(bridge.url + "/api/chat", json={"model": "m1", "messages": USER, "stream": False},
                         timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert isinstance(resp.json()["error"], str)


def test_13_backend_drops_connection_mid_stream(bridge, backend, c):
    backend.script(tokens=["a", "b", "c", "d", "e"], fault="close_mid_stream", fault_after_tokens=3)
    got = []
    with pytest.raises(ollama.ResponseError) as err:
        for chunk in c.chat("m1", messages=USER, stream=True):
            got.append(chunk.message.content)
    assert got == ["a", "b", "c"]
    assert err.value.status_code == -1 and err.value.error


def test_13_backend_stream_truncated_without_finish(bridge, backend, c):
    backend.script(tokens=["a", "b", "c", "d"], fault="truncated_stream", fault_after_tokens=2)
    got = []
    with pytest.raises(ollama.ResponseError) as err:
        for chunk in c.generate("m1", "x", stream=True):
            got.append(chunk.response)
    assert got == ["a", "b"] and err.value.status_code == -1


@pytest.mark.parametrize("event_line", [False, True])
def test_14_error_event_mid_stream(bridge, backend, event_line, c):
    backend.script(tokens=["a", "b", "c", "d"], fault="error_event", fault_after_tokens=3,
                   error_event_line=event_line)
    got = []
    with pytest.raises(ollama.ResponseError) as err:
        for chunk in c.chat("m1", messages=USER, stream=True):
            got.append(chunk.message.content)
    assert got == ["a", "b", "c"]
    assert err.value.status_code == -1 and err.value.error == "boom"


# --- 15, 16: options --------------------------------------------------------------------------------

def test_15_options_forwarded_and_length(bridge, backend, c):
    backend.script(finish_reason="length")
    reply = c.chat("m1", messages=USER, options={
        "num_predict": 5, "stop": ["\n"], "temperature": 0, "seed": 1, "top_p": 0.5})
    assert reply.done_reason == "length"
    sent = chat_sent(backend)[-1]
    assert sent["max_tokens"] == 5 and sent["stop"] == ["\n"] and sent["temperature"] == 0
    assert sent["seed"] == 1 and sent["top_p"] == 0.5


def test_15_length_when_streaming(bridge, backend, c):
    chunks = list(c.generate("m1", "x", stream=True, options={"num_predict": 2}))
    assert chunks[-1].done_reason == "length"
    assert "".join(c.response for c in chunks) == "Hello from"
    assert [r.json for r in backend.requests_to("/v1/chat/completions")][-1]["max_tokens"] == 2


def test_16_load_time_options_are_dropped(bridge, backend, c):
    reply = c.chat("m1", messages=USER, options={
        "num_ctx": 8192, "num_gpu": 1, "top_k": -1, "num_predict": -1})
    assert reply.done is True
    sent = chat_sent(backend)[-1]
    assert set(sent) == {"model", "messages", "stream"}


def test_16_no_invented_sampling_defaults(bridge, backend, c):
    c.chat("m1", messages=USER)
    c.generate("m1", "x")
    for sent in chat_sent(backend):
        for field in ("temperature", "top_p", "n", "presence_penalty", "frequency_penalty", "max_tokens"):
            assert field not in sent


# --- 17, 18: structured output ----------------------------------------------------------------------

def test_17_format_json(bridge, backend, c):
    backend.script(tokens=['{"answer":', " 42}"])
    reply = c.chat("m1", messages=USER, format="json")
    assert json.loads(reply.message.content) == {"answer": 42}
    assert chat_sent(backend)[-1]["response_format"] == {"type": "json_object"}


def test_18_format_schema(bridge, backend, c):
    schema = {"title": "Weather report!", "type": "object",
              "properties": {"t": {"type": "number"}}, "required": ["t"]}
    backend.script(tokens=['{"t": 1.5}'])
    reply = c.generate("m1", "x", format=schema)
    assert json.loads(reply.response) == {"t": 1.5}
    fmt = [r.json for r in backend.requests_to("/v1/chat/completions")][-1]["response_format"]
    assert fmt["type"] == "json_schema"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", fmt["json_schema"]["name"])
    assert fmt["json_schema"]["schema"] == schema


# --- 19-23: tools -----------------------------------------------------------------------------------

def test_19_tool_call_non_stream(bridge, backend, c):
    backend.script(tool_calls=[{"id": "call_x", "name": "fn", "arguments": '{"a":1}'}])
    reply = c.chat("m1", messages=USER, tools=[FN_TOOL])
    calls = reply.message.tool_calls
    assert len(calls) == 1
    assert calls[0].function.name == "fn" and calls[0].function.arguments == {"a": 1}
    assert reply.done_reason == "stop"
    sent = chat_sent(backend)[-1]
    assert sent["tools"] == [FN_TOOL]


@pytest.mark.parametrize("stream", [False, True])
def test_19_a_tool_call_whose_arguments_are_null_has_no_arguments(bridge, backend, c, stream):
    backend.script(tool_calls=[{"id": "call_n", "name": "now", "arguments": "null"}])
    if stream:
        calls = [call for part in c.chat("m1", messages=USER, tools=[FN_TOOL], stream=True)
                 for call in (part.message.tool_calls or [])]
    else:
        calls = c.chat("m1", messages=USER, tools=[FN_TOOL]).message.tool_calls
    assert [(call.function.name, call.function.arguments) for call in calls] == [("now", {})]


def test_19_tool_given_as_python_function(bridge, backend, c):
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
          a: first
          b: second
        """
        return a + b

    backend.script(tool_calls=[{"id": "call_y", "name": "add", "arguments": '{"a":2,"b":3}'}])
    reply = c.chat("m1", messages=USER, tools=[add])
    call = reply.message.tool_calls[0]
    assert call.function.name == "add" and add(**call.function.arguments) == 5
    tool = chat_sent(backend)[-1]["tools"][0]
    assert tool["type"] == "function" and tool["function"]["name"] == "add"
    assert set(tool["function"]["parameters"]["properties"]) == {"a", "b"}


@pytest.mark.parametrize("interleave", [False, True], ids=["call-by-call", "interleaved"])
def test_20_streamed_parallel_tool_calls_are_merged(bridge, backend, c, interleave):
    backend.script(fragments=4, interleave_tool_calls=interleave, tool_calls=[
        {"id": "call_a", "name": "fn", "arguments": '{"a": 1, "note": "first"}'},
        {"id": "call_b", "name": "other", "arguments": '{"b": [1, 2, 3]}'}])
    chunks = list(c.chat("m1", messages=USER, tools=[FN_TOOL], stream=True))
    with_calls = [c for c in chunks if c.message.tool_calls]
    assert len(with_calls) == 1
    carrier = with_calls[0]
    assert carrier.done is False
    assert [(t.function.name, t.function.arguments) for t in carrier.message.tool_calls] == [
        ("fn", {"a": 1, "note": "first"}), ("other", {"b": [1, 2, 3]})]
    assert chunks[-1].done is True and chunks[-1].done_reason == "stop"
    assert chunks.index(carrier) == len(chunks) - 2
    raw_calls = None
    with httpx.stream("POST", bridge.url + "/api/chat", json={
            "model": "m1", "messages": USER, "tools": [FN_TOOL]}) as resp:
        for line in resp.iter_lines():
            obj = json.loads(line)
            if obj.get("message", {}).get("tool_calls"):
                raw_calls = obj["message"]["tool_calls"]
    assert [c["id"] for c in raw_calls] == ["call_a", "call_b"]
    assert [c["function"]["index"] for c in raw_calls] == [0, 1]


@pytest.mark.parametrize("stream", [False, True])
def test_21_malformed_tool_arguments_never_crash(bridge, backend, stream, c):
    backend.script(tool_calls=[{"id": "call_m", "name": "fn", "arguments": '{"a":'}])
    result = c.chat("m1", messages=USER, tools=[FN_TOOL], stream=stream)
    chunks = list(result) if stream else [result]
    calls = [t for c in chunks for t in (c.message.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name == "fn"
    assert isinstance(calls[0].function.arguments, dict)
    assert chunks[-1].done is True and chunks[-1].done_reason == "stop"
    assert "arguments are not valid JSON" in bridge.log()


def test_22_tool_history_linked_by_name(bridge, backend, c):
    messages = [
        {"role": "user", "content": "add 1"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "fn", "arguments": {"a": 1}}},
            {"function": {"name": "other", "arguments": {"b": 2}}}]},
        {"role": "tool", "content": "30", "tool_name": "other"},
        {"role": "tool", "content": "3", "tool_name": "fn"},
    ]
    reply = c.chat("m1", messages=messages, tools=[FN_TOOL])
    assert reply.message.content == TEXT
    sent = chat_sent(backend)[-1]["messages"]
    assistant = sent[1]
    assert assistant["role"] == "assistant"
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert len(set(ids)) == 2 and all(ids)
    assert assistant["tool_calls"][0]["function"] == {"name": "fn", "arguments": '{"a": 1}'}
    assert assistant["tool_calls"][0]["type"] == "function"
    assert sent[2] == {"role": "tool", "content": "30", "tool_call_id": ids[1]}
    assert sent[3] == {"role": "tool", "content": "3", "tool_call_id": ids[0]}


def test_22_round_trip_of_a_returned_call(bridge, backend, c):
    """The call the bridge returned, sent back as history, keeps its id on the OpenAI side."""
    backend.script(tool_calls=[{"id": "call_rt", "name": "fn", "arguments": '{"a": 1}'}])
    first = c.chat("m1", messages=USER, tools=[FN_TOOL])
    backend.reset()
    history = USER + [first.message, {"role": "tool", "content": "3", "tool_name": "fn"}]
    second = c.chat("m1", messages=history, tools=[FN_TOOL])
    assert second.message.content == TEXT
    sent = chat_sent(backend)[-1]["messages"]
    call_id = sent[1]["tool_calls"][0]["id"]
    assert sent[2]["tool_call_id"] == call_id and sent[2]["role"] == "tool"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"a": 1}


def test_23_empty_tools_not_forwarded(bridge, backend, c):
    c.chat("m1", messages=USER)  # the client sends "tools": []
    c.chat("m1", messages=USER, stream=True)
    for sent in chat_sent(backend):
        assert "tools" not in sent


# --- 24: images -------------------------------------------------------------------------------------

def test_24_image_on_chat(bridge, backend, c):
    c.chat("m1", messages=[{"role": "user", "content": "what?", "images": [PNG]}])
    content = chat_sent(backend)[-1]["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "what?"}
    url = content[1]["image_url"]["url"]
    assert content[1]["type"] == "image_url"
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == PNG


def test_24_image_on_generate(bridge, backend, c):
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 16
    c.generate("m1", "describe", images=[jpeg])
    content = chat_sent(backend)[-1]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "describe"}
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")


# --- 25, 26: thinking -------------------------------------------------------------------------------

def test_25_think_true_stream_and_non_stream(bridge, backend, c):
    backend.script(reasoning=["Let me ", "think."], tokens=["The ", "answer."])
    chunks = list(c.chat("m1", messages=USER, think=True, stream=True))
    thinking = [c.message.thinking for c in chunks if c.message.thinking]
    content = [c.message.content for c in chunks if c.message.content]
    assert "".join(thinking) == "Let me think." and "".join(content) == "The answer."
    first_content = next(i for i, c in enumerate(chunks) if c.message.content)
    last_thinking = max(i for i, c in enumerate(chunks) if c.message.thinking)
    assert last_thinking < first_content
    reply = c.chat("m1", messages=USER, think=True)
    assert reply.message.thinking == "Let me think." and reply.message.content == "The answer."
    for sent in chat_sent(backend):
        assert sent["reasoning_effort"] == "medium"


def test_25_think_level_and_reasoning_field(bridge, backend, c):
    backend.script(reasoning=["hmm"], reasoning_field="reasoning")
    reply = c.generate("m1", "x", think="high")
    assert reply.thinking == "hmm" and reply.response == TEXT
    assert chat_sent(backend)[-1]["reasoning_effort"] == "high"


@pytest.mark.parametrize("stream", [False, True])
def test_26_think_false_hides_reasoning(bridge, backend, stream, c):
    backend.script(reasoning=["secret"])
    result = c.chat("m1", messages=USER, think=False, stream=stream)
    chunks = list(result) if stream else [result]
    assert all(not c.message.thinking for c in chunks)
    assert "".join(c.message.content or "" for c in chunks) == TEXT
    assert chat_sent(backend)[-1]["reasoning_effort"] == "none"


def test_26_think_unset_sends_no_control(bridge, backend, c):
    c.chat("m1", messages=USER)
    sent = chat_sent(backend)[-1]
    assert "reasoning_effort" not in sent and "chat_template_kwargs" not in sent


# --- 27-32: generate and load/unload ------------------------------------------------------------------

def test_27_generate_non_stream(bridge, backend, c):
    reply = c.generate("m1", "hi")
    assert reply.response == TEXT and reply.done is True and reply.done_reason == "stop"
    assert reply.context == [] and RFC3339_Z.match(reply.created_at)
    assert reply.eval_count == 4 and reply.prompt_eval_count == 7
    assert chat_sent(backend)[-1]["messages"] == [{"role": "user", "content": "hi"}]


def test_28_generate_stream_with_system(bridge, backend, c):
    chunks = list(c.generate("m1", "hi", stream=True, system="be brief"))
    assert "".join(c.response for c in chunks) == TEXT
    assert all(c.done is False for c in chunks[:-1])
    last = chunks[-1]
    assert last.done is True and last.eval_count == 4 and last.prompt_eval_count == 7
    assert last.response == "" and last.context == []
    assert chat_sent(backend)[-1]["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


@pytest.mark.parametrize("stream", [False, True])
def test_29_generate_raw_suffix_uses_completions(bridge, backend, stream, c):
    backend.script(tokens=["    y = 1\n", "    "])
    result = c.generate("m1", "def f(", suffix="return x", raw=True, stream=stream)
    chunks = list(result) if stream else [result]
    assert "".join(c.response for c in chunks) == "    y = 1\n    "
    assert chunks[-1].done is True and chunks[-1].done_reason == "stop"
    assert chunks[-1].eval_count == 2
    sent = backend.requests_to("/v1/completions")[-1].json
    assert sent["prompt"] == "def f(" and sent["suffix"] == "return x" and sent["model"] == "m1"
    assert "messages" not in sent
    assert not backend.requests_to("/v1/chat/completions")


def test_29_generate_raw_without_suffix(bridge, backend, c):
    c.generate("m1", "<|im_start|>user\nhi<|im_end|>\n", raw=True)
    sent = backend.requests_to("/v1/completions")[-1].json
    assert sent["prompt"] == "<|im_start|>user\nhi<|im_end|>\n" and "suffix" not in sent


def test_29_raw_with_system_is_400(bridge, backend, c):
    with pytest.raises(ollama.ResponseError) as err:
        c.generate("m1", "x", raw=True, system="s")
    assert err.value.status_code == 400 and "raw" in err.value.error


@pytest.mark.parametrize("stream", [False, True])
def test_30_generate_empty_prompt_is_load(bridge, backend, stream, c):
    result = c.generate("m1", stream=stream)
    last = list(result)[-1] if stream else result
    assert last.done is True and last.done_reason == "load" and last.response == ""
    assert last.model == "m1"
    assert not generation_calls(backend)


def test_31_keep_alive_zero_unloads(bridge, backend, c):
    assert c.generate("m1", keep_alive=0).done_reason == "unload"
    assert c.generate("m1", keep_alive="0s").done_reason == "unload"
    chat = c.chat("m1", [], keep_alive=0)
    assert chat.done_reason == "unload" and chat.message.role == "assistant"
    assert not generation_calls(backend)


def test_32_chat_empty_messages_is_load(bridge, backend, c):
    reply = c.chat("m1", [])
    assert reply.done is True and reply.done_reason == "load"
    assert reply.message.role == "assistant" and reply.message.content == ""
    assert not generation_calls(backend)


# --- 33-36: embeddings ------------------------------------------------------------------------------

def test_33_embed_list_in_input_order(bridge, backend, c):
    backend.script(reverse_embeddings=True)  # backend answers data[] out of order
    reply = c.embed("e1", input=["a", "b"])
    from tests.fakes.backend import embedding_vector
    assert len(reply.embeddings) == 2
    assert [list(v) for v in reply.embeddings] == [
        pytest.approx(embedding_vector("e1", "a")), pytest.approx(embedding_vector("e1", "b"))]
    assert all(isinstance(x, float) for v in reply.embeddings for x in v)
    assert isinstance(reply.prompt_eval_count, int)
    sent = backend.requests_to("/v1/embeddings")[-1].json
    assert sent == {"model": "e1", "input": ["a", "b"], "encoding_format": "float"}


def test_34_embed_dimensions(bridge, backend, c):
    reply = c.embed("e1", input="a", dimensions=64)
    assert len(reply.embeddings) == 1 and len(reply.embeddings[0]) == 64
    assert backend.requests_to("/v1/embeddings")[-1].json["dimensions"] == 64


def test_35_embed_empty_input(bridge, backend, c):
    reply = c.embed("e1", input=[])
    assert reply.embeddings == []
    assert not backend.requests_to("/v1/embeddings")


def test_36_legacy_embeddings(bridge, backend, c):
    reply = c.embeddings("e1", prompt="a")
    assert isinstance(reply.embedding, list) and len(reply.embedding) == 8
    assert all(isinstance(x, float) for x in reply.embedding)
    assert backend.requests_to("/v1/embeddings")[-1].json["input"] == ["a"]


def test_36_embed_unknown_model_is_404(bridge, backend, c):
    with pytest.raises(ollama.ResponseError) as err:
        c.embed("nope", input="a")
    assert err.value.status_code == 404


# --- 37-39: ps, pull, model management ------------------------------------------------------------------

def test_37_ps(bridge, backend, c):
    c.chat("m1", messages=USER)
    processes = c.ps()
    assert isinstance(processes.models, list)
    for entry in processes.models:
        assert entry.expires_at is not None and entry.expires_at.tzinfo is not None
        assert entry.model


def test_38_pull(bridge, backend, c):
    assert c.pull("m1").status == "success"
    statuses = [p.status for p in c.pull("m1", stream=True)]
    assert statuses[-1] == "success"
    assert c.pull("alias-1").status == "success"
    with pytest.raises(ollama.ResponseError) as err:
        c.pull("nope")
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError):
        list(c.pull("nope", stream=True))


def test_39_model_management_is_a_clear_error(bridge, backend, c):
    calls = {
        "delete": lambda: c.delete("m1"),
        "copy": lambda: c.copy("m1", "x"),
        "push": lambda: c.push("m1"),
        "create": lambda: c.create("x", from_="m1"),
        "push-stream": lambda: list(c.push("m1", stream=True)),
        "create-stream": lambda: list(c.create("x", from_="m1", stream=True)),
    }
    for name, call in calls.items():
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 501, name
        assert isinstance(err.value.error, str) and "managed by the backend" in err.value.error, name
    assert not backend.requests


# --- 40, 41: names and bad requests ---------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_40_latest_tag_echoed(bridge, backend, stream, c):
    result = c.chat("m1:latest", messages=USER, stream=stream)
    chunks = list(result) if stream else [result]
    assert all(c.model == "m1:latest" for c in chunks)
    assert chat_sent(backend)[-1]["model"] == "m1"


@pytest.mark.parametrize("stream", [False, True])
def test_40_alias_mapped_and_echoed(bridge, backend, stream, c):
    result = c.generate("alias-1", "hi", stream=stream)
    chunks = list(result) if stream else [result]
    assert all(c.model == "alias-1" for c in chunks)
    assert chat_sent(backend)[-1]["model"] == "m1"
    reply = c.embed("alias-1", input="x")
    assert reply.model == "alias-1"
    assert backend.requests_to("/v1/embeddings")[-1].json["model"] == "m1"


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/api/embed", "/api/embeddings",
                                  "/api/show", "/api/pull"])
def test_41_invalid_json_and_missing_model(bridge, backend, path):
    bad = httpx.post(bridge.url + path, content=b"{bad", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/json")
    assert isinstance(bad.json()["error"], str) and bad.json()["error"]
    missing = httpx.post(bridge.url + path, json={"prompt": "x", "messages": USER, "input": "x"})
    assert missing.status_code == 400 and missing.json() == {"error": "model is required"}
    not_object = httpx.post(bridge.url + path, json=["m1"])
    assert not_object.status_code == 400 and isinstance(not_object.json()["error"], str)
    assert not generation_calls(backend) and not backend.requests_to("/v1/embeddings")


def test_41_wrong_types_are_400(bridge, backend):
    cases = [
        ("/api/chat", {"model": "m1", "messages": "hi"}),
        ("/api/chat", {"model": "m1", "messages": USER, "stream": "yes"}),
        ("/api/chat", {"model": "m1", "messages": USER, "options": {"temperature": "hot"}}),
        ("/api/chat", {"model": "m1", "messages": USER, "format": 3}),
        ("/api/chat", {"model": 5, "messages": USER}),
        ("/api/generate", {"model": "m1", "prompt": 3}),
        ("/api/embed", {"model": "e1", "input": 3}),
    ]
    for path, body in cases:
        resp = httpx.post(bridge.url + path, json=body)
        assert resp.status_code == 400, (path, body, resp.text)
        assert isinstance(resp.json()["error"], str)
    assert not generation_calls(backend)
