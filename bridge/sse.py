"""Incremental Server-Sent-Events decoder: bytes in, complete events out, nothing held back.

Why not ``requests.Response.iter_lines``: it reads fixed-size blocks and holds the last partial
line until more bytes arrive (psf/requests#2433, #3577), which delays tokens. This decoder is fed
whatever the socket delivered and returns every event those bytes completed, at once. It splits on
LF, CRLF or CR, keeps a multi-byte UTF-8 character split across reads intact (bytes are decoded only
once a whole line is present), ignores comments (``:``), and joins multi-line ``data``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .ndjson import loads

__all__ = ["DONE", "SSEDecoder", "SSEEvent", "event_objects"]

log = logging.getLogger(__name__)

#: What :func:`event_objects` yields for ``data: [DONE]`` (the end of an OpenAI stream).
DONE = None


class SSEEvent(NamedTuple):
    event: str | None
    data: str


class SSEDecoder:
    """Feed raw bytes with :meth:`feed`; call :meth:`close` at end of stream."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._pending_cr = False

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Return every event completed by ``data``."""
        if not data:
            return []
        if self._pending_cr:
            # A CR ended the previous read; a LF starting this one belongs to the same line break.
            self._pending_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        buffer = self._buffer + data
        events: list[SSEEvent] = []
        start = 0
        size = len(buffer)
        while start < size:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf >= 0 else size)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < size and buffer[nxt : nxt + 1] == b"\n":
                    nxt += 1
                elif nxt == size:
                    self._pending_cr = True
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            self._line(buffer[start:end], events)
            start = nxt
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[SSEEvent]:
        """Flush the last event when the stream ended without a blank line."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        self._dispatch(events)
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if not raw:
            self._dispatch(events)
            return
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value or None

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(SSEEvent(self._event, "\n".join(self._data)))
        self._data = []
        self._event = None


def event_objects(events: Iterable[SSEEvent]) -> Iterator[dict | None]:
    """The JSON objects of OpenAI-style SSE events, then :data:`DONE` at ``[DONE]`` (and stop).

    Events that are not JSON objects are skipped (logged); an ``event: error`` whose data lacks
    an ``error`` key is wrapped as ``{"error": data}`` so translators see one error shape.
    """
    for event in events:
        data = event.data.strip()
        if data == "[DONE]":
            yield DONE
            return
        try:
            obj = loads(data)
        except ValueError:
            log.warning("skipping an SSE event that is not JSON", extra={"bytes": len(data)})
            continue
        if not isinstance(obj, dict):
            continue
        if event.event == "error" and "error" not in obj:
            obj = {"error": obj}
        yield obj
