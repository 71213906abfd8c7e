"""Monitoring across gunicorn workers: exact counts from any worker, valid exposition, real Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import ollama
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.bridgeproc import BridgeProcess, disconnect_mid_stream, free_port

pytestmark = pytest.mark.integration

WORKERS = 3


@pytest.fixture(scope="module")
def bridge3(fake_backend, tmp_path_factory):
    proc = BridgeProcess({"OPENAI_API_BASE_URL": fake_backend.url, "OPENAI_API_KEY": "sk-test-secret-key",
                          "STREAM_IDLE_TIMEOUT": "1", "MODELS_CACHE_TTL": "0"},
                         workers=WORKERS, tmp_dir=tmp_path_factory.mktemp("bridge3"))
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def scrape(url: str, path: str) -> requests.Response:
    # A new connection per scrape, so different workers answer.
    resp = requests.get(url + path, headers={"Connection": "close"}, timeout=10)
    assert resp.status_code == 200
    return resp


def counter_values(text: str, family: str, **labels: str) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        if fam.name != family:
            continue
        for sample in fam.samples:
            if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def route_total(text: str, route: str) -> float:
    return sum(counter_values(text, "bridge_http_requests", route=route).values())


def test_every_scrape_reports_exact_counts_from_any_worker(bridge3, backend):
    c = ollama.Client(host=bridge3.url, timeout=20)
    n = 12
    pids = set()
    for i in range(n):
        c.chat("m1", messages=[{"role": "user", "content": f"q{i}"}])
        list(c.generate("m2", f"p{i}", stream=True))
        requests.get(bridge3.url + "/api/tags", headers={"Connection": "close"}, timeout=10)
        r = requests.post(bridge3.url + "/api/chat", json={"model": "nope", "messages": []}, timeout=10,
                          headers={"Connection": "close"})
        assert r.status_code in (200, 404)  # empty messages short-circuit (load) even for unknown names
    expected = {"/api/chat": 2 * n, "/api/generate": n, "/api/tags": n}
    summaries = []
    for _ in range(8):
        text = scrape(bridge3.url, "/metrics").text
        for route, count in expected.items():
            assert route_total(text, route) == count, (route, text[:2000])
        summary = scrape(bridge3.url, "/metrics/summary").json()
        summaries.append(summary)
        pids.update(p["pid"] for p in scrape(bridge3.url, "/metrics/summary?include_system=true")
                    .json()["system"]["worker_processes"])
    assert all(s["total_requests"] == 4 * n for s in summaries)
    for route, count in expected.items():
        assert {s["endpoints"][route]["count"] for s in summaries} == {count}
    stable = [{k: v for k, v in s.items() if k not in ("period", "active_requests", "window")} for s in summaries]
    assert all(s == stable[0] for s in stable), "summaries differ between workers"
    assert len(pids) == WORKERS


def test_exposition_parses_and_passes_promtool(bridge3, backend):
    ollama.Client(host=bridge3.url, timeout=20).chat("m1", messages=[{"role": "user", "content": "x"}])
    text = scrape(bridge3.url, "/metrics").text
    names = {fam.name for fam in text_string_to_metric_families(text)}
    for needed in ("bridge_http_requests", "bridge_http_request_duration_seconds", "bridge_tokens",
                   "bridge_time_to_first_token_seconds", "bridge_build_info", "bridge_process_resident_memory_bytes"):
        assert needed in names, needed
    assert 'route="/api/chat"' in text and "nope" not in text
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_stream_figures_match_a_paced_backend(bridge3, backend):
    tokens = [f"w{i} " for i in range(5)]
    backend.script(tokens=tokens, delay_s=0.1, first_delay_s=0.2)
    before = scrape(bridge3.url, "/metrics/summary").json()["streaming"]["total_streams"]
    started = time.monotonic()
    chunks, first_s = [], None
    for chunk in ollama.Client(host=bridge3.url, timeout=20).generate("m2", "paced", stream=True):
        first_s = first_s or time.monotonic() - started
        chunks.append(chunk)
    total_s = time.monotonic() - started
    assert "".join(ch.response for ch in chunks) == "".join(tokens)
    summary = scrape(bridge3.url, "/metrics/summary?window_s=5").json()
    assert summary["streaming"]["total_streams"] >= 1 and summary["streaming"]["total_streams"] <= before + 1
    rec = next(r for r in summary["recent"] if r["route"] == "/api/generate")
    # The fake waits 0.2 s before answering any request (the bridge's model-list check included),
    # then 0.1 s before each token: first token at 0.3 s after the completion call was sent.
    listing_s = 0.2 * len(backend.requests_to("/v1/models"))
    assert 1000 * (listing_s + 0.3) - 5 <= rec["ttft_ms"] <= 1000 * (listing_s + 0.3) + 150
    # ... and never later than what the client itself saw (it reads after the bridge wrote).
    assert rec["ttft_ms"] <= 1000 * first_s + 5
    assert 1000 * first_s < rec["duration_ms"] <= 1000 * total_s + 5
    assert rec["tokens"] == {"in": 7, "out": 5}
    assert rec["outcome"] == "ok"


def test_client_disconnect_and_backend_stall_are_counted(bridge3, backend):
    def outcomes() -> dict:
        text = scrape(bridge3.url, "/metrics").text
        return {dict(k)["outcome"]: v for k, v in counter_values(text, "bridge_streams", route="/api/generate").items()}

    start = outcomes()
    backend.script(tokens=[f"t{i} " for i in range(100)], delay_s=0.05)
    disconnect_mid_stream(bridge3.port, {"model": "m1", "prompt": "go"}, after_lines=2)
    assert backend.wait_closed(timeout_s=3.0)

    backend.reset()
    backend.script(fault="stall_mid_stream", fault_after_tokens=2)
    lines = requests.post(bridge3.url + "/api/generate", json={"model": "m1", "prompt": "x"}, timeout=10).text
    assert json.loads(lines.strip().split("\n")[-1])["error"]

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        now = outcomes()
        if (now.get("client_disconnect", 0) > start.get("client_disconnect", 0)
                and now.get("timeout", 0) > start.get("timeout", 0)):
            break
        time.sleep(0.1)
    assert now.get("client_disconnect", 0) == start.get("client_disconnect", 0) + 1, now
    assert now.get("timeout", 0) == start.get("timeout", 0) + 1, now


def test_real_prometheus_scrapes_the_bridge(bridge3, backend, tmp_path: Path):
    prometheus = shutil.which("prometheus")
    if not prometheus:
        pytest.skip("prometheus not installed (Debian package prometheus)")
    ollama.Client(host=bridge3.url, timeout=20).chat("m1", messages=[{"role": "user", "content": "x"}])
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: bridge\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{bridge3.port}']\n")
    proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        expected = route_total(scrape(bridge3.url, "/metrics").text, "/api/chat")
        query = 'sum(bridge_http_requests_total{route="/api/chat"})'
        value = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                result = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query},
                                      timeout=2).json()["data"]["result"]
                if result:
                    value = float(result[0]["value"][1])
                    if value == expected:
                        break
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.5)
        assert value == expected
    finally:
        proc.terminate()
        proc.wait(10)
