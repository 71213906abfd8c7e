"""deploy/nginx.conf in a real nginx, in front of the bridge under gunicorn (Procfile web line).

The deploy file is used as it is, with only its addresses, log path and body limit rewritten for
a private instance on 127.0.0.1 (each rewrite must match exactly once, so the test notices when
the file drifts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.bridgeproc import REPO, BridgeProcess, free_port

pytestmark = pytest.mark.integration

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
if NGINX is None:
    pytest.skip("nginx is not installed (apt-get install nginx)", allow_module_level=True)

DEPLOY_CONF = REPO / "deploy" / "nginx.conf"
MAX_REQUEST_BYTES = 4096          # the bridge's limit in these tests
NGINX_BODY_LIMIT = "8k"           # nginx's, a little above it (as in the deploy file: 33m vs 32 MiB)
TOKENS = ["one", " two", " three", " four", " five", " six"]
PACE_S = 0.2


def _rewrite(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/nginx.conf: expected exactly one {old!r}"
    return text.replace(old, new)


class Nginx:
    """A private nginx (``nginx -p DIR -c DIR/nginx.conf``) serving deploy/nginx.conf."""

    def __init__(self, directory: Path, upstream_port: int) -> None:
        self.dir = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = directory / "access.log"
        site = DEPLOY_CONF.read_text()
        site = _rewrite(site, "server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};")
        site = _rewrite(site, "listen 80;", f"listen 127.0.0.1:{self.port};")
        site = _rewrite(site, "listen [::]:80;", "")
        site = _rewrite(site, "/var/log/nginx/bridge.access.log", str(self.access_log))
        site = _rewrite(site, "client_max_body_size 33m;", f"client_max_body_size {NGINX_BODY_LIMIT};")
        (directory / "bridge.conf").write_text(site)
        temp = directory / "temp"
        temp.mkdir(exist_ok=True)
        temps = "\n".join(f"    {kind}_temp_path {temp / kind};"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (directory / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"worker_processes 1;\ndaemon off;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} warn;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"{temps}\n"
            f"    include {directory / 'bridge.conf'};\n"
            "}\n")
        self.args = [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf"),
                     "-e", str(directory / "error.log")]
        test = subprocess.run(self.args + ["-t"], capture_output=True, text=True, timeout=20)
        assert test.returncode == 0, f"nginx -t failed:\n{test.stderr}"
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"nginx exited:\n{self.error_log()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"nginx did not listen:\n{self.error_log()}")

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def access_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests, then exit
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture(scope="module")
def bridge_small(fake_backend, tmp_path_factory):
    proc = BridgeProcess(
        {"OPENAI_API_BASE_URL": fake_backend.url, "OPENAI_API_KEY": "sk-test",
         "MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES), "MAX_RETRIES": "0", "MODELS_CACHE_TTL": "0",
         "REQUEST_TIMEOUT": "10", "STREAM_IDLE_TIMEOUT": "5", "CONNECT_TIMEOUT": "2"},
        workers=2, tmp_dir=tmp_path_factory.mktemp("bridge-nginx"), log_name="bridge-nginx")
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def nginx(bridge_small, tmp_path_factory):
    server = Nginx(tmp_path_factory.mktemp("nginx"), bridge_small.port)
    try:
        yield server
    finally:
        server.stop()


def _chat(stream: bool, content: str = "hi") -> dict:
    return {"model": "m1", "stream": stream, "messages": [{"role": "user", "content": content}]}


def _assert_ollama_error(resp: requests.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    return body["error"]


def test_paced_stream_arrives_chunk_by_chunk(nginx, backend):
    backend.script(tokens=TOKENS, delay_s=PACE_S)
    t0 = time.monotonic()
    arrivals: list[tuple[float, dict]] = []
    with requests.post(nginx.url + "/api/chat", json=_chat(True), stream=True, timeout=20) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("application/x-ndjson")
        assert "gzip" not in resp.headers.get("Content-Encoding", "")
        pending = b""
        for data in resp.iter_content(chunk_size=None):  # each read as it arrives (chunked)
            now = time.monotonic() - t0
            pending += data
            *lines, pending = pending.split(b"\n")
            arrivals += [(now, json.loads(line)) for line in lines if line.strip()]
    assert pending == b""
    content = [(t, obj) for t, obj in arrivals if not obj.get("done")]
    assert "".join(obj["message"]["content"] for _, obj in content) == "".join(TOKENS)
    assert arrivals[-1][1]["done"] is True
    # Each token line came on its own, about PACE_S after the previous one: nothing was held back.
    times = [t for t, _ in content]
    assert len(times) == len(TOKENS)
    # (Bounds are loose so a busy machine does not make this flaky; buffering puts all the lines
    # into one or two reads at the very end, far outside them.)
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    assert gaps[len(gaps) // 2] >= PACE_S * 0.5, f"lines bunched up (buffered?): {times}"
    assert times[-1] - times[0] >= PACE_S * (len(TOKENS) - 1) * 0.7, times


def test_request_id_sent_is_kept(nginx, backend):
    rid = "deploy-test-rid-0001"
    resp = requests.post(nginx.url + "/api/chat", json=_chat(False), headers={"X-Request-ID": rid}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Request-ID"] == rid
    # nginx -> bridge -> backend: the same id all the way.
    assert backend.requests_to("/v1/chat/completions")[-1].headers.get("X-Request-ID") == rid
    _wait_for_log(nginx, f"rid={rid}")


def test_request_id_generated_when_absent(nginx, backend):
    resp = requests.post(nginx.url + "/api/chat", json=_chat(False), timeout=10)
    assert resp.status_code == 200, resp.text
    rid = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert backend.requests_to("/v1/chat/completions")[-1].headers.get("X-Request-ID") == rid
    # It is nginx's $request_id (logged by nginx), carried through the bridge, not a second id.
    _wait_for_log(nginx, f"rid={rid}")


def test_body_over_max_request_bytes_is_413_from_the_bridge(nginx, backend):
    body = _chat(False, "x" * (MAX_REQUEST_BYTES + 1000))
    resp = requests.post(nginx.url + "/api/chat", json=body, headers={"X-Request-ID": "big-1"}, timeout=10)
    message = _assert_ollama_error(resp, 413)
    assert "MAX_REQUEST_BYTES" in message
    assert resp.headers["X-Request-ID"] == "big-1"
    assert not backend.requests_to("/v1/chat/completions")


def test_body_over_nginx_limit_is_413_json_from_nginx(nginx, backend):
    body = _chat(False, "x" * 20_000)
    resp = requests.post(nginx.url + "/api/chat", json=body, headers={"X-Request-ID": "huge-1"}, timeout=10)
    message = _assert_ollama_error(resp, 413)
    assert "client_max_body_size" in message
    assert resp.headers["X-Request-ID"] == "huge-1"


@pytest.mark.parametrize("stream", [False, True])
def test_backend_refusing_is_502_in_ollama_shape(nginx, backend, stream):
    backend.script(fault="refuse")
    resp = requests.post(nginx.url + "/api/chat", json=_chat(stream), timeout=15)
    _assert_ollama_error(resp, 502)
    assert resp.headers.get("X-Request-ID")


def test_gunicorn_down_is_502_json_from_nginx(tmp_path):
    server = Nginx(tmp_path, free_port())  # nothing listens there
    try:
        resp = requests.post(server.url + "/api/chat", json=_chat(False), headers={"X-Request-ID": "down-1"},
                             timeout=10)
        _assert_ollama_error(resp, 502)
        assert resp.headers["X-Request-ID"] == "down-1"
    finally:
        server.stop()


def test_metrics_through_nginx_include_queue_time(nginx, backend):
    requests.get(nginx.url + "/api/tags", timeout=10).raise_for_status()
    text = requests.get(nginx.url + "/metrics", timeout=10).text
    # X-Request-Start "t=${msec}" set by nginx was read: the queue histogram has observations.
    match = re.search(r"^bridge_http_request_queue_seconds_count (\S+)$", text, re.M)
    assert match and float(match.group(1)) >= 1, text[:2000]


def _wait_for_log(nginx: Nginx, needle: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(needle in line for line in nginx.access_lines()):
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in nginx access log:\n" + "\n".join(nginx.access_lines()[-5:]))
