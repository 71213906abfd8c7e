"""Self-tests for the fake OpenAI-compatible backend (tests/fakes/backend.py)."""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import time

import openai
import pytest
import requests
from openai import OpenAI

from tests.fakes.backend import (
    DEFAULT_TEXT,
    FAULTS,
    NGINX_502_HTML,
    SPLIT_UTF8_TEXT,
    FakeBackend,
    embedding_vector,
    parse_sse,
    split_fragments,
)

pytestmark = pytest.mark.timeout(15)

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def own_backend():
    """A private instance (independent of the session-wide one in tests/conftest.py)."""
    with FakeBackend() as fb:
        yield fb


@pytest.fixture
def fb(own_backend):
    own_backend.reset()
    yield own_backend
    own_backend.reset()


def client(fb, **kw) -> OpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 5.0)
    return OpenAI(base_url=fb.url + "/v1", api_key="x", **kw)


def post_chat(fb, stream=False, include_usage=False, timeout=5.0, **body):
    payload = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], **body}
    if stream:
        payload["stream"] = True
    if include_usage:
        payload["stream_options"] = {"include_usage": True}
    return requests.post(fb.url + CHAT, json=payload, stream=stream, timeout=timeout)


def chunks_of(resp) -> list:
    """Parse a finished SSE response body into payloads (JSON-decoded except [DONE])."""
    out = []
    for d in parse_sse(resp.content):
        out.append(d if d == "[DONE]" else json.loads(d))
    return out


def content_of(chunks) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in chunks
        if isinstance(c, dict) and c.get("choices")
    )


# ------------------------------------------------------------------------------------- basics


def test_url_and_lifecycle():
    fb = FakeBackend(models=["a"]).start()
    try:
        assert fb.url.startswith("http://127.0.0.1:") and not fb.url.endswith("/v1")
        assert requests.get(fb.url + "/health", timeout=2).json() == {"status": "ok"}
    finally:
        fb.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(fb.url + "/health", timeout=1)


def test_models_list_requests_and_sdk(fb):
    r = requests.get(fb.url + "/v1/models", timeout=2)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["m1", "m2", "e1"]
    assert body["data"][0] == {"id": "m1", "object": "model", "created": 1700000000, "owned_by": "fake"}
    assert [m.id for m in client(fb).models.list()] == ["m1", "m2", "e1"]


def test_model_get_and_unknown(fb):
    assert requests.get(fb.url + "/v1/models/m2", timeout=2).json()["id"] == "m2"
    r = requests.get(fb.url + "/v1/models/nope", timeout=2)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    fb.script(models=["x1"])
    assert [m["id"] for m in requests.get(fb.url + "/v1/models", timeout=2).json()["data"]] == ["x1"]


def test_chat_non_stream(fb):
    r = post_chat(fb)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": DEFAULT_TEXT}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    res = client(fb).chat.completions.create(model="m2", messages=[{"role": "user", "content": "hi"}])
    assert res.choices[0].message.content == DEFAULT_TEXT
    assert res.model == "m2" and res.usage.completion_tokens == 4


def test_chat_stream_with_usage_requests(fb):
    r = post_chat(fb, stream=True, include_usage=True)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers["Transfer-Encoding"] == "chunked"
    chunks = chunks_of(r)
    assert chunks[-1] == "[DONE]"
    first, *middle, finish, usage, _ = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in middle] == ["Hello", " from", " fake", " backend."]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])


def test_chat_stream_sdk_usage_chunk(fb):
    fb.script(tokens=["a", "b", "c"], finish_reason="length")
    stream = client(fb).chat.completions.create(
        model="m1", messages=[{"role": "user", "content": "x"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "abc"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3


def test_stream_usage_absent_unless_asked_or_disabled(fb):
    assert not any("usage" in c for c in chunks_of(post_chat(fb, stream=True)) if isinstance(c, dict))
    fb.script(usage=None)
    assert not any("usage" in c for c in chunks_of(post_chat(fb, stream=True, include_usage=True))
                   if isinstance(c, dict))
    assert "usage" not in post_chat(fb).json()
    fb.reset()
    fb.script(fault="no_usage")
    assert not any("usage" in c for c in chunks_of(post_chat(fb, stream=True, include_usage=True))
                   if isinstance(c, dict))
    fb.reset()
    fb.script(usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    assert chunks_of(post_chat(fb, stream=True, include_usage=True))[-2]["usage"]["total_tokens"] == 3


def test_max_tokens_truncates_with_length(fb):
    body = post_chat(fb, max_tokens=2).json()
    assert body["choices"][0]["message"]["content"] == "Hello from"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_completions_non_stream_and_stream(fb):
    r = requests.post(fb.url + "/v1/completions", json={"model": "m1", "prompt": "p"}, timeout=2)
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == DEFAULT_TEXT and body["usage"]["total_tokens"] == 11
    r = requests.post(fb.url + "/v1/completions", timeout=2, json={
        "model": "m1", "prompt": "p", "stream": True, "stream_options": {"include_usage": True}})
    chunks = chunks_of(r)
    assert chunks[-1] == "[DONE]"
    assert "".join(c["choices"][0]["text"] for c in chunks[:-2]) == DEFAULT_TEXT
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 4
    sdk = list(client(fb).completions.create(model="m1", prompt="p", stream=True))
    assert "".join(c.choices[0].text for c in sdk if c.choices) == DEFAULT_TEXT


def test_completions_usage_inline(fb):
    fb.script(usage_inline=True)
    r = requests.post(fb.url + "/v1/completions", timeout=2, json={
        "model": "m1", "prompt": "p", "stream": True, "stream_options": {"include_usage": True}})
    chunks = chunks_of(r)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["usage"]["total_tokens"] == 11


def test_embeddings_order_dims_and_sdk(fb):
    r = requests.post(fb.url + "/v1/embeddings", timeout=2,
                      json={"model": "e1", "input": ["a b", "c", "a b"], "encoding_format": "float"})
    body = r.json()
    assert body["object"] == "list" and body["model"] == "e1"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    vecs = [d["embedding"] for d in body["data"]]
    assert all(len(v) == 8 for v in vecs)
    assert vecs[0] == vecs[2] != vecs[1]
    assert vecs[1] == embedding_vector("e1", "c", 8)
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    r = requests.post(fb.url + "/v1/embeddings", json={"model": "e1", "input": "x", "dimensions": 5}, timeout=2)
    assert len(r.json()["data"][0]["embedding"]) == 5
    # the SDK asks for base64 by default and decodes it
    res = client(fb).embeddings.create(model="e1", input=["c", "d"])
    assert [d.index for d in res.data] == [0, 1]
    assert res.data[0].embedding == pytest.approx(embedding_vector("e1", "c", 8), abs=1e-6)
    raw = requests.post(fb.url + "/v1/embeddings", timeout=2,
                        json={"model": "e1", "input": "c", "encoding_format": "base64"}).json()
    decoded = struct.unpack("<8f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(embedding_vector("e1", "c", 8), abs=1e-6)
    fb.script(reverse_embeddings=True)
    body = requests.post(fb.url + "/v1/embeddings", json={"model": "e1", "input": ["a", "b"]}, timeout=2).json()
    assert [d["index"] for d in body["data"]] == [1, 0]


def test_unknown_model_and_invalid_json(fb):
    r = post_chat(fb, model="nope")
    assert r.status_code == 404
    assert r.json() == {"error": {"message": "The model `nope` does not exist", "type": "invalid_request_error",
                                  "param": None, "code": "model_not_found"}}
    with pytest.raises(openai.NotFoundError):
        client(fb).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    r = requests.post(fb.url + CHAT, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=2)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert requests.post(fb.url + "/v1/embeddings", json={"model": "zz", "input": "x"}, timeout=2).status_code == 404


# ------------------------------------------------------------------------------ tools/reasoning


TOOLS = [{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
         {"id": "call_2", "name": "get_time", "arguments": '{"tz": "Europe/Paris"}'}]


def test_tool_calls_stream_fragments_reassemble(fb):
    fb.script(tool_calls=TOOLS, fragments=4)
    r = post_chat(fb, stream=True)
    chunks = [c for c in chunks_of(r) if c != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    frags = [tc["function"]["arguments"] for d in deltas for tc in d.get("tool_calls", [])
             if tc["index"] == 0 and tc["function"].get("arguments")]
    assert len(frags) == 4 and "".join(frags) == TOOLS[0]["arguments"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # reassemble with the SDK, the way a client does
    acc: dict[int, dict] = {}
    for c in client(fb).chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}],
                                                 stream=True):
        for tc in c.choices[0].delta.tool_calls or []:
            a = acc.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            a["id"] = tc.id or a["id"]
            a["name"] += (tc.function.name or "")
            a["arguments"] += (tc.function.arguments or "")
    assert [acc[i] for i in sorted(acc)] == TOOLS
    assert json.loads(acc[0]["arguments"]) == {"city": "Paris", "unit": "celsius"}


def test_tool_calls_non_stream(fb):
    fb.script(tool_calls=TOOLS[:1])
    res = client(fb).chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
    msg = res.choices[0].message
    assert msg.content is None and res.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls[0].id == "call_1" and msg.tool_calls[0].function.arguments == TOOLS[0]["arguments"]


def test_split_fragments():
    assert split_fragments("abcdefg", 3) == ["ab", "cde", "fg"]
    assert split_fragments("ab", 5) == ["a", "b"]
    assert split_fragments("", 3) == [""]


def test_reasoning_stream_and_non_stream(fb):
    fb.script(reasoning=["Let me ", "think."], tokens=["ok"])
    chunks = [c for c in chunks_of(post_chat(fb, stream=True)) if c != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert deltas == [{"reasoning_content": "Let me "}, {"reasoning_content": "think."}, {"content": "ok"}]
    msg = post_chat(fb).json()["choices"][0]["message"]
    assert msg["reasoning_content"] == "Let me think." and msg["content"] == "ok"
    fb.script(reasoning_field="reasoning")
    assert post_chat(fb).json()["choices"][0]["message"]["reasoning"] == "Let me think."


# ------------------------------------------------------------------------- errors and retries


def test_status_error_with_headers(fb):
    fb.script(status=429, headers={"Retry-After": "1"})
    r = post_chat(fb)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["type"] == "rate_limit_error"
    fb.script(status=503, error_body=b"upstream overloaded")
    r = requests.get(fb.url + "/v1/models", timeout=2)
    assert r.status_code == 503 and r.text == "upstream overloaded"
    fb.script(status=400, error_body={"detail": "bad"})
    assert post_chat(fb).json() == {"detail": "bad"}


def test_fail_times_then_success(fb):
    fb.script(status=500, fail_times=2)
    codes = [post_chat(fb).status_code for _ in range(4)]
    assert codes == [500, 500, 200, 200]
    fb.reset()
    fb.script(status=429, fail_times=2, headers={"retry-after-ms": "10"})
    res = client(fb, max_retries=2).chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
    assert res.choices[0].message.content == DEFAULT_TEXT
    assert len(fb.requests_to(CHAT)) == 3


def test_match_path_scopes_faults(fb):
    fb.script(status=500, match_path=CHAT)
    assert requests.get(fb.url + "/v1/models", timeout=2).status_code == 200
    assert post_chat(fb).status_code == 500


def test_html_502_and_invalid_json(fb):
    fb.script(fault="html_502")
    r = post_chat(fb)
    assert r.status_code == 502 and r.headers["Content-Type"] == "text/html" and r.content == NGINX_502_HTML
    fb.script(fault="invalid_json")
    r = post_chat(fb)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(r.content)


def test_api_key_required(fb):
    fb.script(api_key="sekret")
    assert requests.get(fb.url + "/v1/models", timeout=2).status_code == 401
    assert requests.get(fb.url + "/v1/models", headers={"Authorization": "Bearer sekret"}, timeout=2).ok
    with pytest.raises(openai.AuthenticationError):
        client(fb).models.list()


def test_script_validation(fb):
    with pytest.raises(TypeError):
        fb.script(bogus=1)
    with pytest.raises(ValueError):
        fb.script(fault="nope")
    assert "split_utf8" in FAULTS


# ------------------------------------------------------------------------------- socket faults


def test_refuse_then_reset_restarts(fb):
    port = fb.port
    fb.script(fault="refuse")
    with pytest.raises(requests.ConnectionError):
        requests.get(fb.url + "/v1/models", timeout=1)
    with pytest.raises(openai.APIConnectionError):
        client(fb).models.list()
    fb.reset()
    assert fb.port == port
    assert requests.get(fb.url + "/v1/models", timeout=2).status_code == 200


def test_accept_no_answer_read_timeout_and_wait_closed(fb):
    fb.script(fault="accept_no_answer")
    t0 = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        post_chat(fb, timeout=(1, 0.3))
    assert time.monotonic() - t0 < 1.5
    assert fb.wait_requests(1) and fb.requests[0].json["model"] == "m1"
    assert fb.wait_closed(1.0)  # requests closed the socket after the timeout


def test_slow_headers_and_first_delay(fb):
    fb.script(fault="slow_headers", first_delay_s=5)
    with pytest.raises(requests.ReadTimeout):
        post_chat(fb, timeout=(1, 0.3))
    fb.reset()
    fb.script(first_delay_s=0.3)
    t0 = time.monotonic()
    assert post_chat(fb).status_code == 200
    assert time.monotonic() - t0 >= 0.3


def test_stall_mid_stream_read_timeout(fb):
    fb.script(fault="stall_mid_stream", fault_after_tokens=2)
    r = post_chat(fb, stream=True, timeout=(1, 0.3))
    got = []
    with pytest.raises(requests.ConnectionError):  # read timeouts while streaming surface as ConnectionError
        for line in r.iter_lines():
            if line:
                got.append(json.loads(line[len(b"data: "):]))
    assert content_of(got) == "Hello from"
    r.close()
    assert fb.wait_closed(1.0)


def test_stall_non_stream_partial_body(fb):
    fb.script(fault="stall_mid_stream")
    with pytest.raises(requests.ConnectionError):
        post_chat(fb, timeout=(1, 0.3))


def test_reset_mid_stream(fb):
    fb.script(fault="reset_mid_stream", fault_after_tokens=1)
    r = post_chat(fb, stream=True)
    lines = []
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        for line in r.iter_lines():
            lines.append(line)
    assert b"Hello" in b"".join(lines) and b"[DONE]" not in b"".join(lines)
    with pytest.raises(openai.APIConnectionError):
        list(client(fb).chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}],
                                                stream=True))


def test_close_mid_stream_and_truncated_stream(fb):
    fb.script(fault="close_mid_stream")
    r = post_chat(fb, stream=True)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        for _ in r.iter_lines():
            pass
    fb.script(fault="truncated_stream", fault_after_tokens=3)
    r = post_chat(fb, stream=True)  # HTTP body ends cleanly, SSE stream is cut
    chunks = chunks_of(r)
    assert "[DONE]" not in chunks and content_of(chunks) == "Hello from fake"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


def test_error_event(fb):
    fb.script(fault="error_event", error_event_line=True)
    r = post_chat(fb, stream=True)
    assert r.status_code == 200
    assert b"event: error\ndata: {" in r.content
    chunks = chunks_of(r)
    assert chunks[-1] == {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}
    assert content_of(chunks[:-1]) == "Hello from"
    fb.script(error_event_line=False)
    with pytest.raises(openai.APIError):
        list(client(fb).chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}],
                                                stream=True))
    assert post_chat(fb).status_code == 500


def test_garbage_sse(fb):
    fb.script(fault="garbage_sse")
    r = post_chat(fb, stream=True, include_usage=True)
    text = r.content.decode()
    for junk in ("data: {not json", ": comment", "event: ping", 'data:{"id"'):
        assert junk in text
    parsed = []
    for d in parse_sse(text):
        try:
            parsed.append(json.loads(d) if d != "[DONE]" else d)
        except ValueError:
            pass
    assert content_of(parsed) == DEFAULT_TEXT and parsed[-1] == "[DONE]"


def test_crlf_sse(fb):
    fb.script(sse_eol="\r\n")
    r = post_chat(fb, stream=True)
    assert b"\r\n\r\n" in r.content
    assert content_of(chunks_of(r)) == DEFAULT_TEXT


def test_huge(fb):
    fb.script(fault="huge")
    r = post_chat(fb, timeout=10)
    assert len(r.json()["choices"][0]["message"]["content"]) == 8 * 1024 * 1024
    fb.script(huge_bytes=100_000)
    chunks = chunks_of(post_chat(fb, stream=True))
    assert len(content_of(chunks)) == 100_000


def test_split_utf8_stream(fb):
    fb.script(fault="split_utf8")
    r = post_chat(fb, stream=True)
    pieces = list(r.raw.stream(None, decode_content=False))
    undecodable = 0
    for p in pieces:
        try:
            p.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable >= 4  # every multi-byte char arrives split
    chunks = chunks_of_bytes(b"".join(pieces))
    assert content_of(chunks) == SPLIT_UTF8_TEXT
    sdk = client(fb).chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in sdk if c.choices) == SPLIT_UTF8_TEXT


def test_split_utf8_non_stream(fb):
    fb.script(fault="split_utf8")
    assert post_chat(fb).json()["choices"][0]["message"]["content"] == SPLIT_UTF8_TEXT


def chunks_of_bytes(data: bytes) -> list:
    return [d if d == "[DONE]" else json.loads(d) for d in parse_sse(data)]


# --------------------------------------------------------------------------- recording & misc


def test_request_recording(fb):
    requests.post(fb.url + CHAT + "?x=1", json={"model": "m1", "messages": [], "stream": False},
                  headers={"X-Trace": "abc", "Authorization": "Bearer k"}, timeout=2)
    requests.get(fb.url + "/v1/models", timeout=2)
    requests.post(fb.url + CHAT, data=b"not json", timeout=2)
    reqs = fb.requests
    assert [(r.method, r.path) for r in reqs] == [("POST", CHAT), ("GET", "/v1/models"), ("POST", CHAT)]
    first = reqs[0]
    assert first.query == "x=1"
    assert first.headers["x-trace"] == "abc" and first.headers["X-TRACE"] == "abc"
    assert first.headers.get("authorization") == "Bearer k"
    assert first.json == {"model": "m1", "messages": [], "stream": False} and first.model == "m1"
    assert json.loads(first.body) == first.json and first.raw == first.body
    assert reqs[1].json is None and reqs[1].body == b""
    assert reqs[2].json is None and reqs[2].body == b"not json"
    assert fb.last_request is reqs[2]
    fb.reset()
    assert fb.requests == []


def test_chunked_request_body_recorded(fb):
    def gen():
        yield b'{"model": "m1", '
        yield b'"messages": []}'
    r = requests.post(fb.url + CHAT, data=gen(), headers={"Content-Type": "application/json"}, timeout=2)
    assert r.status_code == 200
    assert fb.requests[0].json == {"model": "m1", "messages": []}


def test_wait_closed_on_client_disconnect_mid_stream(fb):
    fb.script(tokens=[f" t{i}" for i in range(50)], delay_s=0.05)
    r = post_chat(fb, stream=True)
    it = r.iter_lines()
    assert next(it).startswith(b"data: ")
    assert not fb.wait_closed(0.1)
    r.close()
    assert fb.wait_closed(1.0)


def test_wait_closed_false_after_complete_stream(fb):
    chunks_of(post_chat(fb, stream=True))
    assert not fb.wait_closed(0.1)


def test_stream_delay_and_flush(fb):
    fb.script(tokens=["a", "b", "c"], delay_s=0.1)
    r = post_chat(fb, stream=True)
    stamps = []
    for line in r.iter_lines():
        if line:
            stamps.append(time.monotonic())
    assert len(stamps) == 6  # role, 3 tokens, finish, [DONE]
    assert stamps[-1] - stamps[0] >= 0.4  # events were flushed one by one, not buffered


def test_keep_alive_session_and_concurrency(fb):
    with requests.Session() as s:
        for _ in range(3):
            assert s.get(fb.url + "/v1/models", timeout=2).status_code == 200
    fb.script(delay_s=0.05)
    results: list[str] = []

    def one():
        results.append(content_of(chunks_of(post_chat(fb, stream=True))))

    threads = [threading.Thread(target=one) for _ in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == [DEFAULT_TEXT] * 8
    assert time.monotonic() - t0 < 1.5  # served concurrently


def test_raw_socket_malformed_request(fb):
    with socket.create_connection(("127.0.0.1", fb.port), timeout=2) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
