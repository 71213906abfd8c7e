"""bridge.readiness: the pool's readiness, asked at most once per cache period."""

from __future__ import annotations

from bridge.readiness import READY_CACHE_S, cached_readiness


class FakePool:
    def __init__(self) -> None:
        self.calls = 0
        self.answer: tuple[bool, str, list[dict]] = (True, "backend reachable", [{"name": "default"}])

    def readiness(self) -> tuple[bool, str, list[dict]]:
        self.calls += 1
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_call_asks_the_pool_and_wraps_the_rows():
    pool, clock = FakePool(), Clock()
    ready = cached_readiness(pool, clock=clock)
    assert pool.calls == 0  # nothing asked until the first probe
    assert ready() == (True, "backend reachable", {"backends": [{"name": "default"}]})
    assert pool.calls == 1


def test_the_result_is_reused_within_the_period_then_refreshed():
    pool, clock = FakePool(), Clock()
    ready = cached_readiness(pool, ttl_s=5.0, clock=clock)
    first = ready()
    pool.answer = (False, "no usable backend for m1", [])
    clock.now += 4.9
    assert ready() == first and pool.calls == 1
    clock.now += 0.1
    assert ready() == (False, "no usable backend for m1", {"backends": []})
    assert pool.calls == 2


def test_a_failure_is_cached_too():
    pool, clock = FakePool(), Clock()
    pool.answer = (False, "backend not ready: refused", [])
    ready = cached_readiness(pool, clock=clock)
    for _ in range(10):
        assert ready()[0] is False
    assert pool.calls == 1


def test_default_period():
    assert READY_CACHE_S == 5.0
