"""Every fake-backend fault mode through the real bridge -> the outcome SPEC section 4 promises.

Tokens: what the client got is compared with what the fake sent (none lost, none duplicated), and a
broken stream always ends with exactly one ``{"error": ...}`` line, never a fake ``done``.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.fakes.backend import DEFAULT_TEXT, DEFAULT_TOKENS, NGINX_502_HTML, SPLIT_UTF8_TEXT, SPLIT_UTF8_TOKENS
from tests.faults import TIMEOUT, chat_body, start_bridge, stream_chat

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tight(fake_backend, tmp_path_factory):
    """No retries, 2 s request deadline, 1 s stream idle timeout."""
    # The model list is cached for the module (warmed here), so only the generation call meets the fault.
    proc = start_bridge(fake_backend, tmp_path_factory.mktemp("tight"), name="tight", MAX_RETRIES="0",
                        REQUEST_TIMEOUT="2", STREAM_IDLE_TIMEOUT="1", MODELS_CACHE_TTL="3600")
    fake_backend.reset()
    for _ in range(4):  # every worker
        requests.get(proc.url + "/api/tags", timeout=TIMEOUT)
    yield proc
    proc.stop()


def _error_line_only_at_end(lines: list[dict]) -> str:
    """The stream ended with one error line and no done:true line anywhere; returns the message."""
    assert "error" in lines[-1], lines[-3:]
    assert isinstance(lines[-1]["error"], str) and lines[-1]["error"]
    assert sum("error" in o for o in lines) == 1
    assert not any(o.get("done") is True for o in lines), "a fake done line after a broken stream"
    return lines[-1]["error"]


def _short_error(resp: requests.Response) -> str:
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    message = body["error"]
    assert 0 < len(message) < 300 and "<" not in message and "Traceback" not in message, message
    return message


# -- before any byte: refused, no answer, slow headers ----------------------------------------------

def test_refused_is_502(bridge, backend, reliability):
    backend.script(fault="refuse")
    started = time.monotonic()
    for body in (chat_body(stream=False), chat_body(stream=True)):
        resp = requests.post(bridge.url + "/api/chat", json=body, timeout=TIMEOUT)
        assert resp.status_code == 502
        message = _short_error(resp)
    assert time.monotonic() - started < 5
    resp = requests.post(bridge.url + "/v1/chat/completions", json=chat_body(stream=False), timeout=TIMEOUT)
    assert resp.status_code == 502 and isinstance(resp.json()["error"]["message"], str)
    reliability.row("refused (connect error)", outcome=f"502 {message!r}")


def test_accepts_never_answers_is_504_within_deadline(tight, backend, reliability):
    # Only the generation call hangs (a hanging /v1/models pre-check is bounded separately).
    backend.script(fault="accept_no_answer", match_path="/v1/chat/completions")
    started = time.monotonic()
    resp = requests.post(tight.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert resp.status_code == 504 and elapsed < 3.5, (resp.status_code, elapsed)
    message = _short_error(resp)
    reliability.row("accepts, never answers (non-stream)", outcome=f"504 after {elapsed:.1f} s (REQUEST_TIMEOUT=2)")

    started = time.monotonic()
    resp = requests.post(tight.url + "/api/chat", json=chat_body(stream=True), timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert resp.status_code == 504 and elapsed < 2.5, (resp.status_code, elapsed)
    message = _short_error(resp)
    assert len([r for r in backend.requests if r.path == "/v1/chat/completions"]) == 2  # no retry of a timeout
    reliability.row("accepts, never answers (stream)",
                    outcome=f"504 after {elapsed:.1f} s (STREAM_IDLE_TIMEOUT=1): {message!r}")


def test_slow_headers_within_deadline_then_over_it(tight, backend, reliability):
    backend.script(fault="slow_headers", first_delay_s=0.6, match_path="/v1/chat/completions")
    status, lines, pieces, _ = stream_chat(tight.url, chat_body(stream=True))
    assert status == 200 and "".join(pieces) == DEFAULT_TEXT and lines[-1]["done"] is True
    resp = requests.post(tight.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.json()["message"]["content"] == DEFAULT_TEXT
    reliability.row("slow headers (0.6 s, under the limits)", outcome="200, full text",
                    sent=list(DEFAULT_TOKENS), delivered=pieces)

    backend.script(fault="slow_headers", first_delay_s=30, match_path="/v1/chat/completions")
    started = time.monotonic()
    resp = requests.post(tight.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert resp.status_code == 504 and elapsed < 3.5, (resp.status_code, elapsed)
    _short_error(resp)
    reliability.row("slow headers (30 s, over REQUEST_TIMEOUT=2)", outcome=f"504 after {elapsed:.1f} s")


# -- mid-stream faults ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["stall_mid_stream", "reset_mid_stream", "close_mid_stream",
                                   "truncated_stream", "error_event"])
@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_mid_stream_fault_ends_with_one_error_line(bridge, backend, reliability, fault, path):
    backend.script(fault=fault, tokens=["a1", " b2", " c3", " d4", " e5"], fault_after_tokens=3)
    body = chat_body() if path == "/api/chat" else {"model": "m1", "prompt": "hi"}
    status, lines, pieces, elapsed = stream_chat(bridge.url, body, path=path)
    assert status == 200
    message = _error_line_only_at_end(lines)
    sent = ["a1", " b2", " c3"]
    assert pieces == sent, pieces
    if fault == "stall_mid_stream":
        assert 1.5 < elapsed < 4.0, elapsed  # STREAM_IDLE_TIMEOUT=2
    else:
        assert elapsed < 2.0, elapsed
    # Never retried after the stream began (the client already has tokens).
    assert len([r for r in backend.requests if r.path == "/v1/chat/completions"]) == 1
    reliability.row(f"{fault} {path}", outcome=f"200, {len(pieces)} tokens, then error line {message!r}",
                    sent=sent, delivered=pieces)


@pytest.mark.parametrize("fault", ["stall_mid_stream", "reset_mid_stream", "close_mid_stream", "error_event"])
def test_mid_stream_fault_on_openai_passthrough(bridge, backend, reliability, fault):
    backend.script(fault=fault, tokens=["a1", " b2", " c3", " d4"], fault_after_tokens=2)
    body = {"model": "m1", "messages": [{"role": "user", "content": "x"}], "stream": True}
    started = time.monotonic()
    resp = requests.post(bridge.url + "/v1/chat/completions", json=body, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert resp.status_code == 200 and elapsed < 4.0
    events = [line[6:] for line in resp.text.split("\n") if line.startswith("data: ")]
    assert "[DONE]" not in events
    objs = [json.loads(e) for e in events]
    pieces = [c["delta"].get("content") for o in objs for c in o.get("choices", []) if c["delta"].get("content")]
    assert pieces == ["a1", " b2"], pieces
    assert "error" in objs[-1] and isinstance(objs[-1]["error"]["message"], str)
    assert sum("error" in o for o in objs) == 1
    reliability.row(f"{fault} /v1/chat/completions", outcome=f"200 SSE, then one error event "
                    f"{objs[-1]['error']['message']!r}", sent=["a1", " b2"], delivered=pieces)


# -- malformed or odd backend data ----------------------------------------------------------------------

def test_garbage_sse_lines_are_skipped(bridge, backend, reliability):
    backend.script(fault="garbage_sse")
    status, lines, pieces, _ = stream_chat(bridge.url)
    assert status == 200 and "".join(pieces) == DEFAULT_TEXT and pieces == list(DEFAULT_TOKENS)
    assert lines[-1]["done"] is True and not any("error" in o for o in lines)
    reliability.row("garbage SSE (comments, ping, bad JSON, data: without space)", outcome="200, text intact",
                    sent=list(DEFAULT_TOKENS), delivered=pieces)


def test_html_502_is_a_short_readable_502(bridge, backend, reliability):
    backend.script(fault="html_502")
    for body in (chat_body(stream=False), chat_body(stream=True)):
        resp = requests.post(bridge.url + "/api/chat", json=body, timeout=TIMEOUT)
        assert resp.status_code == 502
        message = _short_error(resp)
        assert "html" not in message.lower() and NGINX_502_HTML.decode()[:20] not in message
    reliability.row("HTML 502 page from a proxy", outcome=f"502 {message!r}")


def test_invalid_json_is_502(bridge, backend, reliability):
    backend.script(fault="invalid_json")
    resp = requests.post(bridge.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    assert resp.status_code == 502
    message = _short_error(resp)
    resp = requests.post(bridge.url + "/api/embed", json={"model": "e1", "input": "x"}, timeout=TIMEOUT)
    assert resp.status_code == 502
    _short_error(resp)
    reliability.row("200 with a body that is not JSON", outcome=f"502 {message!r}")
    # The same body on a streamed call: no SSE at all -> one error line, never a fake done.
    status, lines, pieces, _ = stream_chat(bridge.url)
    if status == 200:
        _error_line_only_at_end(lines)
        outcome = f"200 + error line {lines[-1]['error']!r}"
    else:
        assert status == 502
        outcome = "502"
    assert pieces == []
    reliability.row("200 non-SSE body on a stream", outcome=outcome)


@pytest.mark.parametrize("stream", [False, True])
def test_huge_response_passes_intact(bridge, backend, reliability, stream):
    size = 8 * 1024 * 1024
    backend.script(fault="huge", huge_bytes=size)
    expected = ("0123456789abcdef" * (size // 16 + 1))[:size]
    resp = requests.post(bridge.url + "/api/chat", json=chat_body(stream=stream), timeout=(3, 60))
    assert resp.status_code == 200
    if stream:
        lines = [json.loads(line) for line in resp.content.split(b"\n") if line]
        text = "".join(o["message"]["content"] for o in lines if not o.get("done"))
        assert lines[-1]["done"] is True
    else:
        text = resp.json()["message"]["content"]
    assert text == expected
    reliability.row(f"huge response (8 MiB, {'stream' if stream else 'non-stream'})", outcome="200, byte-exact",
                    sent=[expected], delivered=[text])


@pytest.mark.parametrize("stream", [False, True])
def test_split_utf8_is_reassembled_exactly(bridge, backend, reliability, stream):
    backend.script(fault="split_utf8")
    if stream:
        status, lines, pieces, _ = stream_chat(bridge.url)
        assert status == 200 and lines[-1]["done"] is True
        text = "".join(pieces)
        assert pieces == list(SPLIT_UTF8_TOKENS)
    else:
        resp = requests.post(bridge.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
        assert resp.status_code == 200
        text = resp.json()["message"]["content"]
        pieces = [text]
    assert text == SPLIT_UTF8_TEXT
    reliability.row(f"UTF-8 split across TCP reads ({'stream' if stream else 'non-stream'})",
                    outcome="200, text exact", sent=list(SPLIT_UTF8_TOKENS) if stream else [SPLIT_UTF8_TEXT],
                    delivered=pieces)


def test_missing_usage_still_gives_counts(bridge, backend, reliability):
    backend.script(fault="no_usage")
    status, lines, pieces, _ = stream_chat(bridge.url)
    assert status == 200 and "".join(pieces) == DEFAULT_TEXT
    final = lines[-1]
    assert final["done"] is True and final["eval_count"] == len(DEFAULT_TOKENS)
    reliability.row("usage missing (stream)",
                    outcome=f"200, eval_count={final['eval_count']} (fallback: chunks forwarded)",
                    sent=list(DEFAULT_TOKENS), delivered=pieces)
    resp = requests.post(bridge.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.json()["message"]["content"] == DEFAULT_TEXT
    reliability.row("usage missing (non-stream)",
                    outcome=f"200, text intact, eval_count={resp.json().get('eval_count')!r}")


# -- backend error statuses -----------------------------------------------------------------------------

def _chat_attempts(backend) -> int:
    return len([r for r in backend.requests if r.path == "/v1/chat/completions"])


@pytest.mark.parametrize("status", [500, 503])
def test_backend_5xx(bridge, backend, reliability, status):
    backend.script(status=status)
    resp = requests.post(bridge.url + "/api/chat", json=chat_body(stream=True), timeout=TIMEOUT)
    assert resp.status_code == status
    message = _short_error(resp)
    attempts = _chat_attempts(backend)
    assert attempts == (1 if status == 500 else 2)  # 500 never retried; 503 retried once (MAX_RETRIES=1)
    reliability.row(f"backend {status}", outcome=f"{status} {message!r} after {attempts} attempt(s)")


def test_backend_503_once_then_ok_is_retried(bridge, backend, reliability):
    backend.script(status=503, fail_times=1, match_path="/v1/chat/completions")
    status, lines, pieces, _ = stream_chat(bridge.url)
    assert status == 200 and "".join(pieces) == DEFAULT_TEXT and lines[-1]["done"] is True
    assert _chat_attempts(backend) == 2
    reliability.row("backend 503 once, then OK", outcome="200 after 2 attempts", sent=list(DEFAULT_TOKENS),
                    delivered=pieces)


def test_429_retry_after_is_honoured(bridge, backend, reliability):
    backend.script(status=429, headers={"Retry-After": "1"}, fail_times=1, match_path="/v1/chat/completions")
    started = time.monotonic()
    status, lines, pieces, _ = stream_chat(bridge.url)
    elapsed = time.monotonic() - started
    assert status == 200 and "".join(pieces) == DEFAULT_TEXT
    reqs = [r for r in backend.requests if r.path == "/v1/chat/completions"]
    assert len(reqs) == 2 and reqs[1].time - reqs[0].time >= 0.95, [r.time for r in reqs]
    reliability.row("429 + Retry-After: 1, once", outcome=f"200 after waiting {reqs[1].time - reqs[0].time:.2f} s",
                    sent=list(DEFAULT_TOKENS), delivered=pieces)
    assert elapsed < 5


def test_429_passed_on_with_retry_after_when_exhausted(bridge, backend, reliability):
    backend.script(status=429, headers={"Retry-After": "1"})
    resp = requests.post(bridge.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    assert resp.status_code == 429 and resp.headers.get("Retry-After") == "1"
    message = _short_error(resp)
    assert _chat_attempts(backend) == 2
    reliability.row("429 + Retry-After: 1, always", outcome=f"429, Retry-After: 1 passed on, {message!r}")

    backend.reset()
    backend.script(status=429, headers={"Retry-After": "60"})  # longer than the request deadline (10 s)
    started = time.monotonic()
    resp = requests.post(bridge.url + "/v1/chat/completions", json=chat_body(stream=False), timeout=TIMEOUT)
    assert resp.status_code == 429 and resp.headers.get("Retry-After") == "60"
    assert time.monotonic() - started < 2 and _chat_attempts(backend) == 1
    reliability.row("429 + Retry-After: 60 (> deadline)", outcome="429 at once, Retry-After: 60, no retry")


def test_backend_400_is_passed_on_and_not_retried(bridge, backend, reliability):
    backend.script(status=400, error_body={"error": {"message": "context length exceeded", "type": "x"}})
    resp = requests.post(bridge.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    assert resp.status_code == 400 and "context length exceeded" in _short_error(resp)
    assert _chat_attempts(backend) == 1
    reliability.row("backend 400", outcome="400 with the backend's message, 1 attempt")
