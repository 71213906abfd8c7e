"""One backend answer received by :class:`bridge.http_wire.HTTPWire`, with its connection.

The same public surface as :class:`bridge.backend_response.BackendResponse` (routes, the backend
pool and the stream pumps cannot tell them apart) without ``requests``/``urllib3`` underneath:
the answer owns its :class:`~bridge.wire_body.WireConn` until the body has ended, then hands it
back to its pool. :meth:`release` (the answer is complete) pools it once the body has ended,
:meth:`close` (abandoned: a client gone, a broken stream) closes it so the backend stops
generating. Either runs the ``when_done`` callbacks exactly once (the backend pool's in-flight
count), as does garbage collection of an answer nobody closed.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from gevent import Timeout, spawn

from .errors import UpstreamProtocolError, UpstreamTimeout
from .wire_body import BodyReader, Head, WireConn

__all__ = ["WireResponse"]

#: At most this much is gathered for one read: a backend far ahead of the bridge still gets its
#: first tokens written after a bounded amount of translation.
_COALESCE_MAX = 16 * 1024
#: Longest wait for the end of a body after the answer is complete before the connection is dropped.
_DRAIN_S = 2.0


def _same(text: str) -> str:
    return text


class WireResponse:
    """A backend's answer. ``status`` is its HTTP status, ``backend`` the name of the backend that
    sent it, ``headers_received_ns`` when its status line and headers arrived (monotonic ns)."""

    __slots__ = ("status", "content_type", "backend", "headers_received_ns", "_headers", "_body", "_give_back",
                 "_content", "_idle_timeout_s", "_redact", "_done", "_callbacks", "__weakref__")

    def __init__(self, head: Head, body: BodyReader, *, headers_received_ns: int, idle_timeout_s: float,
                 give_back: Callable[[WireConn], None]) -> None:
        self.status: int = head.status
        self.content_type: str = head.headers.get("content-type", "application/json")
        self.backend = ""
        self.headers_received_ns = headers_received_ns
        self._headers = head.headers
        self._body: BodyReader | None = body  # None once the connection is pooled or closed
        self._give_back = give_back if head.keep_alive else None  # returns a reusable connection to its pool
        self._content: bytes | None = None  # the whole body, once read
        self._idle_timeout_s = idle_timeout_s
        self._redact: Callable[[str], str] = _same
        self._done = False
        self._callbacks: list[Callable[[], None]] = []

    def read_whole_body(self) -> None:
        """Read the body now (a non-streamed answer): the connection is pooled at once."""
        body = self._body
        if body is not None:
            self._content = body.read_all()
            self._settle()

    def from_backend(self, name: str, redact: Callable[[str], str]) -> WireResponse:
        """Name the backend that answered and how its keys are kept out of messages."""
        self.backend = name
        self._redact = redact
        return self

    # -- the body --------------------------------------------------------------------------------
    @property
    def content(self) -> bytes:
        """The whole body (read when it arrived for a non-streamed answer, else now)."""
        if self._content is None:
            try:
                self.read_whole_body()
            except TimeoutError:
                self._drop()
                raise UpstreamTimeout("backend timed out") from None
            except OSError:
                self._drop()
                raise UpstreamProtocolError("backend connection broke mid-body") from None
        return self._content or b""

    def json(self) -> dict[str, Any]:
        """The parsed JSON object of a non-streamed answer, or :class:`UpstreamProtocolError`."""
        try:
            data = json.loads(self.content)
        except (ValueError, UnicodeDecodeError):
            raise UpstreamProtocolError("backend returned a body that is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamProtocolError("backend returned JSON that is not an object")
        return data

    def error_body(self, limit: int) -> bytes:
        """At most ``limit`` bytes of an error answer's body; the connection is dropped after."""
        try:
            if self._content is not None:
                return self._content[:limit]
            parts: list[bytes] = []
            size = 0
            while size < limit and self._body is not None and (data := self._body.read_some()):
                parts.append(data)
                size += len(data)
            return b"".join(parts)[:limit]
        except Exception:  # noqa: BLE001 - a broken error body still yields an error with the status
            return b""
        finally:
            self.close()

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    def iter_bytes(self) -> Iterator[bytes]:
        """Body bytes as they arrive; a stall or a broken connection raises the bridge's errors."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        body = self._body
        if body is None:
            return
        body.conn.sock.settimeout(self._idle_timeout_s)
        try:
            while data := body.read_some(_COALESCE_MAX):
                yield data
        except TimeoutError:
            raise UpstreamTimeout(f"backend sent nothing for {self._idle_timeout_s:g} s mid-stream") from None
        except OSError:
            raise UpstreamProtocolError("backend connection broke mid-stream") from None
        if self._body is body:
            self._settle()  # the body ended: the connection goes back to the pool now

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
        """Drop the answer: its connection (if still held) is closed, so a streaming backend stops."""
        try:
            self._drop()
        finally:
            self._finish()

    def release(self) -> None:
        """The answer is complete: give the connection back to the pool once its body has ended.

        After the last event of a chunked stream only its terminator is left. When the terminator
        is already here (the usual case) it is read inline, which cannot wait; otherwise a
        short-lived greenlet reads it (at most 2 s), off the client's path.
        """
        if self._done:
            return
        body = self._body
        if body is None or body.finish_nowait():
            self._settle()
            self._finish()
            return
        spawn(self._drain, body)

    def _drain(self, body: BodyReader) -> None:
        try:
            body.conn.sock.settimeout(_DRAIN_S)
            with Timeout(_DRAIN_S, False):
                while body.read_some():
                    pass
        except Exception:  # noqa: BLE001 - the answer is complete; a broken tail only loses the reuse
            pass
        finally:
            self._settle()
            self._finish()

    def _settle(self) -> None:
        """Pool the connection when its body ended cleanly and the backend keeps it open, else close it."""
        body, self._body = self._body, None
        if body is None:
            return
        if body.reusable and self._give_back is not None:
            self._give_back(body.conn)
        else:
            body.conn.close()

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.conn.close()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            _run_all(self._callbacks)


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    """Run and forget every callback (a second call finds the list empty)."""
    while callbacks:
        callbacks.pop(0)()
