"""CPU per finished request spent in the bridge's metrics (in-progress and open-stream gauges,
every Prometheus series of the request in multiprocess mode, the window append), one process:

    .venv/bin/python -m perf.metrics_cost [--calls 40000] [--other /path/to/other/checkout]

Each checkout runs in a fresh interpreter (multiprocess mode is chosen at prometheus_client's
import) with gevent patched as in a worker; best of 5 rounds of ``calls`` requests, process CPU
time, microseconds per request. Prints one line per checkout. Bounded: a few seconds each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
from gevent import monkey; monkey.patch_all()
import json, os, sys, tempfile, time
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-cost-")
from bridge.metrics import Metrics
from bridge.metrics.records import Record
calls = int(sys.argv[1])
m = Metrics(window=2000, version="x", multiproc_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
plain = Record(ts_s=time.time(), route="/api/chat", method="POST", status=200, duration_s=0.002, model="demo",
               bytes_out=400, tokens_in=10, tokens_out=16, outcome="ok")
stream = Record(ts_s=time.time(), route="/api/chat", method="POST", status=200, duration_s=0.004, model="demo",
                stream=True, ttfb_s=0.001, ttft_s=0.001, tpot_s=0.0002, max_gap_s=0.001, chunks=18,
                bytes_out=2400, tokens_in=10, tokens_out=16, queue_s=0.0001, outcome="ok")
out = {}
for name, rec, streamed in (("nonstream", plain, False), ("stream16", stream, True)):
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        for _ in range(calls):
            m.request_started(rec.route)
            if streamed:
                m.stream_started()
            m.finished(rec, backend=None, key=None, stream_started=streamed)
        best = min(best, (time.process_time() - t) / calls * 1e6)
    out[name + "_us"] = round(best, 2)
print(json.dumps(out))
"""


def measure(root: Path, calls: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(calls)], cwd=root, capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})
    if proc.returncode != 0:
        raise SystemExit(f"{root}: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=40_000)
    ap.add_argument("--other", type=Path, help="another checkout to measure in the same run (alternating)")
    args = ap.parse_args(argv)
    roots = [REPO] + ([args.other.resolve()] if args.other else [])
    for round_ in range(2):
        for root in roots if round_ % 2 == 0 else roots[::-1]:
            print(root, measure(root, args.calls), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
