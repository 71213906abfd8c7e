"""Responses API pass-through streaming: a backend's own ``/v1/responses`` stream relayed unchanged,
measured on the way; a failure becomes one ``response.failed`` event continuing the backend's
numbering (rules: ``bridge.streams``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from ..errors import UpstreamError, UpstreamProtocolError
from ..sse import SSEDecoder
from . import Body, StreamReport
from .events import sse_frame

__all__ = ["responses_relay", "responses_usage"]

log = logging.getLogger(__name__)

_TOKEN_EVENTS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta",
                           "response.reasoning_text.delta", "response.refusal.delta"})
# An "error" event also ends a stream: nothing is added after the backend's own error.
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})


class _Seen:
    """What the relay keeps of the stream: the last ``response`` snapshot and sequence number
    (one object, bounded by the stream itself), whether a token and a final event went by."""

    __slots__ = ("seq", "response", "token", "final")

    def __init__(self) -> None:
        self.seq = -1
        self.response: dict[str, Any] | None = None
        self.token = False
        self.final = False


def responses_relay(body: Body, report: StreamReport) -> Iterator[bytes]:
    """Relay a backend's Responses stream unchanged; a failure becomes ``response.failed``."""
    decoder = SSEDecoder()
    seen = _Seen()
    ended = False
    try:
        yield b""
        for data in body.iter_bytes():
            for event in decoder.feed(data):
                _note(event.data, seen, report)
            yield data
        for event in decoder.close():
            _note(event.data, seen, report)
        if not seen.final:
            raise UpstreamProtocolError("backend closed the stream before the response was complete")
        ended = True
    except UpstreamError as exc:
        report.note_outcome(exc.outcome)
        message = body.redact(exc.message)
        log.warning("stream failed mid-way", extra={"outcome": exc.outcome, "error": message})
        snapshot = dict(seen.response or {"id": "resp_unknown", "object": "response", "output": []})
        snapshot.update(status="failed", error={"code": "server_error", "message": message})
        failed = {"type": "response.failed", "sequence_number": seen.seq + 1, "response": snapshot}
        yield b"\n\n" + sse_frame(("response.failed", failed))  # ends a partial event the backend left open
    finally:
        if ended:
            body.release()  # the body was read to its end: the connection can serve again
        else:
            body.close()


def _note(data: str, seen: _Seen, report: StreamReport) -> None:
    try:
        obj = json.loads(data)
    except ValueError:
        return
    if not isinstance(obj, dict):
        return
    if isinstance(obj.get("sequence_number"), int):
        seen.seq = obj["sequence_number"]
    kind = obj.get("type")
    if isinstance(obj.get("response"), dict):
        seen.response = obj["response"]
    if not seen.token and kind in _TOKEN_EVENTS:
        seen.token = True
        report.first_token()
    if kind in _FINAL_EVENTS:
        seen.final = True
        counts = responses_usage(obj.get("response"))
        if counts is not None:
            report.note_tokens(*counts)


def responses_usage(response: object) -> tuple[int | None, int | None] | None:
    """(input, output) tokens from a ``response`` object's usage; None when it has none."""
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None
    return usage.get("input_tokens"), usage.get("output_tokens")
