"""PsStore: fixed-size bytes shared through one file under flock (memory without a directory)."""

from __future__ import annotations

import os

import pytest

from bridge.ps_store import PsStore

HEADER = b"TESTHDR1"
SIZE = 256


def write(store: PsStore, offset: int, data: bytes) -> None:
    with store.locked(exclusive=True) as io:
        assert io is not None
        io.write(offset, data)


def read(store: PsStore, offset: int, size: int) -> bytes:
    with store.locked(exclusive=False) as io:
        assert io is not None
        return io.read(offset, size)


@pytest.mark.parametrize("in_file", [True, False])
def test_a_new_store_is_the_header_then_zeros(tmp_path, in_file):
    store = PsStore(str(tmp_path) if in_file else None, "t.bin", size=SIZE, header=HEADER)
    assert store.path == (str(tmp_path / "t.bin") if in_file else None)
    assert read(store, 0, SIZE) == (HEADER if in_file else b"").ljust(SIZE, b"\0")
    write(store, 100, b"abc")
    assert read(store, 99, 5) == b"\0abc\0"


def test_two_stores_on_one_file_share_bytes_and_the_file_keeps_its_size(tmp_path):
    a = PsStore(str(tmp_path), "t.bin", size=SIZE, header=HEADER)
    b = PsStore(str(tmp_path), "t.bin", size=SIZE, header=HEADER)
    write(a, 64, b"from-a")
    assert read(b, 64, 6) == b"from-a"
    assert os.path.getsize(tmp_path / "t.bin") == SIZE


@pytest.mark.parametrize("content", [b"garbage" * 10, HEADER.ljust(SIZE + 1, b"x"), b"OTHERHDR".ljust(SIZE, b"y")])
def test_a_file_of_another_layout_is_reset(tmp_path, content):
    (tmp_path / "t.bin").write_bytes(content)
    store = PsStore(str(tmp_path), "t.bin", size=SIZE, header=HEADER)
    assert read(store, 0, SIZE) == HEADER.ljust(SIZE, b"\0")
    assert (tmp_path / "t.bin").read_bytes() == HEADER.ljust(SIZE, b"\0")


def test_a_file_with_the_right_header_and_size_is_kept(tmp_path):
    content = HEADER.ljust(SIZE, b"z")
    (tmp_path / "t.bin").write_bytes(content)
    assert read(PsStore(str(tmp_path), "t.bin", size=SIZE, header=HEADER), 0, SIZE) == content


def test_the_directory_is_created(tmp_path):
    store = PsStore(str(tmp_path / "a" / "b"), "t.bin", size=SIZE, header=HEADER)
    write(store, 10, b"x")
    assert (tmp_path / "a" / "b" / "t.bin").stat().st_size == SIZE


def test_an_unusable_directory_falls_back_to_memory(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = PsStore(str(blocker / "sub"), "t.bin", size=SIZE, header=HEADER)
    write(store, 0, b"mem")
    assert read(store, 0, 3) == b"mem"
    assert "per worker" in caplog.text


def test_a_new_process_reopens_the_file(tmp_path):
    pid = [1]
    store = PsStore(str(tmp_path), "t.bin", size=SIZE, header=HEADER, pid=lambda: pid[0])
    opened = []
    open_file = store._open_file
    store._open_file = lambda: opened.append(1) or open_file()  # type: ignore[method-assign]
    write(store, 64, b"first")
    assert read(store, 64, 5) == b"first" and len(opened) == 1
    pid[0] = 2  # as after a fork: flock is per open file, so the child needs its own
    assert read(store, 64, 5) == b"first" and len(opened) == 2


def test_io_errors_inside_the_lock_are_logged_and_swallowed(tmp_path, caplog):
    store = PsStore(None, "t.bin", size=SIZE, header=HEADER)
    with store.locked(exclusive=True) as io:
        assert io is not None
        raise OSError("disk gone")
    assert "ps table I/O failed" in caplog.text
    write(store, 0, b"ok")  # the lock was released
    with pytest.raises(ValueError):  # other errors are not the store's to swallow
        with store.locked(exclusive=True):
            raise ValueError("bug")
    write(store, 0, b"ok")

