"""Process faults: SIGTERM to the master mid-stream (graceful), kill -9 of one worker (replaced)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import pytest
import requests

from tests.faults import TIMEOUT, chat_body, start_bridge

pytestmark = pytest.mark.integration


def test_sigterm_lets_the_stream_finish_and_refuses_new_connections(fake_backend, backend, tmp_path, reliability):
    proc = start_bridge(fake_backend, tmp_path, name="term", workers=2, GRACEFUL_TIMEOUT="10")
    tokens = [f"w{i} " for i in range(20)]
    backend.script(tokens=tokens, delay_s=0.15)  # about 3 s of streaming
    lines: list[dict] = []
    errors: list[BaseException] = []
    first = threading.Event()

    def consume():
        try:
            with requests.post(proc.url + "/api/generate", json={"model": "m1", "prompt": "x"}, stream=True,
                               timeout=TIMEOUT) as resp:
                for line in resp.iter_lines():
                    if line:
                        lines.append(json.loads(line))
                        first.set()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            first.set()

    thread = threading.Thread(target=consume, daemon=True)
    try:
        thread.start()
        assert first.wait(5)
        term_at = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        # New connections are refused while the stream is still running.
        refused_at = None
        while time.monotonic() - term_at < 3:
            try:
                with socket.create_connection(("127.0.0.1", proc.port), timeout=0.5) as sock:
                    sock.settimeout(0.5)
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    answered = sock.recv(100)
                if not answered:
                    raise ConnectionResetError
            except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
                refused_at = time.monotonic()
                break
            time.sleep(0.05)
        assert refused_at is not None, "new connections still served after SIGTERM"
        thread.join(15)
        assert not errors, errors
        pieces = [o.get("response", "") for o in lines if not o.get("done")]
        assert pieces == tokens and lines[-1]["done"] is True and not any("error" in o for o in lines)
        assert proc.proc.wait(12) == 0
        stream_end = time.monotonic() - term_at
        assert not thread.is_alive() and refused_at - term_at < stream_end
    finally:
        proc.stop()
    reliability.row("SIGTERM to gunicorn master mid-stream (GRACEFUL_TIMEOUT=10)",
                    outcome=f"new connections refused after {refused_at - term_at:.2f} s; stream completed, "
                            f"master exited 0 after {stream_end:.1f} s", sent=tokens, delivered=pieces)


def test_kill_9_worker_is_replaced(fake_backend, backend, tmp_path, reliability):
    proc = start_bridge(fake_backend, tmp_path, name="kill", workers=2)
    try:
        before = proc.worker_pids()
        assert len(before) == 2
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        failures = ok = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                resp = requests.post(proc.url + "/api/chat", json=chat_body(stream=False), timeout=(1, 5))
                ok += resp.status_code == 200
                failures += resp.status_code != 200
            except requests.RequestException:
                failures += 1
            after = proc.worker_pids()
            if len(after) == 2 and victim not in after and ok >= 10:
                break
            time.sleep(0.05)
        after = proc.worker_pids()
        assert len(after) == 2 and victim not in after, (before, after)
        # Once replaced, every request succeeds.
        for _ in range(20):
            assert requests.post(
                proc.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT).status_code == 200
        assert failures <= 1, failures  # at most the one request the dead worker had accepted
    finally:
        proc.stop()
    reliability.row("kill -9 one worker", outcome=f"replaced by the master; {ok} OK / {failures} failed meanwhile, "
                                                  "then 20/20 OK")
