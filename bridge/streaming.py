"""Streaming glue: upstream SSE bytes -> SSE events -> Ollama chunks -> NDJSON lines.

The generator returned here is the Flask response body. It yields ``b""`` first so gunicorn puts the
status line and headers on the wire as soon as the backend has accepted the request (Heroku's router
wants a first byte within 30 s; a long prefill must not trip it). Each translated chunk is yielded the
moment its SSE event is complete. Whatever happens, the upstream response is closed in ``finally``:
on a client disconnect gunicorn closes this generator (``GeneratorExit`` at the ``yield``), and
closing the upstream connection makes the backend stop generating.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import requests
from flask import Response
from gevent import Timeout, spawn

from .errors import BridgeError, UpstreamError, UpstreamProtocolError
from .ndjson import json_bytes, loads, ndjson_line
from .sse import DONE, SSEDecoder, event_objects
from .translate.responses import Timings
from .translate.stream import StreamTranslator
from .upstream import UpstreamClient

__all__ = ["ndjson_stream", "patient_json", "record_usage", "release_when_drained", "sse_passthrough", "StreamClock"]

log = logging.getLogger(__name__)


class _Observation(Protocol):
    outcome: str | None
    tokens_in: int | None
    tokens_out: int | None

    def first_token(self) -> None: ...


class StreamClock:
    """Monotonic nanosecond marks of one streamed call, for Ollama's duration fields."""

    def __init__(self, started_ns: int, sent_ns: int, headers_ns: int) -> None:
        self.started_ns = started_ns
        self.sent_ns = sent_ns
        self.headers_ns = headers_ns
        self.first_token_ns = 0
        self.last_token_ns = 0

    def token(self) -> bool:
        """Mark an output token; True for the first one."""
        now = time.monotonic_ns()
        first = not self.first_token_ns
        if first:
            self.first_token_ns = now
        self.last_token_ns = now
        return first

    def timings(self) -> Timings:
        """The bridge's measurement (docs/ollama-fields.md): load = request received -> sent to the
        backend, prompt eval = sent -> first token, eval = first token -> end of the backend's
        stream; each at least 1 ns (the backend's own ``timings`` win over these in the translator)."""
        end = time.monotonic_ns()
        return Timings.measured(started_ns=self.started_ns, sent_ns=self.sent_ns,
                                first_ns=self.first_token_ns or end, end_ns=end)


def ndjson_stream(upstream: UpstreamClient, resp: requests.Response, translator: StreamTranslator,
                  obs: _Observation, clock: StreamClock) -> Iterator[bytes]:
    """Translate one upstream SSE stream into Ollama NDJSON; ends with exactly one done or error line.

    Every line that one backend read completes goes to the client in one write, at once: the
    bridge never waits for more data, and a burst of events (a busy backend, a slow reader) costs
    one client write instead of one per token. When the read that carries ``[DONE]`` also carries
    the last tokens, the done line rides in the same write.
    """
    decoder = SSEDecoder()
    token_chunks = 0
    finished = False
    pending: list[bytes] = []  # the lines of the current read, written together
    try:
        yield b""  # flush status line and headers now (gunicorn writes headers on the first item)
        for data in _coalesced(upstream.iter_raw(resp), resp):
            translator.begin_read()  # one created_at for every chunk of this read
            for chunk in _translate_events(decoder.feed(data), translator):
                if chunk is None:
                    finished = True
                    break
                token_chunks += 1
                if clock.token():
                    obs.first_token()
                pending.append(ndjson_line(chunk))
            if finished:
                break
            if pending:
                batch, pending = pending, []
                yield batch[0] if len(batch) == 1 else b"".join(batch)
        else:
            translator.begin_read()
            for chunk in _translate_events(decoder.close(), translator):
                if chunk is not None:
                    token_chunks += 1
                    clock.token()
                    pending.append(ndjson_line(chunk))
        if translator.finish_reason is None and not finished:
            raise UpstreamProtocolError("backend closed the stream before it finished")
        final = translator.finish(clock.timings())  # counts always set: usage, timings, else estimated
        obs.tokens_in = translator.usage[0]  # metrics count what the backend reported, not the estimate
        obs.tokens_out = final.get("eval_count")  # (output: the chunks forwarded when it reported none)
        pending.append(ndjson_line(final))
        batch, pending = pending, []
        yield b"".join(batch)
    except BridgeError as exc:
        obs.outcome = exc.outcome
        message = upstream.redact(exc.message)
        log.warning("stream failed mid-way", extra={"outcome": exc.outcome, "error": message})
        prompt_tokens, completion_tokens = translator.usage
        obs.tokens_in = prompt_tokens
        obs.tokens_out = completion_tokens if completion_tokens is not None else token_chunks
        pending.append(ndjson_line({"error": message}))  # after the tokens this read still carried
        batch, pending = pending, []
        yield b"".join(batch)
    finally:
        if finished:
            release_when_drained(resp)
        else:
            resp.close()


def release_when_drained(resp: requests.Response) -> None:
    """Give the backend connection back to the pool once its body has ended, off the hot path.

    After ``[DONE]`` only the chunked terminator is left. ``requests`` closes (rather than pools) a
    connection whose body was not read to the end, so without this every stream paid a new TCP
    connect (about a quarter of a worker's CPU on short streams, perf/RESULTS.md). Reading that
    tail inline made the client wait for it; a short-lived greenlet does not. When the tail is
    already here (the usual case: it follows ``[DONE]`` at once), it is read inline, which cannot
    wait, and no greenlet is needed.
    """
    peek = _peeker(resp)
    if peek is not None:
        try:
            if resp.raw._fp.chunk_left == 0 and peek().startswith(_CHUNKED_END):
                while resp.raw.read1(_COALESCE_READ):  # everything it needs is buffered: no wait
                    pass
                resp.close()  # the body ended: urllib3 has put the connection back in the pool
                return
        except Exception:  # noqa: BLE001 - fall back to the greenlet, which drops it if it must
            pass

    def drain() -> None:
        try:
            with Timeout(_DRAIN_S, False):
                while resp.raw.read1(64 * 1024):
                    pass
        except Exception:  # noqa: BLE001 - the answer is complete; a broken tail only loses the reuse
            pass
        finally:
            resp.close()

    spawn(drain)


#: Longest wait for the end of a backend body after ``[DONE]`` before the connection is dropped.
_DRAIN_S = 2.0
#: The end of the previous chunk and the last (empty) chunk of a chunked body without trailers.
_CHUNKED_END = b"\r\n0\r\n\r\n"


def _coalesced(reads: Iterator[bytes], resp: requests.Response) -> Iterator[bytes]:
    """``reads`` (the backend body as it arrives), each read extended by every further whole HTTP
    chunk that is already here, so that one client write carries all of them.

    ``http.client`` hands out at most one chunk of a chunked body per read, and SSE servers send
    one event per chunk: without this, a burst of N events costs N reads and N client writes even
    when all N arrived together. Only bytes that are already buffered or in the socket (a
    non-blocking peek) are taken, and only whole chunks: this never waits for more data. Falls
    back to plain reads for bodies it cannot peek at (TLS, adapters without a socket, not chunked).
    """
    peek = _peeker(resp)
    for data in reads:
        if peek is not None and data:
            parts = None
            size = len(data)
            try:
                while size < _COALESCE_MAX and _whole_chunk_ready(resp.raw._fp, peek()):
                    more = resp.raw.read1(_COALESCE_READ)
                    if not more:
                        break
                    if parts is None:
                        parts = [data]
                    parts.append(more)
                    size += len(more)
            except Exception:  # noqa: BLE001 - the next plain read reports any real failure
                peek = None
            if parts is not None:
                data = b"".join(parts)
        yield data


_COALESCE_READ = 64 * 1024
#: At most this much is gathered for one write: a backend far ahead of the bridge (a long answer
#: already buffered) still gets its first tokens written after a bounded amount of translation.
_COALESCE_MAX = 16 * 1024


def _peeker(resp: requests.Response) -> Callable[[], bytes] | None:
    """A function returning the body bytes already received (buffered, or waiting in the socket)
    without blocking, or None when this response cannot be peeked at safely."""
    try:
        fp = resp.raw._fp  # http.client.HTTPResponse
        buffered = fp.fp  # its BufferedReader over the socket
        sock = buffered.raw._sock
    except AttributeError:
        return None
    if not getattr(fp, "chunked", False) or _is_tls(sock) or not hasattr(sock, "settimeout"):
        return None

    def peek() -> bytes:
        timeout = sock.gettimeout()
        sock.settimeout(0.0)  # a gevent socket: reads never block the hub, this one never waits
        try:
            return buffered.peek(1) or b""
        except (BlockingIOError, InterruptedError):
            return b""
        finally:
            sock.settimeout(timeout)

    return peek


def _is_tls(sock: object) -> bool:
    return isinstance(sock, ssl.SSLSocket) or hasattr(sock, "do_handshake") or hasattr(sock, "getpeercert")


def _whole_chunk_ready(fp, ahead: bytes) -> bool:
    """True when ``ahead`` (the buffered bytes) lets ``fp.read1()`` return data without waiting:
    the rest of the current chunk, or a whole next chunk-size line followed by data."""
    left = fp.chunk_left
    if left is None:
        return False  # the body ended (or never started chunking)
    if left > 0:
        return bool(ahead)
    # The previous chunk was read to its end: "\r\n" + "<hex size>[;ext]\r\n" + data must be here.
    if not ahead.startswith(b"\r\n"):
        return False
    eol = ahead.find(b"\r\n", 2)
    if eol < 0:
        return False
    try:
        size = int(ahead[2:eol].split(b";", 1)[0], 16)
    except ValueError:
        return False
    return size > 0 and len(ahead) > eol + 2  # a zero-size chunk ends the body: read it the plain way


def _translate_events(events, translator: StreamTranslator) -> Iterator[dict | None]:
    """Ollama chunks for these SSE events; ``None`` marks ``[DONE]``."""
    for obj in event_objects(events):
        if obj is DONE:
            yield None
            return
        yield from translator.feed(obj)


def sse_passthrough(upstream: UpstreamClient, resp: requests.Response, obs: _Observation) -> Iterator[bytes]:
    """Relay an OpenAI SSE stream unchanged, chunk by chunk, reading usage on the way for metrics."""
    decoder = SSEDecoder()
    seen_token = False
    try:
        yield b""
        for data in _coalesced(upstream.iter_raw(resp), resp):
            for event in decoder.feed(data):
                seen_token = _note_usage(event.data, obs, seen_token)
            yield data
    except UpstreamError as exc:
        obs.outcome = exc.outcome
        body = json.dumps({"error": {"message": upstream.redact(exc.message), "type": "api_error", "param": None,
                                     "code": None}})
        yield f"data: {body}\n\n".encode()
    finally:
        resp.close()


def _note_usage(data: str, obs: _Observation, seen_token: bool) -> bool:
    """Record first-token time and usage from one relayed SSE event; True once a token was seen."""
    if data.startswith("[DONE]"):
        return seen_token
    try:
        obj = loads(data)
    except ValueError:
        return seen_token
    if not isinstance(obj, dict):
        return seen_token
    if not seen_token:
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {} if isinstance(choice, dict) else {}
            if (isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls"))) or (
                    isinstance(choice, dict) and choice.get("text")):
                obs.first_token()
                seen_token = True
                break
    record_usage(obj, obs)
    return seen_token


def record_usage(obj: object, obs: _Observation) -> None:
    """Token counts from an OpenAI body's ``usage`` (a response or a stream event), when present."""
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if isinstance(usage, dict):
        obs.tokens_in = usage.get("prompt_tokens", obs.tokens_in)
        obs.tokens_out = usage.get("completion_tokens", obs.tokens_out)


def patient_json(answer: Callable[[], bytes], *, first_byte_s: float, obs: _Observation) -> Response:
    """A non-streamed JSON answer that survives a router's first-byte deadline.

    ``answer`` makes the backend call and returns the JSON body. With ``first_byte_s`` 0 it simply
    runs. Otherwise it runs in a greenlet: an answer (or error) within ``first_byte_s`` is sent as
    usual, with its real status. A slower one commits to 200 and sends a space at once and every
    ``first_byte_s`` after until the JSON is ready (JSON allows leading whitespace; the official
    clients parse it), so Heroku's router (H12 after 30 s without a byte, H15 after 55 s idle)
    keeps the request, and a client that left is noticed at the next space. An error after that
    point can only be the body ``{"error": "..."}``.
    """
    if first_byte_s <= 0:
        return Response(answer(), mimetype="application/json")
    job = spawn(_outcome_of, answer)
    job.join(first_byte_s)
    if job.ready():
        return Response(_result(job.get()), mimetype="application/json")  # errors keep their status

    def body() -> Iterator[bytes]:
        try:
            yield b" "  # status line, headers and a first byte, now
            while not job.ready():
                job.join(first_byte_s)
                if not job.ready():
                    yield b" "
            try:
                yield _result(job.get())
            except BridgeError as exc:
                obs.outcome = exc.outcome
                yield json_bytes({"error": exc.message})
        finally:
            if not job.ready():  # the client left: stop the backend call too
                job.kill(block=False)

    return Response(obs.stream_wrap(body()), mimetype="application/json", headers={"X-Accel-Buffering": "no"})


def _outcome_of(answer: Callable[[], bytes]) -> tuple[bytes | None, Exception | None]:
    # Returned, not raised: gevent prints a traceback for every exception a greenlet raises.
    try:
        return answer(), None
    except Exception as exc:  # noqa: BLE001 - handed back to the request's greenlet as is
        return None, exc


def _result(outcome: tuple[bytes | None, Exception | None]) -> bytes:
    value, error = outcome
    if error is not None:
        raise error
    return value
