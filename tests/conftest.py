"""Shared fixtures: a scripted fake backend and the bridge under real gunicorn in front of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bridgeproc import BridgeProcess
from tests.fakes.backend import FakeBackend

#: Suites that start processes (gunicorn, llama-server, nginx, Prometheus, a browser): all "slow", so
#: ``./scripts/test -m "not slow"`` is the fast tier (unit tests, in-process fakes).
_PROCESS_SUITES = frozenset({"integration", "e2e", "faults", "fleet", "deploy", "dashboard", "conformance"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        parts = Path(str(item.fspath)).relative_to(root).parts
        starts_processes = parts[0] in _PROCESS_SUITES or any(
            item.get_closest_marker(m) for m in ("integration", "e2e"))
        if starts_processes and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def fake_backend():
    backend = FakeBackend(models=("m1", "m2", "e1")).start()
    yield backend
    backend.stop()


@pytest.fixture(scope="session")
def bridge(fake_backend, tmp_path_factory):
    """The bridge: Procfile web line, 2 gevent workers, in front of the fake backend."""
    proc = BridgeProcess(
        {"OPENAI_API_BASE_URL": fake_backend.url, "OPENAI_API_KEY": "sk-test-secret-key",
         "MODEL_MAPPING": '{"alias-1": "m1"}', "MAX_RETRIES": "1", "RETRY_BACKOFF": "0.05",
         "STREAM_IDLE_TIMEOUT": "2", "REQUEST_TIMEOUT": "10", "MODELS_CACHE_TTL": "0"},
        workers=2, tmp_dir=tmp_path_factory.mktemp("bridge"))
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture()
def backend(fake_backend):
    """The fake backend with default behaviour and an empty request log for this test."""
    fake_backend.reset()
    yield fake_backend
    fake_backend.reset()
