"""bridge/demo_backend.py: the deterministic OpenAI-compatible WSGI app (models, chat and
completions, streamed with usage, embeddings), its in-process requests adapter, and the transport
that mounts it for the demo host only. Werkzeug's test client and requests sessions: no socket."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import requests
from requests.adapters import HTTPAdapter
from werkzeug.test import Client

from bridge import demo_backend
from bridge.config import DEMO_BACKEND_URL, Settings
from bridge.demo_backend import DEMO_MODELS, DemoAdapter, DemoBackend, answer_text, demo_transport

CREATED = 1_735_689_600
ANSWER_HI_THERE = "Hello from the bridge demo backend! You said: hi there"  # 10 tokens


@pytest.fixture()
def client() -> Client:
    return Client(DemoBackend(0.0))


def chat_body(content="hi there", **extra) -> dict:
    return {"model": "demo", "messages": [{"role": "user", "content": content}], **extra}


def sse_events(data: bytes) -> list:
    frames = data.decode().split("\n\n")
    assert frames[-1] == ""
    out = []
    for frame in frames[:-1]:
        assert frame.startswith("data: "), frame
        payload = frame[len("data: "):]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


# -- answer_text -----------------------------------------------------------------------------------------
def test_the_answer_echoes_the_first_twelve_words_of_the_prompt():
    assert answer_text("hi   there\n") == ANSWER_HI_THERE
    words = [f"w{i}" for i in range(20)]
    assert answer_text(" ".join(words)).endswith("You said: " + " ".join(words[:12]))
    assert answer_text("   ") == "Hello from the bridge demo backend! You said: nothing"


# -- models ----------------------------------------------------------------------------------------------
def test_models_list(client):
    resp = client.get("/v1/models")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    assert int(resp.headers["Content-Length"]) == len(resp.data)
    assert resp.json == {"object": "list", "data": [
        {"id": m, "object": "model", "created": CREATED, "owned_by": "bridge-demo"} for m in DEMO_MODELS]}
    assert DEMO_MODELS == ("demo", "demo-embed")


def test_one_model_and_an_unknown_one(client):
    assert client.get("/v1/models/demo-embed").json["id"] == "demo-embed"
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json == {"error": {"message": "The model `nope` does not exist", "type": "not_found_error",
                                      "param": None, "code": None}}


def test_paths_work_with_and_without_the_v1_prefix(client):
    assert client.get("/models").json == client.get("/v1/models").json


@pytest.mark.parametrize(("method", "path", "shown"), [
    ("GET", "/v1/chat/completions", "GET /chat/completions"),
    ("POST", "/v1/models", "POST /models"),
    ("POST", "/v1/responses", "POST /responses"),
    ("DELETE", "/v1/embeddings", "DELETE /embeddings"),
])
def test_unknown_routes_are_404(client, method, path, shown):
    resp = client.open(path, method=method, json={"model": "demo"})
    assert resp.status_code == 404
    assert resp.json["error"] == {"message": f"no route {shown}", "type": "not_found_error", "param": None,
                                  "code": None}


# -- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "message"), [
    (b"{not json", "body is not valid JSON"),
    (b'{"model": "demo"', "body is not valid JSON"),
    (b"\xff\xfe\xfa", "body is not valid JSON"),
    (b"", "body must be a JSON object"),
    (b"[1, 2]", "body must be a JSON object"),
    (b'"demo"', "body must be a JSON object"),
])
def test_a_bad_body_is_400(client, data, message):
    resp = client.post("/v1/chat/completions", data=data, content_type="application/json")
    assert resp.status_code == 400
    assert resp.json["error"] == {"message": message, "type": "invalid_request_error", "param": None, "code": None}


@pytest.mark.parametrize("model", [None, "gpt-4", 7])
def test_an_unknown_model_is_404(client, model):
    resp = client.post("/v1/chat/completions", json={**chat_body(), "model": model})
    assert resp.status_code == 404
    assert resp.json["error"]["message"] == f"The model `{model}` does not exist"


# -- chat and completions, not streamed -------------------------------------------------------------------
def test_chat_answer_with_usage(client):
    resp = client.post("/v1/chat/completions", json=chat_body())
    assert resp.status_code == 200
    assert resp.json == {
        "id": "chatcmpl-demo", "object": "chat.completion", "created": CREATED, "model": "demo",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER_HI_THERE},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 10, "total_tokens": 12}}


def test_chat_answers_the_last_user_message_and_reads_text_parts(client):
    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"},
                                             {"type": "text", "text": None}, {"type": "text", "text": "there"}]},
                {"role": "system", "content": "ignored"}]
    resp = client.post("/v1/chat/completions", json={"model": "demo", "messages": messages})
    assert resp.json["choices"][0]["message"]["content"] == "Hello from the bridge demo backend! You said: hi there"


def test_chat_without_a_user_message_says_nothing(client):
    resp = client.post("/v1/chat/completions", json={"model": "demo", "messages": [{"role": "system",
                                                                                       "content": "s"}]})
    assert resp.json["choices"][0]["message"]["content"].endswith("You said: nothing")


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_a_token_limit_cuts_the_answer_with_finish_reason_length(client, field):
    resp = client.post("/v1/chat/completions", json=chat_body(**{field: 3})).json
    assert resp["choices"][0]["message"]["content"] == "Hello from the"
    assert resp["choices"][0]["finish_reason"] == "length"
    assert resp["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


@pytest.mark.parametrize("limit", [0, 10, 500, "3", -1])
def test_a_limit_that_cuts_nothing_finishes_with_stop(client, limit):
    resp = client.post("/v1/chat/completions", json=chat_body(max_tokens=limit)).json
    assert resp["choices"][0]["finish_reason"] == "stop"
    assert resp["choices"][0]["message"]["content"] == ANSWER_HI_THERE


def test_completions_answer(client):
    resp = client.post("/v1/completions", json={"model": "demo", "prompt": "hi there"}).json
    assert resp == {"id": "cmpl-demo", "object": "text_completion", "created": CREATED, "model": "demo",
                    "choices": [{"index": 0, "text": ANSWER_HI_THERE, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 10, "total_tokens": 12}}
    odd = client.post("/v1/completions", json={"model": "demo", "prompt": ["a", "b"]}).json
    assert odd["choices"][0]["text"].endswith("You said: nothing") and odd["usage"]["prompt_tokens"] == 1


# -- streamed --------------------------------------------------------------------------------------------
def test_chat_stream_with_usage(client):
    resp = client.post("/v1/chat/completions", json=chat_body(stream=True, stream_options={"include_usage": True}))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/event-stream" and resp.headers["Cache-Control"] == "no-cache"
    events = sse_events(resp.data)
    assert events[-1] == "[DONE]"
    role, *pieces, finish, usage, _ = events
    for event in (role, *pieces, finish, usage):
        assert (event["id"], event["object"], event["created"], event["model"]) == (
            "chatcmpl-demo", "chat.completion.chunk", CREATED, "demo")
    assert role["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    assert "".join(p["choices"][0]["delta"]["content"] for p in pieces) == ANSWER_HI_THERE
    assert len(pieces) == 10 and all(p["choices"][0]["finish_reason"] is None for p in pieces)
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 2, "completion_tokens": 10,
                                                         "total_tokens": 12}


def test_chat_stream_without_usage_unless_asked(client):
    for options in ({}, {"stream_options": None}, {"stream_options": {"include_usage": False}}):
        events = sse_events(client.post("/v1/chat/completions", json=chat_body(stream=True, **options)).data)
        assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "stop"
        assert not any("usage" in e for e in events[:-1])


def test_a_cut_stream_ends_with_length(client):
    events = sse_events(client.post("/v1/chat/completions", json=chat_body(stream=True, max_tokens=2)).data)
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "Hello from"
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_completions_stream(client):
    body = {"model": "demo", "prompt": "hi there", "stream": True, "stream_options": {"include_usage": True}}
    events = sse_events(client.post("/v1/completions", json=body).data)
    *pieces, finish, usage, done = events
    assert done == "[DONE]"
    assert all(e["object"] == "text_completion" and e["id"] == "cmpl-demo" for e in (*pieces, finish, usage))
    assert "".join(p["choices"][0]["text"] for p in pieces) == ANSWER_HI_THERE  # no role event first
    assert finish["choices"] == [{"index": 0, "text": "", "finish_reason": "stop"}]
    assert usage["usage"]["completion_tokens"] == len(pieces) == 10


def test_streams_are_paced_between_tokens_only(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(demo_backend, "time", SimpleNamespace(sleep=slept.append))
    resp = Client(DemoBackend(0.05)).post("/v1/chat/completions", json=chat_body(stream=True))
    assert len(sse_events(resp.data)) == 1 + 10 + 1 + 1
    assert slept == [0.05] * 9
    slept.clear()
    Client(DemoBackend(0.05)).post("/v1/chat/completions", json=chat_body())
    assert slept == []  # an answer that is not streamed is not paced


# -- embeddings ------------------------------------------------------------------------------------------
def test_embeddings_default_to_16_unit_length_dimensions(client):
    resp = client.post("/v1/embeddings", json={"model": "demo-embed", "input": ["one two", "three"]}).json
    assert resp["object"] == "list" and resp["model"] == "demo-embed"
    assert resp["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert [d["index"] for d in resp["data"]] == [0, 1]
    for item in resp["data"]:
        assert item["object"] == "embedding" and len(item["embedding"]) == 16
        assert math.isclose(math.sqrt(sum(v * v for v in item["embedding"])), 1.0, abs_tol=1e-5)
    assert resp["data"][0]["embedding"] != resp["data"][1]["embedding"]


def test_embeddings_are_deterministic_and_take_a_string_and_dimensions(client):
    one = client.post("/v1/embeddings", json={"model": "demo", "input": "three"}).json
    again = client.post("/v1/embeddings", json={"model": "demo-embed", "input": ["x", "three"]}).json
    assert one["data"][0]["embedding"] == again["data"][1]["embedding"]
    wide = client.post("/v1/embeddings", json={"model": "demo-embed", "input": "three", "dimensions": 48}).json
    assert len(wide["data"][0]["embedding"]) == 48
    assert math.isclose(sum(v * v for v in wide["data"][0]["embedding"]), 1.0, abs_tol=1e-4)
    ignored = client.post("/v1/embeddings", json={"model": "demo-embed", "input": "three", "dimensions": "48"}).json
    assert len(ignored["data"][0]["embedding"]) == 16


@pytest.mark.parametrize("dimensions", [0, -1, 4097, 10**9])
def test_embeddings_refuse_dimensions_out_of_range(client, dimensions):
    resp = client.post("/v1/embeddings", json={"model": "demo-embed", "input": "x", "dimensions": dimensions})
    assert resp.status_code == 400
    assert resp.json["error"]["message"] == "dimensions must be between 1 and 4096"


@pytest.mark.parametrize("inputs", [None, 5, [1, 2], ["ok", None], {"text": "x"}])
def test_embeddings_refuse_input_that_is_not_strings(client, inputs):
    resp = client.post("/v1/embeddings", json={"model": "demo-embed", "input": inputs})
    assert resp.status_code == 400
    assert resp.json["error"]["message"] == "input must be a string or a list of strings"


# -- the adapter and the transport ------------------------------------------------------------------------
def demo_session(delay: float = 0.0) -> requests.Session:
    session = requests.Session()
    session.mount("http://demo.test", DemoAdapter(delay))
    return session


def test_the_adapter_answers_requests_in_process():
    with demo_session() as session:
        resp = session.post("http://demo.test/v1/chat/completions?x=1", json=chat_body())
        assert resp.status_code == 200 and resp.reason == "OK"
        assert resp.json()["choices"][0]["message"]["content"] == ANSWER_HI_THERE
        assert resp.headers["content-type"] == "application/json"
        assert resp.url == "http://demo.test/v1/chat/completions?x=1" and resp.request.method == "POST"
        missing = session.get("http://demo.test/v1/models/ghost")
        assert (missing.status_code, missing.reason) == (404, "Not Found")


def test_the_adapter_streams_piece_by_piece_and_closing_stops_the_stream():
    with demo_session() as session:
        resp = session.post("http://demo.test/v1/chat/completions", json=chat_body(stream=True), stream=True)
        first = resp.raw.read1()
        assert json.loads(first[len(b"data: "):])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        second = resp.raw.read(5)
        assert second == b"data:"
        resp.close()
        assert resp.raw.closed and resp.raw.read() == b""
        whole = session.post("http://demo.test/v1/chat/completions", json=chat_body(stream=True), stream=True)
        assert sse_events(b"".join(whole.iter_content(None)))[-1] == "[DONE]"


def test_demo_transport_mounts_the_demo_host_only():
    settings = Settings(demo_token_delay_s=0.25)
    transport = demo_transport(settings)
    session = transport.session()
    adapter = session.get_adapter(DEMO_BACKEND_URL + "/models")
    assert isinstance(adapter, DemoAdapter) and adapter.app.token_delay_s == 0.25
    assert isinstance(session.get_adapter("http://127.0.0.1:8000/v1/models"), HTTPAdapter)
    assert isinstance(session.get_adapter("https://demo.example/v1/models"), HTTPAdapter)


def test_demo_transport_sends_through_the_production_transport():
    transport = demo_transport(Settings(demo_token_delay_s=0.0))
    listing = transport.send("GET", DEMO_BACKEND_URL + "/models", None, {}, stream=False, timeout=(1.0, 1.0),
                             idle_timeout_s=1.0)
    assert listing.status == 200 and [m["id"] for m in listing.json()["data"]] == list(DEMO_MODELS)
    body = json.dumps(chat_body(stream=True)).encode()
    streamed = transport.send("POST", DEMO_BACKEND_URL + "/chat/completions", body,
                              {"Content-Type": "application/json"}, stream=True, timeout=(1.0, 1.0),
                              idle_timeout_s=1.0)
    assert streamed.status == 200 and streamed.content_type == "text/event-stream"
    events = sse_events(b"".join(streamed.iter_bytes()))
    streamed.release()
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[1:-1]) == ANSWER_HI_THERE
