"""Run-to-run spread of the ratio and latency targets: ``.venv/bin/python -m perf.spread [--runs 5]``.

Repeats, ``--runs`` times, the scenarios of ``perf.run`` that the issue-17 targets are read from
(same-run anchors, c=1 added latency, paced streams, monitoring cost), each repetition with fresh
processes, and prints one row per run plus min/median/max. Bounded: about 2.5 min per run.
Writes ``--json`` if given.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from perf import run  # noqa: E402
from perf.anchors import AnchorProcess  # noqa: E402
from perf.procs import FakeBackendProcess, load_average, raise_nofile, stop_all  # noqa: E402
from tests.bridgeproc import BridgeProcess  # noqa: E402

FIELDS = [("nonstream_vs_hello", ">= 0.45"), ("stream_vs_proxy", ">= 1.25"), ("proxy_nonstream_vs_hello", "(anchor)"),
          ("c1_added_p50_nonstream_ms", "<= 0.4"), ("c1_added_p50_stream_ms", "<= 1.0"),
          ("added_frame_p99_ms", "<= 0.5"), ("added_ttft_p99_ms", "<= 3"),
          ("monitoring_cost_nonstream_pct", "<= 3"), ("monitoring_cost_stream16_pct", "<= 3"),
          ("monitoring_cpu_cost_nonstream_pct", "(CPU)"), ("monitoring_cpu_cost_stream16_pct", "(CPU)")]


def one_run(cfg: dict) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bridge-spread-"))
    procs: list = []
    try:
        fake = FakeBackendProcess(tmp)
        procs.append(fake)
        fake.wait_ready()
        env = {"OPENAI_API_BASE_URL": fake.url}
        on = BridgeProcess({**env, "METRICS_ENABLED": "true"}, workers=2, tmp_dir=tmp, log_name="on")
        off = BridgeProcess({**env, "METRICS_ENABLED": "false"}, workers=2, tmp_dir=tmp, log_name="off")
        hello = AnchorProcess("hello", tmp)
        proxy = AnchorProcess("proxy", tmp, backend_url=fake.url)
        procs += [on, off, hello, proxy]
        for p in (on, off, hello, proxy):
            p.wait_ready()
        a = run.scenario_anchors(cfg, hello, proxy, on.port)
        c1 = run.scenario_c1(cfg, on.port, fake.port)
        paced = run.scenario_paced(cfg, on.port, fake.port)
        mon = run.scenario_monitoring(cfg, on, off, fake.port)
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"load": load_average(),
            "nonstream_vs_hello": a["nonstream_vs_hello"], "stream_vs_proxy": a["stream_vs_proxy"],
            "proxy_nonstream_vs_hello": a["proxy_nonstream_vs_hello"],
            "c1_added_p50_nonstream_ms": c1["nonstream"]["added_p50_ms"],
            "c1_added_p50_stream_ms": c1["stream"]["added_p50_ms"],
            "added_frame_p99_ms": paced["added_frame_p99_ms"], "added_ttft_p99_ms": paced["added_ttft_p99_ms"],
            "monitoring_cost_nonstream_pct": mon["nonstream"]["cost_pct"],
            "monitoring_cost_stream16_pct": mon["stream16"]["cost_pct"],
            "monitoring_cpu_cost_nonstream_pct": mon["nonstream"]["cpu_cost_pct"],
            "monitoring_cpu_cost_stream16_pct": mon["stream16"]["cpu_cost_pct"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    raise_nofile(20000)
    cfg = dict(run.FULL)
    rows = []
    for i in range(args.runs):
        rows.append(one_run(cfg))
        print(f"run {i + 1}: {rows[-1]}", flush=True)
    lines = ["| figure | target | " + " | ".join(f"run {i + 1}" for i in range(len(rows))) + " | min | median | max |",
             "|---|---|" + "---|" * (len(rows) + 3)]
    for key, target in FIELDS:
        vals = [r[key] for r in rows]
        lines.append(f"| {key} | {target} | " + " | ".join(f"{v:g}" for v in vals)
                     + f" | {min(vals):g} | {statistics.median(vals):g} | {max(vals):g} |")
    lines.append("| load average at end of run | | " + " | ".join(r["load"] for r in rows) + " | | | |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "table": lines}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
