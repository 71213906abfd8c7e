"""A real Pushgateway and a real Prometheus on 127.0.0.1 (Debian packages), for tests and perf/fleet.py.

Both are private instances in a temporary directory, on free ports, always stopped by ``stop()``.
Prometheus is configured from the shipped ``deploy/prometheus-push.yml`` (only its target, its
intervals and the rule file's path are changed), so the file operators use is the one exercised.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.bridgeproc import REPO, free_port, wait_healthy

__all__ = ["PROMETHEUS", "PUSHGATEWAY", "Prometheus", "Pushgateway"]

PUSHGATEWAY = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
PROMETHEUS = shutil.which("prometheus")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class Pushgateway:
    """``prometheus-pushgateway`` without persistence on 127.0.0.1:<port>."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"pushgateway-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{self.port}", "--persistence.file=",
             "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self) -> Pushgateway:
        wait_healthy(self.proc, self.url + "/-/ready", lambda: self.log_path.read_text()[-3000:],
                     timeout_s=20, what="pushgateway")
        return self

    def metrics_text(self) -> str:
        return requests.get(self.url + "/metrics", timeout=5).text

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()


class Prometheus:
    """``prometheus`` scraping the Pushgateway every ``interval_s`` with deploy/prometheus-push.yml."""

    def __init__(self, tmp: Path, pushgateway_port: int, *, interval_s: int = 1) -> None:
        import yaml

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tmp / f"prometheus-{self.port}"
        self.dir.mkdir()
        config = yaml.safe_load((REPO / "deploy" / "prometheus-push.yml").read_text())
        config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = f"{interval_s}s"
        (job,) = config["scrape_configs"]
        assert job["honor_labels"] is True
        job["scrape_interval"], job["scrape_timeout"] = f"{interval_s}s", f"{interval_s}s"
        job["static_configs"] = [{"targets": [f"127.0.0.1:{pushgateway_port}"]}]
        shutil.copy(REPO / "deploy" / "alerts.yml", self.dir / "alerts.yml")
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = self.dir / "prometheus.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self) -> Prometheus:
        wait_healthy(self.proc, self.url + "/-/ready", lambda: self.log_path.read_text()[-3000:],
                     timeout_s=20, what="prometheus")
        return self

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = requests.get(self.url + "/api/v1/query", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar(self, promql: str, at: float | None = None) -> float | None:
        """The single value of ``promql`` (None when it has no series)."""
        result = self.query(promql, at)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def by(self, promql: str, label: str, at: float | None = None) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql, at)}

    def wait_for(self, promql: str, want, *, label: str | None = None, timeout_s: float = 20.0):
        """Poll until the query's value (or ``{label: value}``) equals ``want``; returns (value, time)."""
        deadline = time.monotonic() + timeout_s
        got = None
        while time.monotonic() < deadline:
            at = time.time()
            got = self.by(promql, label, at) if label else self.scalar(promql, at)
            if got == want:
                return got, at
            time.sleep(0.25)
        raise AssertionError(f"{promql}: want {want}, got {got}\n{self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()
