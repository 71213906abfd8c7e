"""A distributed load plan for a bridge fleet (issue 16): Locust, master + workers on many hosts.

One machine cannot load a fleet: on this project's 2-vCPU box the load generator, nginx, the
backend and three bridges share the cores (perf/fleet.py). Beyond one box, run Locust in its
distributed mode: one master (which aggregates) and one worker process per core on each load
machine, all pointed at the fleet's load balancer.

    pip install locust                                   # on every load machine (not a bridge dependency)
    # master (its own small machine; it generates no load):
    PROMETHEUS_URL=http://prometheus:9090 locust -f perf/locustfile.py --master --headless \\
        --expect-workers 8 -u 4000 -r 200 -t 10m --stop-timeout 60 --host http://fleet-lb.internal \\
        --csv fleet --html fleet.html
    # each load machine, one per core:
    locust -f perf/locustfile.py --worker --master-host <master-ip>

Traffic: a mix of what Ollama clients send (weights below): non-streamed and streamed
``/api/chat``, ``/api/generate`` streams, ``/api/embed``, ``/api/tags`` and the OpenAI
pass-through. ``BRIDGE_MODEL`` / ``BRIDGE_EMBED_MODEL`` name the models (default: the built-in
demo backend's ``demo`` and ``demo-embed``; ``fake-t16-d20`` etc. with perf/fake_backend.py).
Each user waits ``BRIDGE_WAIT_S`` (default 1 s) between requests, like a person or an agent
loop, so the offered rate is roughly users / (wait + response time).

**Exact accounting.** ``--stop-timeout`` lets every user finish the request it is in, so what
Locust counts is what was sent. With ``PROMETHEUS_URL`` set, the master reads the fleet total
``sum(bridge_http_requests_total)`` from Prometheus at the start and at the end (after
``BRIDGE_SETTLE_S``, default 35 s: two push intervals and a scrape) and prints both next to
Locust's own count; they must be equal when nothing else talks to the fleet and no instance
restarted during the run (a restart resets that instance's counters: then compare with the
reset-aware total, see tests/fleet/test_push_fleet.py).

For a plainer generator: ``perf/wrk_fleet.sh`` runs wrk on every load host over ssh.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request

from locust import FastHttpUser, between, events, task

MODEL = os.environ.get("BRIDGE_MODEL", "demo")
EMBED_MODEL = os.environ.get("BRIDGE_EMBED_MODEL", "demo-embed")
WAIT_S = float(os.environ.get("BRIDGE_WAIT_S", "1.0"))
SETTLE_S = float(os.environ.get("BRIDGE_SETTLE_S", "35"))
PROMETHEUS_URL = os.environ.get("PROMETHEUS_URL")
TOTAL = "sum(bridge_http_requests_total)"

_CHAT = [{"role": "user", "content": "Say hello in a few words."}]


class OllamaClient(FastHttpUser):
    """One client of the fleet: Ollama's API mostly, some OpenAI pass-through."""

    wait_time = between(WAIT_S * 0.5, WAIT_S * 1.5)

    @task(6)
    def chat_stream(self) -> None:
        self._stream("/api/chat", {"model": MODEL, "messages": _CHAT}, "/api/chat stream")

    @task(3)
    def chat(self) -> None:
        with self.client.post("/api/chat", json={"model": MODEL, "messages": _CHAT, "stream": False},
                              name="/api/chat", catch_response=True) as resp:
            if resp.status_code != 200 or not resp.json().get("done"):
                resp.failure(f"status {resp.status_code}")

    @task(2)
    def generate_stream(self) -> None:
        self._stream("/api/generate", {"model": MODEL, "prompt": "Count to five."}, "/api/generate stream")

    @task(1)
    def embed(self) -> None:
        self.client.post("/api/embed", json={"model": EMBED_MODEL, "input": "hello"}, name="/api/embed")

    @task(1)
    def tags(self) -> None:
        self.client.get("/api/tags", name="/api/tags")

    @task(1)
    def openai_chat(self) -> None:
        self.client.post("/v1/chat/completions", json={"model": MODEL, "messages": _CHAT}, name="/v1/chat/completions")

    def _stream(self, path: str, body: dict, name: str) -> None:
        """A streamed call is a success only when its last NDJSON line is the ``done`` one."""
        with self.client.post(path, json=body, name=name, catch_response=True) as resp:
            lines = [line for line in resp.text.splitlines() if line.strip()] if resp.text else []
            if resp.status_code != 200 or not lines:
                resp.failure(f"status {resp.status_code}")
                return
            last = json.loads(lines[-1])
            if "error" in last or not last.get("done"):
                resp.failure(f"stream ended without done: {lines[-1][:200]}")


def _fleet_total() -> float | None:
    if not PROMETHEUS_URL:
        return None
    url = f"{PROMETHEUS_URL.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": TOTAL})
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - an operator-given URL
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


_state: dict = {}


@events.init.add_listener
def _init(environment, **kwargs) -> None:
    _state["environment"] = environment


@events.test_start.add_listener
def _before(environment, **kwargs) -> None:
    if _is_master_or_local(environment):
        _state["before"] = _fleet_total()


@events.quit.add_listener
def _after(exit_code, **kwargs) -> None:
    """At the very end: every worker's last stats report is in, every user has stopped."""
    environment = _state.get("environment")
    if environment is None or not _is_master_or_local(environment) or _state.get("before") is None:
        return
    time.sleep(SETTLE_S)  # the last pushes and a scrape
    after = _fleet_total()
    sent = environment.runner.stats.total.num_requests
    delta = after - _state["before"]
    print(f"fleet total in Prometheus: {_state['before']:.0f} -> {after:.0f} (+{delta:.0f}); "
          f"Locust sent {sent}: {'equal' if delta == sent else 'DIFFERENT'}", flush=True)


def _is_master_or_local(environment) -> bool:
    from locust.runners import MasterRunner, WorkerRunner

    return isinstance(environment.runner, MasterRunner) or not isinstance(environment.runner, WorkerRunner)
