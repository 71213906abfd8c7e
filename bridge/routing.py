"""Which backend gets a request, and which ones are healthy enough to try: pure, clock injected.

* :class:`Circuit`: one backend's breaker. ``threshold`` failures in a row open it; it stays open
  for ``cooldown_s``; then one request is let through (half-open): its success closes the breaker,
  its failure opens it again for another cool-down.
* :class:`Router`: the order in which a request tries the backends that serve its model. The
  lowest ``priority`` group first; inside a group the fewest in-flight requests per unit of
  ``weight`` first, ties shared by smooth weighted round robin (so sequential traffic splits by
  weight, concurrent traffic goes to the least busy). Backends whose breaker is open come last,
  so they are still tried when nothing else is left (one backend behaves as before the breaker).

State is per worker process (no I/O, no locks: gevent switches only at I/O, never inside these
methods). Cost: a few microseconds per request for a handful of backends (perf/bench_routing.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "STATE_NAMES", "Circuit", "Router"]

CLOSED, HALF_OPEN, OPEN = 0, 1, 2
STATE_NAMES = {CLOSED: "closed", HALF_OPEN: "half_open", OPEN: "open"}


class Circuit:
    """One backend's circuit breaker (closed -> open -> half-open -> closed or open)."""

    __slots__ = ("threshold", "cooldown_s", "_clock", "failures", "_opened_at", "_probing", "_state")

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.failures = 0  # in a row
        self._opened_at = 0.0
        self._probing = False
        self._state = CLOSED

    @property
    def state(self) -> int:
        """CLOSED, HALF_OPEN (the cool-down is over: one trial request) or OPEN."""
        if self._state == OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            self._state = HALF_OPEN
            self._probing = False
        return self._state

    def usable(self) -> bool:
        """May a request be sent now? (Half-open: only while no trial request is out.)"""
        state = self.state
        return state == CLOSED or (state == HALF_OPEN and not self._probing)

    def begin(self) -> None:
        """A request is being sent to this backend (marks the half-open trial as taken)."""
        if self.state == HALF_OPEN:
            self._probing = True

    def abandon(self) -> None:
        """The request ended without a verdict (the client left): free the half-open trial."""
        self._probing = False

    def success(self) -> None:
        self.failures = 0
        self._state = CLOSED
        self._probing = False

    def failure(self) -> None:
        self.failures += 1
        if self._state == HALF_OPEN or self.failures >= self.threshold:
            self._state = OPEN
            self._opened_at = self._clock()
            self._probing = False

    def reopens_in_s(self) -> float:
        """Seconds until an open breaker lets a trial request through (0 when not open)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))


class Router:
    """Orders the backends (by index) that may serve a request. See the module docstring."""

    __slots__ = ("priorities", "weights", "circuits", "in_flight", "_current")

    def __init__(self, priorities: Sequence[int], weights: Sequence[float], *, threshold: int, cooldown_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if len(priorities) != len(weights) or not priorities:
            raise ValueError("one priority and one weight per backend, at least one backend")
        self.priorities = tuple(priorities)
        self.weights = tuple(float(w) for w in weights)
        self.circuits = [Circuit(threshold, cooldown_s, clock) for _ in priorities]
        self.in_flight = [0] * len(priorities)
        self._current = [0.0] * len(priorities)  # smooth weighted round robin state

    def order(self, candidates: Sequence[int]) -> list[int]:
        """``candidates`` (backend indices) in the order to try them; the first is the choice.

        Usable backends first (by priority, then load per weight, ties by weighted round robin),
        then backends whose breaker is open, soonest to reopen first.
        """
        if len(candidates) == 1:
            return list(candidates)
        circuits, in_flight, weights, priorities = self.circuits, self.in_flight, self.weights, self.priorities
        usable = [i for i in candidates if circuits[i].usable()]
        if not usable:
            return sorted(candidates, key=lambda i: circuits[i].reopens_in_s())
        best = min(priorities[i] for i in usable)
        group = [i for i in usable if priorities[i] == best]
        first = self._pick(group) if len(group) > 1 else group[0]
        rest = sorted((i for i in usable if i != first), key=lambda i: (priorities[i], in_flight[i] / weights[i]))
        blocked = sorted((i for i in candidates if not circuits[i].usable()),
                         key=lambda i: circuits[i].reopens_in_s())
        return [first, *rest, *blocked]

    def _pick(self, group: list[int]) -> int:
        """Fewest in flight per unit of weight; ties shared out by smooth weighted round robin."""
        in_flight, weights = self.in_flight, self.weights
        lowest = min(in_flight[i] / weights[i] for i in group)
        tied = [i for i in group if in_flight[i] / weights[i] <= lowest]
        if len(tied) == 1:
            return tied[0]
        current = self._current
        total = 0.0
        chosen = tied[0]
        for i in tied:
            current[i] += weights[i]
            total += weights[i]
            if current[i] > current[chosen]:
                chosen = i
        current[chosen] -= total
        return chosen

    # -- one attempt ----------------------------------------------------------------------------
    def begin(self, index: int) -> None:
        self.in_flight[index] += 1
        self.circuits[index].begin()

    def end(self, index: int) -> None:
        """The request to ``index`` is over (its body read or closed)."""
        if self.in_flight[index] > 0:
            self.in_flight[index] -= 1

    def success(self, index: int) -> None:
        self.circuits[index].success()

    def abandon(self, index: int) -> None:
        self.circuits[index].abandon()

    def failure(self, index: int) -> None:
        self.circuits[index].failure()

    def state(self, index: int) -> int:
        return self.circuits[index].state
