"""Streamed answers: the generators that become Flask response bodies, one module per job.

* :mod:`.ollama`: a chat-completions SSE stream translated into Ollama NDJSON lines.
* :mod:`.events`: the same stream translated into named SSE events (Anthropic, Responses API).
* :mod:`.openai_relay` / :mod:`.responses_relay`: a backend's own stream relayed unchanged, measured.
* :mod:`.patient`: a non-streamed JSON answer that outlasts a router's first-byte deadline.

Every pump follows the same rules. It yields ``b""`` first so gunicorn puts the status line and
headers on the wire as soon as the backend has accepted the request (Heroku's router wants a first
byte within 30 s). What one backend read completes goes to the client in one write, at once. A
failure after the first byte becomes the API's own error, written once, after which nothing else
is. In ``finally`` the backend answer is released (complete: its connection goes back to the pool)
or closed (a client that left, a broken stream: the backend stops generating). A pump only sees
the two narrow interfaces below, so each is unit-tested against fakes of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

__all__ = ["Body", "StreamReport", "STREAM_HEADERS"]

#: Response headers of every streamed answer: no caching, no proxy buffering (nginx honours this).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Body(Protocol):
    """A backend answer being streamed (``bridge.backend_response.BackendResponse``)."""

    def iter_bytes(self) -> Iterator[bytes]: ...
    def release(self) -> None: ...
    def close(self) -> None: ...
    def redact(self, text: str) -> str: ...


class StreamReport(Protocol):
    """What a pump tells the request's observation (``bridge.metrics.observation.Observation``)."""

    def first_token(self) -> None: ...
    def note_tokens(self, tokens_in: int | None, tokens_out: int | None) -> None: ...
    def note_outcome(self, outcome: str) -> None: ...
