"""What ``/api/ps`` lists: the models clients loaded, shared by every worker of the instance.

Ollama's ``/api/ps`` shows the models its scheduler holds, each until its ``keep_alive`` runs out.
The bridge holds nothing, so it lists what clients asked for: a chat/generate/embed request or a
load request (empty prompt or messages) puts the model in, with ``expires_at`` = now + keep_alive
(default 5 minutes; negative = forever: keep_alive.py); ``keep_alive`` 0 takes it out at once.

Every gunicorn worker must answer the same list, so the table lives in one fixed-size file,
``ps.table`` in the metrics directory (PROMETHEUS_MULTIPROC_DIR, which gunicorn empties at start),
written and read under ``flock`` (ps_store.py). Without a directory the same table lives in this
process's memory. At most ``capacity`` (64) entries: names come from clients, so a full table evicts
the entry that expires first. This module owns the entries' rules and their layout in the bytes.

A worker that wrote an entry less than a second ago does not rewrite it for the same request
again (two file locks and three system calls per request, ~5 % of a worker's CPU): the entry's
``expires_at`` may then lag by up to a second. The skip holds only while the table's generation
(bumped by every removal and every eviction) is the one this worker saw, so a model another
worker unloaded or evicted is listed again by the next request, and only for a keep_alive of a
minute or more.

File layout (little endian)::

    header (64 bytes): magic "BRPSTAB1", version u32, capacity u32, field bytes u32 ... generation
                       u64 at byte 56 (removals and evictions)
    index  (capacity x 32 bytes): used u8 | pad 7 | key hash u64 | expires f64 | touched f64
    names  (capacity x 2 x (2 + field bytes)): name length u16 + UTF-8 name, then the backend id's
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from .keep_alive import DEFAULT_KEEP_ALIVE_S, FOREVER, parse_keep_alive
from .ps_store import PsStore, StoreIO

# DEFAULT_KEEP_ALIVE_S, FOREVER and parse_keep_alive live in keep_alive.py, re-exported here.
__all__ = ["CAPACITY", "DEFAULT_KEEP_ALIVE_S", "FILE_NAME", "FOREVER", "PsEntry", "PsTable", "display_name",
           "parse_keep_alive"]

log = logging.getLogger(__name__)

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
_GENERATION = struct.Struct("<Q")
_GENERATION_AT = 56
#: A worker's own recent write stands for this long (for keep_alives of at least _SKIP_MIN_KEEP_S).
_RECENT_S = 1.0
_SKIP_MIN_KEEP_S = 60.0
_RECENT_MAX = 256  # (name, backend, keep_alive) memos per worker: names come from clients
_DEFAULT_HOST = "registry.ollama.ai"
_DEFAULT_NAMESPACE = "library"


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
        self._clock = clock
        self._index_at = _HEADER_SIZE
        self._names_at = _HEADER_SIZE + capacity * _INDEX.size
        self._size = self._names_at + capacity * _NAME_SLOT
        self._store = PsStore(directory, FILE_NAME, size=self._size, pid=pid,
                              header=_HEADER.pack(_MAGIC, _VERSION, capacity, _FIELD_BYTES))
        self.path = self._store.path
        # (name, backend id, keep_alive s) -> (when this worker wrote it, the generation it saw)
        self._recent: dict[tuple[str, str, float], tuple[float, int]] = {}

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
        memo = (name, backend_id, seconds)
        seen = self._recent.get(memo)
        if seen is not None and 0 <= now - seen[0] < _RECENT_S and self._generation() == seen[1]:
            return  # this worker wrote it a moment ago and nothing was removed or evicted since
        expires = FOREVER if math.isinf(seconds) else now + seconds
        key = _key(shown)
        with self._store.locked(exclusive=True) as io:
            if io is None:
                return
            slots = self._read_index(io)
            slot = self._find(io, slots, key, encoded)
            if slot is None:  # a new entry; a known one keeps the spelling it was first listed with
                slot = self._victim(slots, now)
                if slots[slot][0]:  # an entry is pushed out (expired or evicted): others must rewrite theirs
                    self._bump(io)
                io.write(self._names_at + slot * _NAME_SLOT,
                         _LEN.pack(len(encoded)) + encoded.ljust(_FIELD_BYTES, b"\0")
                         + _LEN.pack(len(backend)) + backend.ljust(_FIELD_BYTES, b"\0"))
            io.write(self._index_at + slot * _INDEX.size, _INDEX.pack(1, key, expires, now))
            generation = _GENERATION.unpack(io.read(_GENERATION_AT, _GENERATION.size))[0]
        if seconds >= _SKIP_MIN_KEEP_S:
            if len(self._recent) >= _RECENT_MAX:
                self._recent.clear()
            self._recent[memo] = (now, generation)

    def remove(self, name: str) -> None:
        """Take ``name`` off the list (keep_alive 0: Ollama unloads it at once)."""
        shown = display_name(name)
        encoded = shown.encode("utf-8", "surrogatepass")
        with self._store.locked(exclusive=True) as io:
            if io is None:
                return
            slot = self._find(io, self._read_index(io), _key(shown), encoded)
            if slot is not None:
                io.write(self._index_at + slot * _INDEX.size, _INDEX.pack(0, 0, 0.0, 0.0))
                self._bump(io)

    def running(self) -> list[PsEntry]:
        """Unexpired entries, the longest time left first (as Ollama sorts them)."""
        now = self._clock()
        out = []
        with self._store.locked(exclusive=False) as io:
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

    # -- layout ------------------------------------------------------------------------------

    def _generation(self) -> int:
        raw = self._store.peek(_GENERATION_AT, _GENERATION.size)
        return -1 if raw is None else int(_GENERATION.unpack(raw)[0])

    @staticmethod
    def _bump(io: StoreIO) -> None:
        (generation,) = _GENERATION.unpack(io.read(_GENERATION_AT, _GENERATION.size))
        io.write(_GENERATION_AT, _GENERATION.pack(generation + 1))

    def _read_index(self, io: StoreIO) -> list[tuple[int, int, float, float]]:
        raw = io.read(self._index_at, self.capacity * _INDEX.size)
        return [_INDEX.unpack_from(raw, i * _INDEX.size) for i in range(self.capacity)]

    def _read_names(self, io: StoreIO, slot: int) -> tuple[str, str]:
        raw = io.read(self._names_at + slot * _NAME_SLOT, _NAME_SLOT)
        (n,) = _LEN.unpack_from(raw, 0)
        (b,) = _LEN.unpack_from(raw, _LEN.size + _FIELD_BYTES)
        if n > _FIELD_BYTES or b > _FIELD_BYTES:
            return "", ""
        name = raw[_LEN.size:_LEN.size + n].decode("utf-8", "replace")
        start = 2 * _LEN.size + _FIELD_BYTES
        return name, raw[start:start + b].decode("utf-8", "replace")

    def _find(self, io: StoreIO, slots: list, key: int, encoded: bytes) -> int | None:
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


def _key(shown: str) -> int:
    """Hash of the displayed name, case-insensitive (Ollama's names are)."""
    return int.from_bytes(hashlib.blake2b(shown.casefold().encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "little")

