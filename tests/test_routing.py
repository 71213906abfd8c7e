"""Choosing a backend and the circuit breaker (bridge/routing.py), with an injected clock."""

from __future__ import annotations

from collections import Counter

import pytest

from bridge.routing import CLOSED, HALF_OPEN, OPEN, Circuit, Router


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_circuit_opens_after_n_failures_in_a_row_and_a_success_resets_the_count():
    clock = Clock()
    c = Circuit(3, 10.0, clock)
    c.failure(), c.failure(), c.success(), c.failure(), c.failure()
    assert c.state == CLOSED and c.usable()
    c.failure()
    assert c.state == OPEN and not c.usable() and c.reopens_in_s() == 10.0


def test_half_open_lets_exactly_one_trial_through_then_closes_or_reopens():
    clock = Clock()
    c = Circuit(1, 10.0, clock)
    c.failure()
    clock.now += 9.99
    assert c.state == OPEN
    clock.now += 0.01
    assert c.state == HALF_OPEN and c.usable()
    c.begin()
    assert not c.usable()  # the trial is out: nobody else
    c.failure()  # the trial failed: a whole new cool-down
    assert c.state == OPEN and c.reopens_in_s() == 10.0
    clock.now += 10
    assert c.usable()
    c.begin()
    c.success()
    assert c.state == CLOSED and c.usable() and c.failures == 0


def router(priorities=(0, 0, 0), weights=(1, 1, 1), threshold=2, cooldown_s=5.0, clock=None):
    return Router(priorities, weights, threshold=threshold, cooldown_s=cooldown_s, clock=clock or Clock())


def test_sequential_traffic_is_shared_by_weight_inside_the_lowest_priority_group():
    r = router(priorities=(0, 0, 1), weights=(2, 1, 5))
    firsts = Counter(r.order([0, 1, 2])[0] for _ in range(300))
    assert firsts == {0: 200, 1: 100}  # priority 1 is never first while priority 0 is usable
    assert r.order([0, 1, 2])[-1] == 2  # ... but it is the last failover target


def test_concurrent_traffic_goes_to_the_backend_with_fewest_in_flight_per_weight():
    r = router(weights=(1, 1, 2))
    r.begin(0), r.begin(1), r.begin(2), r.begin(2)  # 1, 1, 2 in flight -> 1, 1, 1 per weight
    r.begin(0)  # backend 0 now the busiest
    order = r.order([0, 1, 2])
    assert order[0] in (1, 2) and order[-1] == 0
    r.end(0), r.end(0)
    assert r.order([0, 1, 2])[0] == 0  # idle again


def test_open_backends_are_skipped_but_still_tried_last_when_nothing_else_is_left():
    clock = Clock()
    r = router(clock=clock)
    r.failure(1), r.failure(1)
    assert r.state(1) == OPEN
    for _ in range(10):
        order = r.order([0, 1, 2])
        assert order[-1] == 1 and set(order[:2]) == {0, 2}
    assert r.order([1]) == [1]  # the only backend for a model is always tried
    r.failure(0), r.failure(0)
    clock.now += 1
    r.failure(2), r.failure(2)
    assert r.order([0, 1, 2]) == [0, 1, 2]  # all open: soonest to reopen first
    clock.now += 4  # 0 and 1 are half-open now
    order = r.order([0, 1, 2])
    assert order[-1] == 2 and set(order[:2]) == {0, 1}


def test_a_flapping_backend_gets_one_trial_after_the_cool_down():
    clock = Clock()
    r = router(priorities=(0, 0), weights=(1, 1), clock=clock)
    r.failure(0), r.failure(0)
    assert all(r.order([0, 1])[0] == 1 for _ in range(5))
    clock.now += 5
    first = [r.order([0, 1])[0] for _ in range(4)]
    assert 0 in first  # the trial
    r.begin(0)
    assert all(r.order([0, 1])[0] == 1 for _ in range(5))  # no second request while on trial
    r.success(0), r.end(0)
    assert Counter(r.order([0, 1])[0] for _ in range(10)) == {0: 5, 1: 5}


def test_router_needs_one_priority_and_weight_per_backend():
    with pytest.raises(ValueError):
        Router([0, 1], [1], threshold=1, cooldown_s=1)


def test_an_abandoned_trial_frees_the_half_open_slot():
    clock = Clock()
    c = Circuit(1, 1.0, clock)
    c.failure()
    clock.now += 1
    c.begin()
    assert not c.usable()
    c.abandon()  # the client left before any verdict
    assert c.state == HALF_OPEN and c.usable()
