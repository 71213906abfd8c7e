"""HTTP/1.1 answer framing for :mod:`bridge.http_wire`: the status line and headers, then the body.

Everything reads from a :class:`WireConn` (a socket plus the bytes received but not yet consumed),
so a read never asks the socket for more than one ``recv`` when buffered bytes can answer it: a
body is handed on as soon as it arrives, never held back to fill a block. Chunked bodies are
decoded incrementally; one read returns the data of every chunk already received (a burst of SSE
events, one per chunk, becomes one read and one client write).

Framing failures raise :class:`UpstreamProtocolError`; socket failures (``TimeoutError``,
``OSError``) are left to the caller, which knows what they mean at that point of the exchange.
"""

from __future__ import annotations

import socket

from .errors import UpstreamProtocolError

__all__ = ["Head", "BodyReader", "WireConn", "MAX_HEAD_BYTES", "read_head", "body_reader"]

#: Largest status line + header block accepted (a backend sending more is not one we can talk to).
MAX_HEAD_BYTES = 64 * 1024
_READ_SIZE = 64 * 1024
_MAX_CHUNK_LINE = 4096
_BROKEN = "backend connection broke mid-stream"

# Body framings.
_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2
# Chunked decoder states.
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = 0, 1, 2, 3, 4


class WireConn:
    """One TCP connection to a backend and the bytes received on it but not yet consumed."""

    __slots__ = ("sock", "buf", "reused")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.reused = False  # taken from the pool (it served an earlier exchange)

    def recv(self) -> bytes:
        """One ``recv`` appended to the buffer; ``b""`` at EOF."""
        data = self.sock.recv(_READ_SIZE)
        self.buf += data
        return data

    def alive(self) -> bool:
        """True when an idle pooled connection is still open and silent (checked without waiting)."""
        try:
            self.sock.settimeout(0.0)
            self.sock.recv(1, socket.MSG_PEEK)  # b"": the backend closed it; data: out of step
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Head:
    """A parsed status line and header block (names lower-cased, repeated ones joined)."""

    __slots__ = ("status", "headers", "keep_alive")

    def __init__(self, status: int, headers: dict[str, str], keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        self.keep_alive = keep_alive  # the backend allows another exchange on this connection


def read_head(conn: WireConn) -> Head | None:
    """The answer's head, skipping interim 1xx answers; None when the connection ended before a
    single byte arrived (the caller decides whether that is a stale pooled connection)."""
    received_any = bool(conn.buf)
    budget = MAX_HEAD_BYTES  # shared by any interim answers
    while True:
        buf = conn.buf
        start = 0
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end >= 0:
                break
            if len(buf) > budget:
                raise UpstreamProtocolError("backend sent a header block over 64 KiB")
            start = max(0, len(buf) - 3)
            if not conn.recv():
                if not received_any:
                    return None
                raise UpstreamProtocolError("backend closed the connection inside its headers")
            received_any = True
        budget -= end + 4
        if budget < 0:
            raise UpstreamProtocolError("backend sent a header block over 64 KiB")
        text = buf[:end].decode("latin-1")
        del buf[:end + 4]
        head = _parse_head(text)
        if not 100 <= head.status < 200:
            return head
        if head.status == 101:
            raise UpstreamProtocolError("backend switched protocols")


def _parse_head(text: str) -> Head:
    lines = text.split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit() or rest[3:4] not in ("", " "):
        raise UpstreamProtocolError("backend sent a malformed status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise UpstreamProtocolError("backend sent a malformed header line")
        name = name.lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    tokens = headers.get("connection", "").lower()
    keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    return Head(int(code), headers, keep)


def body_reader(conn: WireConn, head: Head, method: str) -> BodyReader:
    """How this answer's body is framed (RFC 9112 section 6.3)."""
    if method == "HEAD" or head.status in (204, 304):
        return BodyReader(conn, _LENGTH, 0)
    coding = head.headers.get("transfer-encoding")
    if coding is not None:
        if coding.rsplit(",", 1)[-1].strip().lower() == "chunked":
            return BodyReader(conn, _CHUNKED, 0)
        return BodyReader(conn, _UNTIL_CLOSE, 0)
    length = head.headers.get("content-length")
    if length is None:
        return BodyReader(conn, _UNTIL_CLOSE, 0)
    values = {v.strip() for v in length.split(",")}
    value = values.pop() if len(values) == 1 else ""
    if not value.isdigit() or not value.isascii():
        raise UpstreamProtocolError("backend sent an invalid Content-Length")
    return BodyReader(conn, _LENGTH, int(value))


class BodyReader:
    """Reads one body off its connection; :attr:`done` once it ended by its framing."""

    __slots__ = ("conn", "_framing", "_left", "_state", "done")

    def __init__(self, conn: WireConn, framing: int, length: int) -> None:
        self.conn = conn
        self._framing = framing
        self._left = length  # Content-Length: bytes still due; chunked: bytes left in this chunk
        self._state = _SIZE
        self.done = framing == _LENGTH and length == 0

    @property
    def reusable(self) -> bool:
        """The connection can carry another exchange once this body is done (not a close-delimited
        body, nothing received beyond its end)."""
        return self.done and self._framing != _UNTIL_CLOSE and not self.conn.buf

    def read_some(self, limit: int = _READ_SIZE) -> bytes:
        """Body bytes already buffered, else those of one ``recv``; ``b""`` at the end of the body.
        Chunked bodies stop gathering once ``limit`` bytes are decoded."""
        conn = self.conn
        if self._framing == _CHUNKED:
            while True:
                data = self._decode(limit)
                if data or self.done:
                    return data
                if not conn.recv():
                    raise UpstreamProtocolError(_BROKEN)
        if self.done:
            return b""
        if not conn.buf and not conn.recv():
            if self._framing == _UNTIL_CLOSE:
                self.done = True
                return b""
            raise UpstreamProtocolError(_BROKEN)
        buf = conn.buf
        if self._framing == _UNTIL_CLOSE:
            data = bytes(buf)
            buf.clear()
            return data
        n = min(self._left, len(buf))
        if n == len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        self._left -= n
        self.done = self._left == 0
        return data

    def read_all(self) -> bytes:
        """The rest of the body (the caller bounds the time)."""
        conn = self.conn
        if self._framing == _LENGTH and not self.done:
            while len(conn.buf) < self._left:
                if not conn.recv():
                    raise UpstreamProtocolError("backend connection broke mid-body")
            return self.read_some()
        parts = []
        while data := self.read_some():
            parts.append(data)
        return b"".join(parts)

    def finish_nowait(self) -> bool:
        """Read what ends the body if it is already here, without waiting: True once done."""
        if not self.done and self._framing == _CHUNKED:
            self._decode(_READ_SIZE)
            if not self.done and self._state != _DATA:
                try:
                    self.conn.sock.settimeout(0.0)
                    if self.conn.recv():
                        self._decode(_READ_SIZE)
                except OSError:  # BlockingIOError: not here yet; anything else: the drain finds out
                    pass
        return self.done

    def _decode(self, limit: int) -> bytes:
        """Decode the chunks buffered so far (partial chunk data included), up to ``limit`` bytes.
        Walks the buffer by offset and trims it once (a stream's chunks are small and many)."""
        buf = self.conn.buf
        end = len(buf)
        pos = 0
        out: list[bytearray] = []
        size = 0
        state = self._state
        left = self._left
        try:
            while size < limit:
                if state == _DATA:
                    if pos == end:
                        break
                    n = left if left < end - pos else end - pos
                    out.append(buf[pos:pos + n])
                    pos += n
                    size += n
                    left -= n
                    if left:
                        break
                    state = _DATA_END
                elif state == _DATA_END:
                    if end - pos < 2:
                        break
                    if buf[pos] != 13 or buf[pos + 1] != 10:
                        raise UpstreamProtocolError("backend sent a malformed chunked body")
                    pos += 2
                    state = _SIZE
                elif state == _SIZE:
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        if end - pos > _MAX_CHUNK_LINE:
                            raise UpstreamProtocolError("backend sent a malformed chunked body")
                        break
                    left = _chunk_size(buf[pos:eol])
                    pos = eol + 2
                    if not left:
                        state = _TRAILER
                    elif pos + left + 2 <= end:  # the whole chunk is here (the usual case): in one step
                        if buf[pos + left] != 13 or buf[pos + left + 1] != 10:
                            raise UpstreamProtocolError("backend sent a malformed chunked body")
                        out.append(buf[pos:pos + left])
                        pos += left + 2
                        size += left
                        left = 0
                    else:
                        state = _DATA
                elif state == _TRAILER:
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        if end - pos > MAX_HEAD_BYTES:
                            raise UpstreamProtocolError("backend sent a chunked trailer over 64 KiB")
                        break
                    if eol == pos:
                        state = _DONE
                        self.done = True
                    pos = eol + 2
                else:
                    break
        finally:
            del buf[:pos]
            self._state = state
            self._left = left
        if not out:
            return b""
        return bytes(out[0]) if len(out) == 1 else b"".join(out)


def _chunk_size(line: bytearray) -> int:
    """The size on a chunk-size line (extensions ignored). Hex as ``int`` reads it: a sign is
    refused, the rest of its leniency (``0x``, ``_``) cannot mis-frame a body."""
    if b";" in line:
        line = line.partition(b";")[0]
    try:
        size = int(line, 16) if len(line) <= 16 else -1
    except ValueError:
        size = -1
    if size < 0 or line.lstrip().startswith((b"+", b"-")):
        raise UpstreamProtocolError("backend sent a malformed chunked body")
    return size
