"""What ``/api/ps`` lists: the models clients loaded, shared by every worker of the instance.

Ollama's ``/api/ps`` shows the models its scheduler holds, each until its ``keep_alive`` runs out.
The bridge holds nothing, so it lists what clients asked for: a chat/generate/embed request or a
load request (empty prompt or messages) puts the model in, with ``expires_at`` = now + keep_alive
(default 5 minutes; negative = forever); ``keep_alive`` 0 takes it out at once.

Every gunicorn worker must answer the same list, so the table lives in one fixed-size file,
``ps.table`` in the metrics directory (PROMETHEUS_MULTIPROC_DIR, which gunicorn empties at start),
written and read under ``flock``. Without a directory the same table lives in this process's
memory. At most ``capacity`` (64) entries: names come from clients, so a full table evicts the
entry that expires first.

File layout (little endian)::

    header (64 bytes): magic "BRPSTAB1", version u32, capacity u32, field bytes u32
    index  (capacity x 32 bytes): used u8 | pad 7 | key hash u64 | expires f64 | touched f64
    names  (capacity x 2 x (2 + field bytes)): name length u16 + UTF-8 name, then the backend id's
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import os
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ClientRequestError

__all__ = ["DEFAULT_KEEP_ALIVE_S", "FOREVER", "PsEntry", "PsTable", "display_name", "parse_keep_alive"]

log = logging.getLogger(__name__)

DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama's OLLAMA_KEEP_ALIVE default
FOREVER = math.inf
FILE_NAME = "ps.table"
CAPACITY = 64

_MAGIC = b"BRPSTAB1"
_VERSION = 1
_HEADER = struct.Struct("<8sIII")
_HEADER_SIZE = 64
_INDEX = struct.Struct("<B7xQdd")  # used, key hash, expires (unix s; inf = forever), touched
_FIELD_BYTES = 2048  # 512 characters (the longest name a route accepts) of up to 4 UTF-8 bytes each
_LEN = struct.Struct("<H")
_NAME_SLOT = 2 * (_LEN.size + _FIELD_BYTES)

# Go's time.ParseDuration units, as Ollama parses keep_alive strings.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_DEFAULT_HOST = "registry.ollama.ai"
_DEFAULT_NAMESPACE = "library"


def parse_keep_alive(value: object) -> float | None:
    """Seconds a model stays listed after a request: None = the default, 0 = unload, inf = forever.

    Ollama's rules: a number is seconds and a string is a Go duration ("5m", "1h30m", "0"); a
    negative value keeps the model forever; anything else is a 400. A string of plain digits
    ("300"), which Go's parser refuses, is taken as seconds too: clients that send it mean that.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ClientRequestError(f"keep_alive must be a number of seconds or a duration such as \"5m\", "
                                 f"got a JSON {_json_type(value)}")
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            seconds = float(text)
        elif _DURATION.match(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
            if text.startswith("-"):
                seconds = -seconds
        else:
            raise ClientRequestError(f"keep_alive: invalid duration {value!r} (use seconds or e.g. \"5m\", \"1h30m\")")
    else:
        seconds = float(value)
    if math.isnan(seconds):
        raise ClientRequestError("keep_alive must be a number")
    return FOREVER if seconds < 0 else seconds


def display_name(name: str) -> str:
    """A model name as Ollama displays it (``DisplayShortest``): ``llama3`` -> ``llama3:latest``,
    ``library/llama3`` and ``registry.ollama.ai/library/llama3`` too; other hosts and namespaces kept."""
    name = name.strip()
    base, _, _digest = name.partition("@")
    parts = base.split("/")
    last = parts[-1]
    if ":" in last:
        model, _, tag = last.rpartition(":")
    else:
        model, tag = last, ""
    tag = tag or "latest"
    prefix = parts[:-1]
    if len(prefix) >= 2 and prefix[-2].lower() == _DEFAULT_HOST:
        prefix = prefix[:-2] + ([] if prefix[-1].lower() == _DEFAULT_NAMESPACE else [prefix[-1]])
    elif len(prefix) == 1 and prefix[0].lower() == _DEFAULT_NAMESPACE:
        prefix = []
    return "/".join([*prefix, f"{model}:{tag}"])


@dataclass(frozen=True)
class PsEntry:
    name: str          # as Ollama displays it
    backend_id: str
    expires_at: float  # unix seconds; FOREVER = never
    touched_at: float


class PsTable:
    """The instance-wide table of loaded models (file-backed when ``directory`` is set)."""

    def __init__(self, directory: str | None, *, capacity: int = CAPACITY,
                 clock: Callable[[], float] = time.time, pid: Callable[[], int] = os.getpid) -> None:
        if capacity < 1 or capacity > 4096:
            raise ValueError("capacity must be between 1 and 4096")
        self.capacity = capacity
        self.directory = directory
        self.path = os.path.join(directory, FILE_NAME) if directory else None
        self._clock = clock
        self._pid_fn = pid
        self._pid = -1
        self._fd: int | None = None
        self._memory: bytearray | None = None
        self._lock = threading.Lock()
        self._index_at = _HEADER_SIZE
        self._names_at = _HEADER_SIZE + capacity * _INDEX.size
        self._size = self._names_at + capacity * _NAME_SLOT

    # -- what routes call --------------------------------------------------------------------

    def touch(self, name: str, backend_id: str, keep_alive_s: float | None) -> None:
        """Note a request for ``name``: listed until now + keep_alive (removed when it is 0)."""
        seconds = DEFAULT_KEEP_ALIVE_S if keep_alive_s is None else keep_alive_s
        if seconds <= 0:
            self.remove(name)
            return
        shown = display_name(name)
        encoded, backend = shown.encode("utf-8", "surrogatepass"), backend_id.encode("utf-8", "surrogatepass")
        if len(encoded) > _FIELD_BYTES or len(backend) > _FIELD_BYTES:
            log.debug("name too long for the ps table, not listed")
            return
        now = self._clock()
        expires = FOREVER if math.isinf(seconds) else now + seconds
        key = _key(shown)
        with self._locked(exclusive=True) as io:
            if io is None:
                return
            slots = self._read_index(io)
            slot = self._find(io, slots, key, encoded)
            if slot is None:  # a new entry; a known one keeps the spelling it was first listed with
                slot = self._victim(slots, now)
                io.write(self._names_at + slot * _NAME_SLOT,
                         _LEN.pack(len(encoded)) + encoded.ljust(_FIELD_BYTES, b"\0")
                         + _LEN.pack(len(backend)) + backend.ljust(_FIELD_BYTES, b"\0"))
            io.write(self._index_at + slot * _INDEX.size, _INDEX.pack(1, key, expires, now))

    def remove(self, name: str) -> None:
        """Take ``name`` off the list (keep_alive 0: Ollama unloads it at once)."""
        shown = display_name(name)
        encoded = shown.encode("utf-8", "surrogatepass")
        with self._locked(exclusive=True) as io:
            if io is None:
                return
            slot = self._find(io, self._read_index(io), _key(shown), encoded)
            if slot is not None:
                io.write(self._index_at + slot * _INDEX.size, _INDEX.pack(0, 0, 0.0, 0.0))

    def running(self) -> list[PsEntry]:
        """Unexpired entries, the longest time left first (as Ollama sorts them)."""
        now = self._clock()
        out = []
        with self._locked(exclusive=False) as io:
            if io is None:
                return []
            for slot, (used, _key_hash, expires, touched) in enumerate(self._read_index(io)):
                if not used or expires <= now:
                    continue
                name, backend = self._read_names(io, slot)
                if name:
                    out.append(PsEntry(name, backend, expires, touched))
        out.sort(key=lambda e: (-e.expires_at, -e.touched_at))
        return out

    # -- storage -----------------------------------------------------------------------------

    def _read_index(self, io: _IO) -> list[tuple[int, int, float, float]]:
        raw = io.read(self._index_at, self.capacity * _INDEX.size)
        return [_INDEX.unpack_from(raw, i * _INDEX.size) for i in range(self.capacity)]

    def _read_names(self, io: _IO, slot: int) -> tuple[str, str]:
        raw = io.read(self._names_at + slot * _NAME_SLOT, _NAME_SLOT)
        (n,) = _LEN.unpack_from(raw, 0)
        (b,) = _LEN.unpack_from(raw, _LEN.size + _FIELD_BYTES)
        if n > _FIELD_BYTES or b > _FIELD_BYTES:
            return "", ""
        name = raw[_LEN.size:_LEN.size + n].decode("utf-8", "replace")
        start = 2 * _LEN.size + _FIELD_BYTES
        return name, raw[start:start + b].decode("utf-8", "replace")

    def _find(self, io: _IO, slots: list, key: int, encoded: bytes) -> int | None:
        """The slot already holding this name (same hash, same case-insensitive name)."""
        wanted = encoded.decode("utf-8", "replace").casefold()
        for slot, (used, key_hash, _expires, _touched) in enumerate(slots):
            if used and key_hash == key and self._read_names(io, slot)[0].casefold() == wanted:
                return slot
        return None

    def _victim(self, slots: list, now: float) -> int:
        """A free or expired slot, else the one that would expire first (then the least recent)."""
        best, best_rank = 0, None
        for slot, (used, _key_hash, expires, touched) in enumerate(slots):
            if not used or expires <= now:
                return slot
            rank = (expires, touched)
            if best_rank is None or rank < best_rank:
                best, best_rank = slot, rank
        return best

    def _locked(self, *, exclusive: bool) -> _Locked:
        return _Locked(self, exclusive)

    def _open(self) -> _IO | None:
        """This process's handle on the table (reopened after a fork: flock is per open file)."""
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
                header = os.pread(fd, _HEADER.size, 0)
                expected = _HEADER.pack(_MAGIC, _VERSION, self.capacity, _FIELD_BYTES)
                if header != expected or os.fstat(fd).st_size != self._size:
                    # New, or written by another layout: start empty (nothing in it outlives a restart).
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, self._size)
                    os.pwrite(fd, expected, 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        return fd


class _IO:
    def read(self, offset: int, size: int) -> bytes:
        raise NotImplementedError

    def write(self, offset: int, data: bytes) -> None:
        raise NotImplementedError


class _FileIO(_IO):
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, offset: int, size: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        return data.ljust(size, b"\0")

    def write(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)


class _MemoryIO(_IO):
    def __init__(self, buf: bytearray) -> None:
        self.buf = buf

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self.buf[offset:offset + size])

    def write(self, offset: int, data: bytes) -> None:
        self.buf[offset:offset + len(data)] = data


class _Locked:
    """``with table._locked(...) as io``: the thread lock, then flock on the file (when there is one).

    ``io`` is None when the table cannot be used; any storage error is logged and the operation
    skipped: /api/ps is never worth a failed chat.
    """

    def __init__(self, table: PsTable, exclusive: bool) -> None:
        self.table, self.exclusive = table, exclusive
        self.fd: int | None = None
        self.held = False

    def __enter__(self) -> _IO | None:
        lock = self.table._lock
        lock.acquire()
        try:
            io = self.table._open()
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


def _key(shown: str) -> int:
    """Hash of the displayed name, case-insensitive (Ollama's names are)."""
    return int.from_bytes(hashlib.blake2b(shown.casefold().encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "little")


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
