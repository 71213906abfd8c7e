"""One bridge, two backends (BACKENDS_FILE): the real llama-server and a scripted fake.

The fake serves ``fake-m`` and, ahead of llama-server (priority 0 vs 1), the chat model too. So:
one catalogue with every model once; ``fake-m`` only ever reaches the fake; the chat model goes to
the fake while it is healthy and fails over to llama-server, before the first byte, when the fake
answers 503. Assertions are about shapes and counts (the bridge's per-backend counters against what
each backend received), never about what the text says.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.bridgeproc import BridgeProcess
from tests.fakes.backend import DEFAULT_TOKENS, FakeBackend

from .conftest import CHAT_MODEL, EMBED_DIM, EMBED_MODEL, setup_problem

_problem = setup_problem()
if _problem:
    pytest.skip(_problem, allow_module_level=True)

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def fake():
    backend = FakeBackend(models=("fake-m", CHAT_MODEL)).start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def multi(llama, fake, tmp_path_factory):
    tmp = Path(tmp_path_factory.mktemp("bridge-multi-e2e"))
    path = tmp / "backends.toml"
    path.write_text(f"""
# the scripted fake first, the real llama-server behind it
[[backend]]
name = "fake"
base_url = "{fake.url}"
priority = 0

[[backend]]
name = "llama"
base_url = "{llama.url}"
priority = 1
request_timeout = 120
""")
    proc = BridgeProcess({"BACKENDS_FILE": str(path), "REQUEST_TIMEOUT": "120", "STREAM_IDLE_TIMEOUT": "60",
                          "MODELS_CACHE_TTL": "5", "LOG_LEVEL": "WARNING", "BACKEND_FAILURE_THRESHOLD": "100"},
                         workers=2, tmp_dir=tmp, log_name="bridge-multi-e2e")
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def counters(url: str) -> dict[tuple, float]:
    text = requests.get(url + "/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def backend_ok(scrape: dict, backend: str) -> float:
    return scrape.get(("bridge_backend_requests_total", (("backend", backend), ("outcome", "ok"))), 0.0)


def chat(url: str, model: str, *, stream: bool) -> list[dict]:
    resp = requests.post(url + "/api/chat", timeout=120, json={
        "model": model, "messages": [{"role": "user", "content": "Count to five."}], "stream": stream,
        "options": {"num_predict": 8, "temperature": 0}})
    assert resp.status_code == 200, resp.text
    return [json.loads(line) for line in resp.content.splitlines() if line.strip()]


def test_one_catalogue_over_a_real_and_a_fake_backend(multi):
    names = [m["name"] for m in requests.get(multi.url + "/api/tags", timeout=30).json()["models"]]
    assert sorted(names) == sorted({f"{CHAT_MODEL}:latest", f"{EMBED_MODEL}:latest", "fake-m:latest"})
    assert len(names) == len(set(names)) == 3  # the chat model, served by both, is listed once
    ready = requests.get(multi.url + "/ready", timeout=30)
    assert ready.status_code == 200 and {b["name"] for b in ready.json()["backends"]} == {"fake", "llama"}


def test_routing_and_failover_counts_match_what_each_backend_received(multi, llama, fake):
    fake.reset()
    before = counters(multi.url)
    # fake-m: only the fake has it
    lines = chat(multi.url, "fake-m", stream=True)
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == len(DEFAULT_TOKENS)
    # the chat model: the fake first (priority 0) while it is healthy
    lines = chat(multi.url, CHAT_MODEL, stream=False)
    assert len(lines) == 1 and lines[0]["done"] is True and lines[0]["message"]["role"] == "assistant"
    assert len(fake.requests_to(CHAT)) == 2
    # the fake fails before answering: llama-server answers instead, streamed and not
    fake.script(status=503, match_path=CHAT)
    streamed = chat(multi.url, CHAT_MODEL, stream=True)
    assert streamed[-1]["done"] is True and 0 < streamed[-1]["eval_count"] <= 8
    assert all("error" not in line for line in streamed) and len(streamed) >= 2
    whole = chat(multi.url, CHAT_MODEL, stream=False)
    assert whole[0]["done"] is True and 0 < whole[0]["eval_count"] <= 8
    refused = len(fake.requests_to(CHAT)) - 2
    assert refused == 2  # one refused attempt per request, then failover (no same-backend retry)
    # embeddings: only llama-server lists the embedding model
    emb = requests.post(multi.url + "/api/embed", json={"model": EMBED_MODEL, "input": ["a", "b"]}, timeout=120)
    assert emb.status_code == 200 and [len(v) for v in emb.json()["embeddings"]] == [EMBED_DIM, EMBED_DIM]
    after = counters(multi.url)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert backend_ok(after, "fake") - backend_ok(before, "fake") == 2
    assert backend_ok(after, "llama") - backend_ok(before, "llama") == 3  # 2 chats + 1 embed
    assert delta("bridge_backend_requests_total", backend="fake", outcome="http_5xx") == refused
    assert delta("bridge_upstream_failovers_total", backend="fake") == refused
    assert delta("bridge_upstream_failovers_total", backend="llama") == 0
    assert delta("bridge_backend_tokens_total", backend="llama", type="output") == (
        streamed[-1]["eval_count"] + whole[0]["eval_count"])
    assert delta("bridge_backend_time_to_first_token_seconds_count", backend="llama") == 1
    fake.reset()
