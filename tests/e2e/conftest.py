"""End-to-end fixtures: the bridge (Procfile command, real gunicorn) in front of a real llama-server.

What runs, all on 127.0.0.1 and free ports, started once per session and stopped afterwards:

* **llama-server in router mode** (``--models-preset .e2e/models/presets.ini``), llama.cpp's own
  way of serving several models on one port. The bridge has exactly one backend URL, and the
  gemma GGUF can't do chat and embeddings in one process (an ``--embeddings`` server refuses
  chat, a chat server answers ``/v1/embeddings`` with 501), so the router runs two children from
  the same GGUF and routes each request by its ``model`` field:

  - ``gemma3-270m``: the chat model, as ``-a gemma3-270m -c 4096 -np 1 -t 2
    --chat-template-file gemma-simple.jinja`` (``-np 1``: temperature 0 is deterministic);
  - ``gemma3-270m-embed``: ``--embeddings --pooling mean -c 2048 -t 2`` (640-dim vectors).

  The router itself gets ``--no-webui --offline --metrics``; children inherit them. Both
  children are loaded and warmed up (one real request each) before any test runs, so no test
  times a model load. Nothing here is a stand-in: every byte the bridge receives comes from
  llama.cpp. The router is one extra local hop, and it is on *both* paths the tests compare
  ("through the bridge" vs "direct to llama-server"), so differences are the bridge's own.
  Router-mode ``/slots`` and ``/metrics`` need ``?model=<id>`` (proxied to that child).

* **the bridge**: :class:`tests.bridgeproc.BridgeProcess`, i.e. the Procfile web line, 2 gevent
  workers, ``OPENAI_API_BASE_URL`` = the router.

Everything needed on disk is built by ``scripts/e2e-setup`` under ``.e2e/``; without it the e2e
tests skip with a reason that says to run it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.bridgeproc import BridgeProcess, free_port

REPO = Path(__file__).resolve().parents[2]
E2E_DIR = REPO / ".e2e"
ENV_FILE = E2E_DIR / "env"
CHAT_MODEL = "gemma3-270m"
EMBED_MODEL = "gemma3-270m-embed"
EMBED_DIM = 640  # gemma 3 270M n_embd


def read_e2e_env() -> dict[str, str]:
    """KEY=VALUE lines written by scripts/e2e-setup."""
    out = {}
    if ENV_FILE.is_file():
        for line in ENV_FILE.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip()
    return out


def setup_problem() -> str | None:
    """Why the e2e tests can't run here, or None when .e2e/ is complete."""
    env = read_e2e_env()
    if not env:
        return f"end-to-end setup missing ({ENV_FILE} not found): run ./scripts/e2e-setup first"
    for key in ("LLAMA_SERVER", "E2E_MODEL", "E2E_TEMPLATE", "E2E_PRESETS"):
        path = env.get(key)
        if not path or not Path(path).exists():
            return f"end-to-end setup incomplete ({key} -> {path!r} missing): run ./scripts/e2e-setup"
    return None


class LlamaRouter:
    """llama-server in router mode on 127.0.0.1:<free port>; stop() is always safe."""

    def __init__(self, tmp_dir: Path, *, env: dict[str, str] | None = None) -> None:
        env = env or read_e2e_env()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tmp_dir) / f"llama-server-{self.port}.log"
        command = [env["LLAMA_SERVER"], "--models-preset", env["E2E_PRESETS"], "--host", "127.0.0.1",
                   "--port", str(self.port), "--no-webui", "--offline", "--metrics"]
        self._log = open(self.log_path, "wb")
        # Own session: the children (one llama-server per model) are in our process group, so
        # stop() can make sure none outlives the tests.
        self.proc = subprocess.Popen(command, cwd=E2E_DIR, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def wait_ready(self, timeout_s: float = 120.0) -> LlamaRouter:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"llama-server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"llama-server not healthy in {timeout_s} s:\n{self.log()}")
            time.sleep(0.1)
        # Load and warm both children (first request per model loads it: 2-8 s).
        remaining = max(10.0, deadline - time.monotonic())
        chat = requests.post(self.url + "/v1/chat/completions", timeout=remaining, json={
            "model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert chat.status_code == 200, f"{chat.status_code} {chat.text}\n{self.log()}"
        emb = requests.post(self.url + "/v1/embeddings", timeout=remaining,
                            json={"model": EMBED_MODEL, "input": "hi"})
        assert emb.status_code == 200, f"{emb.status_code} {emb.text}\n{self.log()}"
        return self

    def slots(self, model: str = CHAT_MODEL) -> list[dict]:
        resp = requests.get(self.url + "/slots", params={"model": model}, timeout=5)
        resp.raise_for_status()
        return resp.json()

    def counters(self, model: str = CHAT_MODEL) -> dict[str, float]:
        """llama-server's own Prometheus counters for one model (``llamacpp:`` prefix dropped)."""
        resp = requests.get(self.url + "/metrics", params={"model": model}, timeout=5)
        resp.raise_for_status()
        out = {}
        for line in resp.text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name.removeprefix("llamacpp:")] = float(value)
        return out

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        try:  # children left behind by a crash or a slow shutdown
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self._log.close()


def stream_lines(resp: requests.Response):
    """Lines of a streamed body as they arrive (chunk by chunk, no read-ahead buffering)."""
    pending = b""
    for data in resp.iter_content(chunk_size=None):
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.strip()
    if pending.strip():
        yield pending.strip()


def content_of(line: bytes) -> str | None:
    """The text piece one streamed line carries: Ollama NDJSON or OpenAI SSE; None for none."""
    if line.startswith(b"data:"):
        line = line[5:].strip()
        if line == b"[DONE]":
            return None
    event = json.loads(line)
    if "message" in event:
        return event["message"].get("content") or None
    if "response" in event:
        return event.get("response") or None
    choices = event.get("choices") or []
    if choices:
        return (choices[0].get("delta") or {}).get("content") or choices[0].get("text") or None
    return None


def start_bridge(backend_url: str, tmp_dir: Path, *, workers: int = 2) -> BridgeProcess:
    return BridgeProcess(
        {"OPENAI_API_BASE_URL": backend_url, "OPENAI_API_KEY": "sk-e2e-unused",
         # MAX_RETRIES left at its default (2), as in production: llama-server closes idle
         # keep-alive connections after 5 s, and with 0 retries a request that races that close
         # on a pooled connection fails with 502 "connection failed" (seen here).
         "REQUEST_TIMEOUT": "120", "STREAM_IDLE_TIMEOUT": "60", "MODELS_CACHE_TTL": "5",
         "LOG_LEVEL": "WARNING"},
        workers=workers, tmp_dir=Path(tmp_dir), log_name="bridge-e2e").wait_ready()


@pytest.fixture(scope="session")
def llama(tmp_path_factory):
    problem = setup_problem()
    if problem:
        pytest.skip(problem)
    router = LlamaRouter(tmp_path_factory.mktemp("llama"))
    try:
        yield router.wait_ready()
    finally:
        router.stop()


@pytest.fixture(scope="session")
def e2e_bridge(llama, tmp_path_factory):
    proc = start_bridge(llama.url, tmp_path_factory.mktemp("bridge-e2e"))
    try:
        yield proc
    finally:
        proc.stop()
