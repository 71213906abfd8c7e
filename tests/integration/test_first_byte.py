"""Slow non-streamed answers behind a router with a first-byte deadline (Heroku: 30 s, H12).

With FIRST_BYTE_TIMEOUT set, an answer slower than it commits to 200 early and sends keep-alive
spaces; quicker answers and early errors keep their real status.
"""

from __future__ import annotations

import json
import time

import ollama
import pytest
import requests

from tests.bridgeproc import BridgeProcess

pytestmark = pytest.mark.integration

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def patient(fake_backend, tmp_path_factory):
    proc = BridgeProcess({"OPENAI_API_BASE_URL": fake_backend.url, "FIRST_BYTE_TIMEOUT": "0.4",
                          "MODELS_CACHE_TTL": "600", "MAX_RETRIES": "0"},
                         workers=1, tmp_dir=tmp_path_factory.mktemp("patient"))
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def warm(bridge, backend) -> None:
    backend.reset()  # fast answers while the worker caches the model list
    ollama.Client(host=bridge.url, timeout=10).chat("m1", messages=MSGS)


def test_slow_answer_sends_headers_and_spaces_then_the_json(patient, backend):
    warm(patient, backend)
    backend.script(first_delay_s=1.5)
    started = time.monotonic()
    with requests.post(patient.url + "/api/chat", json={"model": "m1", "messages": MSGS, "stream": False},
                       stream=True, timeout=10) as resp:
        headers_s = time.monotonic() - started
        first = resp.raw.read(1)
        first_s = time.monotonic() - started
        rest = resp.raw.read()
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/json")
    assert first == b" " and headers_s < 1.0 and first_s < 1.0  # long before the backend answered
    body = json.loads(first + rest)  # JSON allows the leading whitespace
    assert body["done"] is True and body["message"]["content"] == "Hello from fake backend."
    # ... and the official client parses it as a normal answer.
    reply = ollama.Client(host=patient.url, timeout=10).chat("m1", messages=MSGS)
    assert reply.done and reply.message.content == "Hello from fake backend."


def test_quick_answers_and_early_errors_keep_their_status(patient, backend):
    warm(patient, backend)
    resp = requests.post(patient.url + "/api/generate", json={"model": "m1", "prompt": "x", "stream": False},
                         timeout=10)
    assert resp.status_code == 200 and not resp.content.startswith(b" ")
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=patient.url, timeout=10).chat("nope", messages=MSGS)
    assert err.value.status_code == 404
    backend.script(status=503, error_body={"error": {"message": "overloaded"}})
    resp = requests.post(patient.url + "/api/generate", json={"model": "m1", "prompt": "x", "stream": False},
                         timeout=10)
    assert resp.status_code == 503 and resp.json() == {"error": "overloaded"}


def test_an_error_after_the_commitment_is_the_error_body(patient, backend):
    warm(patient, backend)
    backend.script(first_delay_s=1.0, status=500, error_body={"error": {"message": "backend fell over"}})
    resp = requests.post(patient.url + "/api/generate", json={"model": "m1", "prompt": "x", "stream": False},
                         timeout=10)
    assert resp.status_code == 200  # already committed when the backend failed
    assert resp.content.startswith(b" ") and json.loads(resp.content) == {"error": "backend fell over"}


def test_client_gone_while_waiting_stops_the_backend_call(patient, backend):
    warm(patient, backend)
    backend.script(fault="accept_no_answer")
    with requests.post(patient.url + "/api/generate", json={"model": "m1", "prompt": "x", "stream": False},
                       stream=True, timeout=10) as resp:
        assert resp.raw.read(1) == b" "
    # The bridge notices at its next keep-alive write at the latest; the backend connection closes.
    assert backend.wait_closed(timeout_s=15.0)
