"""Where the ``/api/ps`` table's bytes live: one fixed-size file shared by the instance's processes, or memory.

:class:`PsStore` hands out a reader/writer of ``size`` bytes under a lock: the thread lock, then
``flock`` on the file (shared to read, exclusive to write), so every gunicorn worker sees the same
bytes. The file is reopened after a fork (``flock`` is per open file) and reset to zeros behind
``header`` when it is new or was written with another layout. Without a directory, or when the
file cannot be opened, the bytes live in this process's memory. Storage errors are logged and the
operation skipped: ``/api/ps`` is never worth a failed chat. What the bytes mean is ps_table.py's.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable

__all__ = ["PsStore", "StoreIO"]

log = logging.getLogger("bridge.ps_table")


class StoreIO:
    """Reads and writes at byte offsets of the store (valid while its lock is held)."""

    def read(self, offset: int, size: int) -> bytes:
        raise NotImplementedError

    def write(self, offset: int, data: bytes) -> None:
        raise NotImplementedError


class PsStore:
    """``size`` bytes at ``directory``/``file_name`` starting with ``header`` (memory when no directory)."""

    def __init__(self, directory: str | None, file_name: str, *, size: int, header: bytes,
                 pid: Callable[[], int] = os.getpid) -> None:
        self.directory = directory
        self.path = os.path.join(directory, file_name) if directory else None
        self._size = size
        self._header = header
        self._pid_fn = pid
        self._pid = -1
        self._fd: int | None = None
        self._memory: bytearray | None = None
        self._lock = threading.Lock()

    def locked(self, *, exclusive: bool) -> _Locked:
        """``with store.locked(exclusive=...) as io``: ``io`` is None when the store cannot be used."""
        return _Locked(self, exclusive)

    def peek(self, offset: int, size: int) -> bytes | None:
        """``size`` bytes at ``offset`` without taking the lock (for a value written in one
        aligned store, e.g. a counter); None when the store cannot be used."""
        io = self._open()
        return None if io is None else io.read(offset, size)

    def _open(self) -> StoreIO | None:
        """This process's handle on the store (reopened after a fork: flock is per open file)."""
        pid = self._pid_fn()
        if pid != self._pid:
            if self._pid != -1:
                self._lock = threading.Lock()  # an inherited lock may be held by a thread that is gone
            if self._fd is not None:
                try:
                    os.close(self._fd)
                except OSError:
                    pass
            self._fd, self._memory, self._pid = None, None, pid
            if self.path is None:
                self._memory = bytearray(self._size)
            else:
                try:
                    self._fd = self._open_file()
                except OSError as exc:
                    log.warning("ps table file unavailable, /api/ps is per worker: %s", exc)
                    self._memory = bytearray(self._size)
        if self._fd is not None:
            return _FileIO(self._fd)
        return _MemoryIO(self._memory) if self._memory is not None else None

    def _open_file(self) -> int:
        assert self.directory is not None and self.path is not None
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                header = os.pread(fd, len(self._header), 0)
                if header != self._header or os.fstat(fd).st_size != self._size:
                    # New, or written by another layout: start empty (nothing in it outlives a restart).
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, self._size)
                    os.pwrite(fd, self._header, 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        return fd


class _FileIO(StoreIO):
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, offset: int, size: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        return data.ljust(size, b"\0")

    def write(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)


class _MemoryIO(StoreIO):
    def __init__(self, buf: bytearray) -> None:
        self.buf = buf

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self.buf[offset:offset + size])

    def write(self, offset: int, data: bytes) -> None:
        self.buf[offset:offset + len(data)] = data


class _Locked:
    """``with store.locked(...) as io``: the thread lock, then flock on the file (when there is one).

    ``io`` is None when the store cannot be used; any storage error is logged and the operation
    skipped: /api/ps is never worth a failed chat.
    """

    def __init__(self, store: PsStore, exclusive: bool) -> None:
        self.store, self.exclusive = store, exclusive
        self.fd: int | None = None
        self.held = False

    def __enter__(self) -> StoreIO | None:
        lock = self.store._lock
        lock.acquire()
        try:
            io = self.store._open()
            if isinstance(io, _FileIO):
                fcntl.flock(io.fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
                self.fd = io.fd
        except OSError as exc:
            log.warning("ps table unavailable: %s", exc)
            lock.release()
            return None
        self.lock, self.held = lock, True
        return io

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self.held:
            return False
        try:
            if self.fd is not None:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            self.lock.release()
        if exc_type is not None and issubclass(exc_type, OSError):
            log.warning("ps table I/O failed: %s", exc)
            return True
        return False
