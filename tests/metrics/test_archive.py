"""bridge/metrics/archive.py: a dead worker's prometheus-client multiprocess files are folded into
one ``<kind>_archive.db`` per kind (added, max, min or most recent, by kind) and deleted, so totals
stay exact; folds and scrapes exclude each other with flock. Real MmapedDict files in tmp_path,
read back with prometheus-client's own MultiProcessCollector."""

from __future__ import annotations

import fcntl
import os

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from bridge.metrics import archive
from bridge.metrics.archive import ARCHIVE_PID, fold_dead_worker, scrape_lock


def key(name: str, labels: dict[str, str] | None = None, sample: str | None = None) -> str:
    labels = labels or {}
    return mmap_key(name, sample or name, list(labels), list(labels.values()), f"help of {name}")


def write(path, values: dict[str, float | tuple[float, float]]) -> None:
    """A metric file as a worker writes it: {key: value} or {key: (value, timestamp)}."""
    f = MmapedDict(str(path))
    try:
        for k, v in values.items():
            value, ts = v if isinstance(v, tuple) else (v, 0.0)
            f.write_value(k, value, ts)
    finally:
        f.close()


def read(path) -> dict[str, tuple[float, float]]:
    return {k: (v, ts) for k, v, ts, _ in MmapedDict.read_all_values_from_file(str(path))}


def collected(directory) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples}


REQ = key("bridge_req", {"route": "/api/chat"}, "bridge_req_total")
REQ_TAGS = key("bridge_req", {"route": "/api/tags"}, "bridge_req_total")


def test_counters_of_dead_workers_add_up_in_the_archive(tmp_path):
    write(tmp_path / "counter_101.db", {REQ: 2.0})
    write(tmp_path / "counter_202.db", {REQ: 3.0, REQ_TAGS: 1.0})
    write(tmp_path / "counter_303.db", {REQ: 10.0})  # a live worker
    before = collected(tmp_path)

    assert fold_dead_worker(str(tmp_path), 101) == 1
    assert not (tmp_path / "counter_101.db").exists()
    assert read(tmp_path / "counter_archive.db") == {REQ: (2.0, 0.0)}

    assert fold_dead_worker(str(tmp_path), 202) == 1
    assert read(tmp_path / "counter_archive.db") == {REQ: (5.0, 0.0), REQ_TAGS: (1.0, 0.0)}

    assert collected(tmp_path) == before  # the scrape sees the same totals
    assert before[("bridge_req_total", (("route", "/api/chat"),))] == 15.0
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["counter_303.db", "counter_archive.db"]


def test_histograms_and_summaries_add_and_stay_exact_for_the_collector(tmp_path):
    hist = {key("bridge_d", {"le": "0.1"}, "bridge_d_bucket"): 1.0,
            key("bridge_d", {"le": "+Inf"}, "bridge_d_bucket"): 3.0,
            key("bridge_d", {}, "bridge_d_sum"): 0.9}
    write(tmp_path / "histogram_7.db", hist)
    write(tmp_path / "histogram_8.db", {k: v * 2 for k, v in hist.items()})
    write(tmp_path / "summary_7.db", {key("bridge_s", {}, "bridge_s_count"): 4.0})
    write(tmp_path / "summary_8.db", {key("bridge_s", {}, "bridge_s_count"): 1.0})
    before = collected(tmp_path)
    assert fold_dead_worker(str(tmp_path), 7) == 2
    assert fold_dead_worker(str(tmp_path), 8) == 2
    assert collected(tmp_path) == before
    # Worker files hold per-bucket counts (4 and 8 observations); the collector accumulates them.
    assert before[("bridge_d_count", ())] == 12.0 and before[("bridge_s_count", ())] == 5.0
    assert read(tmp_path / "histogram_archive.db")[key("bridge_d", {"le": "+Inf"}, "bridge_d_bucket")][0] == 9.0
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["histogram_archive.db", "summary_archive.db"]


def test_gauge_modes_combine_by_their_own_rule(tmp_path):
    g = key("bridge_g", {"backend": "a"})
    write(tmp_path / "gauge_max_1.db", {g: (5.0, 10.0)})
    write(tmp_path / "gauge_min_1.db", {g: (5.0, 10.0)})
    write(tmp_path / "gauge_sum_1.db", {g: (5.0, 10.0)})
    write(tmp_path / "gauge_mostrecent_1.db", {g: (5.0, 10.0)})
    assert fold_dead_worker(str(tmp_path), 1) == 4

    write(tmp_path / "gauge_max_2.db", {g: (3.0, 20.0)})
    write(tmp_path / "gauge_min_2.db", {g: (3.0, 20.0)})
    write(tmp_path / "gauge_sum_2.db", {g: (3.0, 20.0)})
    write(tmp_path / "gauge_mostrecent_2.db", {g: (3.0, 20.0)})
    assert fold_dead_worker(str(tmp_path), 2) == 4

    assert read(tmp_path / "gauge_max_archive.db") == {g: (5.0, 20.0)}
    assert read(tmp_path / "gauge_min_archive.db") == {g: (3.0, 20.0)}
    assert read(tmp_path / "gauge_sum_archive.db") == {g: (8.0, 20.0)}
    assert read(tmp_path / "gauge_mostrecent_archive.db") == {g: (3.0, 20.0)}

    write(tmp_path / "gauge_mostrecent_3.db", {g: (99.0, 15.0)})  # older than what the archive holds
    write(tmp_path / "gauge_max_3.db", {g: (1.0, 1.0)})
    write(tmp_path / "gauge_min_3.db", {g: (-1.0, 1.0)})
    assert fold_dead_worker(str(tmp_path), 3) == 3
    assert read(tmp_path / "gauge_mostrecent_archive.db") == {g: (3.0, 20.0)}
    assert read(tmp_path / "gauge_max_archive.db") == {g: (5.0, 20.0)}
    assert read(tmp_path / "gauge_min_archive.db") == {g: (-1.0, 20.0)}


def test_the_archives_are_read_by_the_collector_like_worker_files(tmp_path):
    g = key("bridge_g", {"backend": "a"})
    write(tmp_path / "gauge_max_1.db", {g: (5.0, 1.0)})
    write(tmp_path / "gauge_max_2.db", {g: (7.0, 1.0)})  # live
    write(tmp_path / "gauge_sum_1.db", {g: (2.0, 1.0)})
    write(tmp_path / "gauge_sum_2.db", {g: (4.0, 1.0)})  # live
    before = collected(tmp_path)
    fold_dead_worker(str(tmp_path), 1)
    assert collected(tmp_path) == before
    assert ("bridge_g", (("backend", "a"),)) in before


@pytest.mark.parametrize("name", ["gauge_livesum_55.db", "gauge_liveall_55.db", "gauge_all_55.db",
                                  "gauge_livemax_55.db"])
def test_live_and_per_pid_gauges_die_with_their_worker(tmp_path, name):
    write(tmp_path / name, {key("bridge_live"): 4.0})
    assert fold_dead_worker(str(tmp_path), 55) == 1
    assert not (tmp_path / name).exists()
    assert list(tmp_path.glob(f"*_{ARCHIVE_PID}.db")) == []


@pytest.mark.parametrize("content", [b"", b"\x08\x00", b"\x00" * 3])
def test_a_short_file_of_a_worker_killed_while_creating_it_is_dropped(tmp_path, content):
    (tmp_path / "counter_9.db").write_bytes(content)
    write(tmp_path / "counter_archive.db", {REQ: 1.0})
    assert fold_dead_worker(str(tmp_path), 9) == 1
    assert not (tmp_path / "counter_9.db").exists()
    assert read(tmp_path / "counter_archive.db") == {REQ: (1.0, 0.0)}


def test_only_the_dead_workers_files_are_touched(tmp_path):
    for name in ("counter_12.db", "counter_112.db", "counter_120.db", "histogram_12.db"):
        write(tmp_path / name, {REQ: 1.0})
    (tmp_path / "ps.table").write_bytes(b"x")
    (tmp_path / "push.lock").write_text("1\n")
    (tmp_path / "Counter_12.db").write_bytes(b"not ours")  # not a prometheus-client name
    assert fold_dead_worker(str(tmp_path), 12) == 2
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["Counter_12.db", "counter_112.db", "counter_120.db", "counter_archive.db", "fold.lock",
                    "histogram_archive.db", "ps.table", "push.lock"]
    assert read(tmp_path / "counter_archive.db") == {REQ: (1.0, 0.0)}


def test_folding_a_worker_without_files_changes_nothing(tmp_path):
    write(tmp_path / "counter_1.db", {REQ: 1.0})
    assert fold_dead_worker(str(tmp_path), 2) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_1.db", "fold.lock"]


def test_folding_twice_does_not_count_twice(tmp_path):
    write(tmp_path / "counter_4.db", {REQ: 6.0})
    assert fold_dead_worker(str(tmp_path), 4) == 1
    assert fold_dead_worker(str(tmp_path), 4) == 0
    assert read(tmp_path / "counter_archive.db") == {REQ: (6.0, 0.0)}


def lock_fd(directory) -> int:
    return os.open(os.path.join(directory, "fold.lock"), os.O_RDWR)


def test_a_scrape_shares_the_lock_with_scrapes_and_excludes_a_fold(tmp_path):
    with scrape_lock(str(tmp_path)):
        fd = lock_fd(tmp_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # another scrape: fine
            fcntl.flock(fd, fcntl.LOCK_UN)
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fold must wait
        finally:
            os.close(fd)
    fd = lock_fd(tmp_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on leaving
    finally:
        os.close(fd)


def test_a_fold_holds_the_lock_alone_while_it_merges(tmp_path, monkeypatch):
    write(tmp_path / "counter_5.db", {REQ: 1.0})
    seen: list[bool] = []
    real_merge = archive._merge_into

    def merge_and_probe(archive_path, dead_path, kind):
        fd = lock_fd(tmp_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            seen.append(False)  # a scrape got in: not exclusive
        except BlockingIOError:
            seen.append(True)
        finally:
            os.close(fd)
        real_merge(archive_path, dead_path, kind)

    monkeypatch.setattr(archive, "_merge_into", merge_and_probe)
    assert fold_dead_worker(str(tmp_path), 5) == 1
    assert seen == [True]
    with scrape_lock(str(tmp_path)):  # and released afterwards
        pass


def test_the_lock_file_is_private(tmp_path):
    with scrape_lock(str(tmp_path)):
        pass
    assert (tmp_path / "fold.lock").stat().st_mode & 0o777 == 0o600 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
