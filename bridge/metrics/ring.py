"""The ring file format of the recent window: one writer per ring, lock-free readers (a seqlock).

A ring is a fixed-size memory map: a header plus ``capacity`` slots; record number ``n`` (1, 2, ...)
goes into slot ``(n - 1) % capacity``, overwriting record ``n - capacity``. Layout (little endian)::

    header (128 bytes): magic "BRRING01", version, slot size, capacity, pid, records written,
                       start time, and the worker's last process snapshot (ts, rss, cpu, fds)
    slot (capacity times): seq (u64) | packed record | seq (u64)

The writer (one per ring, under its collector's lock) stores, in this order: the slot's begin
seq ``n``, the packed record, the slot's end seq ``n``, then ``n`` as the header's records-written
count. A reader takes no lock, so it reads a slot in the opposite order: the END seq, then a copy
of the record bytes, then the BEGIN seq, and keeps the copy only when both equal the ``n`` it
expects. Were the writer anywhere inside the slot during the copy, the begin seq read afterwards
would already be the new number while the end seq read before was still the old one. (Reading in
the writer's order would accept a slot whose begin seq was read before the writer started and
whose end seq was read before it finished: a torn record.) Readers go through the header's
records-written count, re-read until two reads agree, so they return records oldest first.

The order argument needs the stores and the loads to stay in program order, which x86-64 (TSO)
guarantees; Python offers no fence for weaker memory models.

A ring file is created under a temporary name, sized, given its header and then renamed into
place: a file that readers may have mapped is never truncated (that would SIGBUS them), and no
reader ever sees a half-made header.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import tempfile
import time
from dataclasses import dataclass
from typing import Protocol

from .records import PACKED_SIZE, Record, unpack

__all__ = ["HEADER_SIZE", "SLOT_SIZE", "RingInfo", "new_anonymous", "new_file", "pid_alive",
           "read_header", "read_records", "read_ring_file", "write_record", "write_snapshot"]

MAGIC = b"BRRING01"
VERSION = 1
HEADER = struct.Struct("<8sIIIIQddQdI")  # magic ver slot cap pid written started snap_ts rss cpu fds
HEADER_SIZE = 128
SEQ = struct.Struct("<Q")
SLOT_SIZE = SEQ.size + PACKED_SIZE + SEQ.size
WRITTEN_OFFSET = struct.calcsize("<8sIIII")
SNAP = struct.Struct("<dQdI")  # snap_ts rss cpu fds
SNAP_OFFSET = struct.calcsize("<8sIIIIQd")
_REC = SEQ.size  # offset of the record in a slot
_END = SEQ.size + PACKED_SIZE  # offset of the end seq in a slot
assert HEADER.size <= HEADER_SIZE


class Buffer(Protocol):
    """What a reader needs of a ring: slices that copy (an mmap; a test's racing stand-in)."""

    def __getitem__(self, index: slice, /) -> bytes: ...


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


# -- writing (the ring's one writer holds its lock) --------------------------------------------


def ring_size(capacity: int) -> int:
    return HEADER_SIZE + capacity * SLOT_SIZE


def new_anonymous(capacity: int, pid: int) -> mmap.mmap:
    """A ring in anonymous memory (no directory). Private: a forked child never writes into it."""
    mm = mmap.mmap(-1, ring_size(capacity), flags=mmap.MAP_PRIVATE)
    _init_header(mm, capacity, pid)
    return mm


def new_file(directory: str, capacity: int, pid: int) -> mmap.mmap:
    """A fresh, empty ``window_<pid>.ring`` in ``directory``, mapped for writing."""
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".window_{pid}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o644)
        os.ftruncate(fd, ring_size(capacity))
        mm = mmap.mmap(fd, ring_size(capacity))
        try:
            _init_header(mm, capacity, pid)
            os.replace(tmp, os.path.join(directory, f"window_{pid}.ring"))
        except BaseException:
            mm.close()
            raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    return mm


def _init_header(mm: mmap.mmap, capacity: int, pid: int) -> None:
    mm[0 : HEADER.size] = HEADER.pack(MAGIC, VERSION, SLOT_SIZE, capacity, pid, 0, time.time(), 0.0, 0, 0.0, 0)


def write_record(mm: mmap.mmap, capacity: int, n: int, packed: bytes) -> None:
    """Store record number ``n`` (``packed``): begin seq, record, end seq, then the header count."""
    off = HEADER_SIZE + ((n - 1) % capacity) * SLOT_SIZE
    seq = SEQ.pack(n)
    mm[off : off + _REC] = seq
    mm[off + _REC : off + _END] = packed
    mm[off + _END : off + SLOT_SIZE] = seq
    mm[WRITTEN_OFFSET : WRITTEN_OFFSET + SEQ.size] = seq


def write_snapshot(mm: mmap.mmap, rss_bytes: int, cpu_seconds: float, open_fds: int) -> None:
    mm[SNAP_OFFSET : SNAP_OFFSET + SNAP.size] = SNAP.pack(
        time.time(), max(0, int(rss_bytes)), float(cpu_seconds), max(0, int(open_fds))
    )


# -- reading (no lock) --------------------------------------------------------------------------


def read_header(buf: Buffer, size: int) -> tuple[int, RingInfo]:
    """The ring's capacity and header (``alive`` left False). ValueError if foreign or truncated.

    The header is copied until two copies agree, so the count and the snapshot are each read whole.
    """
    if size < HEADER_SIZE:
        raise ValueError("short ring file")
    raw = buf[0 : HEADER.size]
    for _ in range(8):
        again = buf[0 : HEADER.size]
        if again == raw:
            break
        raw = again
    (magic, version, slot, cap, pid, written, started, snap_ts, rss, cpu, fds) = HEADER.unpack(raw)
    if magic != MAGIC or version != VERSION or slot != SLOT_SIZE or cap < 1:
        raise ValueError("not a ring file of this version")
    if size < ring_size(cap):
        raise ValueError("truncated ring file")
    return cap, RingInfo(pid, written, started, snap_ts, rss, cpu, fds, False)


def read_records(buf: Buffer, capacity: int, written: int) -> list[Record]:
    """Records ``written - capacity + 1 .. written`` that could be read whole, oldest first.

    A slot being rewritten while it is read (its record overwritten by a newer one) is skipped.
    """
    out: list[Record] = []
    seq_unpack = SEQ.unpack
    for n in range(max(1, written - capacity + 1), written + 1):
        off = HEADER_SIZE + ((n - 1) % capacity) * SLOT_SIZE
        if seq_unpack(buf[off + _END : off + SLOT_SIZE])[0] != n:  # 1. end seq
            continue
        raw = buf[off + _REC : off + _END]  # 2. the record
        if seq_unpack(buf[off : off + _REC])[0] != n:  # 3. begin seq
            continue
        try:
            out.append(unpack(raw))
        except (struct.error, ValueError):
            continue
    return out


def read_ring_file(path: str, *, records: bool = True) -> tuple[RingInfo, list[Record]]:
    """Read another worker's ring file (mapped read-only). ValueError if foreign or truncated."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < HEADER_SIZE:
            raise ValueError("short ring file")
        mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ)
    with mm:
        cap, head = read_header(mm, size)
        info = RingInfo(head.pid, head.written, head.started_ts, head.snapshot_ts, head.rss_bytes,
                        head.cpu_seconds, head.open_fds, pid_alive(head.pid))
        return info, read_records(mm, cap, info.written) if records else []


def pid_alive(pid: int) -> bool:
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
