"""Streaming glue for the event-typed SSE APIs (Anthropic Messages, OpenAI Responses).

:func:`event_stream` turns one upstream chat-completions SSE stream into the client API's own
named events through a pure translator (``translate/anthropic_stream.py``, ``translate/responses_api.py``).
:func:`responses_passthrough` relays a backend's own Responses stream unchanged. Both follow
``streaming.py``'s rules: ``b""`` first so the headers go out at once, every event written as soon
as it is complete, the upstream closed in ``finally`` (a client that leaves stops the backend), and
a backend failure after the first byte becomes the API's own error event, sent once, after which
nothing else is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Protocol

import requests

from .errors import BridgeError, UpstreamError, UpstreamProtocolError
from .ndjson import json_bytes
from .sse import DONE, SSEDecoder, event_objects
from .streaming import release_when_drained
from .upstream import UpstreamClient

__all__ = ["event_stream", "record_responses_usage", "responses_passthrough", "sse_frame"]

log = logging.getLogger(__name__)

Event = tuple[str, dict]


class _Observation(Protocol):
    outcome: str | None
    tokens_in: int | None
    tokens_out: int | None

    def first_token(self) -> None: ...


class _Translator(Protocol):
    finish_reason: str | None
    output_events: int

    @property
    def usage(self) -> tuple[int | None, int | None]: ...
    def start(self) -> list[Event]: ...
    def feed(self, event: dict) -> list[Event]: ...
    def finish(self) -> list[Event]: ...


def sse_frame(event: Event) -> bytes:
    """One named SSE event: ``event: <name>`` and one compact ``data:`` line."""
    name, data = event
    return b"event: " + name.encode() + b"\ndata: " + json_bytes(data) + b"\n\n"


def event_stream(upstream: UpstreamClient, resp: requests.Response, translator: _Translator, obs: _Observation,
                 on_error: Callable[[str, BridgeError], Event]) -> Iterator[bytes]:
    """Translate one chat-completions SSE stream; ends with the API's finish events or one error event."""
    decoder = SSEDecoder()
    done = False
    try:
        yield b""  # status line and headers now
        yield b"".join(sse_frame(e) for e in translator.start())
        for data in upstream.iter_raw(resp):
            out, done = _translate(decoder.feed(data), translator, obs)
            if out:
                yield out
            if done:
                break
        else:
            out, done = _translate(decoder.close(), translator, obs)
            if out:
                yield out
        if translator.finish_reason is None and not done:
            raise UpstreamProtocolError("backend closed the stream before it finished")
        final = b"".join(sse_frame(e) for e in translator.finish())
        _note_tokens(translator, obs)
        yield final
    except BridgeError as exc:
        obs.outcome = exc.outcome
        message = upstream.redact(exc.message)
        log.warning("stream failed mid-way", extra={"outcome": exc.outcome, "error": message})
        _note_tokens(translator, obs)
        yield sse_frame(on_error(message, exc))
    except Exception:  # noqa: BLE001 - a bug must still end the stream in the API's own way
        obs.outcome = "error"
        log.exception("stream failed inside the bridge")
        yield sse_frame(on_error("internal error in the bridge (see its log for the request id)",
                                 BridgeError("internal error")))
    finally:
        if done:
            release_when_drained(resp)
        else:
            resp.close()


def _translate(events, translator: _Translator, obs: _Observation) -> tuple[bytes, bool]:
    """The bytes for these SSE events, and whether ``[DONE]`` was among them."""
    frames: list[bytes] = []
    for obj in event_objects(events):
        if obj is DONE:
            return b"".join(frames), True
        before = translator.output_events
        frames.extend(sse_frame(e) for e in translator.feed(obj))
        if not before and translator.output_events:
            obs.first_token()
    return b"".join(frames), False


def _note_tokens(translator: _Translator, obs: _Observation) -> None:
    prompt, completion = translator.usage
    obs.tokens_in = prompt
    obs.tokens_out = completion if completion is not None else translator.output_events


# ---------------------------------------------------------------------------------------------
# Responses API pass-through

_TOKEN_EVENTS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta",
                           "response.reasoning_text.delta", "response.refusal.delta"})
# An "error" event also ends a stream: nothing is added after the backend's own error.
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})


def responses_passthrough(upstream: UpstreamClient, resp: requests.Response, obs: _Observation) -> Iterator[bytes]:
    """Relay a backend's Responses stream unchanged, measuring it; a failure becomes ``response.failed``.

    The last ``response`` snapshot and ``sequence_number`` seen are kept (one object, bounded by the
    stream itself) so that the failure event continues the backend's numbering.
    """
    decoder = SSEDecoder()
    state: dict = {"seq": -1, "response": None, "token": False, "final": False}
    try:
        yield b""
        for data in upstream.iter_raw(resp):
            for event in decoder.feed(data):
                _note_responses_event(event.data, state, obs)
            yield data
        for event in decoder.close():
            _note_responses_event(event.data, state, obs)
        if not state["final"]:
            raise UpstreamProtocolError("backend closed the stream before the response was complete")
    except UpstreamError as exc:
        obs.outcome = exc.outcome
        message = upstream.redact(exc.message)
        log.warning("stream failed mid-way", extra={"outcome": exc.outcome, "error": message})
        snapshot = dict(state["response"] or {"id": "resp_unknown", "object": "response", "output": []})
        snapshot.update(status="failed", error={"code": "server_error", "message": message})
        event = {"type": "response.failed", "sequence_number": state["seq"] + 1, "response": snapshot}
        yield b"\n\n" + sse_frame(("response.failed", event))  # ends a partial event the backend left open
    finally:
        resp.close()


def _note_responses_event(data: str, state: dict, obs: _Observation) -> None:
    try:
        obj = json.loads(data)
    except ValueError:
        return
    if not isinstance(obj, dict):
        return
    if isinstance(obj.get("sequence_number"), int):
        state["seq"] = obj["sequence_number"]
    kind = obj.get("type")
    if isinstance(obj.get("response"), dict):
        state["response"] = obj["response"]
    if not state["token"] and kind in _TOKEN_EVENTS:
        state["token"] = True
        obs.first_token()
    if kind in _FINAL_EVENTS:
        state["final"] = True
        record_responses_usage(obj.get("response"), obs)


def record_responses_usage(response: object, obs: _Observation) -> None:
    """Token counts from a ``response`` object's usage (input_tokens / output_tokens), when present."""
    usage = response.get("usage") if isinstance(response, dict) else None
    if isinstance(usage, dict):
        obs.tokens_in = usage.get("input_tokens", obs.tokens_in)
        obs.tokens_out = usage.get("output_tokens", obs.tokens_out)
