"""Before/after in one run: this checkout's bridge against another checkout's, interleaved.

    .venv/bin/python -m perf.ab /path/to/other/checkout [--rounds 6] [--seconds 2]

Both bridges are started exactly as the Procfile does (2 workers, monitoring on) from their own
directory, on the same fake backend, next to the Flask hello anchor and the bare proxy
(``perf/anchors.py``). Each round runs every target once, in a rotated order, so the machine's
load drifts over all of them alike; the figures are medians over rounds (and per-round ratios).
Also c=1 latency (non-stream, 16-token stream) alternating between the two, and worker CPU per
request. Prints a markdown table and writes ``--json`` if given. Bounded: about
``rounds * 7 * seconds + 60`` s.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from perf import driver  # noqa: E402
from perf.anchors import AnchorProcess  # noqa: E402
from perf.driver import Target, percentile  # noqa: E402
from perf.fake_backend import model_name  # noqa: E402
from perf.procs import FakeBackendProcess, cpu_seconds, raise_nofile, stop_all  # noqa: E402
from perf.run import MESSAGES  # noqa: E402
from tests.bridgeproc import BridgeProcess, procfile_command  # noqa: E402

HOST = "127.0.0.1"


class OtherBridge(BridgeProcess):
    """A BridgeProcess whose gunicorn runs from another checkout (same Procfile command)."""

    def __init__(self, root: Path, env: dict[str, str], *, workers: int, tmp_dir: Path, log_name: str) -> None:
        super().__init__(env, workers=workers, tmp_dir=tmp_dir, log_name=log_name + "-probe")
        self.stop()  # only to borrow the port, paths and environment: restart from ``root``
        self._log = open(self.log_path, "wb")
        full_env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
                    "HOME": os.environ.get("HOME", "/tmp"), "PORT": str(self.port), "WEB_CONCURRENCY": str(workers),
                    "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir) + "-other", "FORWARDED_ALLOW_IPS": "127.0.0.1",
                    "LOG_LEVEL": "INFO", **env}
        command = procfile_command() + f" --bind 127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(shlex.split(command), cwd=root, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)


def targets(port: int, stream: bool, path: str = "/api/chat") -> Target:
    body = {"model": model_name(16 if stream else 8), "messages": MESSAGES, "stream": stream}
    return Target("t", HOST, port, path, body, stream)


def c1(tgt: Target, n: int) -> list[float]:
    conn = driver.Conn(HOST, tgt.port)
    raw = tgt.request_bytes()
    out = []
    try:
        for _ in range(n):
            r = conn.request(tgt, raw, timed=tgt.stream)
            if r.ok:
                out.append(r.latency_s)
    finally:
        conn.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", type=Path, help="the other checkout (e.g. the code before a change)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--after-env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra setting for this checkout's bridge only (e.g. BACKEND_HTTP_CLIENT=requests)")
    args = ap.parse_args(argv)
    raise_nofile(20000)
    tmp = Path(tempfile.mkdtemp(prefix="bridge-ab-"))
    procs: list = []
    try:
        fake = FakeBackendProcess(tmp)
        procs.append(fake)
        fake.wait_ready()
        env = {"OPENAI_API_BASE_URL": fake.url, "METRICS_ENABLED": "true"}
        after_env = dict(item.split("=", 1) for item in args.after_env)
        after = BridgeProcess({**env, **after_env}, workers=2, tmp_dir=tmp, log_name="after")
        before = OtherBridge(args.other, env, workers=2, tmp_dir=tmp, log_name="before")
        hello = AnchorProcess("hello", tmp)
        proxy = AnchorProcess("proxy", tmp, backend_url=fake.url)
        procs += [after, before, hello, proxy]
        for p in (after, before, hello, proxy):
            p.wait_ready()
        runs = {
            "hello": Target("hello", HOST, hello.port, "/", None, False),
            "before_nonstream": targets(before.port, False), "after_nonstream": targets(after.port, False),
            "proxy_nonstream": targets(proxy.port, False, "/v1/chat/completions"),
            "before_stream16": targets(before.port, True), "after_stream16": targets(after.port, True),
            "proxy_stream16": targets(proxy.port, True, "/v1/chat/completions"),
        }
        pids = {"before": before.worker_pids(), "after": after.worker_pids(), "proxy": proxy.worker_pids()}
        names = list(runs)
        for n in names:  # warm-up
            driver.wrk(runs[n], connections=args.connections, duration_s=1)
        rounds = []
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            got = {}
            for n in order:
                who = n.split("_")[0]
                c0 = cpu_seconds(pids[who]) if who in pids else 0.0
                got[n] = driver.wrk(runs[n], connections=args.connections, duration_s=args.seconds).as_dict()
                if who in pids and got[n]["requests"]:
                    got[n]["cpu_us_per_req"] = (cpu_seconds(pids[who]) - c0) * 1e6 / got[n]["requests"]
            rounds.append(got)
            print(f"round {r + 1}: " + ", ".join(f"{n} {got[n]['rps']:.0f}" for n in names), flush=True)
        lat: dict[str, list[float]] = {}
        for i in range(8):  # c=1, alternating
            for who, port in ((("before", before.port), ("after", after.port)) if i % 2 == 0
                              else (("after", after.port), ("before", before.port))):
                for stream in (False, True):
                    lat.setdefault(f"{who}_{'stream16' if stream else 'nonstream'}", []).extend(
                        c1(targets(port, stream), 40 if not stream else 15))
            for stream in (False, True):
                lat.setdefault(f"direct_{'stream16' if stream else 'nonstream'}", []).extend(
                    c1(targets(fake.port, stream, "/v1/chat/completions"), 40 if not stream else 15))
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)

    def med(key: str, field: str = "rps") -> float:
        return statistics.median(g[key][field] for g in rounds if field in g[key])

    def ratio(a: str, b: str) -> tuple[float, float, float]:
        vals = [g[a]["rps"] / g[b]["rps"] for g in rounds if g[b]["rps"]]
        return statistics.median(vals), min(vals), max(vals)

    res = {"rounds": rounds, "c1": {k: {"p50_ms": percentile(v, 50) * 1000, "p99_ms": percentile(v, 99) * 1000,
                                        "n": len(v)} for k, v in lat.items()}}
    lines = ["| figure | before | after |", "|---|---|---|"]
    for kind in ("nonstream", "stream16"):
        lines.append(f"| {kind} req/s (median of {len(rounds)} rounds) | {med('before_' + kind):.0f} | "
                     f"{med('after_' + kind):.0f} |")
        lines.append(f"| {kind} worker CPU us/request | {med('before_' + kind, 'cpu_us_per_req'):.0f} | "
                     f"{med('after_' + kind, 'cpu_us_per_req'):.0f} |")
    for who in ("before", "after"):
        res[who] = {"nonstream_vs_hello": ratio(f"{who}_nonstream", "hello"),
                    "stream_vs_proxy": ratio(f"{who}_stream16", "proxy_stream16")}
    for key, label in (("nonstream_vs_hello", "non-stream / Flask hello (median, min-max)"),
                       ("stream_vs_proxy", "16-token streams / bare proxy (median, min-max)")):
        b, a = res["before"][key], res["after"][key]
        lines.append(f"| {label} | {b[0]:.3f} ({b[1]:.3f}-{b[2]:.3f}) | {a[0]:.3f} ({a[1]:.3f}-{a[2]:.3f}) |")
    for kind in ("nonstream", "stream16"):
        d = res["c1"][f"direct_{kind}"]
        for q in ("p50_ms", "p99_ms"):
            lines.append(f"| c=1 added {q[:3]} {kind} ms | {res['c1'][f'before_{kind}'][q] - d[q]:.3f} | "
                         f"{res['c1'][f'after_{kind}'][q] - d[q]:.3f} |")
    proxy_line = (f"bare proxy: non-stream {med('proxy_nonstream'):.0f} req/s "
                  f"({statistics.median(g['proxy_nonstream']['rps'] / g['hello']['rps'] for g in rounds):.3f} "
                  f"of hello), streams {med('proxy_stream16'):.0f}/s, "
                  f"CPU us/stream {med('proxy_stream16', 'cpu_us_per_req'):.0f}; "
                  f"hello {med('hello'):.0f} req/s")
    print("\n".join(lines) + "\n\n" + proxy_line)
    res["table"] = lines
    res["proxy_line"] = proxy_line
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
