"""bridge/worker.py: the client socket wrapper, on real gevent socket pairs (no gunicorn): the read
deadlines of a request head, the wait allowed to each body read, and a sendall that delivers every
byte whatever the kernel takes per send. The worker class itself runs under gunicorn in tests/faults
(slow and silent clients)."""

from __future__ import annotations

import time

import gevent
import pytest
from gevent import socket

from bridge import worker
from bridge.errors import ClientBodyTimeout
from bridge.worker import HeaderDeadlineSocket, HeaderTimeout


@pytest.fixture()
def pair():
    a, b = socket.socketpair()
    yield HeaderDeadlineSocket(a), b
    a.close()
    b.close()


def read_exactly(sock, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = sock.recv(min(65536, n - len(out)))
        assert data, "peer closed early"
        out += data
    return bytes(out)


# -- sendall -----------------------------------------------------------------------------------------------
def test_a_small_write_arrives_whole(pair):
    conn, peer = pair
    assert conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nhello") is None
    assert read_exactly(peer, 24) == b"HTTP/1.1 200 OK\r\n\r\nhello"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_a_write_bigger_than_the_socket_buffer_arrives_whole_and_in_order(pair, kind):
    conn, peer = pair
    data = bytes(range(256)) * 40_000  # ~10 MB: many partial sends, the writer waits for the reader
    reader = gevent.spawn(read_exactly, peer, len(data))
    conn.sendall(kind(data))
    assert reader.get(timeout=30) == data


def test_an_empty_write_sends_nothing(pair):
    conn, peer = pair
    conn.sendall(b"")
    conn.sendall(b"x")
    assert read_exactly(peer, 1) == b"x"


def test_a_write_to_a_closed_peer_raises(pair):
    conn, peer = pair
    peer.close()
    with pytest.raises(OSError):
        for _ in range(100):  # the first send may still be accepted by the kernel
            conn.sendall(b"x" * 65536)


# -- the request-head deadline ----------------------------------------------------------------------------
def test_an_armed_read_waits_at_most_idle_s_for_the_first_byte(pair):
    conn, _ = pair
    conn.arm(idle_s=0.05, header_s=5.0)
    started = time.monotonic()
    with pytest.raises(HeaderTimeout):
        conn.recv(10)
    assert time.monotonic() - started < 1.0


def test_the_rest_of_the_head_gets_header_s_from_its_first_byte(pair):
    conn, peer = pair
    conn.arm(idle_s=5.0, header_s=0.05)
    peer.sendall(b"GET ")
    assert conn.recv(10) == b"GET "
    started = time.monotonic()
    with pytest.raises(HeaderTimeout):
        conn.recv(10)  # nothing more comes
    assert time.monotonic() - started < 1.0


def test_a_disarmed_read_outlasts_the_head_deadlines_and_other_calls_reach_the_socket(pair):
    conn, peer = pair
    conn.arm(idle_s=0.01, header_s=0.01)
    conn.disarm()
    gevent.spawn_later(0.1, peer.sendall, b"body")
    assert conn.recv(10) == b"body"
    assert conn.fileno() >= 0


# -- the body-read wait -------------------------------------------------------------------------------------
@pytest.fixture()
def body_timeout_s():
    worker.configure(header_timeout_s=10.0, body_timeout_s=0.2)
    yield 0.2
    worker.configure(header_timeout_s=10.0)


def test_a_body_read_that_gets_no_data_in_time_is_a_408_and_marks_the_connection(pair, body_timeout_s):
    conn, _ = pair
    started = time.monotonic()
    with pytest.raises(ClientBodyTimeout) as err:
        conn.recv(10)
    assert body_timeout_s <= time.monotonic() - started < 1.0
    assert err.value.status == 408 and "CLIENT_BODY_TIMEOUT" in err.value.message
    assert conn.body_stalled


def test_each_body_read_gets_the_whole_wait_so_a_steady_trickle_is_not_cut(pair, body_timeout_s):
    conn, peer = pair
    got = b""
    for part in (b"a", b"b", b"c", b"d"):  # 0.4 s in all, each gap half the timeout
        gevent.spawn_later(body_timeout_s / 2, peer.sendall, part)
        got += conn.recv(10)
    assert got == b"abcd" and not conn.body_stalled
