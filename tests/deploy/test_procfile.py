"""The Procfile run as Heroku runs it: the line's text through ``bash -c``, config from the env.

Heroku sets PORT and (via the Python buildpack) WEB_CONCURRENCY, puts the app's virtualenv on
PATH and runs each process type's command with bash. Nothing else is passed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.bridgeproc import REPO, free_port, procfile_command

pytestmark = pytest.mark.integration


def _heroku_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),   # gunicorn.conf.py puts its metrics dir under the temp dir
        "LANG": "C.UTF-8",
        **extra,
    }


def test_procfile_has_web_and_release_lines():
    assert procfile_command("web").startswith("gunicorn ")
    assert procfile_command("release") == "python -m bridge check-config"


def test_web_line_serves_on_port_with_web_concurrency(tmp_path, fake_backend):
    port = free_port()
    env = _heroku_env(tmp_path, PORT=str(port), WEB_CONCURRENCY="2", OPENAI_API_BASE_URL=fake_backend.url)
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", "-c", procfile_command("web")], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"web process exited with {proc.returncode}:\n{log_path.read_text()}"
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"not answering on {port}:\n{log_path.read_text()}"
            time.sleep(0.1)
        assert requests.get(url + "/", timeout=5).text == "Ollama is running"
        assert requests.get(url + "/api/version", timeout=5).json()["version"]
        text = log_path.read_text()
        # Bound on every interface at $PORT (what Heroku's router needs), with WEB_CONCURRENCY workers.
        assert f"Listening at: http://0.0.0.0:{port}" in text, text
        deadline = time.monotonic() + 10
        while len(re.findall(r"Booting worker with pid", log_path.read_text())) < 2:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2, workers
        metrics_dirs = list(tmp_path.glob("bridge-metrics-*"))
        assert len(metrics_dirs) == 1, "gunicorn.conf.py did not pick a metrics dir under TMPDIR"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # what Heroku sends first
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    assert proc.returncode == 0, log_path.read_text()


def _release(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", procfile_command("release")], cwd=REPO, env=_heroku_env(tmp_path, **settings),
                          capture_output=True, text=True, timeout=60)


def test_release_line_fails_on_a_bad_setting(tmp_path):
    result = _release(tmp_path, MAX_RETRIES="abc")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "MAX_RETRIES" in result.stderr
    assert "abc" in result.stderr


@pytest.mark.parametrize("settings", [
    {},
    {"OPENAI_API_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-x", "MAX_RETRIES": "0",
     "MODEL_MAPPING": '{"llama3": "m1"}', "MAX_REQUEST_BYTES": "1048576", "LOG_FORMAT": "text"},
], ids=["defaults", "typical"])
def test_release_line_passes_on_good_settings(tmp_path, settings):
    result = _release(tmp_path, **settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration OK" in result.stdout
    assert "sk-x" not in result.stdout + result.stderr  # secrets never printed
