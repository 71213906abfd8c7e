"""Prometheus values in per-process files, with one lock and one fork check per batch of updates.

In multiprocess mode prometheus_client keeps every value in a ``<type>_<pid>.db`` file that each
scrape merges, and each update takes a process-wide lock and checks the pid (a fork must not write
into the parent's file): about 1 us per update, of which the write itself is 0.2 us. A finished
request makes 10-20 updates, so that overhead was most of the monitoring cost per request.

:class:`MmapValue` stores the same values in the same files (prometheus_client's reader, the
archive of dead workers and every scrape are unchanged), and :func:`add_all` applies one request's
updates under one lock and one pid check. Installed by :func:`install` before the first metric is
built; without ``PROMETHEUS_MULTIPROC_DIR`` prometheus_client's in-memory value stays in place.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from .os_lock import os_lock

__all__ = ["MmapValue", "Value", "add_all", "install"]


class Value(Protocol):
    """What a metric child holds: prometheus_client's in-memory value or :class:`MmapValue`."""

    def inc(self, amount: float) -> None: ...


class _File(Protocol):
    # MmapedDict's own fields (prometheus-client is pinned; tests/metrics/test_mmap_value.py reads
    # the files back with its reader): the mapping, remapped when the file grows, and each key's
    # fixed offset.
    _m: Any
    _positions: dict[str, int]

    def read_value(self, key: str) -> tuple[float, float]: ...
    def write_value(self, key: str, value: float, timestamp: float) -> None: ...
    def close(self) -> None: ...


_open_file = cast(Callable[[str], _File], MmapedDict)  # prometheus_client's file, unannotated there
_pack_value = struct.Struct("d").pack  # the slot's first double, native order as MmapedDict writes it


class _ProcessFiles:
    """This process's value files, one per metric type (and gauge mode), reopened after a fork."""

    def __init__(self) -> None:
        self.lock = os_lock()  # nothing under it yields: mmap writes, opening a local file
        self.pid = os.getpid()
        self.forked = False  # set in a forked child (os.register_at_fork): no getpid per batch
        self.by_prefix: dict[str, _File] = {}
        self.values: list[MmapValue] = []  # bounded: one per labelled child, label values are closed sets

    def file(self, prefix: str) -> _File:
        found = self.by_prefix.get(prefix)
        if found is None:
            directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
            found = self.by_prefix[prefix] = _open_file(os.path.join(directory, f"{prefix}_{self.pid}.db"))
        return found

    def check_fork(self) -> None:
        """Called under the lock before any write: a forked child starts its own files from its
        own values (as prometheus_client does), never writing into its parent's."""
        if not self.forked:
            return
        self.forked = False
        self.pid = os.getpid()
        for old in self.by_prefix.values():
            old.close()
        self.by_prefix.clear()
        for value in self.values:
            value.reopen()

    def after_fork_in_child(self) -> None:
        self.forked = True


_FILES = _ProcessFiles()
os.register_at_fork(after_in_child=_FILES.after_fork_in_child)


class MmapValue:
    """One float of one series, mirrored into this process's file on every change."""

    _multiprocess = True  # the marker prometheus_client's own file-backed value carries

    def __init__(self, typ: str, metric_name: str, name: str, labelnames: Iterable[str],
                 labelvalues: Iterable[str], help_text: str, multiprocess_mode: str = "",
                 **_: Any) -> None:
        self._prefix = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
        self._value = 0.0
        self._key: str = mmap_key(metric_name, name, list(labelnames), list(labelvalues), help_text)
        with _FILES.lock:
            _FILES.check_fork()
            self.reopen()
            _FILES.values.append(self)

    def reopen(self) -> None:
        """Point at this process's file and take the value stored there (0 for a new series)."""
        self._file = _FILES.file(self._prefix)
        self._value, _ = self._file.read_value(self._key)  # creates the slot: its offset is now fixed
        self._pos = self._file._positions[self._key]

    def add(self, amount: float) -> None:
        """Caller holds the lock and has checked for a fork. Writes only the value's 8 bytes (the
        timestamp beside it is only for gauges set with one) by slice assignment, as MmapedDict
        does, at the offset found once: a third of ``write_value``'s cost."""
        self._value += amount
        pos = self._pos
        self._file._m[pos:pos + 8] = _pack_value(self._value)

    def inc(self, amount: float) -> None:
        with _FILES.lock:
            _FILES.check_fork()
            self.add(amount)

    def set(self, value: float, timestamp: float | None = None) -> None:
        with _FILES.lock:
            _FILES.check_fork()
            self._value = value
            self._file.write_value(self._key, value, timestamp or 0.0)

    def get(self) -> float:
        with _FILES.lock:
            _FILES.check_fork()
            return self._value

    def set_exemplar(self, exemplar: object) -> None:
        """Exemplars are not stored in multiprocess mode."""

    def get_exemplar(self) -> None:
        return None


def add_all(updates: Iterable[tuple[Value, float]]) -> None:
    """Apply ``(value, amount)`` pairs: under one lock and one fork check when every value is an
    :class:`MmapValue`, one by one otherwise (prometheus_client's in-memory values)."""
    pending = updates if isinstance(updates, list) else list(updates)
    if all(type(value) is MmapValue for value, _ in pending):
        with _FILES.lock:
            _FILES.check_fork()
            for value, amount in pending:
                cast(MmapValue, value).add(amount)  # checked above
    else:
        for value, amount in pending:
            value.inc(amount)


def install() -> bool:
    """Use :class:`MmapValue` for every metric built from now on, when prometheus_client is in
    multiprocess mode. Idempotent; True when installed."""
    if values.ValueClass is MmapValue:
        return True
    if values.ValueClass is values.MutexValue:
        return False
    values.ValueClass = MmapValue
    return True
