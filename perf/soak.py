"""Bounded soak: mixed traffic with injected faults against the real gunicorn bridge, then leak checks.

    python perf/soak.py --minutes 5            # bridge + fake backend on 127.0.0.1 only

Starts the scripted fake backend and the bridge (Procfile command, 2 gevent workers) on loopback,
runs client threads for a fixed time while the fake cycles through fault modes, and prints open
fds, threads and RSS per worker before (after a warm-up) and after. Exits 1 when a worker grew
past the bounds, a request hung, a 500 was seen, or a worker died.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.bridgeproc import BridgeProcess  # noqa: E402
from tests.fakes.backend import FakeBackend  # noqa: E402

PHASES = [  # (name, script) cycled every --phase-s seconds
    ("normal", {}),
    ("reset_mid_stream", {"fault": "reset_mid_stream", "match_path": "/v1/chat/completions"}),
    ("503 once per 3", {"status": 503, "fail_times": 1, "match_path": "/v1/chat/completions"}),
    ("garbage_sse", {"fault": "garbage_sse"}),
    ("close_mid_stream", {"fault": "close_mid_stream", "match_path": "/v1/chat/completions"}),
    ("slow tokens", {"delay_s": 0.02, "tokens": [f"t{i} " for i in range(30)]}),
    ("stall_mid_stream", {"fault": "stall_mid_stream", "match_path": "/v1/chat/completions"}),
    ("split_utf8", {"fault": "split_utf8"}),
    ("html_502", {"fault": "html_502", "match_path": "/v1/chat/completions"}),
]
BOUNDS = {"fds": 16, "threads": 4, "rss_mb": 40.0}
MSG = [{"role": "user", "content": "soak"}]


def worker_stats(pid: int) -> dict:
    proc = Path(f"/proc/{pid}")
    status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
    return {"fds": len(list((proc / "fd").iterdir())), "threads": int(status["Threads"].strip()),
            "rss_mb": int(status["VmRSS"].split()[0]) / 1024}


def snapshot(bridge: BridgeProcess) -> dict[int, dict]:
    return {pid: worker_stats(pid) for pid in bridge.worker_pids()}


def one_request(url: str, rng: random.Random, counts: Counter) -> None:
    kind = rng.choice(["chat_stream", "chat", "generate_stream", "embed", "v1_stream", "v1", "disconnect", "tags",
                       "bad_json"])
    timeout = (3, 10)
    try:
        if kind == "chat_stream":
            resp = requests.post(url + "/api/chat", json={"model": "m1", "messages": MSG}, timeout=timeout)
        elif kind == "chat":
            resp = requests.post(url + "/api/chat", json={"model": "m1", "messages": MSG, "stream": False},
                                 timeout=timeout)
        elif kind == "generate_stream":
            resp = requests.post(url + "/api/generate", json={"model": "m1", "prompt": "x"}, timeout=timeout)
        elif kind == "embed":
            resp = requests.post(url + "/api/embed", json={"model": "e1", "input": ["a", "b"]}, timeout=timeout)
        elif kind == "v1_stream":
            resp = requests.post(url + "/v1/chat/completions", json={"model": "m1", "messages": MSG, "stream": True},
                                 timeout=timeout)
        elif kind == "v1":
            resp = requests.post(url + "/v1/chat/completions", json={"model": "m1", "messages": MSG}, timeout=timeout)
        elif kind == "disconnect":
            with requests.post(url + "/api/chat", json={"model": "m1", "messages": MSG}, stream=True,
                               timeout=timeout) as resp:
                next(resp.iter_lines(), None)
            counts[f"{kind} ok"] += 1
            return
        elif kind == "tags":
            resp = requests.get(url + "/api/tags", timeout=timeout)
        else:
            resp = requests.post(url + "/api/chat", data=b"{bad", timeout=timeout)
        if resp.status_code >= 500 and resp.status_code not in (502, 503, 504):
            counts["http_500"] += 1
        if resp.status_code == 200 and resp.headers.get("Content-Type", "").startswith("application/x-ndjson"):
            for line in resp.content.splitlines():
                json.loads(line)  # every line valid JSON
        counts[f"{kind} {resp.status_code}"] += 1
    except requests.Timeout:
        counts["HUNG"] += 1
    except (requests.RequestException, ValueError) as exc:
        counts[f"client error {type(exc).__name__}"] += 1


def run(minutes: float, clients: int, phase_s: float, seed: int) -> int:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="bridge-soak-"))
    fake = FakeBackend(models=("m1", "e1")).start()
    bridge = BridgeProcess({"OPENAI_API_BASE_URL": fake.url, "OPENAI_API_KEY": "sk-soak", "MAX_RETRIES": "1",
                            "RETRY_BACKOFF": "0.02", "STREAM_IDLE_TIMEOUT": "1", "REQUEST_TIMEOUT": "5",
                            "MODELS_CACHE_TTL": "5", "LOG_LEVEL": "WARNING", "ACCESS_LOG": ""},
                           workers=2, tmp_dir=tmp, log_name="soak")
    counts: Counter = Counter()
    stop = threading.Event()
    try:
        bridge.wait_ready()

        def client_loop(n: int) -> None:
            local = random.Random(seed + n)
            while not stop.is_set():
                one_request(bridge.url, local, counts)

        # Warm-up: one pass over every phase's traffic shape at low volume, then the baseline.
        for _ in range(30):
            one_request(bridge.url, rng, counts)
        time.sleep(0.5)
        before = snapshot(bridge)
        threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(clients)]
        for t in threads:
            t.start()
        end = time.monotonic() + minutes * 60
        for name, script in itertools.cycle(PHASES):
            if time.monotonic() >= end:
                break
            fake.reset()
            fake.script(**script)
            counts[f"phase {name}"] += 1
            time.sleep(min(phase_s, max(0.0, end - time.monotonic())))
        stop.set()
        for t in threads:
            t.join(15)
        fake.reset()
        time.sleep(2.0)  # let idle-timeouts and closes settle
        after = snapshot(bridge)
    finally:
        stop.set()
        bridge.stop()
        fake.stop()

    print(f"soak: {minutes:g} min, {clients} clients, {sum(v for k, v in counts.items() if not k.startswith('phase'))}"
          " requests")
    for key in sorted(counts):
        print(f"  {key:32s} {counts[key]}")
    failed = False
    print(f"{'worker':>8} {'fds':>11} {'threads':>9} {'rss MB':>15}")
    for pid in sorted(set(before) | set(after)):
        b, a = before.get(pid), after.get(pid)
        if b is None or a is None:
            print(f"{pid:>8} worker {'appeared' if b is None else 'died'} during the soak")
            failed = True
            continue
        print(f"{pid:>8} {b['fds']:>4} -> {a['fds']:<4} {b['threads']:>3} -> {a['threads']:<3} "
              f"{b['rss_mb']:>6.1f} -> {a['rss_mb']:<6.1f}")
        for key, bound in BOUNDS.items():
            if a[key] - b[key] > bound:
                print(f"  FAIL: {key} grew by {a[key] - b[key]:g} (bound {bound})")
                failed = True
    if counts["HUNG"] or counts["http_500"]:
        print(f"  FAIL: {counts['HUNG']} hung requests, {counts['http_500']} HTTP 500s")
        failed = True
    print("soak:", "FAIL" if failed else "OK")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--phase-s", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return run(args.minutes, args.clients, args.phase_s, args.seed)


if __name__ == "__main__":
    sys.exit(main())
