"""Retries through the real bridge: only before the first byte, only for 429/502/503/504 and connect
errors, bounded by the request deadline; MAX_RETRIES=0 makes exactly one backend attempt."""

from __future__ import annotations

import time

import pytest
import requests

from tests.fakes.backend import DEFAULT_TOKENS
from tests.faults import TIMEOUT, chat_body, start_bridge, stream_chat

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def no_retry(fake_backend, tmp_path_factory):
    proc = start_bridge(fake_backend, tmp_path_factory.mktemp("noretry"), name="noretry", MAX_RETRIES="0",
                        MODELS_CACHE_TTL="3600")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def many_retries(fake_backend, tmp_path_factory):
    proc = start_bridge(fake_backend, tmp_path_factory.mktemp("retries"), name="retries", MAX_RETRIES="10",
                        RETRY_BACKOFF="0.2", REQUEST_TIMEOUT="2", MODELS_CACHE_TTL="3600")
    yield proc
    proc.stop()


def _attempts(backend) -> int:
    return len(backend.requests_to(CHAT))


@pytest.mark.parametrize("status", [429, 502, 503, 504])
@pytest.mark.parametrize("stream", [False, True])
def test_max_retries_zero_is_one_attempt(no_retry, backend, reliability, status, stream):
    backend.script(status=status, match_path=CHAT)
    resp = requests.post(no_retry.url + "/api/chat", json=chat_body(stream=stream), timeout=TIMEOUT)
    assert resp.status_code == status and isinstance(resp.json()["error"], str)
    assert _attempts(backend) == 1
    reliability.row(f"MAX_RETRIES=0, backend {status} ({'stream' if stream else 'non-stream'})",
                    outcome=f"{status}, exactly 1 backend attempt")


def test_max_retries_zero_on_openai_route(no_retry, backend, reliability):
    backend.script(status=503, match_path=CHAT)
    resp = requests.post(no_retry.url + CHAT, json=chat_body(stream=False), timeout=TIMEOUT)
    assert resp.status_code == 503 and _attempts(backend) == 1
    reliability.row("MAX_RETRIES=0, backend 503 on /v1/chat/completions", outcome="503, exactly 1 backend attempt")


def test_retries_stop_at_the_request_deadline(many_retries, backend, reliability):
    backend.script(status=503, match_path=CHAT)
    started = time.monotonic()
    resp = requests.post(many_retries.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert resp.status_code == 503 and elapsed < 2.5, elapsed  # REQUEST_TIMEOUT=2 bounds all attempts
    n = _attempts(backend)
    assert 2 <= n <= 11
    times = [r.time for r in backend.requests_to(CHAT)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    reliability.row("503 always, MAX_RETRIES=10, REQUEST_TIMEOUT=2",
                    outcome=f"503 after {elapsed:.2f} s and {n} attempts (gaps {', '.join(f'{g:.2f}' for g in gaps)})")


def test_retry_after_longer_than_deadline_is_passed_on_at_once(many_retries, backend, reliability):
    backend.script(status=429, headers={"Retry-After": "5"}, match_path=CHAT)
    started = time.monotonic()
    resp = requests.post(many_retries.url + "/api/chat", json=chat_body(stream=True), timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "5" and elapsed < 1.0
    assert _attempts(backend) == 1
    reliability.row("429 Retry-After: 5 > REQUEST_TIMEOUT=2", outcome="429 at once with Retry-After: 5")


def test_connect_error_retried_then_502_within_deadline(many_retries, backend, reliability):
    backend.script(fault="refuse")
    started = time.monotonic()
    resp = requests.post(many_retries.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert resp.status_code == 502 and elapsed < 2.5
    assert "retrying backend call" in many_retries.log()
    reliability.row("refused, MAX_RETRIES=10, REQUEST_TIMEOUT=2", outcome=f"502 after {elapsed:.2f} s of retries")


def test_never_retried_after_the_first_byte(bridge, backend, reliability):
    backend.script(fault="reset_mid_stream", fault_after_tokens=2)
    status, lines, pieces, _ = stream_chat(bridge.url)
    assert status == 200 and pieces == list(DEFAULT_TOKENS[:2]) and "error" in lines[-1]
    assert _attempts(backend) == 1
    reliability.row("reset after 2 tokens, MAX_RETRIES=1", outcome="tokens + error line, 1 attempt (no replay)",
                    sent=list(DEFAULT_TOKENS[:2]), delivered=pieces)


@pytest.mark.parametrize("status", [400, 500])
def test_400_and_500_never_retried(bridge, backend, reliability, status):
    backend.script(status=status, match_path=CHAT)
    resp = requests.post(bridge.url + "/api/generate", json={"model": "m1", "prompt": "x", "stream": False},
                         timeout=TIMEOUT)
    assert resp.status_code == status and _attempts(backend) == 1
    reliability.row(f"backend {status} on /api/generate, MAX_RETRIES=1", outcome=f"{status}, 1 attempt")
