"""Core gateway through real gunicorn (2 gevent workers, Procfile command) and real clients."""

from __future__ import annotations

import json
import re
import time

import ollama
import pytest
import requests

from tests.bridgeproc import disconnect_mid_stream

pytestmark = pytest.mark.integration

TEXT = "Hello from fake backend."
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def client(bridge) -> ollama.Client:
    return ollama.Client(host=bridge.url, timeout=20)


def test_root_and_version(bridge, backend):
    assert requests.get(bridge.url + "/").text == "Ollama is running"
    head = requests.head(bridge.url + "/")
    assert head.status_code == 200
    version = requests.get(bridge.url + "/api/version").json()["version"]
    assert tuple(int(p) for p in version.split(".")) >= (0, 6, 4)


def test_chat_non_stream(bridge, backend):
    reply = client(bridge).chat("m1", messages=[{"role": "user", "content": "hi"}])
    assert reply.done is True and reply.done_reason == "stop"
    assert reply.message.role == "assistant" and reply.message.content == TEXT
    assert RFC3339.match(reply.created_at)
    assert reply.prompt_eval_count == 7 and reply.eval_count == 4
    assert reply.total_duration >= reply.eval_duration > 0
    sent = [r for r in backend.requests if r.path == "/v1/chat/completions"][-1].json
    assert sent["model"] == "m1" and sent["stream"] is False and "temperature" not in sent


def test_chat_stream(bridge, backend):
    chunks = list(client(bridge).chat("m1", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.done is False for c in chunks[:-1]) and chunks[-1].done is True
    assert "".join(c.message.content or "" for c in chunks) == TEXT
    last = chunks[-1]
    assert last.done_reason == "stop" and last.eval_count == 4 and last.prompt_eval_count == 7
    for field in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(getattr(last, field), int)
    assert last.total_duration > 0
    sent = [r for r in backend.requests if r.path == "/v1/chat/completions"][-1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_generate_non_stream_and_stream(bridge, backend):
    c = client(bridge)
    reply = c.generate("m1", "hi", system="be brief")
    assert reply.response == TEXT and reply.done and reply.done_reason == "stop" and reply.context == []
    chunks = list(c.generate("m1", "hi", stream=True))
    assert "".join(ch.response for ch in chunks) == TEXT
    assert chunks[-1].done and chunks[-1].eval_count == 4
    sent = [r for r in backend.requests if r.path == "/v1/chat/completions"][0].json
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_raw_stream_is_ndjson_with_stream_defaulting_to_true(bridge, backend):
    resp = requests.post(bridge.url + "/api/chat", json={"model": "m1", "messages": [{"role": "user", "content": "x"}]},
                         stream=True)
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    assert resp.headers["X-Accel-Buffering"] == "no" and resp.headers["X-Request-ID"]
    body = resp.content
    lines = body.split(b"\n")
    assert lines[-1] == b"" and all(lines[:-1]) and not body.startswith(b"data:")
    objs = [json.loads(line) for line in lines[:-1]]
    assert sum(o["done"] for o in objs) == 1 and objs[-1]["done"] is True


def test_unknown_model_is_404_response_error(bridge, backend):
    c = client(bridge)
    with pytest.raises(ollama.ResponseError) as err:
        c.chat("nope", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 404 and "not found" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        next(iter(c.chat("nope", messages=[{"role": "user", "content": "x"}], stream=True)))
    assert err.value.status_code == 404


def test_bad_json_is_400_with_error_string(bridge, backend):
    for path in ("/api/chat", "/api/generate", "/api/embed", "/api/show"):
        resp = requests.post(bridge.url + path, data=b"{bad", headers={"Content-Type": "application/json"},
                             timeout=5)
        assert resp.status_code == 400, path
        assert isinstance(resp.json()["error"], str) and "JSON" in resp.json()["error"]
    resp = requests.post(bridge.url + "/api/chat", json={"messages": []}, timeout=5)
    assert resp.status_code == 400 and resp.json() == {"error": "model is required"}


def test_backend_down_is_502(bridge, backend):
    backend.script(fault="refuse")
    with pytest.raises(ollama.ResponseError) as err:
        client(bridge).chat("m1", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 502
    resp = requests.get(bridge.url + "/api/tags", timeout=10)
    assert resp.status_code == 502 and "error" in resp.json()


def test_streaming_is_not_buffered(bridge, backend):
    backend.script(tokens=[f"t{i} " for i in range(6)], delay_s=0.3)
    started = time.monotonic()
    arrivals = []
    with requests.post(bridge.url + "/api/generate", json={"model": "m1", "prompt": "x"}, stream=True) as resp:
        for line in resp.iter_lines(chunk_size=1):
            if line:
                arrivals.append(time.monotonic() - started)
    # 6 tokens 0.3 s apart (the fake also pauses before the first): each line arrives as its
    # token is produced, so the first long before the last and the gaps match the pacing.
    assert len(arrivals) == 7
    assert arrivals[0] < 0.6, arrivals
    assert arrivals[-2] - arrivals[0] > 1.3, arrivals
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:-1])]
    assert all(0.2 < gap < 0.45 for gap in gaps), gaps


def test_client_disconnect_closes_the_backend_request(bridge, backend):
    backend.script(tokens=[f"t{i} " for i in range(200)], delay_s=0.05)
    disconnect_mid_stream(bridge.port, {"model": "m1", "prompt": "go"}, after_lines=3)
    assert backend.wait_closed(timeout_s=3.0), "backend stream still open after the client left"


def test_nan_and_infinity_are_not_json(bridge, backend):
    for raw in (b'{"model": "m1", "prompt": "x", "options": {"temperature": NaN}}',
                b'{"model": "m1", "messages": [], "x": Infinity}'):
        resp = requests.post(bridge.url + "/api/generate", data=raw, timeout=5)
        assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]
    resp = requests.post(bridge.url + "/v1/chat/completions", timeout=5,
                         data=b'{"model": "m1", "messages": [{"role": "user", "content": "x"}], '
                              b'"temperature": -Infinity}')
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]["message"]
    assert not backend.requests_to("/v1/chat/completions")


def test_ready_reflects_the_backend(bridge, backend):
    # /ready caches its answer for 5 s per worker, so poll until the outage shows.
    assert requests.get(bridge.url + "/ready", timeout=5).status_code == 200
    backend.script(fault="refuse")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        resp = requests.get(bridge.url + "/ready", headers={"Connection": "close"}, timeout=5)
        if resp.status_code == 503:
            break
        time.sleep(0.5)
    assert resp.status_code == 503 and "backend not ready" in resp.text
