"""This process's own figures (RSS, CPU seconds, open fds) and the host's, read with psutil when asked.

Nothing here runs in the background: the scrape handler (and, at most every few seconds, the
request path) calls :func:`process_snapshot`; the summary's system section and the ``bridge_host_*``
gauges call :func:`host_snapshot`, which reads the host at most once a second per worker.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil

__all__ = ["HOST_SAMPLE_S", "HostSnapshot", "ProcessSnapshot", "host_snapshot", "process_snapshot"]

_proc_cache: dict[int, Any] = {}  # pid -> psutil.Process (psutil is untyped)


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    pid: int
    rss_bytes: int
    cpu_seconds: float
    open_fds: int
    threads: int
    start_time_s: float
    ts_s: float

    def as_dict(self) -> dict[str, object]:
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


# -- the host -------------------------------------------------------------------------------------

#: A worker reads the host's figures at most this often; calls in between get the cached sample.
HOST_SAMPLE_S = 1.0


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """The host's figures at ``ts_s`` (None where the platform does not tell). Base units."""

    ts_s: float
    cpu_count: int | None = None
    cpu_percent: float | None = None          # all CPUs, since the previous sample of this worker
    load_1m: float | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_available_bytes: int | None = None
    memory_percent: float | None = None
    disk_path: str = ""
    disk_total_bytes: int | None = None
    disk_used_bytes: int | None = None
    disk_free_bytes: int | None = None
    disk_percent: float | None = None
    net: dict[str, int] = field(default_factory=dict)   # bytes_sent, bytes_recv, packets_*, errin/out, dropin/out
    disk_io: dict[str, int] = field(default_factory=dict)  # read/write bytes, counts, times (ms)

    def as_dict(self) -> dict[str, object]:
        return {
            "cpu": {"percent": self.cpu_percent, "count": self.cpu_count, "load_1m": self.load_1m},
            "memory": {"percent": self.memory_percent, "used_bytes": self.memory_used_bytes,
                       "available_bytes": self.memory_available_bytes, "total_bytes": self.memory_total_bytes},
            "disk": {"path": self.disk_path, "percent": self.disk_percent, "used_bytes": self.disk_used_bytes,
                     "free_bytes": self.disk_free_bytes, "total_bytes": self.disk_total_bytes},
            "network": dict(self.net),
            "disk_io": dict(self.disk_io),
            "sampled_at": self.ts_s,
        }


_NET_FIELDS = ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "errin", "errout", "dropin", "dropout")
_DISK_IO_FIELDS = ("read_bytes", "write_bytes", "read_count", "write_count", "read_time", "write_time")


class _CpuTimes(Protocol):
    """``psutil.cpu_times()``: a named tuple of seconds (``guest``, ``iowait``... depend on the platform)."""

    idle: float

    def __iter__(self) -> Iterator[float]: ...


class _HostSampler:
    """One cached host sample per worker process, refreshed at most every ``HOST_SAMPLE_S``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._at = 0.0  # monotonic time of the cached sample
        self._last: HostSnapshot | None = None
        self._cpu_times: _CpuTimes | None = None  # psutil.cpu_times() of the previous sample, for the CPU percent

    def get(self, *, max_age_s: float = HOST_SAMPLE_S) -> HostSnapshot:
        with self._lock:
            now = time.monotonic()
            if self._pid != os.getpid():  # forked: the parent's sample and CPU baseline are not ours
                self._pid, self._last, self._cpu_times = os.getpid(), None, None
            if self._last is not None and now - self._at < max_age_s:
                return self._last
            self._last, self._at = self._sample(), now
            return self._last

    def _sample(self) -> HostSnapshot:
        now = time.time()
        # HostSnapshot's keyword arguments; what the platform does not tell stays at its default.
        values: dict[str, Any] = {"ts_s": now, "cpu_count": psutil.cpu_count() or None}
        values["cpu_percent"] = self._cpu_percent()
        try:
            values["load_1m"] = round(os.getloadavg()[0], 3)
        except (AttributeError, OSError):
            pass
        try:
            mem = psutil.virtual_memory()
            values.update(memory_total_bytes=int(mem.total), memory_used_bytes=int(mem.total - mem.available),
                          memory_available_bytes=int(mem.available), memory_percent=float(mem.percent))
        except (psutil.Error, OSError):
            pass
        path = os.getcwd()
        values["disk_path"] = path
        try:
            disk = psutil.disk_usage(path)
            values.update(disk_total_bytes=int(disk.total), disk_used_bytes=int(disk.used),
                          disk_free_bytes=int(disk.free), disk_percent=float(disk.percent))
        except (psutil.Error, OSError):
            pass
        values["net"] = _fields(_safe(psutil.net_io_counters), _NET_FIELDS)
        values["disk_io"] = _fields(_safe(psutil.disk_io_counters), _DISK_IO_FIELDS)
        return HostSnapshot(**values)

    def _cpu_percent(self) -> float | None:
        """Busy share of all CPUs since this worker's previous sample (since boot the first time)."""
        try:
            times = psutil.cpu_times()
        except (psutil.Error, OSError):
            return None
        previous, self._cpu_times = self._cpu_times, times
        total, idle = _cpu_total_idle(times)
        if previous is not None:
            before_total, before_idle = _cpu_total_idle(previous)
            total, idle = total - before_total, idle - before_idle
        if total <= 0:
            return 0.0
        return round(min(100.0, max(0.0, 100.0 * (total - idle) / total)), 2)


def _cpu_total_idle(times: _CpuTimes) -> tuple[float, float]:
    # Linux counts guest time inside user/nice as well: leave it out of the total once.
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total, times.idle + getattr(times, "iowait", 0.0)


def _safe(read: Callable[[], object]) -> object | None:
    try:
        return read()
    except (psutil.Error, OSError, RuntimeError):
        return None


def _fields(counters: object, names: tuple[str, ...]) -> dict[str, int]:
    if counters is None:
        return {}
    return {name: int(getattr(counters, name)) for name in names if getattr(counters, name, None) is not None}


_host = _HostSampler()


def host_snapshot(*, max_age_s: float = HOST_SAMPLE_S) -> HostSnapshot:
    """The host's CPU, memory, working-directory disk, network and disk I/O; cached per worker."""
    return _host.get(max_age_s=max_age_s)
