"""How the monitoring's read side grows: ``/metrics/summary`` and ``/metrics`` build times.

Run by ``perf.run`` in a subprocess (``PROMETHEUS_MULTIPROC_DIR`` must be set before
prometheus-client is imported, so each case gets a fresh process and directory)::

    python -m perf.scaling summary --window 20000 --workers 4     # prints one JSON line
    python -m perf.scaling scrape --workers 4 --labels 100

``summary``: the metrics directory holds ``workers`` full recent-window ring files (``window``
records each, the shape a worker writes; the other workers are posed by live ``sleep`` processes
so their rings count as live), and the time is that of ``Metrics.summary()``, what the
``/metrics/summary`` route runs: read and merge every ring, the cumulative Prometheus totals, the
percentiles. ``scrape``: ``workers`` forked processes each record requests under ``labels``
distinct model label values (every series the bridge writes per model), then the time of
``Metrics.exposition()``, what ``/metrics`` runs: merge every worker's files and render the text.
Both are bounded (a few repetitions, each at most a few seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def _record(i: int, model: str, stream: bool):
    from bridge.metrics.records import Record

    return Record(ts_s=time.time() - (i % 600) * 0.1, route="/api/chat", method="POST", status=200,
                  duration_s=0.003 + (i % 97) * 1e-4, outcome="ok", model=model, stream=stream,
                  ttfb_s=0.001 if stream else None, ttft_s=0.001 + (i % 13) * 1e-4 if stream else None,
                  tpot_s=0.0002 if stream else None, max_gap_s=0.0005 if stream else None,
                  chunks=17 if stream else 0, bytes_out=2000, bytes_in=100, tokens_in=5, tokens_out=16,
                  queue_s=None)


def _timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def summary_case(directory: str, window: int, workers: int, reps: int) -> dict:
    from bridge.metrics import Metrics
    from bridge.metrics.collector import Collector

    sleepers = [subprocess.Popen(["sleep", "120"]) for _ in range(workers - 1)]
    try:
        # One ring written record by record, as a worker does; the other workers' rings are copies
        # of it under their (live) pids.
        fill_t = time.perf_counter()
        src = Collector(window, directory, pid=lambda: sleepers[0].pid) if sleepers else None
        if src is not None:
            for i in range(window):
                src.append(_record(i, "fake", i % 2 == 0))
            src.close()
            first = os.path.join(directory, f"window_{sleepers[0].pid}.ring")
            data = bytearray(open(first, "rb").read())
            for p in sleepers[1:]:
                data[20:24] = p.pid.to_bytes(4, "little")  # the header's pid field
                with open(os.path.join(directory, f"window_{p.pid}.ring"), "wb") as fh:
                    fh.write(data)
        m = Metrics(window=window, version="perf", multiproc_dir=directory)
        for i in range(window):  # this worker's own window, in memory and in its ring
            m.observe(_record(i, "fake", i % 2 == 0))
        fill_s = time.perf_counter() - fill_t
        merged = _timed(lambda: m.collector.merged(), 1)[0]
        n_records = len(m.collector.merged())
        times = _timed(lambda: m.summary(endpoint=None, window_s=None, include_system=False), reps)
        body = json.dumps(m.summary(endpoint=None, window_s=None, include_system=False), default=str)
        return {"window": window, "workers": workers, "records": n_records, "reps": reps,
                "median_ms": round(statistics.median(times) * 1000, 2), "max_ms": round(max(times) * 1000, 2),
                "merge_ms": round(merged * 1000, 2), "body_bytes": len(body), "fill_s": round(fill_s, 2)}
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


def scrape_case(directory: str, workers: int, labels: int, reps: int) -> dict:
    from bridge.metrics import Metrics

    m = Metrics(window=100, version="perf", multiproc_dir=directory)
    models = [f"model-{j}" for j in range(labels)]
    kids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: one streamed and one non-streamed request per model label
            try:
                for j, model in enumerate(models):
                    m.observe(_record(j, model, True))
                    m.observe(_record(j, model, False))
            finally:
                os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    times = _timed(lambda: m.prom.exposition(), reps)
    body = m.prom.exposition()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return {"workers": workers, "labels": labels, "reps": reps, "median_ms": round(statistics.median(times) * 1000, 2),
            "max_ms": round(max(times) * 1000, 2), "body_bytes": len(body), "series": series,
            "files": len([f for f in os.listdir(directory) if f.endswith(".db")])}


def run_case(kind: str, **kw) -> dict:
    """One case in a fresh process and directory; returns its JSON figures."""
    directory = tempfile.mkdtemp(prefix="bridge-scaling-")
    try:
        args = [sys.executable, "-m", "perf.scaling", kind] + [f"--{k}={v}" for k, v in kw.items()]
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if proc.returncode != 0:
            return {**kw, "error": proc.stderr[-2000:]}
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("summary", "scrape"))
    ap.add_argument("--window", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--labels", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if args.kind == "summary":
        out = summary_case(directory, args.window, args.workers, args.reps)
    else:
        out = scrape_case(directory, args.workers, args.labels, args.reps)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
