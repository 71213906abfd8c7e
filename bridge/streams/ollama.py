"""Ollama streaming: one backend chat-completions SSE stream -> Ollama NDJSON lines.

Ends with exactly one ``done`` line or one ``{"error": ...}`` line (rules: ``bridge.streams``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from ..clock import RequestClock
from ..error_bodies import ollama_error
from ..errors import BridgeError, UpstreamProtocolError
from ..ndjson import ndjson_line
from ..sse import DONE, SSEDecoder, SSEEvent, event_objects
from ..translate.stream import StreamTranslator
from . import Body, StreamReport

__all__ = ["ollama_stream"]

log = logging.getLogger(__name__)


def ollama_stream(body: Body, translator: StreamTranslator, report: StreamReport,
                  clock: RequestClock) -> Iterator[bytes]:
    """Translate one backend SSE stream into Ollama NDJSON.

    When the read that carries ``[DONE]`` also carries the last tokens, the done line rides in the
    same write. Token counts reported are the backend's (the done line may carry estimates).
    """
    decoder = SSEDecoder()
    token_chunks = 0
    finished = False
    pending: list[bytes] = []  # the lines of the current read, written together
    try:
        yield b""
        for data in body.iter_bytes():
            translator.begin_read()  # one created_at for every chunk of this read
            for chunk in _chunks(decoder.feed(data), translator):
                if chunk is None:
                    finished = True
                    break
                if not token_chunks:
                    report.first_token()
                token_chunks += 1
                pending.append(ndjson_line(chunk))
            if finished:
                break
            if pending:
                batch, pending = pending, []
                yield batch[0] if len(batch) == 1 else b"".join(batch)
        else:
            translator.begin_read()
            for chunk in _chunks(decoder.close(), translator):
                if chunk is not None:
                    if not token_chunks:
                        report.first_token()
                    token_chunks += 1
                    pending.append(ndjson_line(chunk))
        if translator.finish_reason is None and not finished:
            raise UpstreamProtocolError("backend closed the stream before it finished")
        final = translator.finish(clock.ollama_timings())  # counts always set: usage, timings, else estimated
        # Metrics count what the backend reported (output: the chunks forwarded when it reported none).
        report.note_tokens(translator.usage[0], final.get("eval_count"))
        pending.append(ndjson_line(final))
        yield b"".join(pending)
    except BridgeError as exc:
        report.note_outcome(exc.outcome)
        message = body.redact(exc.message)
        log.warning("stream failed mid-way", extra={"outcome": exc.outcome, "error": message})
        prompt_tokens, completion_tokens = translator.usage
        report.note_tokens(prompt_tokens, completion_tokens if completion_tokens is not None else token_chunks)
        pending.append(ndjson_line(ollama_error(message)))  # after the tokens this read still carried
        yield b"".join(pending)
    finally:
        if finished:
            body.release()
        else:
            body.close()


def _chunks(events: Iterable[SSEEvent], translator: StreamTranslator) -> Iterator[dict[str, Any] | None]:
    """Ollama chunks for these SSE events; ``None`` marks ``[DONE]``."""
    for obj in event_objects(events):
        if obj is DONE:
            yield None
            return
        yield from translator.feed(obj)
