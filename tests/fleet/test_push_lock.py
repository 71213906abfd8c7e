"""bridge.metrics.push_lock: the one-pusher-per-instance election on ``push.lock``.

Two :class:`PushLock` objects in one process contend like two workers (flock locks belong to open
files, not processes); the end-to-end election between worker processes is in test_push.py."""

from __future__ import annotations

import logging
import os
import threading
import time

from bridge.metrics.push_lock import LOCK_NAME, PushLock


def _lock(directory) -> PushLock:
    return PushLock(str(directory), announce=lambda: {"pushgateway": "http://gw", "instance": "i1"})


def test_a_single_process_always_holds_it():
    lock = PushLock(None, announce=dict)
    assert lock.path is None and lock.holding and lock.try_acquire()
    lock.mark("final")  # nothing to write
    lock.release()
    assert lock.holding and lock.take_for_last_push(0.0)


def test_one_holder_per_directory_until_it_lets_go(tmp_path, caplog):
    first, second = _lock(tmp_path), _lock(tmp_path)
    with caplog.at_level(logging.INFO, logger="bridge.metrics.push"):
        assert first.try_acquire() and first.holding
    assert (caplog.records[0].instance, caplog.records[0].pushgateway) == ("i1", "http://gw")
    assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert not second.try_acquire() and not second.holding
    first.release()
    assert not first.holding
    assert second.try_acquire() and second.holding
    second.release()


def test_the_last_push_waits_only_for_a_holder_that_is_leaving(tmp_path):
    holder, leaving = _lock(tmp_path), _lock(tmp_path)
    assert holder.try_acquire()
    t0 = time.monotonic()
    assert not leaving.take_for_last_push(5.0)  # the holder lives on: its next push carries our counts
    assert time.monotonic() - t0 < 1.0

    holder.mark("final")
    assert (tmp_path / LOCK_NAME).read_text() == f"final {os.getpid()}\n"
    t0 = time.monotonic()
    assert not leaving.take_for_last_push(0.2)  # bounded wait
    assert 0.2 <= time.monotonic() - t0 < 2.0

    threading.Timer(0.1, holder.release).start()
    assert leaving.take_for_last_push(5.0)  # the holder pushed and let go: our turn, marked final
    assert leaving.holding and (tmp_path / LOCK_NAME).read_text() == f"final {os.getpid()}\n"
    leaving.release()
