"""The OS lock, for sections that never yield to another greenlet (memory-map writes).

In a gevent-patched worker ``threading.Lock()`` is gevent's lock: correct, but about ten times the
cost of the OS lock, for sections that cannot switch greenlets anyway. The OS lock still guards
against real threads (the push thread, library users without gevent). Never hold one across I/O
that may wait: a greenlet waiting on an OS lock blocks its whole worker.
"""

from __future__ import annotations

from typing import Any

from gevent.monkey import get_original

__all__ = ["os_lock"]

_allocate = get_original("_thread", "allocate_lock")


def os_lock() -> Any:
    """A new, unpatched ``_thread`` lock."""
    return _allocate()
