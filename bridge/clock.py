"""One request's clock: the monotonic marks every duration of that request is measured from.

The metrics (duration, time to first byte and token, gaps) and Ollama's duration fields
(``total_duration``, ``load_duration``, ``prompt_eval_duration``, ``eval_duration``) read the same
marks, so a client and a dashboard never disagree about the same request. Integer nanoseconds
from ``time.monotonic_ns`` (Ollama's unit; immune to wall-clock steps).
"""

from __future__ import annotations

import time

from .translate.responses import Timings

__all__ = ["RequestClock", "rfc3339_utc"]

_second: list[object] = [None, ""]  # (epoch second, its "YYYY-MM-DDTHH:MM:SS"): formatted once a second


def rfc3339_utc(now_s: float) -> str:
    """``now_s`` (epoch seconds) as UTC RFC 3339 with microseconds and ``Z`` (what Go and Python
    clients parse). Every chunk's ``created_at`` and every access line come here, so the date part
    is formatted once a second (``strftime`` per call was 2 % of a worker's CPU on short streams)."""
    sec = int(now_s)
    if _second[0] != sec:
        _second[:] = [sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))]
    return f"{_second[1]}.{int((now_s - sec) * 1e6):06d}Z"


class RequestClock:
    """Marks of one request: received, sent to the backend, first output token."""

    __slots__ = ("started_ns", "sent_ns", "first_token_ns")

    def __init__(self, started_ns: int | None = None) -> None:
        self.started_ns = time.monotonic_ns() if started_ns is None else started_ns
        self.sent_ns = 0
        self.first_token_ns = 0

    def mark_sent(self) -> None:
        """The request is about to go to the backend (translation and routing are done)."""
        self.sent_ns = time.monotonic_ns()

    def mark_first_token(self) -> bool:
        """Mark the first output token; True the first time only."""
        if self.first_token_ns:
            return False
        self.first_token_ns = time.monotonic_ns()
        return True

    def elapsed_s(self, now_ns: int | None = None) -> float:
        """Seconds since the request was received."""
        return ((time.monotonic_ns() if now_ns is None else now_ns) - self.started_ns) / 1e9

    @property
    def ttft_s(self) -> float | None:
        """Seconds from the request to its first output token; None before it."""
        return (self.first_token_ns - self.started_ns) / 1e9 if self.first_token_ns else None

    def ollama_timings(self, *, first_ns: int | None = None) -> Timings:
        """Ollama's durations, measured now (the bridge's own when the backend reports none):
        load = received -> sent, prompt eval = sent -> ``first_ns`` (default: the first token; a
        non-streamed answer passes when its headers arrived), eval = the rest."""
        end_ns = time.monotonic_ns()
        sent_ns = self.sent_ns or end_ns
        first = first_ns or self.first_token_ns or end_ns
        return Timings.measured(started_ns=self.started_ns, sent_ns=sent_ns, first_ns=first, end_ns=end_ns)
