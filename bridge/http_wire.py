"""A minimal HTTP/1.1 client transport for plain ``http://`` backends.

Why: ``requests``/urllib3 cost ~300 µs of CPU per backend call against ~25 µs for the exchange on
a raw socket, the largest per-request cost of the gateway. A backend call needs little of what
they offer (no redirects, cookies, proxies, auth, content decoding, or URL/IDNA handling on a URL
built from a validated base), so :class:`HTTPWire` speaks the protocol itself: one ``sendall`` per
request, a bounded header parse, and the three body framings (:mod:`bridge.wire_body`). HTTPS stays
on :class:`bridge.transport.RequestsTransport`.

Sockets are the stdlib ``socket`` module's, looked up at call time, so in a gevent worker (patched
before the app loads) every wait yields to the hub. Each backend ``(host, port)`` has one pool of
idle keep-alive connections per process (a forked worker starts with empty pools), reused newest
first (the connection most likely still open on the backend side) and bounded by
``settings.pool_maxsize``.

Errors are the ones :class:`bridge.upstream.UpstreamClient` acts on: a connection never made is
:class:`UpstreamConnectError` or :class:`ConnectTimeout`; a reused connection the backend had
already closed (nothing came back) is :class:`StaleConnection`, resent once at once.
"""

from __future__ import annotations

import os
import socket
import time
from functools import lru_cache
from urllib.parse import urlsplit

from .config import Settings
from .errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from .transport import ConnectTimeout, StaleConnection
from .wire_body import WireConn, body_reader, read_head
from .wire_response import WireResponse

__all__ = ["HTTPWire"]

_NO_BODY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class _Pool:
    """Idle keep-alive connections to one backend address, newest last."""

    __slots__ = ("idle", "maxsize", "made")

    def __init__(self, maxsize: int) -> None:
        self.idle: list[WireConn] = []
        self.maxsize = maxsize
        self.made = 0  # connections opened to this address by this process

    def take(self) -> WireConn | None:
        """The newest idle connection still open, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.alive():
                conn.reused = True
                return conn
            conn.close()
        return None

    def give_back(self, conn: WireConn) -> None:
        if len(self.idle) < self.maxsize and not conn.buf:
            self.idle.append(conn)
        else:
            conn.close()


@lru_cache(maxsize=512)
def _target(url: str) -> tuple[str, int, str]:
    """``(host, port, start of the request)`` for a URL; the request line and Host header are built
    once per URL (a client calls a handful of them)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"HTTPWire speaks plain http:// only, not {parts.scheme or 'no scheme'}://")
    host = parts.hostname
    if not host:
        raise ValueError("a backend URL needs a host")
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c in path for c in " \r\n") or parts.username is not None:
        raise ValueError("a backend URL path may not hold spaces, line breaks or credentials")
    authority = f"[{host}]" if ":" in host else host
    host_header = authority if port == 80 else f"{authority}:{port}"
    return host, port, f" {path} HTTP/1.1\r\nHost: {host_header}\r\n"


def _request(method: str, start: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    """The whole request as one buffer (one ``sendall``)."""
    lines = [method, start]
    has_length = False
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} would break the request")
        if name.lower() == "host":
            continue  # set from the URL
        has_length = has_length or name.lower() == "content-length"
        lines.append(f"{name}: {value}\r\n")
    if not has_length and (body or method not in _NO_BODY_METHODS):
        lines.append(f"Content-Length: {len(body or b'')}\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode("latin-1")
    return head + body if body else head


class HTTPWire:
    """HTTP/1.1 over pooled plain sockets; implements :class:`bridge.transport.Transport`."""

    def __init__(self, settings: Settings) -> None:
        self._pool_maxsize = settings.pool_maxsize
        self._pools: dict[tuple[str, int], _Pool] = {}
        self._pid = os.getpid()

    def _pool(self, host: str, port: int) -> _Pool:
        if self._pid != os.getpid():  # a forked worker: the parent's connections are not ours
            self._pools = {}
            self._pid = os.getpid()
        pool = self._pools.get((host, port))
        if pool is None:
            pool = self._pools[(host, port)] = _Pool(self._pool_maxsize)
        return pool

    def connections_made(self, url: str) -> int:
        """How many connections this process opened to ``url``'s address (tests, benchmarks)."""
        host, port, _ = _target(url)
        return self._pool(host, port).made

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], *, stream: bool,
             timeout: tuple[float, float], idle_timeout_s: float) -> WireResponse:
        """One exchange; the answer (any status) or an upstream error. ``stream=False`` reads the
        whole body before returning (the caller bounds the total time)."""
        host, port, start = _target(url)
        request = _request(method, start, body, headers)
        pool = self._pool(host, port)
        conn = pool.take() or _connect(pool, host, port, timeout[0])
        try:
            answer = self._exchange(conn, method, request, timeout[1], idle_timeout_s, pool)
            if not stream:
                answer.read_whole_body()
        except TimeoutError:
            conn.close()
            raise UpstreamTimeout("backend timed out") from None
        except OSError:
            conn.close()
            raise UpstreamProtocolError("backend connection broke mid-body") from None
        except BaseException:  # our errors, and the caller's gevent Timeout: the connection is in an unknown state
            conn.close()
            raise
        return answer

    @staticmethod
    def _exchange(conn: WireConn, method: str, request: bytes, read_s: float, idle_s: float,
                  pool: _Pool) -> WireResponse:
        """Send ``request`` and read the answer's head."""
        sock = conn.sock
        sock.settimeout(read_s)
        try:
            sock.sendall(request)
            head = read_head(conn)
        except TimeoutError:
            raise UpstreamTimeout("backend timed out") from None
        except OSError:  # reset or broken pipe before a status byte
            if conn.buf:
                raise UpstreamProtocolError("backend connection broke inside its headers") from None
            head = None
        if head is None:
            if conn.reused:
                raise StaleConnection("backend closed a pooled connection")
            raise UpstreamConnectError("backend closed the connection without answering")
        received_ns = time.monotonic_ns()
        coding = head.headers.get("content-encoding")
        if coding and coding.strip().lower() != "identity":
            raise UpstreamProtocolError(f"backend sent a body in an encoding the bridge does not decode: {coding}")
        return WireResponse(head, body_reader(conn, head, method), headers_received_ns=received_ns,
                            idle_timeout_s=idle_s, give_back=pool.give_back)


def _connect(pool: _Pool, host: str, port: int, connect_s: float) -> WireConn:
    """A new connection, or the error that says no connection was made (nothing was sent)."""
    try:
        sock = socket.create_connection((host, port), timeout=connect_s)
    except TimeoutError:
        raise ConnectTimeout("timed out connecting to the backend") from None
    except OSError:
        raise UpstreamConnectError("backend unreachable: connection failed") from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    pool.made += 1
    return WireConn(sock)
