"""Same-run anchors for ``perf.run``: what this stack can do at all, measured next to the bridge.

Two tiny WSGI apps on the bridge's own stack (Flask under gunicorn gevent, 2 workers), started
like the fake backend (:class:`AnchorProcess`):

``perf.anchors:hello``
    Flask ``GET /`` -> ``hello``: the ceiling of Flask + gunicorn gevent on this machine in this
    run. The bridge's non-streamed figure is read as a fraction of it.

``perf.anchors:proxy``
    A bare proxy: Flask + one pooled ``requests.Session`` per worker, no metrics, no translation,
    no request ids, no logging. ``POST /v1/chat/completions`` is forwarded to the backend as is;
    a non-streamed answer is returned whole, a streamed one is relayed chunk by chunk as
    ``requests`` hands them over (``iter_content(chunk_size=None)``: one write per HTTP chunk of
    the backend), which is what a straightforward same-stack proxy does. The bridge's stream
    figure is read as a multiple of it.

The backend URL comes from ``ANCHOR_BACKEND_URL``. Both apps listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flask import Flask, Response, request

__all__ = ["hello", "proxy", "AnchorProcess"]

hello = Flask("hello")


@hello.get("/")
def _hello():
    return "hello\n"


proxy = Flask("proxy")
_session = None
_session_pid = 0


def _upstream():
    """One pooled session per worker process, created after gevent patched the worker."""
    global _session, _session_pid
    if _session is None or _session_pid != os.getpid():
        import requests
        from requests.adapters import HTTPAdapter

        s = requests.Session()
        s.trust_env = False
        s.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=2000, max_retries=0))
        _session, _session_pid = s, os.getpid()
    return _session


_BACKEND = os.environ.get("ANCHOR_BACKEND_URL", "http://127.0.0.1:1").rstrip("/")


@proxy.post("/v1/chat/completions")
def _relay():
    data = request.get_data()
    stream = b'"stream":true' in data.replace(b" ", b"")
    resp = _upstream().post(_BACKEND + "/v1/chat/completions", data=data, stream=stream,
                            headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
                            timeout=(5, 60))
    ctype = resp.headers.get("Content-Type", "application/json")
    if not stream:
        return Response(resp.content, status=resp.status_code, content_type=ctype)

    def relay():
        try:
            yield from resp.iter_content(chunk_size=None)
        finally:
            resp.close()

    return Response(relay(), status=resp.status_code, content_type=ctype)


class AnchorProcess:
    """``perf.anchors:<app>`` under gunicorn gevent on 127.0.0.1:<port> (like the fake backend)."""

    def __init__(self, app: str, tmp_dir: Path, *, workers: int = 2, backend_url: str = "",
                 connections: int = 1000) -> None:
        from perf.procs import FakeBackendProcess  # the same start/stop/wait machinery
        from tests.bridgeproc import REPO, free_port

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_dir / f"anchor-{app}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        cmd = [str(Path(sys.executable).parent / "gunicorn"), "-k", "gevent", "-w", str(workers),
               "--worker-connections", str(connections), "--keep-alive", "95", "--backlog", "4096",
               "-b", f"127.0.0.1:{self.port}", "--log-level", "warning", "--no-control-socket",
               f"perf.anchors:{app}"]
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
               "ANCHOR_BACKEND_URL": backend_url}
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._stop = FakeBackendProcess.stop
        self._pids = FakeBackendProcess.worker_pids

    def wait_ready(self, timeout_s: float = 20.0) -> AnchorProcess:
        import requests

        from tests.bridgeproc import wait_healthy

        if self.app == "hello":
            url = self.url + "/"
            wait_healthy(self.proc, url, lambda: self.log_path.read_text()[-3000:], timeout_s=timeout_s,
                         what="hello anchor")
        else:  # the proxy has no GET route: wait until it answers at all
            import time

            deadline = time.monotonic() + timeout_s
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"proxy anchor exited:\n{self.log_path.read_text()[-3000:]}")
                try:
                    requests.get(self.url + "/", timeout=1)
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline:
                        raise AssertionError("proxy anchor not ready") from None
                    time.sleep(0.1)
        return self

    def worker_pids(self) -> list[int]:
        return self._pids(self)

    def stop(self) -> None:
        self._stop(self)
