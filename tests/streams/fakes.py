"""Fakes of the two interfaces a stream pump sees (``bridge.streams.Body`` and ``StreamReport``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from bridge.errors import UpstreamError


class FakeBody:
    """A backend answer that yields the given reads, then optionally raises ``fail``."""

    def __init__(self, reads: list[bytes], *, fail: UpstreamError | None = None, secret: str = "") -> None:
        self.reads = reads
        self.fail = fail
        self.secret = secret
        self.released = 0
        self.closed = 0

    def iter_bytes(self) -> Iterator[bytes]:
        yield from self.reads
        if self.fail is not None:
            raise self.fail

    def release(self) -> None:
        self.released += 1

    def close(self) -> None:
        self.closed += 1

    def redact(self, text: str) -> str:
        return text.replace(self.secret, "[redacted]") if self.secret else text


class FakeReport:
    """Records what a pump notes on the request's observation."""

    def __init__(self) -> None:
        self.first_tokens = 0
        self.tokens: tuple[int | None, int | None] | None = None
        self.outcome: str | None = None

    def first_token(self) -> None:
        self.first_tokens += 1

    def note_tokens(self, tokens_in: int | None, tokens_out: int | None) -> None:
        self.tokens = (tokens_in, tokens_out)

    def note_outcome(self, outcome: str) -> None:
        self.outcome = outcome


def sse(obj: object) -> bytes:
    """One SSE event carrying ``obj`` as JSON (``"[DONE]"`` as is)."""
    return b"data: " + (obj.encode() if isinstance(obj, str) else json.dumps(obj).encode()) + b"\n\n"


def chunk(content: str | None = None, *, finish: str | None = None, usage: dict | None = None) -> bytes:
    """One chat.completion.chunk event."""
    delta = {} if content is None else {"content": content}
    obj: dict = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        obj["usage"] = usage
    return sse(obj)
