"""Issue 18 (be today's Ollama) and issue 12 (load requests checked), through real gunicorn with
2 workers and the real clients: /api/ps is one list for the whole instance, keep_alive sets and
clears it, load/unload requests get Ollama's 404/400, and /api/tags, /api/show, /api/ps carry the
backend's model metadata (llama.cpp ``meta``) and the mapping file's declarations, with a template
that agrees with the capabilities.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import ollama
import pytest
import requests

from bridge.config import Settings
from tests.bridgeproc import BridgeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20, func_only=True)]

# llama-server's /v1/models entry for a Qwen 2.5 7B Q4_K_M file (shape of tools/server, values made up).
LLAMACPP_META = {"vocab_type": 2, "n_vocab": 152064, "n_ctx_train": 32768, "n_ctx": 8192, "n_embd": 3584,
                 "n_params": 7615616512, "size": 4677120000}
MAPPING = (
    '{"alias-1": "m1",'
    ' "big": {"model": "m2", "context_length": 65536, "parameter_size": "70B", "quantization_level": "Q4_K_M",'
    '         "family": "llama", "capabilities": ["completion", "tools", "vision"], "size": 42000000000,'
    '         "size_vram": 30000000000},'
    ' "plain": {"model": "m2", "capabilities": ["completion"]},'
    ' "vectors": {"model": "e1", "capabilities": ["embedding"], "embedding_length": 768}}'
)
WORKERS = 2


@pytest.fixture(scope="module")
def bridge2(fake_backend, tmp_path_factory):
    proc = BridgeProcess(
        {"OPENAI_API_BASE_URL": fake_backend.url, "MODEL_MAPPING": MAPPING, "MODELS_CACHE_TTL": "0",
         "REQUEST_TIMEOUT": "10", "MAX_RETRIES": "0"},
        workers=WORKERS, tmp_dir=tmp_path_factory.mktemp("fidelity"))
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture()
def c(bridge2):
    with ollama.Client(host=bridge2.url, timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def empty_ps(bridge2, backend):
    """Each test starts with nothing loaded (unload whatever an earlier test left)."""
    for entry in ps_fresh(bridge2):
        requests.post(bridge2.url + "/api/generate", json={"model": entry["name"], "keep_alive": 0}, timeout=10)
    assert ps_fresh(bridge2) == []
    backend.reset()
    yield


def ps_fresh(bridge) -> list[dict]:
    """/api/ps on a new connection (so any worker may answer)."""
    resp = requests.get(bridge.url + "/api/ps", headers={"Connection": "close"}, timeout=10)
    assert resp.status_code == 200
    return resp.json()["models"]


def ps_everywhere(bridge, n: int = 16) -> list[list[dict]]:
    return [ps_fresh(bridge) for _ in range(n)]


def generation_calls(backend) -> list:
    return [r for r in backend.requests if r.path in ("/v1/chat/completions", "/v1/completions")]


def expires(entry: dict) -> float:
    return datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00")).timestamp()


# --- 1. one list for the whole instance ----------------------------------------------------------


def test_ps_is_the_same_from_every_worker_after_one_load(bridge2, backend, c):
    assert len(bridge2.worker_pids()) == WORKERS
    assert c.generate("m1").done_reason == "load"  # one request, so one worker saw it
    answers = ps_everywhere(bridge2, 20)
    assert all([m["name"] for m in answer] == ["m1:latest"] for answer in answers), answers
    assert (bridge2.metrics_dir / "ps.table").is_file()
    listed = c.ps().models
    assert [m.model for m in listed] == ["m1:latest"]
    assert not generation_calls(backend)


def test_chat_and_embed_requests_list_their_model(bridge2, backend, c):
    c.chat("m1", messages=[{"role": "user", "content": "hi"}])
    c.embed("e1", input="x")
    for answer in ps_everywhere(bridge2, 10):
        assert sorted(m["name"] for m in answer) == ["e1:latest", "m1:latest"]


def test_one_entry_per_ollama_name(bridge2, backend, c):
    c.generate("m1")
    c.chat("m1:latest", [])
    c.generate("m1", "hi", keep_alive="7m")
    (entry,) = ps_fresh(bridge2)
    assert entry["name"] == entry["model"] == "m1:latest"
    assert abs(expires(entry) - (time.time() + 420)) < 5  # the latest request's keep_alive counts


# --- keep_alive ----------------------------------------------------------------------------------


def test_keep_alive_sets_expires_at(bridge2, backend, c):
    c.generate("m1", keep_alive="10m")
    c.chat("m2", [], keep_alive=90)
    c.generate("alias-1")  # default: 5 minutes
    by_name = {m["name"]: m for m in ps_fresh(bridge2)}
    now = time.time()
    assert abs(expires(by_name["m1:latest"]) - (now + 600)) < 5
    assert abs(expires(by_name["m2:latest"]) - (now + 90)) < 5
    assert abs(expires(by_name["alias-1:latest"]) - (now + 300)) < 5
    # Longest time left first, as Ollama sorts.
    assert [m.model for m in c.ps().models] == ["m1:latest", "alias-1:latest", "m2:latest"]


def test_negative_keep_alive_is_forever_and_zero_unloads_everywhere(bridge2, backend, c):
    c.generate("m1", keep_alive=-1)
    (entry,) = c.ps().models
    assert entry.expires_at.year - datetime.now(timezone.utc).year > 200  # `ollama ps`: "Forever"
    reply = c.generate("m1", keep_alive=0)
    assert reply.done_reason == "unload"
    assert all(answer == [] for answer in ps_everywhere(bridge2, 10))
    c.chat("m2", [], keep_alive="1h")
    assert c.chat("m2", [], keep_alive="0s").done_reason == "unload"
    assert ps_fresh(bridge2) == []
    assert not generation_calls(backend)


def test_entries_expire(bridge2, backend, c):
    c.generate("m1", keep_alive=1)
    assert [m["name"] for m in ps_fresh(bridge2)] == ["m1:latest"]
    time.sleep(1.3)
    assert all(answer == [] for answer in ps_everywhere(bridge2, 6))


# --- 2. load and unload requests are checked like any other (issue 12) ----------------------------


@pytest.mark.parametrize("keep_alive", [None, 0])
@pytest.mark.parametrize("kind", ["generate", "chat"])
def test_load_and_unload_of_an_unknown_model_is_404(bridge2, backend, c, kind, keep_alive):
    call = c.generate if kind == "generate" else (lambda model, **kw: c.chat(model, [], **kw))
    with pytest.raises(ollama.ResponseError) as err:
        call("nope", keep_alive=keep_alive)
    assert err.value.status_code == 404 and err.value.error == "model 'nope' not found"
    assert ps_fresh(bridge2) == [] and not generation_calls(backend)


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"options": {"temperature": "hot"}}, "temperature"),
        ({"options": "x"}, "options"),
        ({"options": {"seed": 1.5}}, "seed"),
        ({"keep_alive": True}, "keep_alive"),
        ({"keep_alive": [5]}, "keep_alive"),
        ({"keep_alive": "soon"}, "keep_alive"),
        ({"keep_alive": 0, "options": {"top_p": "x"}}, "top_p"),  # unload too
        ({"format": 5}, "format"),
    ],
)
@pytest.mark.parametrize("kind", ["generate", "chat"])
def test_load_with_wrong_types_is_400(bridge2, backend, kind, extra, fragment):
    body = {"model": "m1", "stream": False, **extra}
    if kind == "chat":
        body["messages"] = []
    resp = httpx.post(f"{bridge2.url}/api/{kind}", json=body, timeout=10)
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json()["error"]
    assert ps_fresh(bridge2) == [] and not generation_calls(backend)


def test_keep_alive_of_a_wrong_type_is_400_on_real_requests_too(bridge2, backend):
    resp = httpx.post(f"{bridge2.url}/api/chat", timeout=10, json={
        "model": "m1", "stream": False, "keep_alive": {"m": 5}, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 400 and "keep_alive" in resp.json()["error"]
    assert not generation_calls(backend)


def test_load_of_a_known_model_still_answers_load_without_inference(bridge2, backend, c):
    reply = c.generate("alias-1", options={"temperature": 0.2, "num_ctx": 8192}, keep_alive="5m")
    assert reply.done is True and reply.done_reason == "load" and reply.model == "alias-1"
    assert not generation_calls(backend)


# --- 3. model metadata from the backend and the mapping file ----------------------------------------


def test_llamacpp_meta_reaches_tags_show_and_ps(bridge2, backend, c):
    backend.script(model_meta={"m1": {"owned_by": "llamacpp", "meta": {**LLAMACPP_META, "ftype": "Q4_K - Medium"}}})
    (tag,) = [m for m in c.list().models if m.model == "m1:latest"]
    assert tag.size == 4677120000
    assert tag.details.parameter_size == "7.6B" and tag.details.quantization_level == "Q4_K_M"
    shown = c.show("m1")
    arch = shown.modelinfo["general.architecture"]
    assert shown.modelinfo[f"{arch}.context_length"] == 8192  # llama-server's per-slot n_ctx
    assert shown.modelinfo["general.parameter_count"] == 7615616512
    assert shown.modelinfo[f"{arch}.embedding_length"] == 3584
    assert shown.modelinfo[f"{arch}.vocab_size"] == 152064
    c.generate("m1")
    (running,) = c.ps().models
    assert running.size == running.size_vram == 4677120000  # `ollama ps`: "100% GPU"
    assert running.context_length == 8192
    assert running.details.parameter_size == "7.6B" and running.details.quantization_level == "Q4_K_M"


def test_mapping_file_declarations_win(bridge2, backend, c):
    backend.script(model_meta={"m2": {"meta": LLAMACPP_META}})
    shown = c.show("big")
    assert shown.details.family == "llama" and shown.details.families == ["llama"]
    assert shown.details.parameter_size == "70B" and shown.details.quantization_level == "Q4_K_M"
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] == 65536
    assert shown.capabilities == ["completion", "tools", "vision"]
    (tag,) = [m for m in c.list().models if m.model == "big:latest"]
    assert tag.size == 42000000000 and tag.details.parameter_size == "70B"
    c.chat("big", [])
    (running,) = c.ps().models
    assert running.model == "big:latest" and running.size == 42000000000 and running.size_vram == 30000000000
    assert running.context_length == 65536
    # The same backend model under its own name keeps the backend's figures.
    assert c.show("m2").modelinfo[f"{c.show('m2').modelinfo['general.architecture']}.context_length"] == 8192


# --- 4. capabilities and template agree ------------------------------------------------------------


@pytest.mark.parametrize(
    "name, caps",
    [("m1", ["completion", "tools"]), ("big", ["completion", "tools", "vision"]), ("plain", ["completion"]),
     ("vectors", ["embedding"])],
)
def test_template_agrees_with_capabilities(bridge2, backend, c, name, caps):
    shown = c.show(name)
    assert shown.capabilities == caps
    # Ollama grants tools only to a template that uses .Tools; an embedding model's is the prompt.
    assert (".Tools" in shown.template) == ("tools" in caps)
    if "embedding" in caps:
        assert shown.template == "{{ .Prompt }}"
    else:
        assert ".Messages" in shown.template


def test_langchain_chatollama_validates_loads_and_shows_in_ps(bridge2, backend):
    langchain_ollama = pytest.importorskip("langchain_ollama")
    llm = langchain_ollama.ChatOllama(model="big", base_url=bridge2.url, validate_model_on_init=True,
                                      keep_alive="10m")
    try:
        assert llm.invoke("hi").content == "Hello from fake backend."
    finally:
        llm._client._client.close()
    (entry,) = ps_fresh(bridge2)
    assert entry["name"] == "big:latest" and abs(expires(entry) - (time.time() + 600)) < 5
    assert entry["context_length"] == 65536


# --- /api/version ---------------------------------------------------------------------------------


def test_version_default_is_a_current_ollama(bridge2):
    version = httpx.get(bridge2.url + "/api/version", timeout=10).json()["version"]
    assert version == Settings.from_env({}).ollama_version
    # The first release serving both /v1/messages and /v1/responses was 0.14.0.
    assert tuple(int(p) for p in version.split(".")) >= (0, 14, 0)
