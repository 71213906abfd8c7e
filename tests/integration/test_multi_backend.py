"""Many backends behind one bridge (BACKENDS_FILE), real gunicorn with 2 workers, three fake backends
with overlapping models: one catalogue, routing by model, failover when a backend dies under load,
the circuit breaker, and exact per-backend and per-key counts in /metrics over both workers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.bridgeproc import BridgeProcess
from tests.fakes.backend import DEFAULT_TOKENS, FakeBackend

pytestmark = pytest.mark.integration

KEYS = {"alice": "sk-alice-1", "default": "sk-bare-2", "bob": "sk-bob-3"}
MODELS = {"a": ("m1", "m2"), "b": ("m1", "m3"), "c": ("m2", "m3")}
CHAT_PATH = "/v1/chat/completions"


@pytest.fixture(scope="module")
def fakes():
    started = {name: FakeBackend(models=models).start() for name, models in MODELS.items()}
    yield started
    for fake in started.values():
        fake.stop()


@pytest.fixture()
def abc(fakes):
    for fake in fakes.values():
        fake.reset()
        fake.start()  # a test may have stopped one
    yield fakes
    for fake in fakes.values():
        fake.start()
        fake.reset()


def backends_file(tmp: Path, fakes: dict, **extra: str) -> Path:
    path = tmp / "backends.toml"
    tables = []
    for name, fake in fakes.items():
        tables.append(f'# backend {name}\n[[backend]]\nname = "{name}"\nbase_url = "{fake.url}"\n'
                      f'api_key_env = "KEY_{name.upper()}"\n' + extra.get(name, ""))
    path.write_text("\n".join(tables))
    return path


def start(tmp: Path, fakes: dict, *, workers: int = 2, extra: dict | None = None, **env: str) -> BridgeProcess:
    base = {"BACKENDS_FILE": str(backends_file(tmp, fakes, **(extra or {}))),
            "KEY_A": "sk-up-a", "KEY_B": "sk-up-b", "KEY_C": "sk-up-c",
            "BRIDGE_API_KEYS": "alice:sk-alice-1, sk-bare-2, bob:sk-bob-3",
            "MODEL_MAPPING": '{"alias-1": "m1"}', "MAX_RETRIES": "1", "RETRY_BACKOFF": "0.02",
            "REQUEST_TIMEOUT": "10", "STREAM_IDLE_TIMEOUT": "3", "MODELS_CACHE_TTL": "1",
            "BACKEND_FAILURE_THRESHOLD": "3", "BACKEND_COOLDOWN": "2", **env}
    proc = BridgeProcess(base, workers=workers, tmp_dir=tmp, log_name="bridge-multi")
    try:
        return proc.wait_ready()
    except BaseException:
        proc.stop()
        raise


@pytest.fixture(scope="module")
def bridge(fakes, tmp_path_factory):
    proc = start(tmp_path_factory.mktemp("multi"), fakes)
    yield proc
    proc.stop()


def auth(key: str = "alice") -> dict:
    return {"Authorization": f"Bearer {KEYS[key]}", "Connection": "close"}


def chat(url: str, model: str, *, key: str = "alice", stream: bool = False) -> requests.Response:
    return requests.post(url + "/api/chat", headers=auth(key), timeout=(3, 20), json={
        "model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})


def samples(url: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one scrape (any worker answers for all)."""
    text = requests.get(url + "/metrics", headers=auth(), timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def chat_requests(fake: FakeBackend) -> int:
    return len(fake.requests_to(CHAT_PATH))


def settle(check, timeout_s: float = 5.0):
    """Poll ``check()`` until it returns a truthy value (records land when a response closes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_one_catalogue_lists_every_model_once_with_aliases_on_top(bridge, abc):
    tags = requests.get(bridge.url + "/api/tags", headers=auth(), timeout=10).json()
    names = [m["name"] for m in tags["models"]]
    assert sorted(names) == ["alias-1:latest", "m1:latest", "m2:latest", "m3:latest"]
    ids = [m["id"] for m in requests.get(bridge.url + "/v1/models", headers=auth(), timeout=10).json()["data"]]
    assert sorted(ids) == ["alias-1", "m1", "m2", "m3"]
    show = requests.post(bridge.url + "/api/show", headers=auth(), json={"model": "m3"}, timeout=10)
    assert show.status_code == 200 and "capabilities" in show.json()
    missing = requests.post(bridge.url + "/api/show", headers=auth(), json={"model": "nope"}, timeout=10)
    assert missing.status_code == 404


def test_a_backend_that_is_down_leaves_the_catalogue_and_ready_with_the_rest(bridge, abc):
    abc["c"].stop()
    time.sleep(1.1)  # MODELS_CACHE_TTL
    names = {m["name"] for m in requests.get(bridge.url + "/api/tags", headers=auth(), timeout=10).json()["models"]}
    assert names == {"alias-1:latest", "m1:latest", "m2:latest", "m3:latest"}  # c's models: a and b serve them
    time.sleep(5.1)  # the readiness cache
    ready = requests.get(bridge.url + "/ready", headers=auth(), timeout=10)
    assert ready.status_code == 200, ready.text  # every model still has a usable backend
    assert {row["name"]: row["usable"] for row in ready.json()["backends"]} == {"a": True, "b": True, "c": False}
    for fake in abc.values():
        fake.stop()
    time.sleep(1.1)
    down = requests.get(bridge.url + "/api/tags", headers=auth(), timeout=10)
    assert down.status_code == 502  # nobody answers


def test_requests_go_only_to_backends_that_serve_the_model(bridge, abc):
    for model in ("m2", "m3", "alias-1") * 6:
        resp = chat(bridge.url, model)
        assert resp.status_code == 200 and resp.json()["model"] == model
    got = {name: Counter(r.json["model"] for r in fake.requests_to(CHAT_PATH)) for name, fake in abc.items()}
    assert set(got["a"]) <= {"m1", "m2"} and set(got["b"]) <= {"m1", "m3"} and set(got["c"]) <= {"m2", "m3"}
    assert sum(c["m2"] for c in got.values()) == 6 and sum(c["m3"] for c in got.values()) == 6
    assert sum(c["m1"] for c in got.values()) == 6  # alias-1 -> m1
    assert got["c"]["m2"] + got["c"]["m3"] > 0 and got["a"]["m1"] + got["b"]["m1"] == 6
    # the backends' own keys, each to its own backend
    for name, fake in abc.items():
        assert {r.headers.get("authorization") for r in fake.requests_to(CHAT_PATH)} <= {f"Bearer sk-up-{name}"}


def test_exact_per_backend_and_per_key_counts_across_workers(bridge, abc):
    before = samples(bridge.url)
    sent = Counter()
    plan = [("alice", "m1", False), ("default", "m2", True), ("bob", "m3", False), ("alice", "m2", True)] * 5
    for key, model, stream in plan:
        resp = chat(bridge.url, model, key=key, stream=stream)
        assert resp.status_code == 200
        sent[key] += 1
    per_backend = {name: chat_requests(fake) for name, fake in abc.items()}
    assert sum(per_backend.values()) == len(plan)

    def counted():
        after = samples(bridge.url)
        return after if all(
            value(after, "bridge_key_requests_total", key=k) - value(before, "bridge_key_requests_total", key=k)
            == sent[k] for k in KEYS) else None

    after = settle(counted)
    assert after, "per-key request counts never matched"
    tokens_out = len(DEFAULT_TOKENS)
    for key in KEYS:
        delta = {t: value(after, "bridge_key_tokens_total", key=key, type=t)
                 - value(before, "bridge_key_tokens_total", key=key, type=t) for t in ("input", "output")}
        assert delta == {"input": 7 * sent[key], "output": tokens_out * sent[key]}, key
    for name, n in per_backend.items():
        ok = value(after, "bridge_backend_requests_total", backend=name, outcome="ok") - value(
            before, "bridge_backend_requests_total", backend=name, outcome="ok")
        out = value(after, "bridge_backend_tokens_total", backend=name, type="output") - value(
            before, "bridge_backend_tokens_total", backend=name, type="output")
        assert (ok, out) == (n, tokens_out * n), name
    for name in abc:  # every call released: non-streamed at once, streams when they closed
        assert value(after, "bridge_backend_in_flight", backend=name) == 0, name
    streamed = Counter(r.json["stream"] for fake in abc.values() for r in fake.requests_to(CHAT_PATH))
    ttft = sum(value(after, "bridge_backend_time_to_first_token_seconds_count", backend=n)
               - value(before, "bridge_backend_time_to_first_token_seconds_count", backend=n) for n in abc)
    assert ttft == streamed[True] == 10
    # no other label value was ever made
    assert {dict(labels)["backend"] for (name, labels) in after if name == "bridge_backend_requests_total"} == set(abc)
    assert {dict(labels)["key"] for (name, labels) in after if name == "bridge_key_requests_total"} == set(KEYS)
    summary = requests.get(bridge.url + "/metrics/summary", headers=auth(), timeout=10).json()
    assert set(summary["backends"]) == set(abc) and set(summary["keys"]) == set(KEYS)
    assert summary["keys"]["bob"]["requests"] == value(after, "bridge_key_requests_total", key="bob")
    assert summary["backends"]["a"]["state"] in ("closed", "half_open", "open")
    text = requests.get(bridge.url + "/metrics", headers=auth(), timeout=10).text
    assert not any(secret in text for secret in (*KEYS.values(), "sk-up-a", "sk-up-b", "sk-up-c"))


def test_a_backend_killed_under_load_fails_no_request_another_backend_serves(abc, tmp_path):
    proc = start(tmp_path, abc)
    try:
        abc["a"].script(first_delay_s=0.05)  # requests are in flight at a when it dies
        statuses: list[int] = []
        bad: list[str] = []
        stop_at = threading.Event()

        def one(i: int) -> None:
            model = ("m1", "m2")[i % 2]  # both served by a and by another backend
            resp = chat(proc.url, model, key="bob", stream=i % 3 == 0)
            statuses.append(resp.status_code)
            if resp.status_code != 200 or b'"error"' in resp.content or b'"done":true' not in resp.content.replace(
                    b" ", b""):
                bad.append(f"{resp.status_code} {resp.content[-200:]!r}")

        def killer() -> None:
            settle(lambda: len(statuses) >= 40, timeout_s=30)
            abc["a"].stop()
            stop_at.set()

        threading.Thread(target=killer, daemon=True).start()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, range(200)))
        assert stop_at.is_set()
        assert not bad, bad[:5]
        assert len(statuses) == 200
        after = samples(proc.url)
        assert value(after, "bridge_upstream_failovers_total", backend="a") >= 1
        assert value(after, "bridge_backend_requests_total", backend="a", outcome="connect_error") >= 1
        assert value(after, "bridge_backend_circuit_state", backend="a") == 2  # open in the worst worker
        assert settle(lambda: all(value(samples(proc.url), "bridge_backend_in_flight", backend=n) == 0
                                  for n in abc)), "calls left in flight"
    finally:
        proc.stop()


def test_a_flapping_backend_is_skipped_after_n_errors_and_used_again_after_the_cool_down(abc, tmp_path):
    # only a and b serve m1; a answers 500 to every chat call
    proc = start(tmp_path, abc, BACKEND_FAILURE_THRESHOLD="3", BACKEND_COOLDOWN="2")
    try:
        abc["a"].script(status=500, match_path=CHAT_PATH)
        for _ in range(40):
            assert chat(proc.url, "m1").status_code == 200
        failed = chat_requests(abc["a"])
        assert 3 <= failed <= 3 * 2  # N per worker, then skipped (the cool-down is longer than this loop)
        scrape = samples(proc.url)
        assert value(scrape, "bridge_backend_requests_total", backend="a", outcome="http_5xx") == failed
        assert value(scrape, "bridge_upstream_failovers_total", backend="a") == failed
        assert value(scrape, "bridge_backend_circuit_state", backend="a") == 2
        assert value(scrape, "bridge_backend_requests_total", backend="b", outcome="ok") == 40
        abc["a"].reset()  # healthy again
        time.sleep(2.2)
        for _ in range(40):
            assert chat(proc.url, "m1").status_code == 200
        served = chat_requests(abc["a"])
        assert served >= 10  # back in the rotation (half-open trial succeeded, then shared)
        scrape = samples(proc.url)
        assert value(scrape, "bridge_backend_requests_total", backend="a", outcome="ok") == served
    finally:
        proc.stop()
