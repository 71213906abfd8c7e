"""Push mode's election: one pusher per instance, whatever the worker count.

Every worker starts a pusher (create_app runs in each worker, after gevent has patched it); they
elect one with an exclusive, non-blocking ``fcntl.flock`` on ``push.lock`` in the metrics
directory. The holder pushes; the others retry the lock once per interval, so when the holder dies
(the kernel drops its lock with its last file descriptor) another worker takes over within one
interval. The lock file says who holds it: ``<pid>`` while pushing periodically, ``final <pid>``
once the holder is on its way out (see :meth:`PushLock.take_for_last_push`).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable, Mapping

__all__ = ["FINAL_LOCK_WAIT_S", "LOCK_NAME", "PushLock"]

# One logger for push mode, whichever module of it logs.
log = logging.getLogger("bridge.metrics.push")

#: The election lock, beside the metric files (MultiProcessCollector only reads ``*.db``).
LOCK_NAME = "push.lock"
#: At exit, a worker waits at most the push timeout plus this for a leaving sibling's last push.
FINAL_LOCK_WAIT_S = 2.0


class PushLock:
    """The instance's push lock, ``LOCK_NAME`` in ``lock_dir``; ``None`` means a single process,
    which always holds it. ``announce()`` gives the fields logged when this worker takes it."""

    def __init__(self, lock_dir: str | None, *, announce: Callable[[], Mapping[str, object]]) -> None:
        self.path = os.path.join(lock_dir, LOCK_NAME) if lock_dir else None
        self._announce = announce
        self._fd: int | None = None

    @property
    def holding(self) -> bool:
        return self.path is None or self._fd is not None

    def try_acquire(self) -> bool:
        """Take the instance's push lock if nobody holds it (never waits)."""
        path = self.path
        if path is None or self._fd is not None:
            return True
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.debug("push lock %s: %s", path, exc.strerror)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                log.debug("push lock %s: %s", path, exc.strerror)
            return False
        self._fd = fd
        self.mark("")  # who pushes, for people looking at the directory
        log.info("this worker pushes the instance's metrics", extra=self._announce())
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def take_for_last_push(self, wait_s: float) -> bool:
        """Take the lock for a last push, marked ``final``. When a sibling holds it, wait (at most
        ``wait_s``) only while that sibling is leaving too, i.e. has marked the file ``final``."""
        deadline = time.monotonic() + wait_s
        while not self.try_acquire():
            if not self._holder_is_leaving() or time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        self.mark("final")
        return True

    def _holder_is_leaving(self) -> bool:
        if self.path is None:
            return False
        try:
            with open(self.path) as fh:
                return fh.read(16).startswith("final")
        except OSError:
            return False

    def mark(self, state: str) -> None:
        """Write ``<state> <pid>`` into the lock file while holding it (nothing otherwise)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{state} {os.getpid()}\n".lstrip().encode(), 0)
        except OSError:
            pass
