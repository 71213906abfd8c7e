"""The gunicorn worker: gevent's, plus a deadline on reading a request's line and headers.

gunicorn's async workers wait for a request (line + headers) for up to ``keepalive`` seconds, the
same bound for an idle keep-alive connection and for a client that is dribbling its headers. A
bridge exposed without nginx then lets slow or silent clients hold a worker's connection slots for
95 s each. This worker keeps the long idle wait between requests on a reused connection (nginx and
Heroku's router must be the side that closes idle pooled connections), but gives every request at
most ``CLIENT_HEADER_TIMEOUT`` seconds from its first byte to its last header byte, and a new
connection that many seconds for its first request (nginx's ``client_header_timeout``). Once the
head is in, each read of the body may wait at most ``CLIENT_BODY_TIMEOUT`` seconds for data
(nginx's ``client_body_timeout``): the app answers 408 and the connection is closed, so a client
that stops mid-body does not hold its slot forever.

Imported by the gunicorn master (it resolves the worker class): keep it free of requests/ssl
imports, like ``gunicorn.conf.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventWorker

from . import CLOSE_CONNECTION
from .errors import ClientBodyTimeout

__all__ = ["BridgeWorker", "HeaderDeadlineSocket", "configure"]

_header_timeout_s = 10.0
_body_timeout_s = 60.0


def configure(*, header_timeout_s: float, body_timeout_s: float = 60.0) -> None:
    """Set from ``gunicorn.conf.py`` (which read the settings) before the workers fork."""
    global _header_timeout_s, _body_timeout_s
    _header_timeout_s = header_timeout_s
    _body_timeout_s = body_timeout_s


class HeaderTimeout(Exception):
    """A request's line and headers did not arrive in time; the connection is dropped."""


class _BodyStalled(Exception):
    """A body read's timer fired (turned into ClientBodyTimeout, which carries a message)."""


class HeaderDeadlineSocket:
    """A client socket whose reads are bounded while a request head is being parsed.

    ``arm()`` before parsing a request, ``disarm()`` after. While armed, the wait for the first
    byte is bounded by ``idle_s`` and the rest of the head by ``header_s`` from that first byte.
    Disarmed reads are the app's body reads: each waits at most ``CLIENT_BODY_TIMEOUT``, then
    raises :class:`~bridge.errors.ClientBodyTimeout` and marks the connection ``body_stalled``.
    Everything else is the wrapped socket's.
    """

    __slots__ = ("_sock", "_idle_s", "_header_s", "_deadline", "_armed", "served", "body_stalled")

    def __init__(self, sock) -> None:
        self._sock = sock
        self.served = False  # a request head was read whole on this connection
        self.body_stalled = False  # a body read timed out: the connection cannot be reused
        self._idle_s = 0.0
        self._header_s = 0.0
        self._deadline: float | None = None
        self._armed = False

    def arm(self, *, idle_s: float, header_s: float) -> None:
        self._idle_s, self._header_s = idle_s, header_s
        self._deadline = None
        self._armed = True

    def disarm(self) -> None:
        self._armed = False
        self._deadline = None

    def recv(self, size: int, *args) -> bytes:
        if not self._armed:
            try:
                with gevent.Timeout(_body_timeout_s, _BodyStalled):
                    return self._sock.recv(size, *args)
            except _BodyStalled:
                self.body_stalled = True
                raise ClientBodyTimeout(f"no request body data for {_body_timeout_s:g} s "
                                        "(CLIENT_BODY_TIMEOUT)") from None
        deadline = self._deadline
        first = deadline is None
        limit_s = self._idle_s if deadline is None else deadline - time.monotonic()
        if limit_s <= 0:
            raise HeaderTimeout()
        with gevent.Timeout(limit_s, HeaderTimeout):
            data = self._sock.recv(size, *args)
        if first and data:
            self._deadline = time.monotonic() + self._header_s
        return data

    def sendall(self, data, flags: int = 0) -> None:
        # gevent's sendall asks the kernel for SO_SNDBUF (a getsockopt system call) before every
        # write; one send takes a whole response or stream write in the usual case, and gevent's
        # sendall delivers whatever that send left (waiting for the client as it always did).
        sent = self._sock.send(data, flags) if data else 0
        if sent < len(data):
            self._sock.sendall(memoryview(data)[sent:], flags)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class BridgeWorker(GeventWorker):
    """gunicorn's gevent worker with a request-head deadline (see the module docstring), which also
    closes a connection when the app asks (``CLOSE_CONNECTION``: a rejected body left unread, which
    gunicorn would otherwise read to its end before the next request)."""

    wsgi: Callable[..., Any]  # the app gunicorn's load_wsgi() set, then wrapped below

    def load_wsgi(self):
        super().load_wsgi()
        app = self.wsgi

        def close_aware(environ, start_response):
            result = app(environ, start_response)
            conn: HeaderDeadlineSocket | None = getattr(gevent.getcurrent(), "_bridge_conn", None)
            if environ.get(CLOSE_CONNECTION) or (conn is not None and conn.body_stalled):
                response = getattr(start_response, "__self__", None)  # gunicorn's http.wsgi.Response
                force_close = getattr(response, "force_close", None)
                if force_close is not None:
                    force_close()  # before the headers go out: they say "Connection: close"
            return result

        self.wsgi = close_aware

    def handle(self, listener, client, addr):
        conn = HeaderDeadlineSocket(client)
        gevent.getcurrent()._bridge_conn = conn  # read by timeout_ctx, on this connection's greenlet
        super().handle(listener, conn, addr)

    @contextmanager
    def timeout_ctx(self):
        conn: HeaderDeadlineSocket | None = getattr(gevent.getcurrent(), "_bridge_conn", None)
        if conn is None:  # not one of our connections: gunicorn's own behaviour
            with super().timeout_ctx():
                yield
            return
        header_s = _header_timeout_s
        # The first request on a connection gets the header deadline for its first byte too; a
        # reused one may stay idle as long as keep-alive allows.
        idle_s = max(float(self.cfg.keepalive), header_s) if conn.served else header_s
        conn.arm(idle_s=idle_s, header_s=header_s)
        try:
            yield
            conn.served = True
        except HeaderTimeout:
            # Swallowed: the parse yields no request, so gunicorn closes the connection quietly.
            self.log.debug("request head not received in %.1f s: connection closed", header_s)
        finally:
            conn.disarm()
