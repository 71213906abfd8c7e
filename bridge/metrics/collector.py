"""The recent window: a fixed-size ring of records per worker, shared between workers via files.

Each worker keeps its last ``window`` records in a ``collections.deque(maxlen=window)``. When a
directory is given, each record is also packed into this worker's memory-mapped ring file
``window_<pid>.ring`` (fixed size: a header plus ``window`` slots), so whichever worker answers
``/metrics/summary`` can merge every worker's window. Nothing grows with traffic: the deque and
the file are both fixed-size and overwrite their oldest entry.

Ring file layout (little endian)::

    header (128 bytes): magic "BRRING01", version, slot size, capacity, pid, records written,
                       start time, and the worker's last process snapshot (ts, rss, cpu, fds)
    slot (capacity times): seq (u64) | packed record | seq (u64)

A slot is written as "seq, record, seq"; a reader accepts a slot only when both copies of seq
agree and are non-zero, so it never returns a half-written record. Readers take no lock.
"""

from __future__ import annotations

import collections
import logging
import mmap
import os
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .records import PACKED_SIZE, Record, pack, unpack

__all__ = ["Collector", "RingInfo", "read_ring_file"]

log = logging.getLogger(__name__)

_MAGIC = b"BRRING01"
_VERSION = 1
_HEADER = struct.Struct("<8sIIIIQddQdI")  # magic ver slot cap pid written started snap_ts rss cpu fds
_HEADER_SIZE = 128
_SEQ = struct.Struct("<Q")
_SLOT_SIZE = _SEQ.size + PACKED_SIZE + _SEQ.size
_WRITTEN_OFFSET = struct.calcsize("<8sIIII")
_SNAP = struct.Struct("<dQdI")  # snap_ts rss cpu fds
_SNAP_OFFSET = struct.calcsize("<8sIIIIQd")
_NAME = re.compile(r"^window_(\d+)\.ring$")
assert _HEADER.size <= _HEADER_SIZE


@dataclass(frozen=True, slots=True)
class RingInfo:
    """What a ring file's header says about its worker."""

    pid: int
    written: int
    started_ts: float
    snapshot_ts: float
    rss_bytes: int
    cpu_seconds: float
    open_fds: int
    alive: bool


class Collector:
    """Per-worker ring of recent records; optionally mirrored into a shared ring file.

    ``pid`` is a callable so tests can pose as several workers in one process; it is also how a
    fork is noticed (a changed pid reopens the ring file and empties the inherited deque).
    """

    def __init__(
        self,
        window: int,
        directory: str | None = None,
        *,
        pid: Callable[[], int] = os.getpid,
        keep_dead_files: int = 8,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = int(window)
        self.directory = directory
        self._pid_fn = pid
        self._keep_dead = keep_dead_files
        self._lock = threading.Lock()
        self._ring: collections.deque[Record] = collections.deque(maxlen=self.window)
        self._pid = -1
        self._mm: mmap.mmap | None = None
        self._written = 0
        self._ensure_process()

    # -- writing ---------------------------------------------------------------------------

    def append(self, rec: Record) -> None:
        """Add one (normalised) record. O(1): a deque append and one slot write."""
        if self._pid_fn() != self._pid:
            self._ensure_process()
        packed = pack(rec) if self._mm is not None else b""
        with self._lock:
            self._ring.append(rec)
            mm = self._mm
            if mm is not None:
                n = self._written + 1
                off = _HEADER_SIZE + ((n - 1) % self.window) * _SLOT_SIZE
                seq = _SEQ.pack(n)
                mm[off : off + _SEQ.size] = seq
                mm[off + _SEQ.size : off + _SEQ.size + PACKED_SIZE] = packed
                mm[off + _SEQ.size + PACKED_SIZE : off + _SLOT_SIZE] = seq
                mm[_WRITTEN_OFFSET : _WRITTEN_OFFSET + 8] = seq
                self._written = n

    def write_snapshot(self, rss_bytes: int, cpu_seconds: float, open_fds: int) -> None:
        """Store this worker's process figures in its ring header (read by other workers)."""
        if self._pid_fn() != self._pid:
            self._ensure_process()
        with self._lock:
            if self._mm is not None:
                self._mm[_SNAP_OFFSET : _SNAP_OFFSET + _SNAP.size] = _SNAP.pack(
                    time.time(), max(0, int(rss_bytes)), float(cpu_seconds), max(0, int(open_fds))
                )

    # -- reading ---------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._pid

    def local(self) -> list[Record]:
        """This worker's window, oldest first."""
        with self._lock:
            return list(self._ring)

    def merged(self) -> list[Record]:
        """Every worker's window (this worker's from memory, the others' from their files)."""
        records = self.local()
        if self.directory is None:
            return records
        for path, pid in self._ring_paths():
            if pid == self._pid:
                continue
            try:
                _, recs = read_ring_file(path)
            except (OSError, ValueError):
                continue  # vanished or foreign file: skip it, never fail a summary
            records.extend(recs)
        return records

    def rings(self) -> list[RingInfo]:
        """Header information of every ring file in the directory (this worker's included)."""
        if self.directory is None:
            return []
        infos = []
        for path, _ in self._ring_paths():
            try:
                info, _ = read_ring_file(path, records=False)
            except (OSError, ValueError):
                continue
            infos.append(info)
        return infos

    def close(self) -> None:
        with self._lock:
            if self._mm is not None:
                self._mm.close()
                self._mm = None

    # -- internals -------------------------------------------------------------------------

    def _ring_paths(self) -> list[tuple[str, int]]:
        assert self.directory is not None
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        out = []
        for name in names:
            m = _NAME.match(name)
            if m:
                out.append((os.path.join(self.directory, name), int(m.group(1))))
        return out

    def _ensure_process(self) -> None:
        """(Re)open this process's ring file; called at start and after a fork."""
        pid = self._pid_fn()
        if self._pid != -1 and self._pid != pid:
            self._lock = threading.Lock()  # after a fork the inherited lock may be held forever
        with self._lock:
            if self._pid == pid:
                return
            if self._pid != -1:
                self._ring.clear()  # records of the parent process are not ours
            if self._mm is not None:
                try:
                    self._mm.close()
                except (OSError, ValueError):
                    pass
                self._mm = None
            self._pid = pid
            self._written = 0
            if self.directory is None:
                return
            try:
                self._mm = self._open_ring(pid)
            except OSError as exc:
                log.warning("metrics ring file unavailable, window is per worker: %s", exc)
                self._mm = None
        self._prune_dead()

    def _open_ring(self, pid: int) -> mmap.mmap:
        assert self.directory is not None
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"window_{pid}.ring")
        size = _HEADER_SIZE + self.window * _SLOT_SIZE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, 0)  # a reused pid must not inherit a dead worker's slots
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        mm[0:_HEADER.size] = _HEADER.pack(
            _MAGIC, _VERSION, _SLOT_SIZE, self.window, pid, 0, time.time(), 0.0, 0, 0.0, 0
        )
        return mm

    def _prune_dead(self) -> None:
        """Keep at most ``keep_dead_files`` ring files of dead workers (newest first)."""
        if self.directory is None:
            return
        dead = []
        for path, pid in self._ring_paths():
            if pid != self._pid and not _pid_alive(pid):
                try:
                    dead.append((os.path.getmtime(path), path))
                except OSError:
                    continue
        dead.sort(reverse=True)
        for _, path in dead[self._keep_dead :]:
            try:
                os.unlink(path)
            except OSError:
                pass


def read_ring_file(path: str, *, records: bool = True) -> tuple[RingInfo, list[Record]]:
    """Parse one ring file; only whole, consistent slots are returned. ValueError if foreign."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < _HEADER_SIZE:
        raise ValueError("short ring file")
    (magic, version, slot, cap, pid, written, started, snap_ts, rss, cpu, fds) = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION or slot != _SLOT_SIZE:
        raise ValueError("not a ring file of this version")
    info = RingInfo(pid, written, started, snap_ts, rss, cpu, fds, _pid_alive(pid))
    out: list[Record] = []
    if not records:
        return info, out
    cap = min(cap, (len(data) - _HEADER_SIZE) // _SLOT_SIZE)
    for i in range(cap):
        off = _HEADER_SIZE + i * _SLOT_SIZE
        (begin,) = _SEQ.unpack_from(data, off)
        if begin == 0:
            continue
        (end,) = _SEQ.unpack_from(data, off + _SEQ.size + PACKED_SIZE)
        if begin != end:
            continue  # being written right now
        try:
            out.append(unpack(data, off + _SEQ.size))
        except (struct.error, ValueError):
            continue
    return info, out


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
