"""The recent window: a fixed-size ring of records per worker, shared between workers via files.

Each worker keeps its last ``window`` records in ONE store: a ring in a memory map (the format,
its writer and its lock-free reader are in :mod:`bridge.metrics.ring`). With a directory the map
is this worker's ring file ``window_<pid>.ring``, so whichever worker answers ``/metrics/summary``
can merge every worker's window; without one it is anonymous memory with the same layout, so
there is a single code path. Nothing grows with traffic: the ring is fixed-size and overwrites
its oldest record.

The design card's shape was "thread-safe, memory-bounded, deque-based": the ring is still bounded
and thread-safe (appends take a lock; reads need none), but the ``collections.deque`` that used to
sit beside the ring is gone. Every record was stored twice (once as objects in the deque, once
packed in the file), and the summary read the other workers' windows from their rings anyway;
now this worker's window is read from its own ring the same way, a record read back equal to the
(normalised) record appended.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import re
from collections.abc import Callable

from . import ring
from .os_lock import os_lock
from .records import Record, pack
from .ring import HEADER_SIZE as _HEADER_SIZE  # noqa: F401 - the ring layout, re-exported for tests
from .ring import SLOT_SIZE as _SLOT_SIZE  # noqa: F401
from .ring import RingInfo, read_ring_file

__all__ = ["Collector", "RingInfo", "read_ring_file"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^window_(\d+)\.ring$")
_TMP_NAME = re.compile(r"^\.window_(\d+)\..*\.tmp$")  # a ring file being made (or left by a crash)


class Collector:
    """Per-worker ring of recent records, in this worker's ring file or in anonymous memory.

    ``pid`` is a callable so tests can pose as several workers in one process; it is also how a
    fork is noticed (a changed pid starts a new, empty ring: the parent's records are not ours).
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
        self._lock = os_lock()  # appends only write the map: nothing under it yields
        self._pid = -1
        self._mm: mmap.mmap | None = None
        self._written = 0
        self._ensure_process()

    # -- writing ---------------------------------------------------------------------------

    def append(self, rec: Record) -> None:
        """Add one (normalised) record. O(1): one slot write in the ring."""
        if self._pid_fn() != self._pid:
            self._ensure_process()
        packed = pack(rec)
        with self._lock:
            mm = self._mm
            if mm is not None:
                n = self._written + 1
                ring.write_record(mm, self.window, n, packed)
                self._written = n

    def write_snapshot(self, rss_bytes: int, cpu_seconds: float, open_fds: int) -> None:
        """Store this worker's process figures in its ring header (read by other workers)."""
        if self._pid_fn() != self._pid:
            self._ensure_process()
        with self._lock:
            if self._mm is not None:
                ring.write_snapshot(self._mm, rss_bytes, cpu_seconds, open_fds)

    # -- reading ---------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._pid

    def local(self) -> list[Record]:
        """This worker's window, oldest first (read from its ring without the writers' lock)."""
        if self._pid_fn() != self._pid:
            self._ensure_process()
        mm = self._mm
        if mm is None:
            return []
        try:
            cap, head = ring.read_header(mm, len(mm))
            return ring.read_records(mm, cap, head.written)
        except ValueError:  # closed meanwhile
            return []

    def merged(self) -> list[Record]:
        """Every worker's window (this worker's own ring, then the others' files)."""
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

    def _ring_paths(self, pattern: re.Pattern[str] = _NAME) -> list[tuple[str, int]]:
        assert self.directory is not None
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        out = []
        for name in names:
            m = pattern.match(name)
            if m:
                out.append((os.path.join(self.directory, name), int(m.group(1))))
        return out

    def _ensure_process(self) -> None:
        """Start this process's ring; called at start and after a fork."""
        pid = self._pid_fn()
        if self._pid != -1 and self._pid != pid:
            self._lock = os_lock()  # after a fork the inherited lock may be held forever
        with self._lock:
            if self._pid == pid:
                return
            old, self._mm = self._mm, None
            if old is not None:
                with contextlib.suppress(OSError, ValueError, BufferError):
                    old.close()  # the parent's ring stays the parent's (its file, or its memory)
            self._pid = pid
            self._written = 0
            self._mm = self._open_ring(pid)
        self._prune_dead()

    def _open_ring(self, pid: int) -> mmap.mmap | None:
        if self.directory is not None:
            try:
                return ring.new_file(self.directory, self.window, pid)
            except OSError as exc:
                log.warning("metrics ring file unavailable, window is per worker: %s", exc)
        try:
            return ring.new_anonymous(self.window, pid)
        except OSError as exc:  # pragma: no cover - out of memory
            log.warning("metrics ring unavailable, no recent window: %s", exc)
            return None

    def _prune_dead(self) -> None:
        """Keep at most ``keep_dead_files`` ring files of dead workers (newest first); delete the
        half-made ones dead workers left behind."""
        if self.directory is None:
            return
        dead = []
        for path, pid in self._ring_paths():
            if pid != self._pid and not ring.pid_alive(pid):
                try:
                    dead.append((os.path.getmtime(path), path))
                except OSError:
                    continue
        dead.sort(reverse=True)
        stale = [path for _, path in dead[self._keep_dead :]]
        stale += [path for path, pid in self._ring_paths(_TMP_NAME) if not ring.pid_alive(pid)]
        for path in stale:
            with contextlib.suppress(OSError):
                os.unlink(path)
