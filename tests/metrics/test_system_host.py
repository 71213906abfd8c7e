"""Host figures (metrics/system.py host_snapshot, metrics/host.py collector)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import Metrics, system
from bridge.metrics.host import HOST_METRICS, HostCollector, include_host
from bridge.metrics.system import HostSnapshot, host_snapshot

PROMTOOL = shutil.which("promtool") or next((p for p in ("/usr/bin/promtool",) if os.path.exists(p)), None)


def test_host_snapshot_figures_are_sane():
    host = host_snapshot(max_age_s=0).as_dict()
    assert 0 <= host["cpu"]["percent"] <= 100 and host["cpu"]["count"] >= 1
    mem = host["memory"]
    assert 0 < mem["used_bytes"] <= mem["total_bytes"] and mem["available_bytes"] <= mem["total_bytes"]
    assert mem["percent"] == pytest.approx(100 * mem["used_bytes"] / mem["total_bytes"], abs=0.2)
    disk = host["disk"]
    assert disk["path"] == os.getcwd() and disk["used_bytes"] + disk["free_bytes"] <= disk["total_bytes"]
    assert {"bytes_sent", "bytes_recv"} <= set(host["network"])


def test_host_sampled_at_most_once_a_second(monkeypatch):
    calls = []
    real = system._HostSampler._sample

    def counting(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(system._HostSampler, "_sample", counting)
    sampler = system._HostSampler()
    first = sampler.get()
    for _ in range(50):
        assert sampler.get() is first
    assert len(calls) == 1
    assert sampler.get(max_age_s=0) is not first and len(calls) == 2


def test_host_sample_restarts_after_fork(monkeypatch):
    sampler = system._HostSampler()
    first = sampler.get()
    monkeypatch.setattr(system.os, "getpid", lambda: -1)
    assert sampler.get() is not first  # a forked worker never serves its parent's sample


def test_cpu_percent_is_since_the_previous_sample():
    sampler = system._HostSampler()
    sampler.get(max_age_s=0)
    busy_until = os.times().elapsed + 0.2
    while os.times().elapsed < busy_until:
        pass
    second = sampler.get(max_age_s=0)
    assert 0 < second.cpu_percent <= 100


def test_collector_gauges_and_counters():
    snap = HostSnapshot(ts_s=1.0, cpu_count=4, cpu_percent=25.0, memory_total_bytes=1000, memory_used_bytes=400,
                        memory_available_bytes=600, memory_percent=40.0, disk_total_bytes=10, disk_used_bytes=5,
                        disk_free_bytes=5, disk_percent=50.0, net={"bytes_recv": 7, "bytes_sent": 8},
                        disk_io={})  # no disk I/O figures (containers): those series are left out
    registry = CollectorRegistry()
    registry.register(HostCollector(lambda: snap))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    value = {name: f.samples[0].value for name, f in families.items()}
    assert value["bridge_host_cpu_usage_ratio"] == 0.25 and value["bridge_host_memory_usage_ratio"] == 0.4
    assert value["bridge_host_memory_used_bytes"] == 400 and value["bridge_host_disk_usage_ratio"] == 0.5
    assert families["bridge_host_network_receive_bytes"].type == "counter"
    assert families["bridge_host_memory_total_bytes"].type == "gauge"
    assert "bridge_host_disk_read_bytes" not in families
    assert all(not s.labels for f in families.values() for s in f.samples)  # no labels at all


def test_collector_survives_a_broken_reading():
    def broken():
        raise OSError("no /proc")

    registry = CollectorRegistry()
    registry.register(HostCollector(broken))
    assert b"bridge_host" not in generate_latest(registry)


def test_include_host_once_and_in_the_exposition():
    registry = CollectorRegistry()
    assert include_host(include_host(registry)) is registry
    text = generate_latest(registry).decode()
    assert text.count("# TYPE bridge_host_memory_total_bytes gauge") == 1
    m = Metrics(window=10, version="t", multiproc_dir=None)
    body, _ = m.exposition()
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"bridge_host_memory_total_bytes", "bridge_host_cpu_usage_ratio"} <= names
    assert set(HOST_METRICS) >= {n for n in names if n.startswith("bridge_host_")}


def test_summary_system_section_has_host_beside_workers():
    m = Metrics(window=10, version="t", multiproc_dir=None)
    system_section = m.summary(endpoint=None, window_s=None, include_system=True)["system"]
    assert system_section["process"]["rss_bytes"] > 0
    assert system_section["host"]["memory"]["total_bytes"] > 0
    assert "system" not in m.summary(endpoint=None, window_s=None, include_system=False)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
def test_promtool_accepts_host_metrics():
    m = Metrics(window=10, version="t", multiproc_dir=None)
    body, _ = m.exposition()
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
