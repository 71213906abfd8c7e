"""The official ``openai`` SDK against the bridge's ``/v1/*`` pass-through (same port as Ollama's API).

Checks that bodies reach the backend unchanged except for the model mapping, that streams are relayed
event by event (not buffered), and that every error reaches the SDK in OpenAI's shape so it raises its
typed exceptions with the backend's message.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.fakes.backend import embedding_vector

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10, func_only=True)]

TEXT = "Hello from fake backend."
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture()
def sdk(bridge):
    with openai.OpenAI(base_url=bridge.url + "/v1", api_key="sk-client-key", max_retries=0, timeout=10) as client:
        yield client


def test_chat_non_stream(sdk, backend):
    done = sdk.chat.completions.create(model="m1", messages=USER, temperature=0.2, max_tokens=50,
                                       extra_body={"top_k": 5})
    assert done.choices[0].message.content == TEXT and done.choices[0].finish_reason == "stop"
    assert done.usage.prompt_tokens == 7 and done.usage.completion_tokens == 4
    sent = backend.requests_to("/v1/chat/completions")[-1]
    # Relayed as sent (no invented fields, vendor extras kept), with the bridge's key, not the client's.
    assert sent.json == {"model": "m1", "messages": USER, "temperature": 0.2, "max_tokens": 50, "top_k": 5}
    assert sent.headers["authorization"] == "Bearer sk-test-secret-key"


def test_chat_stream_chunk_by_chunk(sdk, backend):
    backend.script(tokens=["a", "b", "c", "d"], delay_s=0.25)
    started = time.monotonic()
    arrivals, texts, usage = [], [], None
    stream = sdk.chat.completions.create(model="m1", messages=USER, stream=True,
                                         stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
            texts.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert texts == ["a", "b", "c", "d"]
    assert usage.prompt_tokens == 7 and usage.completion_tokens == 4
    # Each event is relayed when the backend sends it: arrivals follow the backend's pacing.
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(0.15 < gap < 0.45 for gap in gaps), arrivals
    sent = backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_chat_stream_wire_is_sse(bridge, backend):
    with httpx.stream("POST", bridge.url + "/v1/chat/completions",
                      json={"model": "m1", "messages": USER, "stream": True}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-accel-buffering"] == "no"
        body = resp.read().decode()
    assert body.rstrip().endswith("data: [DONE]")
    events = [block for block in body.split("\n\n") if block.strip()]
    assert all(block.startswith("data: ") for block in events)
    deltas = [json.loads(e[6:]) for e in events[:-1]]
    assert "".join(d["choices"][0]["delta"].get("content") or "" for d in deltas if d["choices"]) == TEXT


def test_chat_tool_calls_stream_relayed(sdk, backend):
    backend.script(tool_calls=[{"id": "call_1", "name": "fn", "arguments": '{"a": 1}'}])
    calls: dict[int, dict] = {}
    finish = None
    for chunk in sdk.chat.completions.create(model="m1", messages=USER, stream=True, tools=[{
            "type": "function", "function": {"name": "fn", "parameters": {"type": "object"}}}]):
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"name": "", "args": ""})
            slot["name"] += tc.function.name or ""
            slot["args"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert calls == {0: {"name": "fn", "args": '{"a": 1}'}} and finish == "tool_calls"


def test_completions(sdk, backend):
    done = sdk.completions.create(model="m1", prompt="def f(", suffix="return x", max_tokens=8)
    assert done.choices[0].text == TEXT and done.object == "text_completion"
    sent = backend.requests_to("/v1/completions")[-1].json
    assert sent == {"model": "m1", "prompt": "def f(", "suffix": "return x", "max_tokens": 8}


def test_completions_stream(sdk, backend):
    texts = [c.choices[0].text for c in sdk.completions.create(model="alias-1", prompt="x", stream=True)
             if c.choices]
    assert "".join(texts) == TEXT
    assert backend.requests_to("/v1/completions")[-1].json["model"] == "m1"


def test_embeddings_sdk_default_base64(sdk, backend):
    result = sdk.embeddings.create(model="e1", input=["a", "b"])
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx(embedding_vector("e1", "a"), abs=1e-6)
    assert result.data[1].embedding == pytest.approx(embedding_vector("e1", "b"), abs=1e-6)
    # The SDK silently asks for base64 and decodes it; the bridge must relay that request unchanged.
    assert backend.requests_to("/v1/embeddings")[-1].json["encoding_format"] == "base64"


def test_embeddings_float_and_dimensions(sdk, backend):
    result = sdk.embeddings.create(model="alias-1", input="a", encoding_format="float", dimensions=16)
    assert len(result.data) == 1 and len(result.data[0].embedding) == 16
    sent = backend.requests_to("/v1/embeddings")[-1].json
    assert sent == {"model": "m1", "input": "a", "encoding_format": "float", "dimensions": 16}


def test_models_list_and_retrieve(sdk, backend):
    ids = [m.id for m in sdk.models.list()]
    assert {"m1", "m2", "e1", "alias-1"} == set(ids)
    for m in sdk.models.list():
        assert m.object == "model"
    got = sdk.models.retrieve("alias-1")
    assert got.id == "alias-1" and got.object == "model"
    assert sdk.models.retrieve("m1").id == "m1"
    with pytest.raises(openai.NotFoundError) as err:
        sdk.models.retrieve("nope")
    assert err.value.status_code == 404
    assert err.value.body["message"] == "model 'nope' not found"


def test_mapping_and_latest_on_v1(sdk, backend):
    sdk.chat.completions.create(model="alias-1", messages=USER)
    sdk.chat.completions.create(model="m1:latest", messages=USER)
    assert [r.json["model"] for r in backend.requests_to("/v1/chat/completions")] == ["m1", "m1"]


def test_error_unknown_model_openai_shape(sdk, bridge, backend):
    with pytest.raises(openai.NotFoundError) as err:
        sdk.chat.completions.create(model="nope", messages=USER)
    assert err.value.status_code == 404
    assert err.value.body["message"] == "model 'nope' not found"
    assert err.value.body["type"] == "not_found_error"
    raw = httpx.post(bridge.url + "/v1/chat/completions", json={"model": "nope", "messages": USER}).json()
    assert set(raw["error"]) == {"message", "type", "param", "code"}
    assert not backend.requests_to("/v1/chat/completions")


def test_error_backend_400_passed_on(sdk, backend):
    backend.script(status=400, error_body={"error": {"message": "context too long", "type": "invalid_request_error",
                                                     "param": "messages", "code": "context_length_exceeded"}})
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="m1", messages=USER)
    assert err.value.status_code == 400 and "context too long" in str(err.value)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="m1", messages=USER, stream=True)


def test_error_backend_429_and_5xx(sdk, backend):
    backend.script(status=429, headers={"Retry-After": "1"}, fail_times=5)
    with pytest.raises(openai.RateLimitError) as err:
        sdk.chat.completions.create(model="m1", messages=USER)
    assert err.value.response.headers["retry-after"] == "1"
    backend.reset()
    backend.script(fault="html_502")
    with pytest.raises(openai.InternalServerError) as err:
        sdk.embeddings.create(model="e1", input="x")
    assert err.value.status_code == 502 and "502 Bad Gateway" in err.value.body["message"]


def test_error_mid_stream_reaches_the_sdk(sdk, backend):
    backend.script(tokens=["a", "b", "c", "d"], fault="close_mid_stream", fault_after_tokens=2)
    texts = []
    with pytest.raises(openai.APIError):
        for chunk in sdk.chat.completions.create(model="m1", messages=USER, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
    assert texts == ["a", "b"]


def test_error_bad_requests_openai_shape(bridge, backend):
    for body, kwargs in ((b"{bad", {}), (b'{"messages": []}', {}), (b"[1]", {})):
        resp = httpx.post(bridge.url + "/v1/chat/completions", content=body,
                          headers={"Content-Type": "application/json"}, **kwargs)
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert error["type"] == "invalid_request_error" and isinstance(error["message"], str)
    resp = httpx.post(bridge.url + "/v1/chat/completions", json={"model": "m1", "messages": USER, "stream": "yes"})
    assert resp.status_code == 400 and resp.json()["error"]["message"]
    assert not backend.requests_to("/v1/chat/completions")


def test_a_null_stream_is_a_plain_answer(bridge, backend):
    resp = httpx.post(bridge.url + "/v1/chat/completions", json={"model": "m1", "messages": USER, "stream": None})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    assert resp.json()["choices"][0]["message"]["content"] == TEXT


def test_sdk_bad_request_for_missing_model(sdk, backend):
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="", messages=USER)
    assert "model is required" in err.value.body["message"]
