"""bridge.metrics.push: the push path, its failures, and the one-pusher-per-instance election.

The gateway here is a small stdlib HTTP server recording what it receives; the real Pushgateway
and Prometheus are in test_push_fleet.py.
"""

from __future__ import annotations

import http.server
import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import Metrics
from bridge.metrics.push import LOCK_NAME, OUTCOMES, Pusher, classify, safe_url, start_pusher
from bridge.metrics.records import Record


class Gateway:
    """Records (method, path, body, authorization) of each request; answers ``status``."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.requests: list[tuple[str, str, bytes, str | None]] = []
        self.status, self.delay_s = status, delay_s
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if gateway.delay_s:
                    time.sleep(gateway.delay_s)
                gateway.requests.append((self.command, self.path, body, self.headers.get("Authorization")))
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def gateway():
    gw = Gateway()
    yield gw
    gw.close()


def _metrics_with_traffic(n: int) -> Metrics:
    metrics = Metrics(window=50, version="9.9", multiproc_dir=None)
    for _ in range(n):
        metrics.observe(Record(ts_s=time.time(), route="/api/chat", method="POST", status=200, duration_s=0.01,
                               outcome="ok"))
    return metrics


def _samples(body: bytes) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body.decode()) for s in f.samples}


def test_push_puts_the_whole_exposition_under_job_and_instance(gateway):
    metrics = _metrics_with_traffic(3)
    pusher = start_pusher(metrics, url=gateway.url + "/prefix", instance="web.2", interval_s=30)
    try:
        deadline = time.monotonic() + 5
        while not gateway.requests and time.monotonic() < deadline:  # first push at start
            time.sleep(0.02)
    finally:
        assert pusher.stop() == "ok"  # the last push
    assert len(gateway.requests) == 2
    method, path, body, auth = gateway.requests[-1]
    assert (method, path, auth) == ("PUT", "/prefix/metrics/job/bridge/instance/web.2", None)
    samples = _samples(body)
    assert samples[("bridge_http_requests_total", (("code", "200"), ("method", "POST"), ("route", "/api/chat")))] == 3
    assert samples[("bridge_build_info", (("version", "9.9"),))] == 1
    # The push counter is in the exposition too, every outcome from 0 (the first push counted).
    assert samples[("bridge_pushes_total", (("outcome", "ok"),))] == 1
    assert {dict(k[1])["outcome"] for k in samples if k[0] == "bridge_pushes_total"} == set(OUTCOMES)
    assert pusher.stop() is None  # idempotent (it is also registered with atexit)
    assert len(gateway.requests) == 2


def test_instance_name_is_escaped_in_the_grouping_key(gateway):
    pusher = Pusher(url=gateway.url, instance="web/1 x", interval_s=30, families=lambda: [], lock_dir=None)
    assert pusher.push_once() == "ok"
    assert gateway.requests[0][1] == "/metrics/job/bridge/instance@base64/d2ViLzEgeA=="  # base64url of "web/1 x"


def test_basic_auth_from_the_url_and_no_secret_in_logs(caplog):
    gw = Gateway(status=500)
    try:
        url = gw.url.replace("http://", "http://pusher:s3cr%40t@")
        pusher = Pusher(url=url, instance="i1", interval_s=30, families=lambda: [], lock_dir=None)
        assert pusher.url == gw.url  # what is logged
        with caplog.at_level(logging.WARNING, logger="bridge.metrics.push"):
            assert pusher.push_once() == "http_error"
        import base64
        assert gw.requests[0][3] == "Basic " + base64.b64encode(b"pusher:s3cr@t").decode()
        text = caplog.text + repr([r.__dict__ for r in caplog.records])
        assert "s3cr" not in text and "pusher:" not in text
        assert caplog.records[0].outcome == "http_error" and caplog.records[0].pushgateway == gw.url
    finally:
        gw.close()


def test_failures_are_counted_by_outcome_and_logged_sparingly(caplog):
    counted: list[str] = []
    clock = [1000.0]
    closed = Gateway()
    closed.close()  # nothing listens there any more
    pusher = Pusher(url=closed.url, instance="i1", interval_s=1, families=lambda: [], lock_dir=None,
                    count=counted.append, clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="bridge.metrics.push"):
        for _ in range(5):
            assert pusher.push_once() == "unreachable"
            clock[0] += 1
        clock[0] += 60
        assert pusher.push_once() == "unreachable"
    assert counted == ["unreachable"] * 6
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # the first failure, then once a minute
    assert warnings[1].failed_pushes == 6

    slow = Gateway(delay_s=2.0)
    try:
        pusher = Pusher(url=slow.url, instance="i1", interval_s=1, families=lambda: [], lock_dir=None,
                        count=counted.append, timeout_s=0.3)
        t0 = time.monotonic()
        assert pusher.push_once() == "timeout"
        assert time.monotonic() - t0 < 1.5  # the timeout bounds the push
    finally:
        slow.close()

    ok = Gateway()
    try:
        pusher._push = Pusher(url=ok.url, instance="i1", interval_s=1, families=lambda: [], lock_dir=None)._push
        pusher.url = ok.url
        with caplog.at_level(logging.INFO, logger="bridge.metrics.push"):
            assert pusher.push_once() == "ok"
        assert "pushes to the Pushgateway work again" in caplog.text
    finally:
        ok.close()


def test_classify():
    from urllib.error import HTTPError, URLError

    assert classify(HTTPError("u", 400, "bad", {}, None)) == "http_error"
    assert classify(URLError(TimeoutError())) == "timeout"
    assert classify(URLError(ConnectionRefusedError())) == "unreachable"
    assert classify(OSError("error talking to pushgateway: 500")) == "unreachable"
    assert classify(ValueError("x")) == "error"
    assert set(OUTCOMES) == {"ok", "http_error", "unreachable", "timeout", "error"}


def test_safe_url():
    assert safe_url("https://u:p@gw.example:9091/x") == "https://gw.example:9091/x"
    assert safe_url("http://gw:9091") == "http://gw:9091"
    assert safe_url("http://u:p@[::1]:9091") == "http://[::1]:9091"


def test_start_pusher_is_off_without_url_or_metrics(gateway, caplog):
    assert start_pusher(_metrics_with_traffic(0), url=None, instance="i", interval_s=1) is None
    off = Metrics(window=50, version="1", multiproc_dir=None, enabled=False)
    with caplog.at_level(logging.WARNING, logger="bridge.metrics.push"):
        assert start_pusher(off, url=gateway.url, instance="i", interval_s=1) is None
    assert "METRICS_ENABLED=false" in caplog.text
    assert gateway.requests == []


# -- the election: one pusher per metrics directory ------------------------------------------------


def _pusher_process(lock_dir: str, log_path: str, interval_s: float) -> None:
    """A worker stand-in: each push appends its pid to a file and takes 0.3 s."""

    def push(url, **kwargs):
        with open(log_path, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.3)

    pusher = Pusher(url="http://127.0.0.1:9", instance="i", interval_s=interval_s, families=lambda: [],
                    lock_dir=lock_dir, push=push)
    pusher.start()

    def leave(*args):
        pusher.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, leave)
    while True:
        time.sleep(1)


def _pushers(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def _wait(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_one_pusher_per_directory_and_a_sibling_takes_over(tmp_path):
    ctx = multiprocessing.get_context("fork")
    log = tmp_path / "pushes.log"
    interval = 0.1
    procs = {}
    for _ in range(4):
        p = ctx.Process(target=_pusher_process, args=(str(tmp_path), str(log), interval), daemon=True)
        p.start()
        procs[p.pid] = p
    try:
        assert _wait(lambda: len(_pushers(log)) >= 4)
        first = _pushers(log)
        assert len(set(first)) == 1, first  # four candidates, one pusher
        holder = first[0]
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(holder)

        # The holder dies without a last push: the kernel drops its lock, a sibling takes over.
        os.kill(holder, signal.SIGKILL)
        procs[holder].join(5)
        n = len(_pushers(log))
        assert _wait(lambda: len(_pushers(log)) >= n + 3)
        after = _pushers(log)[n:]
        assert holder not in after and len(set(after)) == 1, after
        successor = after[0]
        others = [pid for pid in procs if pid not in (holder, successor)]

        # A worker leaving alone while the holder lives: no waiting, no push of its own.
        t0 = time.monotonic()
        os.kill(others[0], signal.SIGTERM)
        procs[others[0]].join(5)
        assert time.monotonic() - t0 < 1.0
        assert others[0] not in _pushers(log)

        # The instance stops: the holder's last push, then the sibling leaving with it waits for
        # the lock (marked final) and pushes after it: the last view out is complete.
        os.kill(successor, signal.SIGTERM)
        assert _wait(lambda: (tmp_path / LOCK_NAME).read_text().startswith("final"), 2)
        os.kill(others[1], signal.SIGTERM)
        procs[successor].join(5)
        procs[others[1]].join(5)
        tail = _pushers(log)
        assert tail[-1] == others[1] and tail.count(others[1]) == 1, tail[-6:]
    finally:
        for p in procs.values():
            if p.is_alive():
                p.kill()
            p.join(5)
