"""PsTable: the instance-wide /api/ps list (file-backed across processes, in memory without a dir)
and Ollama's display names. keep_alive parsing: test_keep_alive.py; the bytes' storage: test_ps_store.py."""

from __future__ import annotations

import math
import multiprocessing
import os

import pytest

from bridge.ps_table import CAPACITY, FILE_NAME, FOREVER, PsTable, display_name


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["file", "memory"])
def table(request, tmp_path):
    clock = Clock()
    t = PsTable(str(tmp_path) if request.param == "file" else None, clock=clock)
    t.clock = clock
    return t


def test_keep_alive_names_are_still_importable_from_here():
    from bridge import keep_alive, ps_table

    assert ps_table.parse_keep_alive is keep_alive.parse_keep_alive
    assert ps_table.FOREVER is keep_alive.FOREVER and ps_table.DEFAULT_KEEP_ALIVE_S is keep_alive.DEFAULT_KEEP_ALIVE_S


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shown",
    [("llama3", "llama3:latest"), ("llama3:latest", "llama3:latest"), ("llama3:8b", "llama3:8b"),
     ("library/llama3", "llama3:latest"), ("registry.ollama.ai/library/llama3:8b", "llama3:8b"),
     ("registry.ollama.ai/acme/m", "acme/m:latest"), ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo:Q4_K_M"),
     ("meta-llama/Llama-3-8B", "meta-llama/Llama-3-8B:latest"), ("localhost:5000/ns/m", "localhost:5000/ns/m:latest")],
)
def test_display_name_is_ollamas_shortest(name, shown):
    assert display_name(name) == shown


# --- the table ---------------------------------------------------------------------------------


def test_touch_lists_with_expiry_and_one_entry_per_ollama_name(table):
    table.touch("llama3", "meta/llama-3", None)
    table.clock.now += 10
    table.touch("llama3:latest", "meta/llama-3", 60)
    table.touch("LLAMA3", "meta/llama-3", 120)  # Ollama's names are case-insensitive
    (entry,) = table.running()
    assert entry.name == "llama3:latest" and entry.backend_id == "meta/llama-3"
    assert entry.expires_at == table.clock.now + 120


def test_default_keep_alive_is_five_minutes_and_entries_expire(table):
    table.touch("m", "m", None)
    assert table.running()[0].expires_at == table.clock.now + 300
    table.clock.now += 300
    assert table.running() == []


def test_zero_removes_and_negative_keeps_forever(table):
    table.touch("a", "a", 60)
    table.touch("b", "b", FOREVER)
    table.touch("a", "a", 0.0)
    assert [e.name for e in table.running()] == ["b:latest"]
    table.clock.now += 10 * 365 * 86400
    (entry,) = table.running()
    assert math.isinf(entry.expires_at)
    table.remove("b:latest")
    assert table.running() == []


def test_sorted_by_time_left_longest_first(table):
    table.touch("short", "s", 10)
    table.touch("long", "l", 1000)
    table.touch("forever", "f", FOREVER)
    table.touch("mid", "m", 100)
    assert [e.name.split(":")[0] for e in table.running()] == ["forever", "long", "mid", "short"]


def test_bounded_evicting_what_expires_first(table):
    table.touch("keep", "k", FOREVER)
    for i in range(CAPACITY * 3):
        table.clock.now += 1
        table.touch(f"made-up-{i}", "x", 300)
    names = [e.name for e in table.running()]
    assert len(names) == CAPACITY
    assert "keep:latest" in names and f"made-up-{CAPACITY * 3 - 1}:latest" in names
    assert "made-up-0:latest" not in names


def test_expired_slots_are_reused_first(table):
    table.touch("old", "o", 5)
    table.clock.now += 10
    for i in range(CAPACITY):
        table.touch(f"n{i}", "x", 300)
    assert len(table.running()) == CAPACITY


def test_long_unicode_names_fit_and_too_long_ones_are_skipped(table):
    name = "模" * 512  # the longest name a route accepts, 3 bytes per character
    table.touch(name, "b" * 100, 60)
    table.touch("x" * 5000, "b", 60)  # never reaches here through a route: not listed, no error
    assert [e.name for e in table.running()] == [name + ":latest"]


def test_file_is_fixed_size_and_ours(tmp_path):
    t = PsTable(str(tmp_path))
    t.touch("m", "m", 60)
    path = tmp_path / FILE_NAME
    size = path.stat().st_size
    for i in range(500):
        t.touch(f"m{i}", "m", 60)
    assert path.stat().st_size == size < 600_000
    # Metrics own *_<pid>.db and window_*.ring in that directory: the table takes neither name.
    assert not FILE_NAME.endswith(".db") and not FILE_NAME.startswith("window_")


def test_a_foreign_or_damaged_file_is_reset(tmp_path):
    (tmp_path / FILE_NAME).write_bytes(b"garbage" * 10)
    t = PsTable(str(tmp_path))
    assert t.running() == []
    t.touch("m", "m", 60)
    assert [e.name for e in PsTable(str(tmp_path)).running()] == ["m:latest"]


def test_unusable_directory_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    t = PsTable(str(blocker / "sub"))  # a file where the directory should be
    t.touch("m", "m", 60)
    assert [e.name for e in t.running()] == ["m:latest"]


def test_two_tables_on_one_directory_see_each_other(tmp_path):
    a, b = PsTable(str(tmp_path)), PsTable(str(tmp_path))
    a.touch("m1", "m1", 60)
    b.touch("m2", "m2", 120)
    assert [e.name for e in a.running()] == [e.name for e in b.running()] == ["m2:latest", "m1:latest"]
    b.touch("m1", "m1", 0)
    assert [e.name for e in a.running()] == ["m2:latest"]


def _worker(directory: str, prefix: str, count: int, unload: str | None) -> None:
    table = PsTable(directory)
    for i in range(count):
        table.touch(f"{prefix}-{i % 5}", f"backend-{prefix}", 600)
    if unload:
        table.touch(unload, "x", 0)
    os._exit(0)


def test_two_processes_share_one_list(tmp_path):
    """Two writer processes hammer the same file; every reader then sees the same, whole list."""
    ctx = multiprocessing.get_context("fork")
    parent = PsTable(str(tmp_path))
    parent.touch("from-parent", "p", 600)  # opened before the fork: children must reopen (flock)
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), p, 400, u))
             for p, u in (("a", None), ("b", "from-parent"))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    names = sorted(e.name for e in parent.running())
    assert names == sorted([f"a-{i}:latest" for i in range(5)] + [f"b-{i}:latest" for i in range(5)])
    backends = {e.name.split("-")[0]: e.backend_id for e in parent.running()}
    assert backends == {"a": "backend-a", "b": "backend-b"}
    assert sorted(e.name for e in PsTable(str(tmp_path)).running()) == names


class _Wall:
    """A settable wall clock shared by two tables (two workers)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_repeat_within_a_second_is_not_rewritten(tmp_path):
    wall = _Wall()
    a = PsTable(str(tmp_path), clock=wall)
    a.touch("m", "m", 300)
    first = a.running()[0]
    wall.now += 0.5
    a.touch("m", "m", 300)  # skipped: written by this worker half a second ago
    assert a.running()[0] == first
    wall.now += 0.6
    a.touch("m", "m", 300)  # over a second: rewritten
    assert a.running()[0].expires_at == wall.now + 300


def test_a_model_another_worker_removed_is_listed_again_at_once(tmp_path):
    wall = _Wall()
    a, b = PsTable(str(tmp_path), clock=wall), PsTable(str(tmp_path), clock=wall)
    a.touch("m", "m", 300)
    b.touch("m", "m", 0)  # unload on another worker
    assert a.running() == []
    wall.now += 0.1
    a.touch("m", "m", 300)  # within the second, but the table changed: written
    assert [e.name for e in b.running()] == ["m:latest"]


def test_a_model_evicted_by_another_worker_is_listed_again_at_once(tmp_path):
    wall = _Wall()
    a, b = PsTable(str(tmp_path), capacity=1, clock=wall), PsTable(str(tmp_path), capacity=1, clock=wall)
    a.touch("m1", "m1", 300)
    b.touch("m2", "m2", 600)  # the only slot: m1 is evicted
    wall.now += 0.1
    a.touch("m1", "m1", 300)
    assert [e.name for e in b.running()] == ["m1:latest"]


def test_short_keep_alives_are_always_written(tmp_path):
    wall = _Wall()
    a = PsTable(str(tmp_path), clock=wall)
    a.touch("m", "m", 0.5)
    wall.now += 0.4
    a.touch("m", "m", 0.5)
    assert a.running()[0].expires_at == wall.now + 0.5
