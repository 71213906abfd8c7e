"""bridge/backend_readiness.py: ready while every known model has a usable backend; one row per backend."""

from __future__ import annotations

import pytest

from bridge import backend_readiness
from bridge.backend_catalogue import BackendCatalogue
from bridge.backends import Backend
from bridge.config import Settings
from bridge.routing import Router
from bridge.upstream import UpstreamClient
from tests.bridgeproc import free_port
from tests.fakes.backend import FakeBackend


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


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


def parts_for(*backends: Backend) -> tuple[BackendCatalogue, Router]:
    s = Settings(demo_backend=False, backends=backends, max_retries=1, retry_backoff_s=0.01,
                 connect_timeout_s=1.0, request_timeout_s=5.0, models_cache_s=60.0)
    clock = Clock()
    catalogue = BackendCatalogue(backends, [UpstreamClient(s, backend=b) for b in backends], ttl_s=60.0, clock=clock)
    router = Router([0] * len(backends), [1.0] * len(backends), threshold=2, cooldown_s=10.0, clock=clock)
    return catalogue, router


def readiness(catalogue: BackendCatalogue, router: Router, demo: bool = False) -> tuple[bool, str, list[dict]]:
    ok, reason, usable = backend_readiness.verdict(catalogue, router, demo=demo)
    return ok, reason, backend_readiness.rows(catalogue, router, usable)


def test_readiness_needs_a_usable_backend_for_every_model(a_b):
    a, b = a_b
    catalogue, router = parts_for(Backend("a", a.url + "/v1"), Backend("b", b.url + "/v1"))
    ok, reason, rows = readiness(catalogue, router)
    assert ok and [r["name"] for r in rows] == ["a", "b"] and all(r["usable"] for r in rows)
    assert reason == "every model has a usable backend (2 of 2 usable)"
    b.script(fault="refuse")
    try:
        ok, reason, rows = readiness(catalogue, router)
    finally:
        b.reset()
    assert not ok and "m3" in reason  # m1 still has a, m3 has nobody
    assert [r["usable"] for r in rows] == [True, False]


def test_an_open_breaker_makes_a_backend_unusable_and_long_lists_are_cut():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    models = tuple(f"m{i}" for i in range(7))
    catalogue, router = parts_for(Backend("x", dead, models=models), Backend("y", dead, models=("m0",)))
    router.failure(0)
    router.failure(0)
    ok, reason, rows = readiness(catalogue, router)
    assert not ok and reason == "no usable backend for m1, m2, m3, m4, m5 and 1 more"
    assert rows == [{"name": "x", "state": "open", "usable": False, "in_flight": 0, "models": 7},
                    {"name": "y", "state": "closed", "usable": True, "in_flight": 0, "models": 1}]


def test_not_ready_while_no_backend_lists_any_model():
    catalogue, router = parts_for(Backend("x", f"http://127.0.0.1:{free_port()}/v1"),
                                  Backend("y", f"http://127.0.0.1:{free_port()}/v1"))
    ok, reason, rows = readiness(catalogue, router)
    assert not ok and reason == "no backend lists any model"
    assert [(r["usable"], r["models"]) for r in rows] == [(False, None), (False, None)]


def test_one_backend_is_ready_when_it_answers_its_listing(a_b):
    a, _ = a_b
    catalogue, router = parts_for(Backend("default", a.url + "/v1"))
    ok, reason, rows = readiness(catalogue, router, demo=True)
    assert ok and reason == "backend reachable (built-in demo backend)" and rows[0]["usable"]
    a.script(fault="refuse")
    ok, reason, rows = readiness(catalogue, router)
    assert not ok and reason.startswith("backend not ready:") and not rows[0]["usable"]
