"""The ring format (bridge/metrics/ring.py): layout, file creation, header reads."""

from __future__ import annotations

import os

import pytest

from bridge.metrics import ring
from bridge.metrics.collector import Collector, read_ring_file
from bridge.metrics.records import Record, pack

FAKE_PID = 3_999_401  # above any real pid_max default: looks dead


def rec(i: int) -> Record:
    return Record(ts_s=1000.0 + i, route="/api/chat", method="POST", status=200, duration_s=0.5,
                  model="m", tokens_out=i).normalised()


def test_anonymous_and_file_rings_have_one_layout(tmp_path):
    anon = ring.new_anonymous(3, FAKE_PID)
    mapped = ring.new_file(str(tmp_path), 3, FAKE_PID)
    for n in range(1, 6):
        ring.write_record(anon, 3, n, pack(rec(n)))
        ring.write_record(mapped, 3, n, pack(rec(n)))
    assert len(anon) == len(mapped) == ring.HEADER_SIZE + 3 * ring.SLOT_SIZE
    assert anon[ring.HEADER_SIZE :] == mapped[ring.HEADER_SIZE :]
    for mm in (anon, mapped):
        cap, head = ring.read_header(mm, len(mm))
        assert (cap, head.pid, head.written) == (3, FAKE_PID, 5)
        assert ring.read_records(mm, cap, head.written) == [rec(3), rec(4), rec(5)]  # oldest first
    mapped.flush()
    info, recs = read_ring_file(str(tmp_path / f"window_{FAKE_PID}.ring"))
    assert (info.pid, info.written, info.alive, recs) == (FAKE_PID, 5, False, [rec(3), rec(4), rec(5)])
    anon.close()
    mapped.close()


def test_a_new_ring_replaces_the_file_and_never_truncates_a_mapped_one(tmp_path):
    path = tmp_path / f"window_{FAKE_PID}.ring"
    first = ring.new_file(str(tmp_path), 4, FAKE_PID)
    ring.write_record(first, 4, 1, pack(rec(1)))
    with open(path, "rb") as fh:  # a reader holding the old file open
        old_inode = os.fstat(fh.fileno()).st_ino
        second = ring.new_file(str(tmp_path), 4, FAKE_PID)  # the same pid again (reused)
        assert os.fstat(fh.fileno()).st_size == ring.HEADER_SIZE + 4 * ring.SLOT_SIZE  # not truncated
    assert os.stat(path).st_ino != old_inode
    assert read_ring_file(str(path))[1] == []  # the new ring starts empty
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []
    first.close()
    second.close()


def test_foreign_short_and_truncated_files_are_refused(tmp_path):
    c = Collector(4, str(tmp_path), pid=lambda: FAKE_PID)
    c.append(rec(1))
    c.close()
    path = tmp_path / f"window_{FAKE_PID}.ring"
    data = path.read_bytes()
    for bad in (b"", data[:64], data[: ring.HEADER_SIZE + ring.SLOT_SIZE], b"X" * len(data)):
        path.write_bytes(bad)
        with pytest.raises(ValueError):
            read_ring_file(str(path))


def test_header_is_reread_until_two_copies_agree():
    mm = ring.new_anonymous(2, FAKE_PID)
    ring.write_record(mm, 2, 1, pack(rec(1)))
    ring.write_record(mm, 2, 2, pack(rec(2)))
    data = bytearray(mm[:])

    class Moving:  # the writer publishes record 2 just after the first copy of the header
        reads = 0

        def __getitem__(self, index: slice) -> bytes:
            self.reads += 1
            out = bytes(data[index])
            if self.reads == 1:
                data[ring.WRITTEN_OFFSET : ring.WRITTEN_OFFSET + 8] = (2).to_bytes(8, "little")
            return out

    data[ring.WRITTEN_OFFSET : ring.WRITTEN_OFFSET + 8] = (1).to_bytes(8, "little")
    buf = Moving()
    _, head = ring.read_header(buf, len(data))
    assert head.written == 2 and buf.reads == 3
    mm.close()


def test_half_made_files_of_dead_workers_are_removed(tmp_path):
    (tmp_path / f".window_{FAKE_PID}.abc123.tmp").write_bytes(b"\0" * 10)  # a crash mid-creation
    live = tmp_path / f".window_{os.getpid()}.def456.tmp"
    live.write_bytes(b"\0" * 10)  # being made right now by a live worker
    Collector(2, str(tmp_path), pid=lambda: FAKE_PID + 1)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".tmp")) == [live.name]
