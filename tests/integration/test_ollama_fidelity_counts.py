"""Issue 18 ("be today's Ollama"): durations, counts, think fallbacks, logprobs and host figures,
through the real bridge (gunicorn, 2 gevent workers) and the real clients that read them.

The bridge here has its own fake backend and its own gunicorn: the think tests teach the bridge's
workers that a model refuses ``reasoning_effort``, which must not leak into the session-wide bridge
the other integration tests share. Each think test uses a model of its own for the same reason.
"""

from __future__ import annotations

import json
import re

import httpx
import ollama
import openai
import pytest

from tests.bridgeproc import BridgeProcess
from tests.fakes.backend import DEFAULT_TEXT, DEFAULT_TOKENS, FakeBackend

langchain_ollama = pytest.importorskip("langchain_ollama", reason="langchain-ollama not installed")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20, func_only=True)]

USER = [{"role": "user", "content": "hi"}]
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
MODELS = ("m1", "think-a", "think-b", "think-c", "think-d", "think-e", "think-f", "think-g", "so-a")


@pytest.fixture(scope="module")
def fid_backend():
    fake = FakeBackend(models=MODELS).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fid_bridge(fid_backend, tmp_path_factory):
    proc = BridgeProcess(
        {"OPENAI_API_BASE_URL": fid_backend.url, "OPENAI_API_KEY": "sk-test", "MAX_RETRIES": "0",
         "STREAM_IDLE_TIMEOUT": "5", "REQUEST_TIMEOUT": "10", "MODELS_CACHE_TTL": "0"},
        workers=2, tmp_dir=tmp_path_factory.mktemp("fidelity"), log_name="fidelity")
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture()
def fb(fid_backend):
    fid_backend.reset()
    yield fid_backend
    fid_backend.reset()


@pytest.fixture()
def client(fid_bridge):
    with ollama.Client(host=fid_bridge.url, timeout=10) as c:
        yield c


def sent_bodies(fb) -> list[dict]:
    return [r.json for r in fb.requests if r.path in ("/v1/chat/completions", "/v1/completions")]


def assert_final_metrics(final) -> None:
    """Every duration a positive int, both counts ints (what Ollama's own API tests demand)."""
    for key in DURATIONS:
        value = final[key]
        assert type(value) is int and value > 0, (key, value)
    for key in ("prompt_eval_count", "eval_count"):
        assert type(final[key]) is int and final[key] >= 0, (key, final[key])
    assert final["total_duration"] >= final["prompt_eval_duration"] + final["eval_duration"]


def raw_lines(url: str, path: str, body: dict) -> list[dict]:
    with httpx.stream("POST", url + path, json=body, timeout=10) as resp:
        assert resp.status_code == 200, resp.read()
        return [json.loads(line) for line in resp.iter_lines() if line]


# --- 1. durations --------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_durations_never_zero_without_backend_timings(client, fb, stream):
    """The bridge's own measurement: every duration > 0 on chat and generate, stream or not."""
    fb.script(delay_s=0.01)
    chat = client.chat("m1", messages=USER, stream=stream)
    final = list(chat)[-1] if stream else chat
    assert final.done and final.message.content == ("" if stream else DEFAULT_TEXT)
    assert_final_metrics(final)
    gen = client.generate("m1", prompt="hi", stream=stream)
    final = list(gen)[-1] if stream else gen
    assert final.done
    assert_final_metrics(final)
    assert (final.prompt_eval_count, final.eval_count) == (7, 4)  # the backend's usage


@pytest.mark.parametrize("stream", [False, True])
def test_llama_server_timings_are_used(client, fb, stream):
    """llama-server's ``timings`` (prompt_ms 12.5, predicted_ms 20 per token) become the durations."""
    fb.script(timings=True)
    reply = client.chat("m1", messages=USER, stream=stream)
    final = list(reply)[-1] if stream else reply
    assert final.prompt_eval_duration == 12_500_000
    assert final.eval_duration == 4 * 20_000_000
    assert (final.prompt_eval_count, final.eval_count) == (7, 4)
    assert_final_metrics(final)


def test_llama_server_timings_give_counts_when_usage_is_missing(fid_bridge, fb):
    fb.script(timings={"prompt_n": 11, "prompt_ms": 3.0, "predicted_n": 4, "predicted_ms": 9.5}, fault="no_usage")
    for stream in (False, True):
        lines = raw_lines(fid_bridge.url, "/api/generate", {"model": "m1", "prompt": "hi", "stream": stream})
        final = lines[-1]
        assert (final["prompt_eval_count"], final["eval_count"]) == (11, 4)
        assert (final["prompt_eval_duration"], final["eval_duration"]) == (3_000_000, 9_500_000)
        assert_final_metrics(final)


# --- 2. counts -----------------------------------------------------------------------------------

def test_langchain_usage_metadata_on_a_stream_without_usage(fid_bridge, fb):
    """A backend that sends no usage: LangChain's usage_metadata still has ints (it added
    ``prompt_eval_count + eval_count`` and crashed with int + None before)."""
    fb.script(fault="no_usage")
    llm = langchain_ollama.ChatOllama(model="m1", base_url=fid_bridge.url)
    try:
        chunks = list(llm.stream("Tell me a story about a bridge"))
        total = chunks[0]
        for chunk in chunks[1:]:
            total += chunk
        assert total.content == DEFAULT_TEXT
        usage = total.usage_metadata
        assert usage is not None
        assert type(usage["input_tokens"]) is int and usage["input_tokens"] >= 1  # estimated from the text
        assert usage["output_tokens"] == len(DEFAULT_TOKENS)  # one per delta forwarded
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        reply = llm.invoke("hi")
        assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == len(DEFAULT_TOKENS)
    finally:
        llm._client._client.close()


@pytest.mark.parametrize("stream", [False, True])
def test_counts_are_ints_without_usage_ollama_client(client, fb, stream):
    fb.script(fault="no_usage")
    prompt = "x" * 40  # about 10 tokens by the 4-characters rule
    reply = client.generate("m1", prompt=prompt, stream=stream)
    final = list(reply)[-1] if stream else reply
    assert type(final.prompt_eval_count) is int and type(final.eval_count) is int
    assert final.prompt_eval_count == 10
    assert final.eval_count == (len(DEFAULT_TOKENS) if stream else 6)  # 24 characters -> 6
    assert_final_metrics(final)


def test_backend_refusing_stream_options_still_streams_with_counts(fid_bridge, fb):
    fb.script(reject_params=["stream_options"], reject_message="Unknown parameter: '{param}'.")
    for _ in range(3):
        lines = raw_lines(fid_bridge.url, "/api/chat", {"model": "so-a", "messages": USER})
        assert "".join(line["message"]["content"] for line in lines) == DEFAULT_TEXT
        final = lines[-1]
        assert final["done"] and final["eval_count"] == len(DEFAULT_TOKENS) and final["prompt_eval_count"] >= 1
    refused = [b for b in sent_bodies(fb) if "stream_options" in b]
    assert 1 <= len(refused) <= 2  # at most once per worker, then remembered
    assert len(sent_bodies(fb)) == 3 + len(refused)


# --- 3. think never breaks a backend -------------------------------------------------------------

OPENAI_UNRECOGNIZED = "Unrecognized request argument supplied: {param}"
OPENAI_UNSUPPORTED = "Unsupported parameter: '{param}' is not supported with this model."


@pytest.mark.parametrize("model, message", [("think-a", OPENAI_UNRECOGNIZED), ("think-b", OPENAI_UNSUPPORTED)])
def test_think_false_survives_a_backend_refusing_reasoning_effort(fid_bridge, fb, client, model, message):
    fb.script(reject_params=["reasoning_effort"], reject_message=message)
    for i in range(6):
        stream = bool(i % 2)
        reply = client.chat(model, messages=USER, think=False, stream=stream)
        text = "".join(c.message.content for c in reply) if stream else reply.message.content
        assert text == DEFAULT_TEXT
    bodies = sent_bodies(fb)
    refused = [b for b in bodies if "reasoning_effort" in b]
    assert all(b["reasoning_effort"] == "none" for b in refused)
    assert 1 <= len(refused) <= 2, "remembered per worker after the first refusal"
    assert len(bodies) == 6 + len(refused)  # exactly one retry per refusal
    metrics = httpx.get(fid_bridge.url + "/metrics", timeout=5).text
    assert dropped(metrics, "reasoning_effort") >= 6  # every call sent without it is counted
    assert dropped(metrics, "chat_template_kwargs") is not None  # the closed set, from 0


def test_langchain_reasoning_false_on_a_strict_backend(fid_bridge, fb):
    fb.script(reject_params=["reasoning_effort"])
    llm = langchain_ollama.ChatOllama(model="think-c", base_url=fid_bridge.url, reasoning=False)
    try:
        assert llm.invoke("hi").content == DEFAULT_TEXT
    finally:
        llm._client._client.close()
    assert sent_bodies(fb)[0]["reasoning_effort"] == "none"


def test_think_true_on_a_model_without_thinking_is_ollamas_400(fb, client):
    fb.script(reject_params=["reasoning_effort"])
    for stream in (False, True, False):
        with pytest.raises(ollama.ResponseError) as err:
            reply = client.chat("think-d", messages=USER, think=True, stream=stream)
            list(reply) if stream else None
        assert err.value.status_code == 400
        assert err.value.error == '"think-d" does not support thinking'
    assert len(sent_bodies(fb)) <= 2  # later calls answered from memory, without the backend
    # think false on the same model still works (the field is left out)
    assert client.chat("think-d", messages=USER, think=False).message.content == DEFAULT_TEXT


def test_backend_saying_model_cannot_think(fb, client):
    fb.script(reject_params=["reasoning_effort"], reject_message="This model does not support reasoning.")
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("think-e", messages=USER, think="high")
    assert err.value.status_code == 400 and "does not support thinking" in err.value.error
    assert client.generate("think-e", prompt="hi", think=False).response == DEFAULT_TEXT


def test_value_refusal_is_dropped_but_not_remembered(fb, client):
    fb.script(reject_params=["reasoning_effort"],
              reject_message="Unsupported value: '{param}' does not support 'none' with this model.")
    for _ in range(2):
        assert client.chat("think-f", messages=USER, think=False).message.content == DEFAULT_TEXT
    bodies = sent_bodies(fb)
    assert [("reasoning_effort" in b) for b in bodies] == [True, False, True, False]


def test_other_400s_are_not_retried(fb, client):
    fb.script(status=400, error_body={"error": {"message": "messages: too long", "type": "invalid_request_error"}})
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("think-g", messages=USER, think=False)
    assert err.value.status_code == 400 and "too long" in err.value.error
    assert len(sent_bodies(fb)) == 1


def test_v1_client_fields_are_never_dropped(fid_bridge, fb):
    """On /v1 the client wrote reasoning_effort itself: the backend's 400 reaches it, no retry."""
    fb.script(reject_params=["reasoning_effort"])
    with openai.OpenAI(base_url=fid_bridge.url + "/v1", api_key="k", max_retries=0, timeout=10) as sdk:
        with pytest.raises(openai.BadRequestError) as err:
            sdk.chat.completions.create(model="think-a", messages=USER, reasoning_effort="low")
    assert "reasoning_effort" in str(err.value)
    assert [b.get("reasoning_effort") for b in sent_bodies(fb)] == ["low"]


def dropped(metrics_text: str, param: str) -> float | None:
    found = re.search(rf'^bridge_upstream_param_dropped_total{{param="{param}"}} (\S+)$', metrics_text, re.M)
    return float(found.group(1)) if found else None


# --- 4. logprobs ---------------------------------------------------------------------------------

TOKENS = ["Hé", "llo", " 🎉"]


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_both_ways_with_bytes(fid_bridge, fb, path, stream):
    fb.script(tokens=TOKENS, logprobs=True)
    body = {"model": "m1", "stream": stream, "logprobs": True, "top_logprobs": 2}
    body.update({"messages": USER} if path == "/api/chat" else {"prompt": "hi"})
    lines = raw_lines(fid_bridge.url, path, body)
    sent = sent_bodies(fb)[-1]
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    entries = [e for line in lines for e in line.get("logprobs", [])]
    if stream:
        assert all(len(line["logprobs"]) == 1 for line in lines[:-1])  # each chunk carries its token's
        assert "logprobs" not in lines[-1]
    assert [e["token"] for e in entries] == TOKENS
    for entry in entries:
        assert entry["bytes"] == list(entry["token"].encode("utf-8"))  # what Ollama's tests compare
        assert entry["logprob"] <= 0
        assert len(entry["top_logprobs"]) == 2
        assert entry["top_logprobs"][0]["logprob"] >= entry["top_logprobs"][1]["logprob"]
        for top in entry["top_logprobs"]:
            assert top["bytes"] == list(top["token"].encode("utf-8"))
    assert lines[-1]["eval_count"] == 3


def test_logprobs_through_the_ollama_client(client, fb):
    fb.script(tokens=TOKENS, logprobs=True)
    reply = client.chat("m1", messages=USER, stream=False, logprobs=True, top_logprobs=1)
    assert [lp.token for lp in reply.logprobs] == TOKENS
    assert all(lp.logprob <= 0 and len(lp.top_logprobs) == 1 for lp in reply.logprobs)
    reply = client.generate("m1", prompt="hi", stream=False, logprobs=True)
    assert [lp.token for lp in reply.logprobs] == TOKENS
    assert all(not lp.top_logprobs for lp in reply.logprobs)  # none asked for, none sent


def test_no_logprobs_unless_asked(fid_bridge, fb):
    fb.script(logprobs=True)
    lines = raw_lines(fid_bridge.url, "/api/chat", {"model": "m1", "messages": USER, "top_logprobs": 3})
    assert not any("logprobs" in line for line in lines)
    sent = sent_bodies(fb)[-1]
    assert "logprobs" not in sent and "top_logprobs" not in sent  # top_logprobs alone means nothing


# --- 5. host figures -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/metrics/summary?include_system=true", "/v1/metrics"])
def test_summary_system_section_has_host_figures(fid_bridge, path):
    system = httpx.get(fid_bridge.url + path, timeout=5).json()["system"]
    host = system["host"]
    assert 0 <= host["cpu"]["percent"] <= 100 and host["cpu"]["count"] >= 1
    memory = host["memory"]
    assert 0 < memory["used_bytes"] <= memory["total_bytes"] and 0 < memory["percent"] < 100
    disk = host["disk"]
    assert disk["path"] and 0 < disk["used_bytes"] <= disk["total_bytes"] and 0 < disk["percent"] <= 100
    assert host["network"]["bytes_recv"] >= 0 and host["network"]["bytes_sent"] >= 0
    assert isinstance(host["disk_io"], dict)
    assert system["process"]["rss_bytes"] > 0 and system["worker_processes"]  # per-worker figures still there


def test_host_gauges_in_the_exposition(fid_bridge):
    text = httpx.get(fid_bridge.url + "/metrics", timeout=5).text
    values = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(bridge_host_\w+) (\S+)$", text, re.M)}
    assert values["bridge_host_memory_total_bytes"] > values["bridge_host_memory_used_bytes"] > 0
    assert 0 <= values["bridge_host_cpu_usage_ratio"] <= 1 and 0 < values["bridge_host_memory_usage_ratio"] < 1
    assert values["bridge_host_disk_total_bytes"] > 0 and 0 < values["bridge_host_disk_usage_ratio"] <= 1
    assert values["bridge_host_network_receive_bytes_total"] >= 0
    assert "# TYPE bridge_host_network_receive_bytes_total counter" in text
    assert "# TYPE bridge_host_memory_used_bytes gauge" in text
    assert len(re.findall(r"^# TYPE bridge_host_memory_used_bytes ", text, re.M)) == 1  # once, not per worker
