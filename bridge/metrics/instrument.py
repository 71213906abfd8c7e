"""Flask hooks and the stream wrapper: how a request becomes exactly one :class:`Record`.

* ``before_request``: request id (``g.request_id``), start clock, route template, in-progress +1.
* ``after_request``: ``X-Request-ID`` on every response; the status is noted.
* A non-streamed request is recorded in ``teardown_request``. A streamed one (its body passed
  through :meth:`Observation.stream_wrap`) is recorded when the WSGI server closes the body: after
  the last byte, or at the ``close()`` that follows a client disconnect.
* Monitoring routes (``excluded_prefixes``) get a request id but are never counted.

Per chunk the wrapper only updates a few local numbers; the metrics are touched once, at close.

``install`` should be called before the app registers its own ``before_request`` hooks (auth,
size limit), so that requests those hooks reject still get a request id and a start time.
"""

from __future__ import annotations

import logging
import re
import time
import os
import random
from collections.abc import Iterable, Iterator

from flask import Flask, Response, g, has_request_context, request

from ..errors import BridgeError
from ..logs import access
from . import Metrics
from .records import Record, outcome_for_status

__all__ = ["DEFAULT_EXCLUDED", "KNOWN_METHODS", "Observation", "install", "method_label", "observation",
           "sanitise_request_id"]

log = logging.getLogger(__name__)

DEFAULT_EXCLUDED = ("/metrics", "/v1/metrics", "/dashboard")
_G_OBS = "_bridge_observation"
_random = random.Random()  # seeded from os.urandom; re-seeded in a forked child so ids never repeat
os.register_at_fork(after_in_child=_random.seed)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# gunicorn accepts any 3-20 upper-case letters as a method: a label per made-up method would let
# any client grow every worker's series without bound. Everything else counts as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The ``method`` label: the method itself when standard, else ``other`` (a closed set)."""
    return method if method in KNOWN_METHODS else "other"


def sanitise_request_id(value: str | None) -> str:
    """The inbound ``X-Request-ID`` if it is sane (<=128 of ``[A-Za-z0-9._:-]``), else a new id."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    # Not a secret, just unique: 128 random bits without uuid4's os.urandom system call.
    return f"{_random.getrandbits(128):032x}"


class Observation:
    """The current request's record under construction. Plain attributes, no locks.

    Routes set ``model`` (the bounded label), ``outcome`` (when they know better than the status,
    e.g. an error reported inside a 200 stream), ``tokens_in`` / ``tokens_out`` and ``bytes_in``;
    ``backend`` (the name of the backend that answered, ``routes/common.call_backend``) and ``key``
    (the usage name of the inbound key, ``app._guard``), both from closed configured sets.
    """

    __slots__ = (
        "model", "outcome", "tokens_in", "tokens_out", "bytes_in", "backend", "key",
        "route", "method", "request_id", "status", "bytes_out", "queue_s",
        "ttft_s", "_metrics", "_t0", "_body", "_deferred", "_done",
    )

    def __init__(
        self,
        metrics: Metrics | None,
        *,
        route: str = "unmatched",
        method: str = "GET",
        request_id: str = "",
        bytes_in: int = 0,
        queue_s: float | None = None,
        t0: float | None = None,
    ) -> None:
        self.model: str | None = None
        self.backend: str | None = None
        self.key: str | None = None
        self.outcome: str | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.bytes_in = bytes_in
        self.route = route
        self.method = method
        self.request_id = request_id
        self.status: int | None = None
        self.bytes_out = 0
        self.queue_s = queue_s
        self.ttft_s: float | None = None
        self._metrics = metrics
        self._t0 = time.perf_counter() if t0 is None else t0
        self._body: _MeasuredBody | None = None
        self._deferred = False
        self._done = metrics is None  # a detached observation never records

    # -- the narrow API routes, guards and streams write through ----------------------------

    def note_model(self, requested: str | None) -> None:
        """The requested model (stored as its bounded label when recorded)."""
        self.model = requested

    def note_backend(self, name: str | None) -> None:
        """The backend that answered (a name from the closed configured set)."""
        self.backend = name

    def note_key(self, name: str | None) -> None:
        """The usage name of the inbound key (never the key itself)."""
        self.key = name

    def note_outcome(self, outcome: str) -> None:
        """An outcome known better than the status says (an error inside a 200 stream)."""
        self.outcome = outcome

    def note_tokens(self, tokens_in: int | None, tokens_out: int | None) -> None:
        """Token counts as the backend reported them (None: not reported)."""
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out

    def first_token(self) -> None:
        """Mark the first content line (time to first token, from request start). Idempotent."""
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self._t0

    def stream_wrap(self, body: Iterable[bytes]) -> Iterator[bytes]:
        """Wrap a streamed body so it is measured and recorded once, when it closes.

        Pass the result straight to ``Response`` (wrap *outside* ``stream_with_context``).
        """
        if self._done and self._metrics is None:
            return iter(body)
        wrapped = _MeasuredBody(self, body)
        self._body = wrapped
        return wrapped

    # -- recording -------------------------------------------------------------------------

    def _finish(self, *, stream: _MeasuredBody | None = None, exc: BaseException | None = None) -> None:
        """Build the record and hand it to the metrics. Runs at most once per observation."""
        if self._done:
            return
        self._done = True
        metrics = self._metrics
        assert metrics is not None
        duration = time.perf_counter() - self._t0
        status = self.status if self.status is not None else (500 if exc is not None else 200)
        outcome = self.outcome
        ttfb = tpot = max_gap = None
        chunks = 0
        bytes_out = self.bytes_out
        if stream is not None:
            if outcome is None:
                if stream.completed:
                    outcome = outcome_for_status(status)
                elif isinstance(exc, GeneratorExit):
                    outcome = "client_disconnect"
                elif isinstance(exc, BridgeError):
                    outcome = exc.outcome
                else:
                    outcome = "error"
            ttfb = stream.ttfb_s
            max_gap = stream.max_gap_s
            chunks = stream.chunks
            bytes_out = stream.bytes_out
            if (self.ttft_s is not None and self.tokens_out is not None and self.tokens_out > 1
                    and duration > self.ttft_s):
                tpot = (duration - self.ttft_s) / (self.tokens_out - 1)
        elif outcome is None:
            if isinstance(exc, BridgeError):
                outcome = exc.outcome
            elif exc is not None:
                outcome = "error"
            else:
                outcome = outcome_for_status(status)
        rec = Record(
            ts_s=metrics.clock(),
            route=self.route,
            method=self.method,
            status=status,
            duration_s=duration,
            outcome=outcome,
            model=self.model,
            stream=stream is not None,
            ttfb_s=ttfb,
            ttft_s=self.ttft_s if stream is not None else None,
            tpot_s=tpot,
            max_gap_s=max_gap,
            chunks=chunks,
            bytes_out=bytes_out,
            bytes_in=self.bytes_in,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            queue_s=self.queue_s,
        )
        try:
            metrics.prom.request_finished(self.route)
            if stream is not None and stream.started:
                metrics.prom.stream_finished()
        except Exception:  # pragma: no cover - defensive
            log.exception("metrics: gauge update failed")
        metrics.observe(rec, backend=self.backend, key=self.key)
        access({
            "request_id": self.request_id,
            "route": self.route,
            "method": self.method,
            "status": status,
            "duration_ms": round(duration * 1000.0, 3),
            "model": self.model,
            "outcome": outcome,
            "stream": stream is not None,
            "ttft_ms": None if rec.ttft_s is None else round(rec.ttft_s * 1000.0, 3),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            **({"backend": self.backend} if self.backend is not None else {}),
            **({"key": self.key} if self.key is not None else {}),  # the key's name, never the key
        })


class _MeasuredBody:
    """Iterator over a streamed body that measures it and records once when it ends or closes.

    A class rather than a generator so that ``close()`` records even when iteration never
    started (HEAD requests, a client gone before the first write).
    """

    __slots__ = ("_obs", "_body", "_it", "_last", "ended", "started", "completed",
                 "ttfb_s", "max_gap_s", "chunks", "bytes_out")

    def __init__(self, obs: Observation, body: Iterable[bytes]) -> None:
        self._obs = obs
        self._body = body
        self._it: Iterator[bytes] | None = None
        self._last = 0.0
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
                    metrics.prom.stream_started()
                self._it = iter(self._body)
            chunk = next(self._it)
        except StopIteration:
            now = time.perf_counter()
            if self.chunks and now - self._last > (self.max_gap_s or 0.0):
                self.max_gap_s = now - self._last
            self.completed = True
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        if chunk:
            now = time.perf_counter()
            if self.chunks == 0:
                self.ttfb_s = now - self._obs._t0
            else:
                gap = now - self._last
                if self.max_gap_s is None or gap > self.max_gap_s:
                    self.max_gap_s = gap
            self._last = now
            self.chunks += 1
            self.bytes_out += len(chunk) if isinstance(chunk, bytes | bytearray) else len(str(chunk).encode())
        return chunk

    def close(self) -> None:
        """Called by the WSGI server when it is done with the body (normally or not)."""
        if self.ended:
            return
        self._end(GeneratorExit())

    def _end(self, exc: BaseException | None) -> None:
        self.ended = True
        try:
            closers = [getattr(self._body, "close", None)]
            if self._it is not None and self._it is not self._body:
                closers.insert(0, getattr(self._it, "close", None))
            for close in closers:
                if close is not None:
                    close()  # always release the wrapped body (and its upstream connection)
        except Exception:
            log.exception("metrics: closing the wrapped stream body failed")
        finally:
            self._obs._finish(stream=self, exc=exc)


# -- Flask wiring --------------------------------------------------------------------------------


def observation() -> Observation:
    """The current request's observation; a detached one (records nothing) outside a counted request."""
    obs = g.get(_G_OBS) if has_request_context() else None
    if obs is None:
        return Observation(None)
    return obs


def install(app: Flask, metrics: Metrics, *, excluded_prefixes: Iterable[str] = DEFAULT_EXCLUDED) -> None:
    """Register the request hooks that turn every counted request into one record."""
    prefixes = tuple(p.rstrip("/") for p in excluded_prefixes)
    app.extensions["bridge.metrics"] = metrics

    def excluded(path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in prefixes)

    def start() -> None:
        if "request_id" not in g:
            g.request_id = sanitise_request_id(request.headers.get("X-Request-ID"))
        if _G_OBS in g or excluded(request.path):
            g.setdefault(_G_OBS, None)
            return
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        obs = Observation(
            metrics,
            route=route,
            method=method_label(request.method),
            request_id=g.request_id,
            bytes_in=request.content_length or 0,
            queue_s=_queue_seconds(request.headers.get("X-Request-Start"), metrics.clock()),
        )
        metrics.prom.request_started(route)
        setattr(g, _G_OBS, obs)

    def after(response: Response) -> Response:
        start()  # no-op normally; covers requests an earlier before_request hook answered
        response.headers["X-Request-ID"] = g.request_id
        obs: Observation | None = g.get(_G_OBS)
        if obs is not None:
            obs.status = response.status_code
            if obs._body is not None and response.is_streamed:
                obs._deferred = True
            elif not response.is_streamed:
                obs.bytes_out = response.content_length or 0
        return response

    def teardown(exc: BaseException | None) -> None:
        obs: Observation | None = g.pop(_G_OBS, None)
        if obs is None or obs._deferred:
            return
        obs._finish(exc=exc)

    app.before_request(start)
    app.after_request(after)
    app.teardown_request(teardown)


def _queue_seconds(header: str | None, now: float) -> float | None:
    """Router wait from ``X-Request-Start`` (Heroku: ms epoch; nginx: ``t=<s.ms>``), clamped."""
    if not header:
        return None
    raw = header.strip()
    if raw.startswith("t="):
        raw = raw[2:]
    try:
        value = float(raw)
    except ValueError:
        return None
    if value > 1e14:  # microseconds
        value /= 1e6
    elif value > 1e11:  # milliseconds
        value /= 1e3
    wait = now - value
    if wait < 0:
        return 0.0  # clock skew
    return wait if wait < 3600 else None
