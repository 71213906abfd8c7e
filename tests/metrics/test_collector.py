"""The per-worker ring and the shared window over ring files."""

from __future__ import annotations

import os

from bridge.metrics.collector import _HEADER_SIZE, _SLOT_SIZE, Collector, read_ring_file
from bridge.metrics.records import Record

FAKE_PID_A = 3_999_001  # above any real pid_max default, so these "workers" look dead
FAKE_PID_B = 3_999_002


def rec(i: int, route: str = "/api/chat") -> Record:
    return Record(ts_s=1000.0 + i, route=route, method="POST", status=200, duration_s=0.001 * i,
                  model="m", tokens_out=i).normalised()


def test_ring_holds_its_size_after_10x_window(tmp_path):
    window = 50
    c = Collector(window, str(tmp_path), pid=lambda: FAKE_PID_A)
    size = os.path.getsize(tmp_path / f"window_{FAKE_PID_A}.ring")
    for i in range(10 * window):
        c.append(rec(i))
    local = c.local()
    assert len(local) == window
    assert [r.tokens_out for r in local] == list(range(9 * window, 10 * window))
    assert os.path.getsize(tmp_path / f"window_{FAKE_PID_A}.ring") == size == _HEADER_SIZE + window * _SLOT_SIZE
    info, from_file = read_ring_file(str(tmp_path / f"window_{FAKE_PID_A}.ring"))
    assert info.written == 10 * window
    assert sorted(from_file, key=lambda r: r.ts_s) == local


def test_ring_without_directory_is_memory_only(tmp_path):
    c = Collector(3)
    for i in range(10):
        c.append(rec(i))
    assert [r.tokens_out for r in c.merged()] == [7, 8, 9]
    assert c.rings() == []


def test_two_workers_merge_exactly(tmp_path):
    a = Collector(10, str(tmp_path), pid=lambda: FAKE_PID_A)
    b = Collector(10, str(tmp_path), pid=lambda: FAKE_PID_B)
    for i in range(7):
        a.append(rec(i, "/api/chat"))
    for i in range(100, 125):  # b wraps around: keeps 115..124
        b.append(rec(i, "/api/generate"))
    want = sorted([rec(i, "/api/chat") for i in range(7)] + [rec(i, "/api/generate") for i in range(115, 125)],
                  key=lambda r: r.ts_s)
    assert sorted(a.merged(), key=lambda r: r.ts_s) == want
    assert sorted(b.merged(), key=lambda r: r.ts_s) == want
    assert {r.pid for r in a.rings()} == {FAKE_PID_A, FAKE_PID_B}


def test_half_written_slot_is_ignored(tmp_path):
    a = Collector(4, str(tmp_path), pid=lambda: FAKE_PID_A)
    for i in range(3):
        a.append(rec(i))
    path = tmp_path / f"window_{FAKE_PID_A}.ring"
    data = bytearray(path.read_bytes())
    off = _HEADER_SIZE + 1 * _SLOT_SIZE  # slot of record #2: bump its leading seq only
    data[off] = (data[off] + 7) % 256
    path.write_bytes(bytes(data))
    _, recs = read_ring_file(str(path))
    assert sorted(r.tokens_out for r in recs) == [0, 2]


def test_foreign_and_vanished_files_do_not_break_merge(tmp_path):
    a = Collector(4, str(tmp_path), pid=lambda: FAKE_PID_A)
    a.append(rec(1))
    (tmp_path / "window_123.ring").write_bytes(b"garbage")
    (tmp_path / "counter_123.db").write_bytes(b"\0" * 16)
    b = Collector(4, str(tmp_path), pid=lambda: FAKE_PID_B)
    assert [r.tokens_out for r in b.merged()] == [1]


def test_pid_change_reopens_and_forgets_parent_records(tmp_path):
    pid = [FAKE_PID_A]
    c = Collector(5, str(tmp_path), pid=lambda: pid[0])
    c.append(rec(1))
    pid[0] = FAKE_PID_B  # as after a fork
    c.append(rec(2))
    assert [r.tokens_out for r in c.local()] == [2]
    assert (tmp_path / f"window_{FAKE_PID_B}.ring").exists()
    assert sorted(r.tokens_out for r in c.merged()) == [1, 2]  # parent's file still counts


def test_dead_worker_files_are_bounded(tmp_path):
    for k in range(12):
        Collector(2, str(tmp_path), pid=lambda k=k: 3_999_100 + k, keep_dead_files=3)
    rings = [n for n in os.listdir(tmp_path) if n.startswith("window_")]
    assert len(rings) <= 4  # 3 dead ones kept + the newest


def test_one_store_the_ring_reads_back_what_was_appended(tmp_path):
    for directory in (None, str(tmp_path)):
        c = Collector(4, directory, pid=lambda: FAKE_PID_A)
        assert c.local() == []
        appended = [rec(i) for i in range(6)]
        for r in appended:
            c.append(r)
        assert c.local() == appended[-4:]  # oldest first, equal to the records appended
        assert not hasattr(c, "_ring")  # no second copy of the window beside the ring
        c.close()
        assert c.local() == []


def test_forked_child_starts_an_empty_window_and_leaves_the_parents_alone():
    c = Collector(5)  # anonymous ring
    c.append(rec(1))
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        try:
            os.close(r)
            before = [x.tokens_out for x in c.local()]
            c.append(rec(2))
            os.write(w, repr((before, [x.tokens_out for x in c.local()])).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        got = fh.read()
    os.waitpid(child, 0)
    assert got == repr(([], [2]))
    assert [x.tokens_out for x in c.local()] == [1]
