"""OpenAI pass-through streaming: a backend's SSE stream relayed unchanged, measured on the way.

A failure after the first byte becomes one OpenAI error event (rules: ``bridge.streams``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..error_bodies import openai_error
from ..errors import UpstreamError
from ..ndjson import json_bytes, loads
from ..sse import SSEDecoder
from . import Body, StreamReport

__all__ = ["openai_relay", "usage_of"]


def openai_relay(body: Body, report: StreamReport) -> Iterator[bytes]:
    """Relay an OpenAI SSE stream chunk by chunk, noting the first token and the usage."""
    decoder = SSEDecoder()
    seen_token = False
    usage: tuple[int | None, int | None] = (None, None)
    ended = False
    try:
        yield b""
        for data in body.iter_bytes():
            for event in decoder.feed(data):
                seen_token, usage = _note(event.data, report, seen_token, usage)
            yield data
        ended = True
    except UpstreamError as exc:
        report.note_outcome(exc.outcome)
        yield b"data: " + json_bytes(openai_error(exc.status, body.redact(exc.message))) + b"\n\n"
    finally:
        if ended:
            body.release()  # the body was read to its end: the connection can serve again
        else:
            body.close()


def _note(data: str, report: StreamReport, seen_token: bool,
          usage: tuple[int | None, int | None]) -> tuple[bool, tuple[int | None, int | None]]:
    """First-token time and usage from one relayed SSE event."""
    if data.startswith("[DONE]"):
        return seen_token, usage
    try:
        obj = loads(data)
    except ValueError:
        return seen_token, usage
    if not isinstance(obj, dict):
        return seen_token, usage
    if not seen_token and _has_token(obj):
        report.first_token()
        seen_token = True
    reported = usage_of(obj, usage)
    if reported != usage:
        report.note_tokens(*reported)
    return seen_token, reported


def _has_token(obj: dict[str, Any]) -> bool:
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        if (isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls"))) or choice.get("text"):
            return True
    return False


def usage_of(obj: object, before: tuple[int | None, int | None] = (None, None)) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens from an OpenAI body's ``usage`` (a response or a stream event),
    each kept from ``before`` when absent."""
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(usage, dict):
        return before
    return usage.get("prompt_tokens", before[0]), usage.get("completion_tokens", before[1])
