"""Hostile traffic against the real gunicorn bridge (2 workers): what an attacker sends, measured.

Each test attacks a running bridge and asserts the figure that matters: series and bytes of
``/metrics``, worker memory, time to a 401, the metric directory after worker restarts, a worker's
connection slots under slow clients, gunicorn's own log lines. The "before" column of the
hostile-traffic table in docs/RELIABILITY.md quotes what the previous main did (issue 12).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import signal
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.bridgeproc import REPO, BridgeProcess
from tests.faults import TIMEOUT, start_bridge

pytestmark = pytest.mark.integration

KEY = "hostile-test-key-1"
MiB = 1024 * 1024


# -- helpers ---------------------------------------------------------------------------------------


def series(url: str, headers: dict | None = None) -> tuple[set[tuple], int]:
    """The set of (sample name, labels) on /metrics, and the exposition's size in bytes."""
    text = requests.get(url + "/metrics", headers=headers, timeout=TIMEOUT).text
    found = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "pid"}
            found.add((sample.name, tuple(sorted(labels.items()))))
    return found, len(text.encode())


def workers_rss_mb(proc: BridgeProcess) -> float:
    return sum(psutil.Process(pid).memory_info().rss for pid in proc.worker_pids()) / MiB


def method_name(i: int) -> str:
    """A distinct made-up method per ``i``: upper-case letters, 3-20 long, as gunicorn accepts."""
    letters = ""
    i += 26 ** 3
    while i:
        i, rest = divmod(i, 26)
        letters += string.ascii_uppercase[rest]
    return ("Z" + letters)[:20]


def hostile_requests(count: int, *, keyed: bool):
    """``count`` (method, path, body, headers) tuples: distinct methods, paths, model names, header
    values, wrong keys. With ``keyed``, half carry the right key so they get past the guard."""
    for i in range(count):
        kind = i % 6
        headers = {"X-Request-ID": f"rid-{i}", "User-Agent": f"agent/{i}", f"X-Odd-{i % 500}": str(i)}
        if keyed and i % 2 == 0:
            headers["Authorization"] = f"Bearer {KEY}"
        elif keyed:
            headers["Authorization"] = f"Bearer wrong-{i}"
        if kind == 0:
            yield method_name(i), "/api/chat", None, headers
        elif kind == 1:
            yield "GET", f"/api/nothing-{i}/{i * 7}", None, headers
        elif kind == 2:
            body = {"model": f"model-{i}", "messages": [{"role": "user", "content": "x"}], "stream": False}
            yield "POST", "/api/chat", json.dumps(body), headers
        elif kind == 3:
            body = {"model": f"model-{i}:tag{i}", "messages": [{"role": "user", "content": "x"}]}
            yield "POST", "/v1/chat/completions", json.dumps(body), headers
        elif kind == 4:
            yield "POST", "/api/show", json.dumps({"model": f"show-{i}"}), headers
        else:
            yield method_name(i + 7), f"/odd/{i}", "x" * (i % 50), headers


def send_all(port: int, reqs, *, connections: int = 8) -> dict[int, int]:
    """Send every request over ``connections`` keep-alive connections; status -> count."""
    reqs = list(reqs)
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def worker(part):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        seen: dict[int, int] = {}
        for method, path, body, headers in part:
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                seen[resp.status] = seen.get(resp.status, 0) + 1
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
                seen[0] = seen.get(0, 0) + 1
        conn.close()
        with lock:
            for k, v in seen.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=worker, args=(reqs[i::connections],)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return statuses


# -- closed label sets -----------------------------------------------------------------------------


@pytest.mark.parametrize("keyed", [False, True], ids=["open", "keyed"])
def test_metrics_stay_bounded_under_10k_hostile_requests(fake_backend, tmp_path, keyed, reliability):
    env = {"BRIDGE_API_KEYS": KEY} if keyed else {}
    proc = start_bridge(fake_backend, tmp_path, workers=2, name="hostile", LOG_LEVEL="WARNING", **env)
    auth = {"Authorization": f"Bearer {KEY}"} if keyed else None
    try:
        # Warm-up: one request of each kind per worker, so every label combination the attack can
        # reach exists before the baseline. After that, nothing the attack sends may add a series.
        send_all(proc.port, hostile_requests(600, keyed=keyed), connections=4)
        before, before_bytes = series(proc.url, auth)
        rss_before = workers_rss_mb(proc)
        summary_before = requests.get(proc.url + "/metrics/summary", headers=auth, timeout=TIMEOUT).json()

        t0 = time.monotonic()
        statuses = send_all(proc.port, itertools.islice(hostile_requests(10_600, keyed=keyed), 600, None))
        elapsed = time.monotonic() - t0

        after, after_bytes = series(proc.url, auth)
        rss_after = workers_rss_mb(proc)
        summary = requests.get(proc.url + "/metrics/summary", headers=auth, timeout=TIMEOUT).json()
    finally:
        proc.stop()

    assert sum(statuses.values()) == 10_000
    assert statuses.get(0, 0) == 0, statuses  # no connection failed
    assert statuses.get(500, 0) == 0, statuses
    new_series = after - before
    assert not new_series, sorted(new_series)[:10]
    # Values grow a few digits; the shape does not.
    assert after_bytes - before_bytes < 4096, (before_bytes, after_bytes)
    assert rss_after - rss_before < 10, (rss_before, rss_after)
    methods = {dict(labels)["method"] for _, labels in after if "method" in dict(labels)}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, methods
    # The summary's tables are keyed by the same closed sets.
    for section in ("endpoints",):
        assert len(json.dumps(summary.get(section, {}))) <= max(
            2 * len(json.dumps(summary_before.get(section, {}))), 2000)
    reliability.hostile(
        f"10,000 requests with made-up methods, paths, model names, header values{' and wrong keys' if keyed else ''}",
        before="3,000 odd methods: /metrics 5.7 KB -> 5.7 MB, scrape 16 ms -> 2.1 s, worker 46 -> 144 MB",
        after=f"0 new series ({len(after)} samples), /metrics {before_bytes} -> {after_bytes} B, "
              f"workers' RSS {rss_before:.1f} -> {rss_after:.1f} MB, {10_000 / elapsed:.0f} req/s, statuses {statuses}")


# -- auth before the body --------------------------------------------------------------------------


def _until_status_line(sock: socket.socket) -> bytes:
    """What the server sent until its status line is whole (or it closed)."""
    data = b""
    while b"\r\n" not in data:
        more = sock.recv(4096)
        if not more:
            break
        data += more
    return data


def _unauthenticated_upload(port: int, *, chunked: bool, total: int = 30 * MiB) -> tuple[float, bytes, bool]:
    """Start a 30 MiB upload without a key; (seconds to the status line, status line, closed by the
    server). The body keeps flowing from a thread until the server stops taking it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = f"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    piece = b"[" * MiB
    chunk = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece
    stop = threading.Event()

    def pump():
        try:
            for _ in range(total // MiB):
                if stop.is_set():
                    return
                sock.sendall(chunk)
        except OSError:
            pass  # the server closed: that is the point

    t0 = time.perf_counter()
    sock.sendall(head.encode())
    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    data = _until_status_line(sock)
    elapsed = time.perf_counter() - t0
    status = data.split(b"\r\n", 1)[0]
    closed = False
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            more = sock.recv(65536)
            if not more:
                closed = True
                break
            data += more
    except OSError:
        closed = True  # reset by the server: closed too
    stop.set()
    sock.close()
    sender.join(5)
    return elapsed, status, closed


def test_unauthenticated_upload_gets_401_before_any_body_is_read(fake_backend, tmp_path, reliability):
    proc = start_bridge(fake_backend, tmp_path, workers=2, name="authbody", BRIDGE_API_KEYS=KEY,
                        LOG_LEVEL="WARNING")
    try:
        _unauthenticated_upload(proc.port, chunked=True)  # warm both code paths
        rss_before = workers_rss_mb(proc)
        results = []
        threads = [threading.Thread(target=lambda c=c: results.append(_unauthenticated_upload(proc.port, chunked=c)))
                   for c in (True, True, True, True, False, False)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        rss_after = workers_rss_mb(proc)
        # The guard did not break the authorised path: the same upload with the key is read (and
        # refused as too large, 413, only after the key was accepted).
        ok = requests.post(proc.url + "/api/chat", headers={"Authorization": f"Bearer {KEY}"},
                           json={"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": False},
                           timeout=TIMEOUT)
    finally:
        proc.stop()
    assert len(results) == 6
    for elapsed, status, closed in results:
        assert status.startswith(b"HTTP/1.1 401"), status
        assert elapsed < 0.1, elapsed
        assert closed, "the server must close instead of draining 30 MiB"
    assert rss_after - rss_before < 5, (rss_before, rss_after)
    assert ok.status_code == 200, ok.text
    slowest = max(r[0] for r in results)
    reliability.hostile(
        "6 unauthenticated 30 MiB uploads at once (4 chunked, 2 with Content-Length), BRIDGE_API_KEYS set",
        before="chunked bodies read into memory before the key check: worker 44 -> 253 MB",
        after=f"401 in at most {slowest * 1000:.1f} ms, connection closed unread, workers' RSS "
              f"{rss_before:.1f} -> {rss_after:.1f} MB")


# -- numbers that are not JSON ---------------------------------------------------------------------


OVERFLOW_CASES = [
    ("/api/chat", {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "options": {"temperature": "@"}}),
    ("/api/generate", {"model": "m1", "prompt": "hi", "options": {"num_predict": "@"}}),
    ("/api/embed", {"model": "e1", "input": ["a"], "dimensions": "@"}),
    ("/v1/chat/completions", {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "temperature": "@"}),
    ("/v1/completions", {"model": "m1", "prompt": "hi", "top_p": "@"}),
    ("/v1/embeddings", {"model": "e1", "input": "a", "dimensions": "@"}),
]


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "9223372036854775808",
                                    "-9223372036854775809", "1" * 5000])
@pytest.mark.parametrize("path,template", OVERFLOW_CASES, ids=[c[0] for c in OVERFLOW_CASES])
def test_numbers_that_are_not_json_never_reach_the_backend(bridge, backend, path, template, number):
    raw = json.dumps(template).replace('"@"', number)
    resp = requests.post(bridge.url + path, data=raw, headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    if path.startswith("/v1/"):
        assert body["error"]["type"] == "invalid_request_error"
        message = body["error"]["message"]
    else:
        message = body["error"]
    assert isinstance(message, str) and ("out of range" in message or "not valid JSON" in message
                                         or "digits" in message), message
    assert not [r for r in backend.requests if r.path.endswith(("/completions", "/embeddings"))]


def test_overflow_row(reliability):
    """Summary row for the table (the cases above are the test)."""
    reliability.hostile("1e400 / -1e400 / NaN / Infinity / 2**63 / 5,000-digit integers in any number, 6 routes",
                        before="1e400 forwarded on /v1 as the non-JSON token Infinity",
                        after="400 in the route's own error format; the backend gets nothing")


# -- gunicorn's own log lines ----------------------------------------------------------------------


def test_gunicorn_lines_format_with_the_bridges_logging(fake_backend, tmp_path, reliability):
    proc = start_bridge(fake_backend, tmp_path, workers=2, name="logs")
    requests.get(proc.url + "/api/version", timeout=TIMEOUT)
    assert proc.stop(signal.SIGTERM) == 0
    log = proc.log_path.read_text(errors="replace")
    assert "--- Logging error ---" not in log
    assert "Traceback" not in log
    exiting = [line for line in log.splitlines() if "Worker exiting" in line]
    assert len(exiting) == 2, log[-3000:]
    assert all("(pid: " in line for line in exiting)
    reliability.hostile("SIGTERM (graceful stop) with the bridge's logging set up",
                        before="'--- Logging error ---' + traceback for each 'Worker exiting' line",
                        after=f"{len(exiting)} 'Worker exiting (pid: N)' lines, no logging error")


# -- metric files after many worker deaths ---------------------------------------------------------


def _scrape_ms(url: str, n: int = 30) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        requests.get(url + "/metrics", timeout=TIMEOUT).raise_for_status()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _wait_workers(proc: BridgeProcess, count: int, old: set[int], timeout_s: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = proc.worker_pids()
        if len(pids) == count and not (set(pids) & old):
            try:
                if requests.get(proc.url + "/health", timeout=2).status_code == 200:
                    return pids
            except requests.RequestException:
                pass
        time.sleep(0.02)
    raise AssertionError(f"workers not replaced: {proc.worker_pids()} (old {old})\n{proc.log()}")


def _requests_total(url: str, route: str) -> float:
    text = requests.get(url + "/metrics", timeout=TIMEOUT).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "bridge_http_requests_total" and s.labels.get("route") == route)


@pytest.mark.slow
def test_metric_directory_stays_small_after_200_worker_deaths(fake_backend, tmp_path, reliability):
    proc = start_bridge(fake_backend, tmp_path, workers=2, name="restarts", LOG_LEVEL="WARNING")
    sent = 0
    try:
        for _ in range(10):
            requests.get(proc.url + "/api/version", timeout=TIMEOUT)
            sent += 1
        fresh_ms = _scrape_ms(proc.url)
        fresh_files = len(os.listdir(proc.metrics_dir))
        deaths = 0
        while deaths < 200:
            for _ in range(3):  # every worker that dies has counted something
                requests.get(proc.url + "/api/version", timeout=TIMEOUT)
                sent += 1
            old = set(proc.worker_pids())
            for pid in old:
                os.kill(pid, signal.SIGKILL)
            deaths += len(old)
            _wait_workers(proc, 2, old)
        after_ms = _scrape_ms(proc.url)
        files = sorted(os.listdir(proc.metrics_dir))
        live = set(proc.worker_pids())
        total = _requests_total(proc.url, "/api/version")
    finally:
        proc.stop()
    # Every worker file left belongs to a live worker; the dead ones' values are in one archive per
    # kind.
    pids = {int(m.group(1)) for f in files for m in [re.search(r"_(\d+)\.db$", f)] if m}
    assert pids <= live, (pids - live, files)
    assert sum(f.endswith("_archive.db") for f in files) <= 6, files
    # Ring files of the recent window: the live workers' plus at most 8 dead ones (collector.py).
    assert sum(f.endswith(".ring") for f in files) <= len(live) + 8, files
    assert total == sent, (total, sent)
    assert after_ms <= 2 * fresh_ms + 1.0, (fresh_ms, after_ms)
    reliability.hostile(
        f"{deaths} worker deaths (kill -9), 2 workers",
        before="30 kill -9s left 110 files; a scrape went from 4 to 77 ms",
        after=f"{len(files)} files in the metrics directory ({fresh_files} fresh); scrape median "
              f"{fresh_ms:.1f} -> {after_ms:.1f} ms; requests_total {int(total)} = {sent} sent")


def test_max_requests_recycles_workers_and_keeps_totals(fake_backend, tmp_path):
    proc = start_bridge(fake_backend, tmp_path, workers=2, name="recycle", LOG_LEVEL="INFO",
                        MAX_REQUESTS="20", MAX_REQUESTS_JITTER="5")
    try:
        first = set(proc.worker_pids())
        session = requests.Session()
        for _ in range(150):
            assert session.get(proc.url + "/api/version", timeout=TIMEOUT).status_code == 200
        time.sleep(1.5)
        total = _requests_total(proc.url, "/api/version")
        files = [f for f in os.listdir(proc.metrics_dir) if f.endswith(".db")]
        replaced = first - set(proc.worker_pids())
    finally:
        proc.stop()
    log = proc.log_path.read_text(errors="replace")
    assert "Autorestarting worker" in log
    assert replaced
    assert total == 150
    assert len(files) <= 2 * 5 + 4, files


# -- slow clients ----------------------------------------------------------------------------------


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length body (headers may arrive before the body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b"!"  # "!" only so a closed socket cannot loop forever
        if data.endswith(b"!"):
            return data
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


def test_slow_clients_are_dropped_and_health_keeps_answering(fake_backend, tmp_path, reliability):
    proc = start_bridge(fake_backend, tmp_path, workers=1, name="slowloris", WORKER_CONNECTIONS="20",
                        CLIENT_HEADER_TIMEOUT="1", LOG_LEVEL="WARNING")
    slow: list[socket.socket] = []
    try:
        # An idle keep-alive connection after a whole request is not a slow client: it survives.
        idle = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        idle.sendall(b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(idle).startswith(b"HTTP/1.1 200")
        for i in range(25):
            sock = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHo" if i % 2 else b"")  # half dribble, half silent
            slow.append(sock)
        time.sleep(0.2)
        t0 = time.monotonic()
        health = requests.get(proc.url + "/health", timeout=20)
        health_s = time.monotonic() - t0
        closed = 0
        for sock in slow:
            sock.settimeout(5)
            try:
                closed += sock.recv(100) == b""
            except OSError:
                closed += 1
        idle.sendall(b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        reused = _read_response(idle)
    finally:
        for sock in slow:
            sock.close()
        proc.stop()
    assert health.status_code == 200
    assert health_s < 4, health_s
    assert closed == 25
    assert reused.startswith(b"HTTP/1.1 200"), reused[:100]
    reliability.hostile(
        "25 connections that never finish their headers, WORKER_CONNECTIONS=20, CLIENT_HEADER_TIMEOUT=1",
        before="/health blocked for 8 s (until keep-alive expired)",
        after=f"/health answered in {health_s:.2f} s; all 25 dropped; an idle keep-alive connection kept")


def _stalled_body(port: int, head: bytes, first_part: bytes) -> tuple[bytes, float, bool]:
    """Send a request head and part of its body, then nothing: (response, seconds to it, closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    try:
        sock.sendall(head + first_part)
        t0 = time.monotonic()
        answer = _read_response(sock)
        waited_s = time.monotonic() - t0
        try:
            closed = sock.recv(100) == b""
        except OSError:
            closed = True
        return answer, waited_s, closed
    finally:
        sock.close()


def test_a_client_that_stops_mid_body_gets_408_and_its_connection_closed(fake_backend, tmp_path, reliability):
    proc = start_bridge(fake_backend, tmp_path, workers=1, name="stalled-body", CLIENT_BODY_TIMEOUT="1",
                        LOG_LEVEL="WARNING")
    try:
        chunked = _stalled_body(proc.port, b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n", b"5\r\n{\"mod\r\n")
        sized = _stalled_body(proc.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n", b'{"model"')
        # Slow but steady (a byte every 0.4 s, each gap under the timeout) is not cut.
        body = json.dumps({"model": "m1", "messages": [], "stream": False}).encode()
        steady = socket.create_connection(("127.0.0.1", proc.port), timeout=15)
        steady.sendall(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:-3])
        for byte in body[-3:]:
            time.sleep(0.4)
            steady.sendall(bytes([byte]))
        steady_answer = _read_response(steady)
        steady.close()
        health = requests.get(proc.url + "/health", timeout=10)
        log = proc.log()
    finally:
        proc.stop()
    for (answer, waited_s, closed), shape in ((chunked, "ollama"), (sized, "openai")):
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"connection: close" in head.lower(), head
        error = json.loads(payload)["error"]
        message = error if shape == "ollama" else error["message"]
        assert "CLIENT_BODY_TIMEOUT" in message, error
        assert 0.8 < waited_s < 5, waited_s
        assert closed
    assert steady_answer.startswith(b"HTTP/1.1 200"), steady_answer[:200]
    assert health.status_code == 200
    assert "Traceback" not in log
    reliability.hostile(
        "request bodies that stop after their first bytes (chunked, and Content-Length), CLIENT_BODY_TIMEOUT=1",
        before="the request waited for as long as the client kept the socket open (no answer after 15 s)",
        after=f"408 in the route's error format after {chunked[1]:.2f} / {sized[1]:.2f} s, connection closed; "
              "a steady upload with 0.4 s gaps answered 200")


# -- start-up refuses what would fail later --------------------------------------------------------


def _check_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run([sys.executable, "-m", "bridge", "check-config"], cwd=REPO, env=full,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("variable,value", [
    ("OPENAI_API_BASE_URL", "http://127.0.0.1:notaport/v1"),
    ("OPENAI_API_BASE_URL", "http://[::1/v1"),
    ("OPENAI_API_BASE_URL", "http:///v1"),
    ("OPENAI_API_BASE_URL", "http://127.0.0.1:99999/v1"),
    ("PUSHGATEWAY_URL", "pushgateway:9091"),
    ("PROMETHEUS_MULTIPROC_DIR", "/proc/bridge-metrics"),
    ("CLIENT_HEADER_TIMEOUT", "0"),
    ("CLIENT_BODY_TIMEOUT", "0"),
    ("MAX_REQUESTS", "-1"),
])
def test_check_config_refuses_what_would_fail_later(variable, value):
    done = _check_config({variable: value})
    assert done.returncode == 1, done.stdout + done.stderr
    assert variable in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_check_config_refuses_a_mapping_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "mapping.json"
    path.write_bytes(b'{"a": "caf\xe9"}')
    done = _check_config({"MODEL_MAPPING_FILE": str(path)})
    assert done.returncode == 1
    assert "MODEL_MAPPING_FILE" in done.stderr and "UTF-8" in done.stderr and "Traceback" not in done.stderr


def test_gunicorn_refuses_an_unwritable_metrics_dir(tmp_path):
    file_not_dir = tmp_path / "a-file"
    file_not_dir.write_text("x")
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "HOME": "/tmp", "PORT": "18999",
           "PROMETHEUS_MULTIPROC_DIR": str(file_not_dir / "metrics")}
    done = subprocess.run([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "bridge.wsgi:app"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "PROMETHEUS_MULTIPROC_DIR" in done.stderr and "Traceback" not in done.stderr, done.stderr


# -- malformed framing -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw,status", [
    (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
    (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdeXX", b"400"),
    (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
    (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", b"400"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(300)) + b"\r\n", b"431"),
], ids=["bad-chunk-size", "chunk-without-crlf", "cl-and-te", "negative-cl", "long-line", "300-headers"])
def test_malformed_framing_is_a_clean_4xx(bridge, raw, status):
    sock = socket.create_connection(("127.0.0.1", bridge.port), timeout=10)
    try:
        sock.sendall(raw)
        data = _until_status_line(sock)
    finally:
        sock.close()
    assert data.split(b"\r\n", 1)[0].split(b" ")[1] == status, data[:200]
    assert b"Traceback" not in data and b"internal error" not in data
    assert "InvalidChunkSize" not in bridge.log() and "unexpected error" not in bridge.log()


@pytest.mark.parametrize("path,body", [
    ("/api/chat", {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}),
    ("/api/generate", {"model": "m1", "prompt": "hi"}),
    ("/v1/messages", {"model": "m1", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/responses", {"model": "m1", "input": "hi"}),
])
def test_stream_that_is_not_a_boolean_is_a_400_in_the_apis_own_shape(bridge, backend, path, body):
    resp = requests.post(bridge.url + path, json={**body, "stream": "yes"}, timeout=TIMEOUT)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    message = error if isinstance(error, str) else error["message"]
    assert "'stream' must be true or false" in message
    if path == "/v1/messages":
        assert resp.json()["type"] == "error" and error["type"] == "invalid_request_error"
    assert not [r for r in backend.requests if r.path.endswith(("/completions", "/responses"))]
