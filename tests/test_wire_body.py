"""The framing under HTTPWire, on a scripted socket: a chunked or Content-Length body cut at every
byte boundary (and into single bytes) decodes to the same data, each read returning what the
bytes received so far allow, never waiting for more when it has something."""

from __future__ import annotations

import pytest

from bridge.errors import UpstreamProtocolError
from bridge.wire_body import BodyReader, WireConn, body_reader, read_head

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
CHUNKED = (b"7;name=value\r\ndata: 1\r\n" b"1\r\n\n\r\n" b"a\r\ndata: 22\n\n\r\n" b"10\r\n" + b"x" * 16 + b"\r\n"
           b"0\r\nX-Trailer: yes\r\n\r\n")
DATA = b"data: 1\n" b"data: 22\n\n" + b"x" * 16


class ScriptedSocket:
    """recv() hands out the scripted pieces one by one, then EOF; reads are recorded."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)
        self.recvs = 0

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.recvs += 1
        return self.pieces.pop(0) if self.pieces else b""

    def settimeout(self, value: float) -> None:
        pass

    def close(self) -> None:
        pass


def reader(pieces: list[bytes], method: str = "GET") -> tuple[BodyReader, ScriptedSocket]:
    sock = ScriptedSocket(pieces)
    conn = WireConn(sock)  # type: ignore[arg-type]
    head = read_head(conn)
    assert head is not None
    return body_reader(conn, head, method), sock


def read_to_end(body: BodyReader) -> list[bytes]:
    parts = []
    while data := body.read_some():
        parts.append(data)
    return parts


@pytest.mark.parametrize("cut", range(1, len(HEAD + CHUNKED)))
def test_a_chunked_answer_cut_anywhere(cut):
    whole = HEAD + CHUNKED
    body, sock = reader([whole[:cut], whole[cut:]])
    parts = read_to_end(body)
    assert b"".join(parts) == DATA and all(parts)
    assert body.done and body.reusable and sock.recvs <= 3  # each read used what was there


def test_a_chunked_body_in_single_bytes():
    body, _ = reader([HEAD] + [CHUNKED[i:i + 1] for i in range(len(CHUNKED))])
    parts = read_to_end(body)
    assert b"".join(parts) == DATA and body.reusable


def test_every_whole_chunk_received_together_is_one_read():
    body, _ = reader([HEAD + CHUNKED])
    assert read_to_end(body) == [DATA]


def test_a_read_never_waits_to_fill_a_block():
    body, sock = reader([HEAD + b"7\r\ndata: 1", b"\r\n1\r\n\n\r\n"])
    assert body.read_some() == b"data: 1" and sock.recvs == 1  # partial chunk data at once
    assert body.read_some() == b"\n" and not body.done


def test_a_terminator_already_received_ends_the_body_without_a_read():
    body, sock = reader([HEAD + b"1\r\n\n\r\n0\r\n\r\n"])
    assert body.read_some() == b"\n" and body.done and body.finish_nowait() and sock.recvs == 1


@pytest.mark.parametrize("cut", range(1, 60))
def test_a_content_length_answer_cut_anywhere(cut):
    whole = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + b"0123456789" * 2
    body, _ = reader([whole[:cut], whole[cut:]])
    assert body.read_all() == b"0123456789" * 2 and body.reusable


def test_bytes_beyond_the_body_make_the_connection_unusable():
    body, _ = reader([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"])
    assert body.read_all() == b"ok" and body.done and not body.reusable


@pytest.mark.parametrize("tail", [b"", b"5\r\nab", b"3\r\nabcX\r\n", b"-1\r\n", b"1 1\r\n", b"0x1\r\n"])
def test_a_chunked_body_that_breaks_is_a_protocol_error(tail):
    body, _ = reader([HEAD + tail])
    with pytest.raises(UpstreamProtocolError):
        read_to_end(body)


def test_a_connection_ending_before_any_byte_is_no_head():
    assert read_head(WireConn(ScriptedSocket([]))) is None  # type: ignore[arg-type]
