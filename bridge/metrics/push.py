"""Push mode: send this instance's merged metrics to a Prometheus Pushgateway.

With ``PUSHGATEWAY_URL`` set, every instance (one gunicorn master and its workers) PUTs its whole
exposition (every worker's counters and histograms, merged exactly as ``/metrics`` merges them)
every ``PUSH_INTERVAL`` seconds under the grouping key ``job="bridge", instance=<INSTANCE_NAME>``.
A PUT replaces the whole group, so what the Pushgateway holds for an instance is always that
instance's latest complete view; Prometheus scrapes the Pushgateway with ``honor_labels: true``
(``deploy/prometheus-push.yml``). ``/metrics`` keeps working for pull.

**One pusher per instance, whatever the worker count**: every worker starts a :class:`Pusher`;
they elect one through ``push.lock`` in the metrics directory (``push_lock.py``). Nothing runs in
the gunicorn master, so no ``urllib``/``http.client`` use there (gunicorn#2796 is about importing
those before the workers patch; the push path is only ever used in workers).

**Never in the way of requests.** The loop is a daemon thread, i.e. a greenlet once gevent has
patched ``threading``; the HTTP call has a timeout and yields while it waits. The merge is the
same few milliseconds of CPU a scrape costs, once per interval.

**Failures** are logged (the URL without its credentials, the outcome, the error text; the first
failure of a run and then at most once a minute, plus a line when pushes work again) and
counted in ``bridge_pushes_total{outcome}``, outcome one of :data:`OUTCOMES`.

**Shutdown.** At interpreter exit (gunicorn's graceful stop ends each worker with ``sys.exit``)
the holder marks the lock file ``final``, makes a last push and lets go; siblings leaving at the
same time take the lock in turn and push too, so the last worker out pushes a view that holds
every worker's final counts. A worker leaving alone (recycled) while the holder lives does not
wait: the holder's next push carries its counts. A worker killed with SIGKILL makes no last
push; its counts (its files stay) reach the Pushgateway with a sibling's next push.
"""

from __future__ import annotations

import atexit
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client.exposition import basic_auth_handler, default_handler, push_to_gateway
from prometheus_client.metrics_core import Metric

from .prom import PromMetrics
from .push_lock import FINAL_LOCK_WAIT_S, LOCK_NAME, PushLock

if TYPE_CHECKING:
    from . import Metrics

__all__ = ["JOB", "LOCK_NAME", "OUTCOMES", "Pusher", "classify", "safe_url", "start_pusher"]

log = logging.getLogger(__name__)

#: The ``job`` grouping label of every push (and of the bridge's scrape job in pull mode).
JOB = "bridge"
#: ``bridge_pushes_total{outcome}``: a closed set.
OUTCOMES = ("ok", "http_error", "unreachable", "timeout", "error")
#: While pushes keep failing, repeat the warning at most this often.
LOG_EVERY_S = 60.0
#: How a push makes its HTTP request (``prometheus_client.exposition``'s handler signature).
_Handler = Callable[[str, str, float | None, list[tuple[str, str]], bytes], Callable[[], None]]


def safe_url(url: str) -> str:
    """``url`` without user name and password, for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def classify(exc: BaseException) -> str:
    """The ``outcome`` of a failed push."""
    if isinstance(exc, HTTPError):
        return "http_error"
    reason = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, URLError) or isinstance(exc, OSError):
        return "unreachable"
    return "error"


class _Families:
    """A collector over the instance's merged families (what ``push_to_gateway`` generates from)."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families()


class Pusher:
    """Pushes ``families()`` to ``url`` every ``interval_s`` while it holds the instance's lock.

    ``lock_dir`` is the instance's metrics directory; ``None`` means a single process, which
    always pushes. ``count(outcome)`` is called once per push; ``push`` is injectable for tests
    (same signature as ``prometheus_client.push_to_gateway``).
    """

    def __init__(
        self,
        *,
        url: str,
        instance: str,
        interval_s: float,
        families: Callable[[], Iterable[Metric]],
        lock_dir: str | None,
        count: Callable[[str], None] = lambda outcome: None,
        timeout_s: float | None = None,
        push: Callable[..., None] = push_to_gateway,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(url)
        self.url = safe_url(url)
        self.instance = instance
        self.interval_s = float(interval_s)
        self.timeout_s = timeout_s if timeout_s is not None else max(1.0, min(10.0, self.interval_s))
        self._election = PushLock(lock_dir, announce=lambda: {
            "pushgateway": self.url, "instance": self.instance, "interval_s": self.interval_s})
        self._registry = _Families(families)
        self._count = count
        self._push = push
        self._clock = clock
        self._handler: _Handler
        if parts.username is not None or parts.password is not None:
            self._handler = functools.partial(basic_auth_handler, username=unquote(parts.username or ""),
                                              password=unquote(parts.password or ""))
            self._secret = unquote(parts.password or "")
        else:
            self._handler = default_handler
            self._secret = ""
        self._stop = threading.Event()
        self._stopped = False
        self._push_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        self._failures = 0
        self._last_warning = float("-inf")
        self.pushes = 0
        self.last_outcome: str | None = None

    # -- election (push_lock.py) ----------------------------------------------------------

    @property
    def lock_path(self) -> str | None:
        return self._election.path

    @property
    def holding(self) -> bool:
        return self._election.holding

    def try_acquire(self) -> bool:
        """Take the instance's push lock if nobody holds it (never waits)."""
        return self._election.try_acquire()

    def release(self) -> None:
        self._election.release()

    # -- pushing -----------------------------------------------------------------------------

    def push_once(self) -> str:
        """One push of the merged exposition; returns its outcome (never raises)."""
        with self._push_lock:
            try:
                self._push(self.url, job=JOB, registry=self._registry, grouping_key={"instance": self.instance},
                           timeout=self.timeout_s, handler=self._handler)
                outcome = "ok"
                error = None
            except Exception as exc:  # noqa: BLE001 - every failure is counted and logged
                outcome = classify(exc)
                error = exc
            self.pushes += 1
            self.last_outcome = outcome
            try:
                self._count(outcome)
            except Exception:  # pragma: no cover - defensive: counting must not stop pushing
                log.exception("push: could not count the outcome")
            self._report(outcome, error)
            return outcome

    def _report(self, outcome: str, error: BaseException | None) -> None:
        now = self._clock()
        if error is None:
            if self._failing_since is not None:
                log.info("pushes to the Pushgateway work again", extra={
                    "pushgateway": self.url, "failed_pushes": self._failures,
                    "failing_for_s": round(now - self._failing_since, 1)})
            self._failing_since = None
            self._failures = 0
            return
        if self._failing_since is None:
            self._failing_since = now
        self._failures += 1
        if self._failures == 1 or now - self._last_warning >= LOG_EVERY_S:
            self._last_warning = now
            text = str(error) or type(error).__name__
            if self._secret:
                text = text.replace(self._secret, "***")
            log.warning("push to the Pushgateway failed", extra={
                "pushgateway": self.url, "outcome": outcome, "error": text[:300],
                "failed_pushes": self._failures})

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> None:
        """The loop: hold (or try to take) the lock, push, wait one interval; until stopped."""
        while not self._stop.is_set():
            try:
                if self.try_acquire():
                    self.push_once()
            except Exception:  # pragma: no cover - defensive: the loop must survive anything
                log.exception("push loop error")
            self._stop.wait(self.interval_s)

    def start(self) -> Pusher:
        self._thread = threading.Thread(target=self.run, name="bridge-push", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, final_push: bool = True) -> str | None:
        """Stop the loop, then (by default) the last push.

        The holder marks the lock file ``final`` at once, then pushes and lets go. A sibling that
        is stopping too and finds the lock held waits for it only while it is marked ``final``
        (the whole instance is going away: the last one out pushes a view that holds every
        worker's counts); when a live holder keeps it (one worker recycled), the holder's next
        periodic push carries this worker's final counts and nobody waits.
        Idempotent: only the first call does anything (it is also registered with ``atexit``).
        """
        if self._stopped:
            return None
        self._stopped = True
        if final_push:
            self._election.mark("final")  # only while holding the lock
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timeout_s + 1.0)
        outcome = None
        try:
            if final_push and self._election.take_for_last_push(self.timeout_s + FINAL_LOCK_WAIT_S):
                outcome = self.push_once()
        finally:
            self.release()
        return outcome


def start_pusher(metrics: Metrics, *, url: str | None, instance: str, interval_s: float) -> Pusher | None:
    """Start push mode for this worker when ``url`` is set and metrics are on; else ``None``.

    ``metrics`` is the worker's :class:`bridge.metrics.Metrics`. The last push is made at
    interpreter exit.
    """
    if not url:
        return None
    if not getattr(metrics, "enabled", False):
        log.warning("PUSHGATEWAY_URL is set but METRICS_ENABLED=false: nothing is pushed")
        return None
    prom = metrics.prom
    if not isinstance(prom, PromMetrics):  # pragma: no cover - metrics on always means PromMetrics
        return None

    def families() -> Iterable[Metric]:
        metrics.refresh_process()  # the pushing worker's own process gauges, as a scrape does
        return prom.families()

    def count(outcome: str) -> None:
        prom.pushes.labels(outcome).inc()

    for outcome in OUTCOMES:  # every outcome from 0, so increase() sees the first failure
        prom.pushes.labels(outcome)
    pusher = Pusher(url=url, instance=instance, interval_s=interval_s, families=families,
                    lock_dir=metrics.multiproc_dir if prom.multiprocess else None, count=count)
    atexit.register(pusher.stop)
    return pusher.start()
