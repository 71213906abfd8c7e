"""Multiprocess mode, in a subprocess (PROMETHEUS_MULTIPROC_DIR must be set before the import).

The child script forks two "workers" that each record requests, then the parent process (which
recorded nothing) scrapes: counters, the summary totals and the merged window must cover both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    assert "prometheus_client" not in sys.modules
    from bridge.metrics import Metrics
    from bridge.metrics.records import Record
    from prometheus_client.parser import text_string_to_metric_families

    d = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    m = Metrics(window=50, version="9.9", multiproc_dir=d)   # created before fork, like preload_app

    def worker(n, route):
        for i in range(n):
            m.observe(Record(ts_s=time.time(), route=route, method="POST", status=200, duration_s=0.01,
                             model="m1", stream=True, ttft_s=0.1, tokens_in=1, tokens_out=3,
                             outcome="ok" if i % 10 else "client_disconnect"))

    pids = []
    for n, route in ((30, "/api/chat"), (70, "/api/generate")):
        pid = os.fork()
        if pid == 0:
            worker(n, route)
            os._exit(0)
        pids.append(pid)
    from prometheus_client import multiprocess
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
        multiprocess.mark_process_dead(pid, d)  # what gunicorn.conf.py's child_exit does

    body, _ = m.exposition()
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    total = sum(s.value for s in fams["bridge_http_requests"].samples if s.name.endswith("_total"))
    tokens = sum(s.value for s in fams["bridge_tokens"].samples if s.labels["type"] == "output")
    rss_pids = sorted(s.labels.get("pid") for s in fams["bridge_process_resident_memory_bytes"].samples)
    s = m.summary(endpoint=None, window_s=None, include_system=True)
    print(json.dumps({
        "counter_total": total, "tokens_out": tokens, "rss_pids": rss_pids, "parent": str(os.getpid()),
        "children": [str(p) for p in pids],
        "build_info": [s.value for s in fams["bridge_build_info"].samples],
        "total_requests": s["total_requests"], "successful": s["successful_requests"],
        "cancelled": s["cancelled_requests"], "window_records": s["period"]["window_records"],
        "endpoints": {k: v["count"] for k, v in s["endpoints"].items()},
        "rings": sorted(n for n in os.listdir(d) if n.endswith(".ring")),
        "promtool_body": body.decode(),
    }))
    """
)


def test_two_processes_merge(tmp_path):
    d = tmp_path / "prom"
    d.mkdir()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(d), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["counter_total"] == 100
    assert out["tokens_out"] == 300
    assert out["total_requests"] == 100
    assert out["successful"] == 90 and out["cancelled"] == 10
    # window is 50 per worker: 30 + 50 records, read from the two children's ring files
    assert out["window_records"] == 80
    assert out["endpoints"] == {"/api/chat": 30, "/api/generate": 50}
    assert len(out["rings"]) == 3  # parent (empty) + two children
    assert out["build_info"] == [1.0]
    # liveall gauges carry the pid label added by prometheus_client; dead children are dropped
    assert out["rss_pids"] == [out["parent"]]

    promtool = "/usr/bin/promtool"
    if os.path.exists(promtool):
        check = subprocess.run([promtool, "check", "metrics"], input=out["promtool_body"].encode(),
                               capture_output=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
    else:  # pragma: no cover
        pytest.skip("promtool not installed")
