"""The ring reader against a writer that does not wait for it (bridge/metrics/ring.py's seqlock).

1. A writer PROCESS appends as fast as it can while this process reads its ring file over and
   over: every record accepted must be one the writer wrote, whole (all fields from one counter).
2. Every interleaving of one slot write with one slot read, played step by step: the reader
   keeps a record only when it is whole and is the one it asked for; the same harness catches a
   reader that reads the seqs in the writer's order.
3. Slots crafted by hand in each torn state the writer passes through are rejected.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import struct
import time
from collections.abc import Callable

from bridge.metrics import ring
from bridge.metrics.collector import Collector, read_ring_file
from bridge.metrics.records import PACKED_SIZE, Record, pack

WINDOW = 64  # small, so the writer laps the ring constantly and the reader meets slots mid-write
POOL = 8192
READ_SECONDS = 2.0
FAKE_PID = 3_999_301
SEQ = struct.Struct("<Q")


def make(n: int) -> Record:
    """A record whose every field is derived from ``n`` alone."""
    return Record(ts_s=float(n), route=f"/api/r{n}", method="POST", status=100 + n % 900, duration_s=float(n),
                  outcome="ok", model=f"m{n}", stream=n % 2 == 1, ttfb_s=n / 2, ttft_s=n / 4, tpot_s=n / 8,
                  max_gap_s=n / 16, chunks=n, bytes_out=n, bytes_in=n, tokens_in=n, tokens_out=n,
                  queue_s=n / 32).normalised()


def _writer(directory: str, ready, stop, count) -> None:  # runs in the child process
    pool = [make(n) for n in range(1, POOL + 1)]
    c = Collector(WINDOW, directory)
    ready.set()
    written = 0
    deadline = time.monotonic() + 30  # never outlive a test that died
    while not stop.is_set() and time.monotonic() < deadline:
        for rec in pool[written % POOL : written % POOL + 256]:
            c.append(rec)
        written += 256
    count.value = written


def test_reader_never_accepts_a_torn_record_from_a_writer_process(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, stop, count = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    proc = ctx.Process(target=_writer, args=(str(tmp_path), ready, stop, count), daemon=True)
    proc.start()
    try:
        assert ready.wait(10), "writer process did not start"
        path = str(tmp_path / f"window_{proc.pid}.ring")
        reads = accepted = skipped = 0
        written_seen = set()
        end = time.monotonic() + READ_SECONDS
        while time.monotonic() < end and reads < 200_000:
            info, recs = read_ring_file(path)
            reads += 1
            written_seen.add(info.written)
            accepted += len(recs)
            skipped += min(WINDOW, info.written) - len(recs)
            for r in recs:
                assert r == make(r.tokens_in or 0), r  # whole: every field from the same n
            ns = [r.tokens_in or 0 for r in recs]
            # oldest first: each next record is the writer's next one (gaps where slots were skipped)
            assert all(0 < (b - a) % POOL < WINDOW for a, b in zip(ns, ns[1:])), ns
    finally:
        stop.set()
        proc.join(10)
    assert proc.exitcode == 0
    assert count.value > 20 * WINDOW, count.value  # the writer really ran during the reads
    assert reads >= 50 and len(written_seen) >= 20, (reads, len(written_seen))  # read while it wrote
    assert accepted >= 25 * WINDOW, (accepted, skipped)


# -- one slot write against one slot read, every interleaving -------------------------------------


class Racing:
    """A one-slot ring whose writer takes its next steps just before each read the reader makes."""

    def __init__(self, data: bytearray, steps: list[Callable[[bytearray], None]], schedule: tuple[int, ...]):
        self.data, self.steps, self.schedule = data, steps, schedule
        self.done = self.reads = 0

    def __getitem__(self, index: slice) -> bytes:
        target = self.schedule[min(self.reads, len(self.schedule) - 1)]
        while self.done < target:
            self.steps[self.done](self.data)
            self.done += 1
        self.reads += 1
        return bytes(self.data[index])


def _one_slot(rec: Record) -> bytearray:
    mm = ring.new_anonymous(1, FAKE_PID)
    ring.write_record(mm, 1, 1, pack(rec))
    return bytearray(mm[:])


def _writer_steps(n: int, rec: Record) -> list[Callable[[bytearray], None]]:
    """The writer's stores for record ``n`` into slot 0, the record in two halves."""
    off, packed, half = ring.HEADER_SIZE, pack(rec), PACKED_SIZE // 2

    def put(at: int, raw: bytes) -> Callable[[bytearray], None]:
        def step(data: bytearray) -> None:
            data[at : at + len(raw)] = raw
        return step

    return [put(off, SEQ.pack(n)), put(off + 8, packed[:half]), put(off + 8 + half, packed[half:]),
            put(off + 8 + PACKED_SIZE, SEQ.pack(n)), put(ring.WRITTEN_OFFSET, SEQ.pack(n))]


def _old_order(buf: Racing, capacity: int, written: int) -> list[Record]:
    """The reader this replaced: begin seq, record, end seq (the writer's own order)."""
    from bridge.metrics.records import unpack
    off = ring.HEADER_SIZE
    begin = SEQ.unpack(buf[off : off + 8])[0]
    raw = buf[off + 8 : off + 8 + PACKED_SIZE]
    end = SEQ.unpack(buf[off + 8 + PACKED_SIZE : off + ring.SLOT_SIZE])[0]
    return [unpack(raw)] if begin == end != 0 else []


def _interleavings(reader) -> tuple[int, list[tuple[int, ...]]]:
    """Run ``reader`` under every schedule; return (#schedules, schedules that returned a wrong record)."""
    old, new = make(1), make(2)
    steps = _writer_steps(2, new)
    schedules = list(itertools.combinations_with_replacement(range(len(steps) + 1), 3))
    wrong = []
    for schedule in schedules:
        for written in (1, 2):  # the count read before the writer published record 2, or after
            buf = Racing(_one_slot(old), steps, schedule)
            got = reader(buf, 1, written)
            if got not in ([], [old if written == 1 else new]):
                wrong.append(schedule)
    return len(schedules), wrong


def test_every_interleaving_of_a_slot_write_and_read_is_safe():
    n, wrong = _interleavings(ring.read_records)
    assert n == 56 and wrong == []


def test_the_interleavings_catch_a_reader_in_the_writers_order():
    _, wrong = _interleavings(_old_order)
    assert (0, 2, 2) in wrong  # begin read before the write, record half new, end not yet rewritten


# -- torn slots crafted by hand ------------------------------------------------------------------


def test_torn_slots_are_rejected(tmp_path):
    old, new = make(1), make(5)  # ring of 4: record 5 goes into slot 0, over record 1
    half = PACKED_SIZE // 2
    torn = pack(new)[:half] + pack(old)[half:]
    states = {  # (begin seq, record bytes, end seq) of slot 0
        "begin new, record half written, end old": (5, torn, 1),
        "begin new, record old, end old": (5, pack(old), 1),
        "begin new, record new, end old": (5, pack(new), 1),
        "begin old, record half written, end new": (1, torn, 5),
        "begin 0, record new, end 0": (0, pack(new), 0),
    }
    for name, (begin, raw, end) in states.items():
        c = Collector(4, str(tmp_path), pid=lambda: FAKE_PID)
        for i in range(1, 5):
            c.append(make(i))
        c.close()
        path = tmp_path / f"window_{FAKE_PID}.ring"
        data = bytearray(path.read_bytes())
        off = ring.HEADER_SIZE
        data[off : off + ring.SLOT_SIZE] = SEQ.pack(begin) + raw + SEQ.pack(end)
        for written in (4, 5):  # before and after the (not yet made) count update
            data[ring.WRITTEN_OFFSET : ring.WRITTEN_OFFSET + 8] = SEQ.pack(written)
            path.write_bytes(bytes(data))
            _, recs = read_ring_file(str(path))
            assert old not in recs and new not in recs, name
            assert [r.tokens_in for r in recs] == [i for i in (2, 3, 4) if i > written - 4], name
        os.unlink(path)


def test_local_reads_while_a_thread_appends():
    import threading

    c = Collector(WINDOW)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            c.append(make(n))

    t = threading.Thread(target=write)
    t.start()
    try:
        reads = 0
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            recs = c.local()
            reads += 1
            ns = [r.tokens_in or 0 for r in recs]
            assert all(r == make(n) for r, n in zip(recs, ns))
            assert ns == sorted(ns) and len(set(ns)) == len(ns) and len(ns) <= WINDOW
    finally:
        stop.set()
        t.join()
    assert reads > 10 and c.local()[-1].tokens_in == c._written
