"""Fold a dead worker's Prometheus files into one archive file per kind.

In multiprocess mode every worker that ever lived leaves ``counter_<pid>.db`` and
``histogram_<pid>.db`` behind (its totals must survive it), so a scrape reads more files after
every crash or ``max_requests`` recycle: 30 ``kill -9`` left 110 files and took a scrape from 4 to
77 ms. The master folds a dead worker's values into ``<kind>_archive.db`` (same format, so
prometheus-client's collector reads it like any other file) and deletes its files: totals stay
exact and the directory holds at most one file per kind per live worker, plus the archives.

Scrapes and folds exclude each other with ``flock`` on one lock file: a scrape that listed a file
the fold then deleted would fail, and one that saw both the archive and the dead file would count
twice. Scrapes share the lock; a fold (in the master, rare, milliseconds) takes it alone.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import struct
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from prometheus_client.mmap_dict import MmapedDict

__all__ = ["ARCHIVE_PID", "fold_dead_worker", "scrape_lock"]

ARCHIVE_PID = "archive"
_LOCK_NAME = "fold.lock"
_FILE = re.compile(r"^(?P<kind>[a-z]+(?:_[a-z]+)?)_(?P<pid>\d+)\.db$")
# How a kind's values combine. Kinds not listed (live gauges, gauge "all" with its pid label) die
# with their worker: prometheus-client's mark_process_dead removes the live ones.
_ADD = {"counter", "histogram", "summary", "gauge_sum"}
_MAX = {"gauge_max"}
_MIN = {"gauge_min"}
_LATEST = {"gauge_mostrecent"}


class _MetricFile(Protocol):
    """The part of prometheus-client's ``MmapedDict`` (unannotated upstream) used here."""

    def read_all_values(self) -> Iterable[tuple[str, float, float]]: ...

    def write_value(self, key: str, value: float, timestamp: float) -> None: ...

    def close(self) -> None: ...


def _open(path: str) -> _MetricFile:
    return MmapedDict(path)  # type: ignore[no-untyped-call]  # prometheus_client leaves MmapedDict unannotated


def _read_file(path: str) -> list[tuple[str, float, float, int]]:
    """``(key, value, timestamp, offset)`` of every value in a metric file."""
    return list(MmapedDict.read_all_values_from_file(path))  # type: ignore[no-untyped-call]  # as above


@contextmanager
def _locked(directory: str, mode: int) -> Iterator[None]:
    fd = os.open(os.path.join(directory, _LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


def scrape_lock(directory: str) -> AbstractContextManager[None]:
    """Shared lock held while a scrape lists and reads the directory."""
    return _locked(directory, fcntl.LOCK_SH)


def fold_dead_worker(directory: str, pid: int) -> int:
    """Merge ``pid``'s metric files into the archives and delete them; returns files removed."""
    removed = 0
    with _locked(directory, fcntl.LOCK_EX):
        for path in glob.glob(os.path.join(directory, f"*_{int(pid)}.db")):
            match = _FILE.match(os.path.basename(path))
            if match is None:
                continue
            kind = match["kind"]
            if kind in _ADD | _MAX | _MIN | _LATEST:
                _merge_into(os.path.join(directory, f"{kind}_{ARCHIVE_PID}.db"), path, kind)
            os.unlink(path)
            removed += 1
    return removed


def _merge_into(archive_path: str, dead_path: str, kind: str) -> None:
    try:
        dead = _read_file(dead_path)
    except (struct.error, RuntimeError, ValueError):
        # A worker killed while creating its file leaves it empty or short: nothing was counted
        # in it, and prometheus-client's own reader would fail every scrape on it. Drop it.
        return
    archive = _open(archive_path)
    try:
        existing = {key: (value, ts) for key, value, ts in archive.read_all_values()}
        for key, value, ts, _ in dead:
            if key not in existing:
                archive.write_value(key, value, ts)
                continue
            old, old_ts = existing[key]
            if kind in _ADD:
                archive.write_value(key, old + value, max(old_ts, ts))
            elif kind in _MAX:
                archive.write_value(key, max(old, value), max(old_ts, ts))
            elif kind in _MIN:
                archive.write_value(key, min(old, value), max(old_ts, ts))
            elif ts >= old_ts:  # most recent wins
                archive.write_value(key, value, ts)
    finally:
        archive.close()
