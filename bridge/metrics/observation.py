"""One request's observation: what routes, guards and streams note about it, and the one
:class:`Record` it becomes when the request is really over.

Writers use the narrow ``note_*`` API and :meth:`Observation.first_token`; the request hooks
(``instrument.py``) set the status and finish it. A non-streamed request is finished at teardown;
a streamed one (its body passed through :meth:`Observation.stream_wrap`) when the server closes
the body: after the last byte, or at the ``close()`` that follows a client disconnect. Per chunk
the wrapper only updates a few local numbers; the metrics are touched once, at the end. Every
duration comes from the request's one :class:`~bridge.clock.RequestClock`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..clock import RequestClock
from ..errors import BridgeError
from ..logs import access
from .records import Record, outcome_for_status

if TYPE_CHECKING:
    from . import Metrics

__all__ = ["Observation"]

log = logging.getLogger(__name__)


class Observation:
    """The current request's record under construction. Plain attributes, no locks (one greenlet)."""

    __slots__ = ("clock", "route", "method", "request_id", "queue_s", "_metrics", "_model", "_backend", "_key",
                 "_outcome", "_tokens_in", "_tokens_out", "_bytes_in", "_status", "_bytes_out", "_body",
                 "_deferred", "_done")

    def __init__(self, metrics: Metrics | None, *, route: str = "unmatched", method: str = "GET",
                 request_id: str = "", bytes_in: int = 0, queue_s: float | None = None,
                 clock: RequestClock | None = None) -> None:
        self.clock = clock or RequestClock()
        self.route = route
        self.method = method
        self.request_id = request_id
        self.queue_s = queue_s
        self._metrics = metrics
        self._model: str | None = None
        self._backend: str | None = None
        self._key: str | None = None
        self._outcome: str | None = None
        self._tokens_in: int | None = None
        self._tokens_out: int | None = None
        self._bytes_in = bytes_in
        self._status: int | None = None
        self._bytes_out = 0
        self._body: _MeasuredBody | None = None
        self._deferred = False
        self._done = metrics is None  # a detached observation never records

    # -- the narrow API routes, guards and streams write through ----------------------------

    def note_model(self, requested: str | None) -> None:
        """The requested model (stored as its bounded label when recorded)."""
        self._model = requested

    def note_backend(self, name: str | None) -> None:
        """The backend that answered (a name from the closed configured set)."""
        self._backend = name

    def note_key(self, name: str | None) -> None:
        """The usage name of the inbound key (never the key itself)."""
        self._key = name

    def note_outcome(self, outcome: str) -> None:
        """An outcome known better than the status says (an error inside a 200 stream)."""
        self._outcome = outcome

    def note_tokens(self, tokens_in: int | None, tokens_out: int | None) -> None:
        """Token counts as the backend reported them (None: not reported)."""
        self._tokens_in = tokens_in
        self._tokens_out = tokens_out

    def first_token(self) -> None:
        """Mark the first output token (time to first token, from request start). Idempotent."""
        self.clock.mark_first_token()

    def stream_wrap(self, body: Iterable[bytes]) -> Iterator[bytes]:
        """Wrap a streamed body so it is measured and recorded once, when it closes.

        Pass the result straight to ``Response`` (wrap *outside* ``stream_with_context``).
        """
        if self._done and self._metrics is None:
            return iter(body)
        wrapped = _MeasuredBody(self, body)
        self._body = wrapped
        return wrapped

    # -- the request hooks (instrument.py) ----------------------------------------------------

    def responded(self, status: int, *, streamed: bool, content_length: int | None) -> None:
        """The response is built: a streamed body defers the record to its close."""
        self._status = status
        if self._body is not None and streamed:
            self._deferred = True
        elif not streamed:
            self._bytes_out = content_length or 0

    def torn_down(self, exc: BaseException | None) -> None:
        """The request context ends: record now, unless a streamed body will."""
        if not self._deferred:
            self._finish(exc=exc)

    def _finish(self, *, stream: _MeasuredBody | None = None, exc: BaseException | None = None) -> None:
        """Build the record and hand it to the metrics. Runs at most once per observation."""
        if self._done:
            return
        self._done = True
        metrics = self._metrics
        assert metrics is not None
        end_ns = time.monotonic_ns()
        duration = self.clock.elapsed_s(end_ns)
        status = self._status if self._status is not None else (500 if exc is not None else 200)
        outcome = self._outcome or _outcome(status, exc, stream)
        ttft = self.clock.ttft_s if stream is not None else None
        tpot = None
        if ttft is not None and self._tokens_out is not None and self._tokens_out > 1 and duration > ttft:
            tpot = (duration - ttft) / (self._tokens_out - 1)
        rec = Record(
            ts_s=metrics.clock(), route=self.route, method=self.method, status=status, duration_s=duration,
            outcome=outcome, model=self._model, stream=stream is not None,
            ttfb_s=stream.ttfb_s if stream is not None else None, ttft_s=ttft, tpot_s=tpot,
            max_gap_s=stream.max_gap_s if stream is not None else None,
            chunks=stream.chunks if stream is not None else 0,
            bytes_out=stream.bytes_out if stream is not None else self._bytes_out, bytes_in=self._bytes_in,
            tokens_in=self._tokens_in, tokens_out=self._tokens_out, queue_s=self.queue_s,
        )
        metrics.finished(rec, backend=self._backend, key=self._key,
                         stream_started=stream is not None and stream.started)
        access({
            "request_id": self.request_id, "route": self.route, "method": self.method, "status": status,
            "duration_ms": round(duration * 1000.0, 3), "model": self._model, "outcome": outcome,
            "stream": stream is not None, "ttft_ms": None if ttft is None else round(ttft * 1000.0, 3),
            "tokens_in": self._tokens_in, "tokens_out": self._tokens_out,
            **({"backend": self._backend} if self._backend is not None else {}),
            **({"key": self._key} if self._key is not None else {}),  # the key's name, never the key
        })


def _outcome(status: int, exc: BaseException | None, stream: _MeasuredBody | None) -> str:
    """The outcome nobody noted: a completed stream or a plain answer by its status, else by the
    way it ended."""
    if stream is not None and stream.completed:
        return outcome_for_status(status)
    if isinstance(exc, BridgeError):
        return exc.outcome
    if stream is not None and isinstance(exc, GeneratorExit):
        return "client_disconnect"
    if exc is not None or stream is not None:
        return "error"
    return outcome_for_status(status)


class _MeasuredBody:
    """Iterator over a streamed body that measures it and records once when it ends or closes.

    A class rather than a generator so that ``close()`` records even when iteration never
    started (HEAD requests, a client gone before the first write).
    """

    __slots__ = ("_obs", "_body", "_it", "_last_ns", "ended", "started", "completed",
                 "ttfb_s", "max_gap_s", "chunks", "bytes_out")

    def __init__(self, obs: Observation, body: Iterable[bytes]) -> None:
        self._obs = obs
        self._body = body
        self._it: Iterator[bytes] | None = None
        self._last_ns = 0
        self.ended = False
        self.started = False
        self.completed = False
        self.ttfb_s: float | None = None
        self.max_gap_s: float | None = None
        self.chunks = 0
        self.bytes_out = 0

    def __iter__(self) -> _MeasuredBody:
        return self

    def __next__(self) -> bytes:
        if self.ended:
            raise StopIteration
        try:
            if self._it is None:
                self.started = True
                metrics = self._obs._metrics
                if metrics is not None:
                    metrics.stream_started()
                self._it = iter(self._body)
            chunk = next(self._it)
        except StopIteration:
            if self.chunks:
                self._gap(time.monotonic_ns())
            self.completed = True
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        if chunk:
            now_ns = time.monotonic_ns()
            if self.chunks == 0:
                self.ttfb_s = (now_ns - self._obs.clock.started_ns) / 1e9
            else:
                self._gap(now_ns)
            self._last_ns = now_ns
            self.chunks += 1
            self.bytes_out += len(chunk) if isinstance(chunk, (bytes, bytearray)) else len(str(chunk).encode())
        return chunk

    def _gap(self, now_ns: int) -> None:
        gap_s = (now_ns - self._last_ns) / 1e9
        if self.max_gap_s is None or gap_s > self.max_gap_s:
            self.max_gap_s = gap_s

    def close(self) -> None:
        """Called by the WSGI server when it is done with the body (normally or not)."""
        if not self.ended:
            self._end(GeneratorExit())

    def _end(self, exc: BaseException | None) -> None:
        self.ended = True
        try:
            closers = [getattr(self._body, "close", None)]
            if self._it is not None and self._it is not self._body:
                closers.insert(0, getattr(self._it, "close", None))
            for close in closers:
                if close is not None:
                    close()  # always release the wrapped body (and its backend connection)
        except Exception:
            log.exception("metrics: closing the wrapped stream body failed")
        finally:
            self._obs._finish(stream=self, exc=exc)
