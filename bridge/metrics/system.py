"""This process's own figures (RSS, CPU seconds, open fds), read with psutil when asked.

Nothing here runs in the background: the scrape handler (and, at most every few seconds, the
request path) calls :func:`process_snapshot`. Figures are the *process's*, never the host's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

try:  # psutil is a dependency; stay importable (figures become 0) if it is ever missing
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

__all__ = ["ProcessSnapshot", "process_snapshot"]

_proc_cache: dict[int, object] = {}


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    pid: int
    rss_bytes: int
    cpu_seconds: float
    open_fds: int
    threads: int
    start_time_s: float
    ts_s: float

    def as_dict(self) -> dict:
        return {
            "pid": self.pid,
            "rss_bytes": self.rss_bytes,
            "cpu_seconds": round(self.cpu_seconds, 3),
            "open_fds": self.open_fds,
            "threads": self.threads,
            "start_time": self.start_time_s,
            "uptime_s": round(max(0.0, self.ts_s - self.start_time_s), 3) if self.start_time_s else None,
        }


def process_snapshot() -> ProcessSnapshot:
    """RSS, user+system CPU seconds, open fds and threads of the calling process."""
    pid = os.getpid()
    now = time.time()
    if psutil is None:  # pragma: no cover
        return ProcessSnapshot(pid, 0, 0.0, 0, 0, 0.0, now)
    proc = _proc_cache.get(pid)
    if proc is None:
        _proc_cache.clear()  # after a fork the parent's handle is useless
        proc = _proc_cache[pid] = psutil.Process(pid)
    try:
        with proc.oneshot():
            rss = proc.memory_info().rss
            cpu = proc.cpu_times()
            try:
                fds = proc.num_fds()
            except (AttributeError, psutil.Error):  # not on Windows
                fds = 0
            threads = proc.num_threads()
            started = proc.create_time()
    except psutil.Error:
        return ProcessSnapshot(pid, 0, 0.0, 0, 0, 0.0, now)
    return ProcessSnapshot(pid, int(rss), float(cpu.user + cpu.system), int(fds), int(threads), float(started), now)
