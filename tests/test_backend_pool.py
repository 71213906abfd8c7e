"""BackendPool (bridge/backend_pool.py) against in-process fake backends: failover, breakers, in-flight
counts, and what it passes on to its catalogue and readiness check (their own tests:
test_backend_catalogue.py, test_backend_readiness.py). No gunicorn: plain Python over UpstreamClients."""

from __future__ import annotations

import pytest

from bridge.backend_pool import BackendPool, NoBackend
from bridge.backends import Backend
from bridge.config import Settings
from bridge.errors import UpstreamConnectError, UpstreamHTTPError
from bridge.routing import CLOSED, OPEN
from bridge.upstream import Deadline
from tests.bridgeproc import free_port
from tests.fakes.backend import FakeBackend


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def backend_attempt(self, backend, outcome):
        self.events.append(("attempt", backend, outcome))

    def backend_failover(self, backend):
        self.events.append(("failover", backend))

    def backend_state(self, backend, state):
        self.events.append(("state", backend, state))

    def backend_in_flight(self, backend, delta):
        self.events.append(("in_flight", backend, delta))


@pytest.fixture(scope="module")
def fakes():
    started = [FakeBackend(models=("m1", "m2")).start(), FakeBackend(models=("m1", "m3")).start()]
    yield started
    for fake in started:
        fake.stop()


@pytest.fixture()
def a_b(fakes):
    for fake in fakes:
        fake.reset()
    yield fakes
    for fake in fakes:
        fake.reset()


def pool_for(*backends: Backend, clock=None, report=None, **settings) -> BackendPool:
    s = Settings(demo_backend=False, backends=backends, max_retries=1, retry_backoff_s=0.01,
                 connect_timeout_s=1.0, request_timeout_s=5.0, backend_failure_threshold=2,
                 backend_cooldown_s=10.0, models_cache_s=60.0, **settings)
    return BackendPool(s, clock=clock or Clock(), report=report)


def chat(pool: BackendPool, model: str = "m1", **kw):
    return pool.open("POST", "/chat/completions", json_body={"model": model, "messages": []}, model=model,
                     stream=False, deadline=Deadline.after(5), **kw)


def test_a_call_goes_to_a_backend_that_serves_its_model(a_b):
    a, b = a_b
    pool = pool_for(Backend("a", a.url + "/v1"), Backend("b", b.url + "/v1"),
                    Backend("c", "http://127.0.0.1:9/v1", models=("m9", "m1")))
    assert pool.ids() == ["m1", "m2", "m3", "m9"]
    assert pool.serving("m2") == (0,) and pool.serving("m3") == (1,) and pool.serving("m1") == (0, 1, 2)
    assert chat(pool, "m3").backend == "b"
    assert len(b.requests_to("/v1/chat/completions")) == 1 and not a.requests_to("/v1/chat/completions")


def test_failover_before_the_first_byte_on_5xx_429_and_connect_errors(a_b):
    a, b = a_b
    report = Recorder()
    pool = pool_for(Backend("a", a.url + "/v1"), Backend("b", b.url + "/v1"), report=report)
    pool.ids()
    for status in (500, 429, 503):
        a.script(status=status, match_path="/v1/chat")
        b.reset()
        answered = {chat(pool).backend for _ in range(4)}
        assert answered == {"b"}
        a.reset()
    # a 400 is the request's fault: passed on, never sent elsewhere
    a.script(status=400, match_path="/v1/chat"), b.script(status=400, match_path="/v1/chat")
    with pytest.raises(UpstreamHTTPError) as err:
        chat(pool)
    assert err.value.status == 400 and ("failover", "a") not in report.events[-3:]
    assert ("failover", "a") in report.events and ("attempt", "a", "http_5xx") in report.events


def test_breaker_skips_a_failing_backend_then_tries_it_again_after_the_cool_down(a_b):
    a, b = a_b
    clock = Clock()
    report = Recorder()
    pool = pool_for(Backend("a", a.url + "/v1"), Backend("b", b.url + "/v1"), clock=clock, report=report)
    pool.ids()
    a.script(status=500, match_path="/v1/chat")
    for _ in range(10):
        assert chat(pool).backend == "b"
    assert len(a.requests_to("/v1/chat/completions")) == 2  # BACKEND_FAILURE_THRESHOLD, then skipped
    assert pool.router.state(0) == OPEN and ("state", "a", OPEN) in report.events
    a.reset()
    clock.now += 10
    answered = [chat(pool).backend for _ in range(4)]
    assert "a" in answered and pool.router.state(0) == CLOSED
    assert report.events[-1] != ("state", "a", OPEN) and ("state", "a", CLOSED) in report.events


def test_in_flight_is_released_when_a_stream_closes(a_b):
    a, b = a_b
    report = Recorder()
    pool = pool_for(Backend("a", a.url + "/v1"), report=report)
    resp = pool.open("POST", "/chat/completions", json_body={"model": "m1", "messages": [], "stream": True},
                     model="m1", stream=True, deadline=Deadline.after(5))
    assert pool.router.in_flight == [1]
    resp.close()
    resp.close()
    assert pool.router.in_flight == [0]
    assert [e for e in report.events if e[0] == "in_flight"] == [("in_flight", "a", 1), ("in_flight", "a", -1)]


def test_body_per_backend_and_excluded_backends(a_b):
    a, b = a_b
    pool = pool_for(Backend("a", a.url + "/v1"), Backend("b", b.url + "/v1"))
    pool.ids()
    resp = chat(pool, body_for=lambda name: {"model": "m1", "messages": [], "seen_by": name},
                accept=lambda name: name == "b")
    assert resp.backend == "b" and b.requests_to("/v1/chat/completions")[-1].json["seen_by"] == "b"
    with pytest.raises(NoBackend):
        chat(pool, accept=lambda name: False)


def test_the_catalogue_leaves_a_backend_alone_while_its_breaker_is_open(a_b):
    a, b = a_b
    pool = pool_for(Backend("a", a.url + "/v1"), Backend("b", b.url + "/v1"))
    assert pool.entry("m2") is not None and pool.cached() is not None
    a.script(status=500, match_path="/v1/chat")
    for _ in range(10):
        assert chat(pool).backend == "b"
    assert pool.router.state(0) == OPEN
    asked = len(a.requests_to("/v1/models"))
    assert [e["id"] for e in pool.fetch()["data"]] == ["m1", "m2", "m3"]  # a's last listing stands
    assert len(a.requests_to("/v1/models")) == asked


def test_readiness_rows_follow_the_breakers(a_b):
    a, b = a_b
    report = Recorder()
    pool = pool_for(Backend("a", a.url + "/v1"), Backend("b", b.url + "/v1"), report=report)
    ok, reason, rows = pool.readiness()
    assert ok and [r["name"] for r in rows] == ["a", "b"] and all(r["usable"] for r in rows)
    a.script(status=500, match_path="/v1/chat")
    for _ in range(10):
        chat(pool)
    ok, reason, rows = pool.readiness()
    assert not ok and "m2" in reason and rows[0]["state"] == "open" and not rows[0]["usable"]
    assert ("state", "a", OPEN) in report.events


def test_one_backend_behaves_as_before():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    s = Settings(backend_url=dead, demo_backend=False, max_retries=0)
    pool = BackendPool(s)
    assert pool.names == ("default",) and pool.serving("anything") == (0,)
    with pytest.raises(UpstreamConnectError):
        pool.fetch()
    assert pool.cached() is None
    ok, reason, rows = pool.readiness()
    assert not ok and reason.startswith("backend not ready:") and rows[0]["name"] == "default"
