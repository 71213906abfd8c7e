"""The official ``anthropic`` SDK, unchanged, against ``/v1/messages`` on the bridge (real gunicorn).

The backend only speaks chat completions (the scripted fake): every test checks both what the SDK
sees and what the backend was sent.
"""

from __future__ import annotations

import json
import socket
import time

import anthropic
import httpx
import pydantic
import pytest

from tests.bridgeproc import BridgeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(15, func_only=True)]

TEXT = "Hello from fake backend."
USER = [{"role": "user", "content": "hi"}]
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture()
def sdk(bridge):
    with anthropic.Anthropic(base_url=bridge.url, api_key="sk-client-key", max_retries=0, timeout=10) as client:
        yield client


def test_plain_text(sdk, backend):
    message = sdk.messages.create(model="m1", max_tokens=100, system="Be brief.", messages=USER,
                                  stop_sequences=["END"], metadata={"user_id": "u-1"},
                                  # this SDK version no longer has sampling arguments; older clients send them
                                  extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 5})
    assert message.type == "message" and message.role == "assistant" and message.model == "m1"
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"] and message.content[0].text == TEXT
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens == 7 and message.usage.output_tokens == 4
    sent = backend.requests_to("/v1/chat/completions")[-1]
    assert sent.json == {"model": "m1", "stream": False, "max_tokens": 100,
                         "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                         "temperature": 0.2, "top_p": 0.9, "top_k": 5, "stop": ["END"], "user": "u-1"}
    assert sent.headers["authorization"] == "Bearer sk-test-secret-key"  # the bridge's key, not the client's


def test_beta_path_system_blocks_and_max_tokens(sdk, backend):
    message = sdk.beta.messages.create(model="alias-1", max_tokens=2, messages=USER,
                                       system=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    assert message.stop_reason == "max_tokens" and message.model == "alias-1"
    sent = backend.requests_to("/v1/chat/completions")[-1]
    assert sent.query == "" and sent.json["model"] == "m1"
    assert sent.json["messages"][0] == {"role": "system", "content": "a\n\nb"}


def test_stream_text(sdk, backend):
    backend.script(tokens=["a", "b", "c"], delay_s=0.05)
    with sdk.messages.stream(model="m1", max_tokens=50, messages=USER) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == ["a", "b", "c"]
    assert final.content[0].text == "abc" and final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 7 and final.usage.output_tokens == 3
    sent = backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_stream_wire_event_sequence(bridge, backend):
    with httpx.stream("POST", bridge.url + "/v1/messages", headers={"anthropic-version": "2023-06-01"},
                      json={"model": "m1", "max_tokens": 50, "messages": USER, "stream": True}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        body = resp.read().decode()
    events = [block.split("\n") for block in body.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    datas = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert names == ["message_start", "ping", "content_block_start"] + ["content_block_delta"] * 4 + [
        "content_block_stop", "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in zip(names, datas))
    assert datas[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert datas[-2]["usage"] == {"input_tokens": 7, "output_tokens": 4}


def test_tool_round_trip(sdk, backend):
    backend.script(tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}])
    first = sdk.messages.create(model="m1", max_tokens=100, tools=[WEATHER], tool_choice={"type": "any"},
                                messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.id == "call_1" and call.name == "get_weather" and call.input == {"city": "Paris"}
    sent = backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["tools"] == [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER[
        "input_schema"], "description": "Weather for a city"}}]
    assert sent["tool_choice"] == "required"

    backend.reset()
    second = sdk.messages.create(model="m1", max_tokens=100, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21 C"},
                                     {"type": "text", "text": "Thanks"}]}])
    assert second.content[0].text == TEXT and second.stop_reason == "end_turn"
    messages = backend.requests_to("/v1/chat/completions")[-1].json["messages"]
    assert messages[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}
    assert messages[3] == {"role": "user", "content": "Thanks"}


def test_tool_call_streamed_as_partial_json(sdk, backend):
    arguments = '{"city": "Paris", "unit": "C"}'
    backend.script(tool_calls=[{"id": "call_7", "name": "get_weather", "arguments": arguments}], fragments=4)
    partials = []
    with sdk.messages.stream(model="m1", max_tokens=100, tools=[WEATHER], messages=USER) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partials.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert len(partials) == 4 and "".join(partials) == arguments
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "Paris", "unit": "C"}


def test_parallel_interleaved_tool_calls_stay_whole(sdk, backend):
    backend.script(tool_calls=[{"id": "c1", "name": "a", "arguments": '{"x": 1}'},
                               {"id": "c2", "name": "b", "arguments": '{"y": 2}'}], interleave_tool_calls=True)
    with sdk.messages.stream(model="m1", max_tokens=100, tools=[WEATHER], messages=USER) as stream:
        final = stream.get_final_message()
    assert [(b.id, b.name, b.input) for b in final.content] == [("c1", "a", {"x": 1}), ("c2", "b", {"y": 2})]


class Weather(pydantic.BaseModel):
    city: str
    temp: int


def test_json_output(sdk, backend):
    backend.script(tokens=['{"city": ', '"Paris", ', '"temp": 21}'])
    parsed = sdk.messages.parse(model="m1", max_tokens=100, messages=USER, output_format=Weather)
    assert parsed.parsed_output == Weather(city="Paris", temp=21)
    fmt = backend.requests_to("/v1/chat/completions")[-1].json["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["properties"].keys() == {"city", "temp"}


def test_thinking_maps_like_think(sdk, backend):
    backend.script(reasoning=["let me ", "see"])
    message = sdk.messages.create(model="m1", max_tokens=2000, messages=USER,
                                  thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "let me see"
    assert backend.requests_to("/v1/chat/completions")[-1].json["reasoning_effort"] == "low"
    with sdk.messages.stream(model="m1", max_tokens=2000, messages=USER,
                             thinking={"type": "enabled", "budget_tokens": 20000}) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].thinking == "let me see"
    assert backend.requests_to("/v1/chat/completions")[-1].json["reasoning_effort"] == "high"


def test_image_block(sdk, backend):
    sdk.messages.create(model="m1", max_tokens=10, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "what?"}]}])
    content = backend.requests_to("/v1/chat/completions")[-1].json["messages"][0]["content"]
    assert content == [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                       {"type": "text", "text": "what?"}]


def test_unknown_model_is_not_found_error(sdk, backend):
    with pytest.raises(anthropic.NotFoundError) as err:
        sdk.messages.create(model="nope", max_tokens=10, messages=USER)
    assert err.value.status_code == 404 and err.value.type == "not_found_error"
    assert err.value.api_message == "model 'nope' not found"
    assert err.value.request_id  # the bridge's request id, under the header the SDK reads
    assert not backend.requests_to("/v1/chat/completions")


def test_invalid_request_is_bad_request_error(sdk, bridge, backend):
    with pytest.raises(anthropic.BadRequestError) as err:
        sdk.messages.create(model="m1", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}])
    assert err.value.type == "invalid_request_error" and "messages.0.content.0" in err.value.api_message
    resp = httpx.post(bridge.url + "/v1/messages", json={"model": "m1", "messages": USER})  # no max_tokens
    assert resp.status_code == 400 and resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in resp.json()["error"]["message"]
    assert not backend.requests_to("/v1/chat/completions")


def test_backend_errors_keep_status_and_anthropic_type(sdk, backend):
    backend.script(status=429, headers={"Retry-After": "1"}, fail_times=5)
    with pytest.raises(anthropic.RateLimitError) as err:
        sdk.messages.create(model="m1", max_tokens=10, messages=USER)
    assert err.value.type == "rate_limit_error" and err.value.response.headers["retry-after"] == "1"
    backend.reset()
    backend.script(fault="html_502")
    with pytest.raises(anthropic.InternalServerError) as err:
        sdk.messages.create(model="m1", max_tokens=10, messages=USER)
    assert err.value.status_code == 502 and err.value.type == "api_error"


def test_backend_fault_mid_stream_is_an_error_event(sdk, bridge, backend):
    backend.script(tokens=["a", "b", "c", "d"], fault="close_mid_stream", fault_after_tokens=2)
    texts = []
    with pytest.raises(anthropic.APIStatusError) as err:
        with sdk.messages.stream(model="m1", max_tokens=50, messages=USER) as stream:
            for text in stream.text_stream:
                texts.append(text)
    assert texts == ["a", "b"]  # nothing lost before the fault, nothing repeated
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "api_error"
    backend.script(tokens=["a", "b", "c", "d"], fault="close_mid_stream", fault_after_tokens=2)
    with httpx.stream("POST", bridge.url + "/v1/messages",
                      json={"model": "m1", "max_tokens": 50, "messages": USER, "stream": True}) as resp:
        body = resp.read().decode()
    names = [block.split("\n")[0] for block in body.strip().split("\n\n")]
    assert names[-1] == "event: error" and names.count("event: error") == 1
    assert "event: message_stop" not in names and "event: message_delta" not in names


def test_count_tokens(sdk, backend):
    small = sdk.messages.count_tokens(model="m1", messages=USER)
    large = sdk.messages.count_tokens(model="m1", system="x" * 400, tools=[WEATHER], messages=USER)
    assert small.input_tokens > 0 and large.input_tokens >= small.input_tokens + 100
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.count_tokens(model="nope", messages=USER)
    assert not backend.requests_to("/v1/chat/completions")


def recent(bridge, route: str) -> list[dict]:
    """The newest records (all workers) for ``route``, newest first."""
    summary = httpx.get(bridge.url + "/metrics/summary", params={"endpoint": route}).json()
    return [r for r in summary["recent"] if r["route"] == route]


def test_metrics_route_tokens_ttft_outcome(sdk, bridge, backend):
    backend.script(tokens=["a", "b", "c"], delay_s=0.05)
    with sdk.messages.stream(model="m2", max_tokens=50, messages=USER) as stream:
        stream.until_done()
    latest = recent(bridge, "/v1/messages")[0]
    assert latest["stream"] is True and latest["model"] == "m2" and latest["outcome"] == "ok"
    assert latest["ttft_ms"] is not None and latest["ttft_ms"] > 0
    assert latest["tokens"] == {"in": 7, "out": 3}
    sdk.messages.create(model="m2", max_tokens=50, messages=USER)
    latest = recent(bridge, "/v1/messages")[0]
    assert latest["stream"] is False and latest["tokens"] == {"in": 7, "out": 3}
    backend.script(fault="close_mid_stream", fault_after_tokens=1)
    with pytest.raises(anthropic.APIStatusError):
        with sdk.messages.stream(model="m2", max_tokens=50, messages=USER) as stream:
            stream.until_done()
    latest = recent(bridge, "/v1/messages")[0]
    assert latest["stream"] is True and latest["outcome"] not in ("ok", "client_disconnect")
    assert 'route="/v1/messages"' in httpx.get(bridge.url + "/metrics").text


@pytest.fixture(scope="module")
def keyed_bridge(fake_backend, tmp_path_factory):
    proc = BridgeProcess({"OPENAI_API_BASE_URL": fake_backend.url, "BRIDGE_API_KEYS": "k-one,k-two",
                          "MODELS_CACHE_TTL": "0", "MAX_REQUEST_BYTES": "65536"},
                         workers=2, tmp_dir=tmp_path_factory.mktemp("keyed"))
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def test_inbound_keys_x_api_key_and_bearer(keyed_bridge, backend):
    body = {"model": "m1", "max_tokens": 10, "messages": USER}
    assert httpx.post(keyed_bridge.url + "/v1/messages", json=body, headers={"x-api-key": "k-two"}).status_code == 200
    assert httpx.post(keyed_bridge.url + "/v1/messages", json=body,
                      headers={"Authorization": "Bearer k-one"}).status_code == 200
    with anthropic.Anthropic(base_url=keyed_bridge.url, api_key="wrong", max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError) as err:
            client.messages.create(**body)
    assert err.value.type == "authentication_error"
    with anthropic.Anthropic(base_url=keyed_bridge.url, api_key="k-one", max_retries=0) as client:
        assert client.messages.create(**body).content[0].text == TEXT


def test_size_limit_in_each_apis_shape(keyed_bridge, backend):
    huge = [{"role": "user", "content": "x" * 100_000}]
    with anthropic.Anthropic(base_url=keyed_bridge.url, api_key="k-one", max_retries=0) as client:
        with pytest.raises(anthropic.ContentTooLargeError) as err:
            client.messages.create(model="m1", max_tokens=10, messages=huge)
    assert err.value.status_code == 413 and err.value.type == "request_too_large"
    resp = httpx.post(keyed_bridge.url + "/v1/responses", headers={"Authorization": "Bearer k-one"},
                      json={"model": "m1", "input": "x" * 100_000})
    assert resp.status_code == 413 and set(resp.json()["error"]) == {"message", "type", "param", "code"}
    assert not backend.requests_to("/v1/chat/completions")


def test_client_disconnect_mid_stream_closes_the_backend(bridge, backend):
    backend.script(tokens=[f"t{i}" for i in range(50)], delay_s=0.05)
    body = json.dumps({"model": "m1", "max_tokens": 100, "stream": True, "messages": USER}).encode()
    sock = socket.create_connection(("127.0.0.1", bridge.port), timeout=10)
    try:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        received = b""
        while received.count(b"event: content_block_delta") < 2:
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
    finally:
        sock.close()
    assert backend.wait_closed(timeout_s=3)  # the backend request was dropped at once
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        latest = recent(bridge, "/v1/messages")
        if latest and latest[0]["outcome"] == "client_disconnect":
            break
        time.sleep(0.1)
    assert latest[0]["outcome"] == "client_disconnect"


@pytest.fixture()
def keyed_sdk(keyed_bridge):
    with anthropic.Anthropic(base_url=keyed_bridge.url, api_key="k-one", max_retries=0, timeout=10) as client:
        yield client


def test_added_fields_a_backend_refuses_are_dropped(keyed_sdk, backend):
    # On its own bridge: workers remember refusals per backend + model for good.
    sdk = keyed_sdk
    backend.script(reject_params=["reasoning_effort", "stream_options"])
    message = sdk.messages.create(model="m1", max_tokens=50, messages=USER, thinking={"type": "disabled"})
    assert message.content[0].text == TEXT
    with sdk.messages.stream(model="m1", max_tokens=50, messages=USER) as stream:
        assert stream.get_final_message().content[0].text == TEXT
    sent = [r.json for r in backend.requests_to("/v1/chat/completions")]
    assert "reasoning_effort" not in sent[-1] and "stream_options" not in sent[-1]
    with pytest.raises(anthropic.BadRequestError) as err:  # asked for thinking the backend cannot do
        sdk.messages.create(model="m1", max_tokens=50, messages=USER,
                            thinking={"type": "enabled", "budget_tokens": 2048})
    assert "does not support thinking" in err.value.api_message
