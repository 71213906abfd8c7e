"""Named-event streaming: one backend chat-completions SSE stream -> the client API's own SSE events
(Anthropic Messages, OpenAI Responses), through a pure translator from ``bridge/translate``.

Ends with the API's finish events or its one error event (rules: ``bridge.streams``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from ..errors import BridgeError, UpstreamProtocolError
from ..ndjson import json_bytes
from ..sse import DONE, SSEDecoder, SSEEvent, event_objects
from . import Body, StreamReport

__all__ = ["Event", "event_stream", "sse_frame"]

log = logging.getLogger(__name__)

Event = tuple[str, dict[str, Any]]


class Translator(Protocol):
    finish_reason: str | None
    output_events: int

    @property
    def usage(self) -> tuple[int | None, int | None]: ...
    def start(self) -> list[Event]: ...
    def feed(self, event: dict[str, Any]) -> list[Event]: ...
    def finish(self) -> list[Event]: ...


def sse_frame(event: Event) -> bytes:
    """One named SSE event: ``event: <name>`` and one compact ``data:`` line."""
    name, data = event
    return b"event: " + name.encode() + b"\ndata: " + json_bytes(data) + b"\n\n"


def event_stream(body: Body, translator: Translator, report: StreamReport,
                 on_error: Callable[[str, BridgeError], Event]) -> Iterator[bytes]:
    """Translate one chat-completions SSE stream; ``on_error(message, exc)`` is the API's error event."""
    decoder = SSEDecoder()
    done = False
    try:
        yield b""
        yield b"".join(sse_frame(e) for e in translator.start())
        for data in body.iter_bytes():
            out, done = _translate(decoder.feed(data), translator, report)
            if out:
                yield out
            if done:
                break
        else:
            out, done = _translate(decoder.close(), translator, report)
            if out:
                yield out
        if translator.finish_reason is None and not done:
            raise UpstreamProtocolError("backend closed the stream before it finished")
        final = b"".join(sse_frame(e) for e in translator.finish())
        _note_tokens(translator, report)
        yield final
    except BridgeError as exc:
        report.note_outcome(exc.outcome)
        message = body.redact(exc.message)
        log.warning("stream failed mid-way", extra={"outcome": exc.outcome, "error": message})
        _note_tokens(translator, report)
        yield sse_frame(on_error(message, exc))
    except Exception:  # noqa: BLE001 - a bug must still end the stream in the API's own way
        report.note_outcome("error")
        log.exception("stream failed inside the bridge")
        yield sse_frame(on_error("internal error in the bridge (see its log for the request id)",
                                 BridgeError("internal error")))
    finally:
        if done:
            body.release()
        else:
            body.close()


def _translate(events: Iterable[SSEEvent], translator: Translator, report: StreamReport) -> tuple[bytes, bool]:
    """The bytes for these SSE events, and whether ``[DONE]`` was among them."""
    frames: list[bytes] = []
    for obj in event_objects(events):
        if obj is DONE:
            return b"".join(frames), True
        before = translator.output_events
        frames.extend(sse_frame(e) for e in translator.feed(obj))
        if not before and translator.output_events:
            report.first_token()
    return b"".join(frames), False


def _note_tokens(translator: Translator, report: StreamReport) -> None:
    prompt, completion = translator.usage
    report.note_tokens(prompt, completion if completion is not None else translator.output_events)
