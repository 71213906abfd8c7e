"""Start the bridge for tests exactly as production does: the Procfile's web line under gunicorn."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_command(kind: str = "web") -> str:
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"Procfile has no {kind}: line")


def wait_healthy(proc: subprocess.Popen, url: str, log, *, timeout_s: float, what: str) -> None:
    """Poll ``url`` until it answers 200; fail with the process's log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n{log()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready in {timeout_s} s:\n{log()}")


class BridgeProcess:
    """A gunicorn master running the bridge on 127.0.0.1:<port>; stop() is always safe."""

    def __init__(self, env: dict[str, str], *, workers: int = 2, tmp_dir: Path, log_name: str = "bridge") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_dir / f"{log_name}-{self.port}.log"
        self.metrics_dir = tmp_dir / f"metrics-{self.port}"
        full_env = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            "FORWARDED_ALLOW_IPS": "127.0.0.1",
            "LOG_LEVEL": "INFO",
            **env,
        }
        command = procfile_command()
        # Bind to loopback only in tests (the Procfile binds 0.0.0.0 via gunicorn.conf.py).
        command += f" --bind 127.0.0.1:{self.port}"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(shlex.split(command), cwd=REPO, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.workers = workers

    def wait_ready(self, timeout_s: float = 30.0) -> BridgeProcess:
        wait_healthy(self.proc, self.url + "/health", self.log, timeout_s=timeout_s, what="bridge")
        return self

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self, sig: int = signal.SIGQUIT, timeout_s: float = 30.0) -> int:
        """Stop gunicorn: SIGQUIT (quick) by default; SIGTERM is the graceful stop, which waits
        up to graceful_timeout for open connections, idle keep-alive ones included."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def disconnect_mid_stream(port: int, body: dict, *, after_lines: int, path: str = "/api/generate") -> None:
    """Send a streaming request over a raw socket, read ``after_lines`` NDJSON lines, then vanish."""
    import json

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        data = json.dumps(body).encode()
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        received = b""
        while received.count(b"\n{") < after_lines:
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError(f"stream ended before {after_lines} lines: {received[-300:]!r}")
            received += chunk
    finally:
        sock.close()
