"""Processes of a benchmark run: the fake backend and bridges, all on 127.0.0.1, always stopped."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.bridgeproc import REPO, BridgeProcess, free_port, wait_healthy

__all__ = ["FakeBackendProcess", "start_bridge", "raise_nofile", "rss_of", "load_average", "machine"]


def raise_nofile(want: int = 20000) -> int:
    """Raise this process's open-file limit (inherited by children) as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class FakeBackendProcess:
    """``perf.fake_backend`` under gunicorn gevent on 127.0.0.1:<port>."""

    def __init__(self, tmp_dir: Path, *, workers: int = 1, connections: int = 4000) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_dir / f"fake-backend-{self.port}.log"
        self._log = open(self.log_path, "wb")
        cmd = [str(Path(sys.executable).parent / "gunicorn"), "-k", "gevent", "-w", str(workers),
               "--worker-connections", str(connections), "--keep-alive", "95", "--backlog", "4096",
               "-b", f"127.0.0.1:{self.port}", "--log-level", "warning", "--no-control-socket",
               "perf.fake_backend:app"]
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout_s: float = 20.0) -> FakeBackendProcess:
        wait_healthy(self.proc, self.url + "/health", lambda: self.log_path.read_text()[-3000:],
                     timeout_s=timeout_s, what="fake backend")
        return self

    def worker_pids(self) -> list[int]:
        return [c.pid for c in psutil.Process(self.proc.pid).children()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def start_bridge(backend_url: str, tmp_dir: Path, *, workers: int = 2, metrics: bool = True,
                 name: str = "bridge", extra: dict[str, str] | None = None) -> BridgeProcess:
    """The bridge exactly as the Procfile starts it, pointed at ``backend_url``."""
    env = {"OPENAI_API_BASE_URL": backend_url, "METRICS_ENABLED": "true" if metrics else "false",
           **(extra or {})}
    return BridgeProcess(env, workers=workers, tmp_dir=tmp_dir, log_name=name).wait_ready()


def rss_of(pids: list[int]) -> dict[int, int]:
    out = {}
    for pid in pids:
        try:
            out[pid] = psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return out


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "uptime": uptime,
            "python": sys.version.split()[0], "kernel": os.uname().release}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def stop_all(procs: list) -> None:
    """Stop every process started for a run, newest first; one failing does not keep the others up."""
    for p in reversed(procs):
        try:
            p.stop()
        except Exception as exc:  # noqa: BLE001 - keep stopping the others
            print(f"stop failed: {exc}", file=sys.stderr)
