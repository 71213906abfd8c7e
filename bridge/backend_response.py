"""One backend answer, owned by the bridge: its body as bytes or JSON, and its connection.

Routes and stream pumps only see :class:`BackendResponse`; nothing outside this module and
``transport.py`` touches ``requests`` or ``urllib3``. The object decides what happens to the pooled
connection: :meth:`release` (the answer is complete) gives it back to the pool once the body has
ended, :meth:`close` (abandoned: a client gone, a broken stream) drops it so the backend stops
generating. Either runs the ``when_done`` callbacks exactly once (the pool's in-flight count).

:meth:`iter_bytes` yields body bytes as they arrive and never waits to fill a block; each read is
extended by every further whole HTTP chunk already received, so a burst of SSE events (one per
chunk) becomes one read and one client write.
"""

from __future__ import annotations

import json
import ssl
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import requests
from gevent import Timeout, spawn
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from .errors import UpstreamProtocolError, UpstreamTimeout

__all__ = ["BackendResponse", "caused_by_timeout"]

_READ_SIZE = 64 * 1024
#: At most this much is gathered for one read: a backend far ahead of the bridge still gets its
#: first tokens written after a bounded amount of translation.
_COALESCE_MAX = 16 * 1024
#: Longest wait for the end of a body after the answer is complete before the connection is dropped.
_DRAIN_S = 2.0
#: The end of the previous chunk and the last (empty) chunk of a chunked body without trailers.
_CHUNKED_END = b"\r\n0\r\n\r\n"


class BackendResponse:
    """A backend's answer. ``status`` is its HTTP status, ``backend`` the name of the backend that
    sent it, ``headers_received_ns`` when its status line and headers arrived (monotonic ns)."""

    __slots__ = ("status", "content_type", "backend", "headers_received_ns", "_resp", "_idle_timeout_s",
                 "_redact", "_streamed", "_ended", "_done", "_callbacks", "__weakref__")

    def __init__(self, resp: requests.Response, *, streamed: bool, headers_received_ns: int,
                 idle_timeout_s: float, redact: Callable[[str], str] = lambda text: text,
                 backend: str = "") -> None:
        self.status: int = resp.status_code
        self.content_type: str = resp.headers.get("Content-Type", "application/json")
        self.backend = backend
        self.headers_received_ns = headers_received_ns
        self._resp = resp
        self._idle_timeout_s = idle_timeout_s
        self._redact = redact
        self._streamed = streamed  # False: the whole body was read when it arrived
        self._ended = False  # iter_bytes read the body to its end
        self._done = False
        self._callbacks: list[Callable[[], None]] = []

    def from_backend(self, name: str, redact: Callable[[str], str]) -> BackendResponse:
        """Name the backend that answered and how its keys are kept out of messages."""
        self.backend = name
        self._redact = redact
        return self

    # -- the body --------------------------------------------------------------------------------
    @property
    def content(self) -> bytes:
        """The whole body of a non-streamed answer (read when it arrived)."""
        return self._resp.content

    def json(self) -> dict[str, Any]:
        """The parsed JSON object of a non-streamed answer, or :class:`UpstreamProtocolError`."""
        try:
            data = json.loads(self._resp.content)
        except (ValueError, UnicodeDecodeError):
            raise UpstreamProtocolError("backend returned a body that is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamProtocolError("backend returned JSON that is not an object")
        return data

    def error_body(self, limit: int) -> bytes:
        """At most ``limit`` bytes of an error answer's body; the connection is dropped after."""
        try:
            if not self._streamed:
                return self._resp.content[:limit]
            return self._resp.raw.read(limit) or b""
        except Exception:  # noqa: BLE001 - a broken error body still yields an error with the status
            return b""
        finally:
            self.close()

    def header(self, name: str) -> str | None:
        value = self._resp.headers.get(name)
        return value if isinstance(value, str) else None

    def iter_bytes(self) -> Iterator[bytes]:
        """Body bytes as they arrive; a stall or a broken connection raises the bridge's errors."""
        raw = self._resp.raw
        peek = _peeker(self._resp)
        try:
            while True:
                data = raw.read1(_READ_SIZE)
                if not data:
                    self._ended = True
                    return
                if peek is not None:
                    data, peek = _with_ready_chunks(data, raw, peek)
                yield data
        except (ReadTimeoutError, TimeoutError):
            raise UpstreamTimeout(f"backend sent nothing for {self._idle_timeout_s:g} s mid-stream") from None
        except (ProtocolError, OSError, requests.exceptions.RequestException) as exc:
            if caused_by_timeout(exc):
                raise UpstreamTimeout("backend stalled mid-stream") from None
            raise UpstreamProtocolError("backend connection broke mid-stream") from None

    def redact(self, text: str) -> str:
        """``text`` without any backend key (some backends echo it in their error messages)."""
        return self._redact(text)

    # -- the connection --------------------------------------------------------------------------
    def when_done(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once when this answer is released or closed (or collected unclosed)."""
        self._callbacks.append(callback)
        if len(self._callbacks) == 1:
            weakref.finalize(self, _run_all, self._callbacks)

    def close(self) -> None:
        """Drop the answer: the connection is closed (a streaming backend stops generating)."""
        try:
            self._resp.close()
        finally:
            self._finish()

    def release(self) -> None:
        """The answer is complete: give the connection back to the pool once its body has ended.

        After the last event only the chunked terminator is left. ``requests`` closes (rather than
        pools) a connection whose body was not read to the end, so without this every stream paid
        a new TCP connect. When the tail is already here (the usual case) it is read inline, which
        cannot wait; otherwise a short-lived greenlet reads it, off the client's path.
        """
        if self._done:
            return
        if not self._streamed or self._ended:  # read to its end: urllib3 has pooled the connection
            self.close()
            return
        raw = self._resp.raw
        peek = _peeker(self._resp)
        if peek is not None:
            try:
                if raw._fp.chunk_left == 0 and peek().startswith(_CHUNKED_END):
                    while raw.read1(_READ_SIZE):  # everything it needs is buffered: no wait
                        pass
                    self.close()  # the body ended: urllib3 has put the connection back in the pool
                    return
            except Exception:  # noqa: BLE001 - fall back to the greenlet, which drops it if it must
                pass
        spawn(self._drain)

    def _drain(self) -> None:
        try:
            with Timeout(_DRAIN_S, False):
                while self._resp.raw.read1(_READ_SIZE):
                    pass
        except Exception:  # noqa: BLE001 - the answer is complete; a broken tail only loses the reuse
            pass
        finally:
            self.close()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            _run_all(self._callbacks)


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    """Run and forget every callback (a second call finds the list empty)."""
    while callbacks:
        callbacks.pop(0)()


def _with_ready_chunks(data: bytes, raw: Any, peek: Callable[[], bytes]) -> tuple[bytes, Callable[[], bytes] | None]:
    """``data`` extended by every further whole chunk already received (never waits); the peeker,
    or None once peeking failed (the next plain read reports any real failure)."""
    parts = None
    size = len(data)
    try:
        while size < _COALESCE_MAX and _whole_chunk_ready(raw._fp, peek()):
            more = raw.read1(_READ_SIZE)
            if not more:
                break
            if parts is None:
                parts = [data]
            parts.append(more)
            size += len(more)
    except Exception:  # noqa: BLE001
        return (b"".join(parts) if parts else data), None
    return (b"".join(parts) if parts else data), peek


def _peeker(resp: requests.Response) -> Callable[[], bytes] | None:
    """A function returning the body bytes already received (buffered, or waiting in the socket)
    without blocking, or None when this body cannot be peeked at safely (TLS, no socket, not
    chunked)."""
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


def _whole_chunk_ready(fp: Any, ahead: bytes) -> bool:
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


def caused_by_timeout(exc: BaseException | None) -> bool:
    """A read timeout somewhere in ``exc``'s chain (urllib3 wraps it several times)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (ReadTimeoutError, TimeoutError, requests.exceptions.ReadTimeout)):
            return True
        exc = exc.__context__ or (exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)
        seen += 1
    return False
