"""The official ``openai`` SDK's ``responses`` client, unchanged, against ``/v1/responses`` (real gunicorn).

Two bridges over the same scripted fake backend: ``bridge`` (the fake answers ``/v1/responses``
with 404, as chat-only servers do, so the bridge translates onto chat completions) and
``native_bridge`` (the fake serves the Responses API itself, so the bridge passes it through).
"""

from __future__ import annotations

import json

import httpx
import openai
import pydantic
import pytest

from tests.bridgeproc import BridgeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(15, func_only=True)]

TEXT = "Hello from fake backend."
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture()
def sdk(bridge):
    with openai.OpenAI(base_url=bridge.url + "/v1", api_key="sk-client-key", max_retries=0, timeout=10) as client:
        yield client


def sse_events(body: str) -> list[dict]:
    """The data objects of a named-event SSE body, checking each event name matches its type."""
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.strip().split("\n") if ": " in line)
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"]
        out.append(data)
    return out


def test_text_translated(sdk, backend):
    resp = sdk.responses.create(model="m1", input="hi", instructions="Be brief.", max_output_tokens=50,
                                temperature=0.2, store=True, metadata={"k": "v"})
    assert resp.object == "response" and resp.id.startswith("resp_") and resp.model == "m1"
    assert resp.status == "completed" and resp.output_text == TEXT and resp.error is None
    assert resp.usage.input_tokens == 7 and resp.usage.output_tokens == 4 and resp.usage.total_tokens == 11
    assert resp.store is False and resp.metadata == {"k": "v"}  # accepted, nothing stored
    assert [item.type for item in resp.output] == ["message"]
    sent = backend.requests_to("/v1/chat/completions")[-1]
    assert sent.json == {"model": "m1", "stream": False, "max_tokens": 50, "temperature": 0.2, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}
    assert sent.headers["authorization"] == "Bearer sk-test-secret-key"


def test_missing_route_is_remembered_per_backend(sdk, backend):
    for _ in range(6):
        assert sdk.responses.create(model="m1", input="hi").output_text == TEXT
    # Each of the 2 workers learns it at most once; the chat route served every call.
    assert len(backend.requests_to("/v1/responses")) <= 2
    assert len(backend.requests_to("/v1/chat/completions")) == 6


def test_incomplete_when_max_output_tokens_reached(sdk, backend):
    resp = sdk.responses.create(model="m1", input="hi", max_output_tokens=2)
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "max_output_tokens"


def test_stream_translated(sdk, bridge, backend):
    backend.script(tokens=["a", "b", "c"], delay_s=0.05)
    deltas = []
    with sdk.responses.stream(model="m1", input="hi") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert deltas == ["a", "b", "c"] and final.output_text == "abc" and final.status == "completed"
    assert final.usage.input_tokens == 7 and final.usage.output_tokens == 3
    with httpx.stream("POST", bridge.url + "/v1/responses", json={"model": "m1", "input": "hi", "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    assert events[-1]["response"]["usage"]["output_tokens"] == 3


def test_function_call_round_trip(sdk, backend):
    backend.script(tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}])
    first = sdk.responses.create(model="m1", input="Weather in Paris?", tools=[WEATHER], tool_choice="required")
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.call_id == "call_1" and call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    sent = backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": WEATHER["parameters"], "description": "Weather for a city"}}]
    assert sent["tool_choice"] == "required"

    backend.reset()
    second = sdk.responses.create(model="m1", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Paris?"}, *first.output,
        {"type": "function_call_output", "call_id": call.call_id, "output": "21 C"}])
    assert second.output_text == TEXT
    messages = backend.requests_to("/v1/chat/completions")[-1].json["messages"]
    assert messages[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}


def test_function_call_streamed(sdk, backend):
    arguments = '{"city": "Paris", "unit": "C"}'
    backend.script(tool_calls=[{"id": "call_9", "name": "get_weather", "arguments": arguments}], fragments=3)
    with sdk.responses.stream(model="m1", input="hi", tools=[WEATHER]) as stream:
        fragments = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert len(fragments) == 3 and "".join(fragments) == arguments
    (call,) = final.output
    assert call.type == "function_call" and call.call_id == "call_9" and call.arguments == arguments


class Weather(pydantic.BaseModel):
    city: str
    temp: int


def test_json_output(sdk, backend):
    backend.script(tokens=['{"city": "Paris", ', '"temp": 21}'])
    parsed = sdk.responses.parse(model="m1", input="hi", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", temp=21)
    fmt = backend.requests_to("/v1/chat/completions")[-1].json["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Weather"
    assert fmt["json_schema"]["schema"]["properties"].keys() == {"city", "temp"}


def test_reasoning_effort(sdk, backend):
    backend.script(reasoning=["hmm"])
    resp = sdk.responses.create(model="m1", input="hi", reasoning={"effort": "minimal"})
    assert [item.type for item in resp.output] == ["reasoning", "message"]
    assert resp.output[0].content[0].text == "hmm"
    assert backend.requests_to("/v1/chat/completions")[-1].json["reasoning_effort"] == "low"


def test_unknown_model_not_found(sdk, backend):
    with pytest.raises(openai.NotFoundError) as err:
        sdk.responses.create(model="nope", input="hi")
    assert err.value.status_code == 404 and err.value.body["message"] == "model 'nope' not found"
    assert not backend.requests_to("/v1/chat/completions")


def test_previous_response_id_refused(sdk, backend):
    with pytest.raises(openai.BadRequestError) as err:
        sdk.responses.create(model="m1", input="and then?", previous_response_id="resp_123")
    assert "previous_response_id" in err.value.body["message"] and "state" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        sdk.responses.create(model="m1", input="hi", tools=[{"type": "web_search"}])
    assert "web_search" in err.value.body["message"]
    assert not backend.requests_to("/v1/chat/completions")


def test_fault_mid_stream_translated(sdk, bridge, backend):
    backend.script(tokens=["a", "b", "c", "d"], fault="close_mid_stream", fault_after_tokens=2)
    with sdk.responses.stream(model="m1", input="hi") as stream:
        events = list(stream)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["a", "b"]  # nothing lost before the fault, nothing repeated
    assert [e.type for e in events].count("response.failed") == 1 and events[-1].type == "response.failed"
    assert events[-1].response.status == "failed" and events[-1].response.error.code == "server_error"
    assert "response.completed" not in [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    latest = [r for r in httpx.get(bridge.url + "/metrics/summary").json()["recent"] if r["route"] == "/v1/responses"]
    assert latest[0]["outcome"] not in ("ok", "client_disconnect")


def test_metrics_translated(sdk, bridge, backend):
    backend.script(tokens=["a", "b", "c"], delay_s=0.05)
    with sdk.responses.stream(model="m2", input="hi") as stream:
        stream.until_done()
    records = [r for r in httpx.get(bridge.url + "/metrics/summary").json()["recent"] if r["route"] == "/v1/responses"]
    assert records[0]["model"] == "m2" and records[0]["stream"] is True and records[0]["outcome"] == "ok"
    assert records[0]["ttft_ms"] > 0 and records[0]["tokens"] == {"in": 7, "out": 3}


# -- the backend serves the Responses API itself: pass-through ------------------------------------------


@pytest.fixture(scope="module")
def native_bridge(fake_backend, tmp_path_factory):
    proc = BridgeProcess({"OPENAI_API_BASE_URL": fake_backend.url, "OPENAI_API_KEY": "sk-test-secret-key",
                          "MODEL_MAPPING": '{"alias-1": "m1"}', "MODELS_CACHE_TTL": "0", "MAX_RETRIES": "0",
                          "STREAM_IDLE_TIMEOUT": "2"}, workers=2, tmp_dir=tmp_path_factory.mktemp("native"))
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture()
def native_sdk(native_bridge, backend):
    backend.script(responses_api=True)
    with openai.OpenAI(base_url=native_bridge.url + "/v1", api_key="x", max_retries=0, timeout=10) as client:
        yield client


def test_passthrough(native_sdk, native_bridge, backend):
    resp = native_sdk.responses.create(model="alias-1", input="hi", previous_response_id="resp_1")
    assert resp.id.startswith("resp_fake") and resp.metadata == {"served_by": "fake-responses-api"}
    assert resp.output_text == TEXT
    sent = backend.requests_to("/v1/responses")[-1].json
    assert sent == {"model": "m1", "input": "hi", "previous_response_id": "resp_1"}  # relayed, model mapped
    assert not backend.requests_to("/v1/chat/completions")
    with native_sdk.responses.stream(model="m1", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Hello", " from", " fake", " backend."] and final.id.startswith("resp_fake")
    records = [r for r in httpx.get(native_bridge.url + "/metrics/summary").json()["recent"]
               if r["route"] == "/v1/responses"]
    assert records[0]["stream"] is True and records[0]["tokens"] == {"in": 7, "out": 4}
    assert records[0]["ttft_ms"] > 0 and records[1]["tokens"] == {"in": 7, "out": 4}


def test_passthrough_fault_mid_stream(native_sdk, native_bridge, backend):
    backend.script(fault="close_mid_stream", fault_after_tokens=2)
    with native_sdk.responses.stream(model="m1", input="hi") as stream:
        events = list(stream)
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["Hello", " from"]
    assert events[-1].type == "response.failed" and [e.type for e in events].count("response.failed") == 1
    assert events[-1].sequence_number == events[-2].sequence_number + 1
    assert events[-1].response.id == events[0].response.id


def test_passthrough_unknown_model(native_sdk, backend):
    with pytest.raises(openai.NotFoundError):
        native_sdk.responses.create(model="nope", input="hi")
    assert not backend.requests_to("/v1/responses")


def test_support_memory_is_bounded_and_rechecked():
    from bridge.routes.responses_api import ResponsesSupport

    now = [0.0]
    support = ResponsesSupport(max_entries=2, recheck_s=600, clock=lambda: now[0])
    assert support.native("a") is None
    support.remember("a", False)
    support.remember("b", True)
    assert support.native("a") is False and support.native("b") is True
    support.remember("c", True)  # "a" is the oldest: forgotten
    assert support.native("a") is None and support.native("c") is True
    support.remember("b", False)
    now[0] = 601.0
    assert support.native("b") is None and support.native("c") is True  # a missing route is asked again
