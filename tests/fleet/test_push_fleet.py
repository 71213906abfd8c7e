"""Push mode for real: three bridge instances (gunicorn, 2 workers each) push to a real Pushgateway,
a real Prometheus scrapes it with deploy/prometheus-push.yml (honor_labels), and the fleet's
request total in PromQL equals what this test sent, across a graceful restart of one instance.

What "the fleet total" means across a restart: a restarted instance starts its counters from 0
and its first push replaces its group in the Pushgateway, so the fleet's current sum forgets what
the old process served. What it served is still in Prometheus: its last push (made at graceful
shutdown) was scraped before the new process pushed. The total since the start is therefore
* ``sum(x) + sum(x{instance="web.2"} @ <a time between the two processes>)``, or, for any number of
  restarts without knowing when they happened,
* each series' last value plus its value before every counter reset, from the raw samples
  (what ``increase()`` does, without its extrapolation and counting each series' first value).
The test asserts both.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.bridgeproc import BridgeProcess
from tests.fleet.promprocs import PROMETHEUS, PUSHGATEWAY, Prometheus, Pushgateway

pytestmark = pytest.mark.integration

if PUSHGATEWAY is None or PROMETHEUS is None:
    pytest.skip("needs prometheus-pushgateway and prometheus (apt-get install prometheus-pushgateway prometheus)",
                allow_module_level=True)

REQUESTS = "bridge_http_requests_total"
PUSHER_LINE = "this worker pushes the instance's metrics"

# (method, path, json body, expected status); one entry per request.
_TAGS = ("GET", "/api/tags", None, 200)
_CHAT = ("POST", "/api/chat", {"model": "demo", "stream": False, "messages": [{"role": "user", "content": "hi"}]}, 200)
_STREAM = ("POST", "/api/chat", {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}, 200)
_EMBED = ("POST", "/api/embed", {"model": "demo-embed", "input": "hello"}, 200)
_MISSING = ("POST", "/api/show", {"model": "no-such-model"}, 404)
_OPENAI = ("POST", "/v1/chat/completions", {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}, 200)
FULL = [_TAGS] * 6 + [_CHAT] * 4 + [_STREAM] * 2 + [_EMBED] * 2 + [_MISSING] * 2 + [_OPENAI] * 2
# Fewer of each kind than FULL: a restarted instance's first scraped values are below its last
# ones, so Prometheus sees every series' counter reset (it can only see a reset as a drop).
SMALL = [_TAGS] * 3 + [_CHAT] * 2 + [_STREAM, _EMBED, _MISSING, _OPENAI]


def _send(url: str, plan) -> int:
    """Send every request of ``plan`` on a new connection each (nothing keeps a worker busy)."""
    for method, path, body, status in plan:
        resp = requests.request(method, url + path, json=body, timeout=20)
        assert resp.status_code == status, (path, resp.status_code, resp.text[:200])
        if body is not None and body.get("stream", True) and path == "/api/chat":
            assert resp.text.rstrip().endswith("}") and '"done":true' in resp.text.replace(" ", "")
    return len(plan)


def _reset_aware_total(prom: Prometheus, selector: str, window_s: int) -> float:
    """Each series' last raw sample plus its value before every counter reset."""
    total = 0.0
    for series in prom.query(f"{selector}[{window_s}s]"):
        prev = 0.0
        for _, raw in series["values"]:
            value = float(raw)
            if value < prev:
                total += prev
            prev = value
        total += prev
    return total


def _pushers_before_stop(log: str) -> int:
    return log.split("Handling signal: term")[0].count(PUSHER_LINE)


@pytest.fixture()
def fleet_tmp(tmp_path):
    procs = []
    yield tmp_path, procs
    for proc in reversed(procs):
        proc.stop()


def test_fleet_total_in_prometheus_equals_what_was_sent(fleet_tmp):
    tmp, procs = fleet_tmp
    t_start = time.time()
    gateway = Pushgateway(tmp)
    procs.append(gateway)
    gateway.wait_ready()
    prom = Prometheus(tmp, gateway.port, interval_s=1)  # target discovery takes ~5 s: start it early
    procs.append(prom)

    def bridge(name: str, interval_s: int) -> BridgeProcess:
        proc = BridgeProcess({"INSTANCE_NAME": name, "PUSHGATEWAY_URL": gateway.url, "PUSH_INTERVAL": str(interval_s),
                              "GRACEFUL_TIMEOUT": "10", "DEMO_TOKEN_DELAY": "0.05"},
                             workers=2, tmp_dir=tmp, log_name=name)
        procs.append(proc)
        return proc

    # web.2's first process pushes only at start and at exit (interval 60 s): whatever it serves
    # reaches the Pushgateway through its last push, made during its graceful stop.
    web1, web2, web3 = bridge("web.1", 1), bridge("web.2", 60), bridge("web.3", 1)
    for b in (web1, web2, web3):
        b.wait_ready()
    prom.wait_ready()
    sent = {"web.1": 0, "web.2": 0, "web.3": 0}

    # Phase 1: mixed traffic to the three instances at once.
    with ThreadPoolExecutor(3) as pool:
        for name, n in zip(sent, pool.map(_send, (web1.url, web2.url, web3.url), (FULL, FULL, FULL))):
            sent[name] += n

    # web.2 stops gracefully (SIGTERM) with a stream in flight: the stream finishes, then the last push.
    lines: list[bytes] = []
    long_chat = {"model": "demo", "messages": [{"role": "user", "content": "a b c d e f g h i j k l"}]}
    streaming = threading.Thread(target=lambda: lines.extend(
        requests.post(web2.url + "/api/chat", json=long_chat, stream=True, timeout=20).iter_lines()))
    streaming.start()
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lines, "the stream did not start"
    assert web2.stop(signal.SIGTERM) == 0
    streaming.join(10)
    assert lines[-1].startswith(b"{") and b'"done":true' in lines[-1].replace(b" ", b""), lines[-2:]
    sent["web.2"] += 1
    old_web2_log = web2.log_path.read_text()
    assert _pushers_before_stop(old_web2_log) == 1  # two workers, one pusher

    # Its last push landed: the process is gone and the Pushgateway holds all it served.
    pushed = sum(float(line.rsplit(" ", 1)[1]) for line in gateway.metrics_text().splitlines()
                 if line.startswith(REQUESTS + "{") and 'instance="web.2"' in line)
    assert pushed == sent["web.2"]
    # ... and Prometheus scraped it before the next process replaces the group.
    _, t_gap = prom.wait_for(f'sum({REQUESTS}{{instance="web.2"}})', sent["web.2"])
    before_restart = dict(sent)

    web2b = bridge("web.2", 1)  # the same instance name, a new process: counters from 0
    web2b.wait_ready()

    # Phase 2: traffic again; the restarted instance gets less of every kind than before.
    with ThreadPoolExecutor(3) as pool:
        for name, n in zip(sent, pool.map(_send, (web1.url, web2b.url, web3.url), (FULL, SMALL, FULL))):
            sent[name] += n
    now_counts = {"web.1": sent["web.1"], "web.2": sent["web.2"] - before_restart["web.2"], "web.3": sent["web.3"]}
    # Every instance's current counters, as pushed by one worker each, scraped by Prometheus.
    _, t_end = prom.wait_for(f"sum by (instance) ({REQUESTS})", now_counts, label="instance")
    total = sum(sent.values())
    window_s = int(t_end - t_start) + 5

    # 1. The fleet total with the restarted instance's last value before its restart.
    exact = prom.scalar(f'sum({REQUESTS}) + sum({REQUESTS}{{instance="web.2"}} @ {t_gap:.3f})', at=t_end)
    assert exact == total

    # 2. The same without knowing when restarts happened: reset-aware sum of the raw samples.
    assert _reset_aware_total(prom, REQUESTS, window_s) == total
    resets = prom.by(f"sum by (instance) (resets({REQUESTS}[{window_s}s]))", "instance", at=t_end)
    assert resets["web.2"] >= 1 and resets["web.1"] == resets["web.3"] == 0, resets

    # (Not increase(): it takes a series' first sample as its baseline, so what a new series
    # already holds when first scraped is not counted. Here most requests come in bursts before
    # their series' first scrape; on long-lived counters it is close, with a reset handled.)
    approx = prom.scalar(f"sum(increase({REQUESTS}[{window_s}s]))", at=t_end)
    assert approx < total

    # Each instance's series are there, labelled by the grouping key (honor_labels), with the
    # per-worker gauges of its two live workers.
    assert set(prom.by("count by (instance) (bridge_build_info)", "instance")) == {"web.1", "web.2", "web.3"}
    rss = prom.by('count by (instance) (bridge_process_resident_memory_bytes{job="bridge"})', "instance")
    assert rss == {"web.1": 2, "web.2": 2, "web.3": 2}, rss
    routes = prom.by(f'count by (instance) (count by (instance, route) ({REQUESTS}))', "instance")
    assert routes == {"web.1": 5, "web.2": 5, "web.3": 5}, routes
    assert not prom.query(f'{REQUESTS}{{exported_instance!=""}}')  # honor_labels kept them as they were

    # One pusher per instance: pushes at about one per second, not one per worker per second.
    elapsed = t_end - t_start
    pushes = prom.by('sum by (instance) (bridge_pushes_total{outcome="ok"})', "instance")
    assert 2 <= pushes["web.1"] <= elapsed * 1.2 + 3, (pushes, elapsed)
    assert prom.by('sum by (instance) (bridge_pushes_total{outcome!="ok"})', "instance") == {
        "web.1": 0, "web.2": 0, "web.3": 0}
    for b in (web1, web3):
        assert b.log().count(PUSHER_LINE) == 1
    # The Pushgateway's own bookkeeping feeds the BridgeInstanceNotPushing alert.
    ages = prom.by('time() - push_time_seconds{job="bridge"}', "instance")
    assert set(ages) == {"web.1", "web.2", "web.3"} and max(ages.values()) < 10, ages


def _pushed_requests(gateway: Pushgateway, instance: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in gateway.metrics_text().splitlines()
               if line.startswith(REQUESTS + "{") and f'instance="{instance}"' in line)


def _push_time(gateway: Pushgateway, instance: str) -> float:
    for line in gateway.metrics_text().splitlines():
        if line.startswith("push_time_seconds{") and f'instance="{instance}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_sibling_takes_over_when_the_pushing_worker_dies(tmp_path):
    """Under real gunicorn: SIGKILL the worker that pushes; the master starts a new worker, and a
    live worker takes the lock and goes on pushing, with the dead worker's counts included."""
    gateway = Pushgateway(tmp_path)
    b = BridgeProcess({"INSTANCE_NAME": "web.9", "PUSHGATEWAY_URL": gateway.url, "PUSH_INTERVAL": "1"},
                      workers=3, tmp_dir=tmp_path, log_name="web.9")
    try:
        gateway.wait_ready()
        b.wait_ready()
        sent = _send(b.url, FULL)
        lock = b.metrics_dir / "push.lock"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.1)
        holder = int(lock.read_text().split()[-1])
        assert holder in b.worker_pids()
        deadline = time.monotonic() + 10
        while _pushed_requests(gateway, "web.9") != sent and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pushed_requests(gateway, "web.9") == sent

        os.kill(holder, signal.SIGKILL)  # no last push from it: the lock goes with the process
        killed_at = time.time()
        sent += _send(b.url, FULL)  # served by the surviving (and the new) workers
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
                _pushed_requests(gateway, "web.9") == sent and _push_time(gateway, "web.9") > killed_at + 1):
            time.sleep(0.1)
        assert _pushed_requests(gateway, "web.9") == sent  # every worker's counts, the dead one's too
        assert _push_time(gateway, "web.9") > killed_at + 1  # pushes went on after the kill
        successor = int(lock.read_text().split()[-1])
        assert successor != holder and successor in b.worker_pids()
        assert b.log().count(PUSHER_LINE) == 2  # the first pusher, then exactly one successor
    finally:
        b.stop()
        gateway.stop()
