"""Fleet load test (issue 16): 1, 2 and 3 bridge instances behind nginx, counted exactly.

    .venv/bin/python -m perf.fleet            # ~1.5 min; appends a section to perf/RESULTS.md
    .venv/bin/python -m perf.fleet --no-write # print the figures only

Everything listens on 127.0.0.1 and stops by itself. Per step N (1, 2, 3):

* N bridge instances, each its own gunicorn (the Procfile command via ``tests/bridgeproc.py``)
  with one gevent worker, its own metrics directory, ``INSTANCE_NAME=n<N>-<k>`` and push mode
  (``PUSHGATEWAY_URL`` of a real Pushgateway, ``PUSH_INTERVAL=1``);
* nginx with the shipped ``deploy/nginx.conf``, its upstream rewritten to the N instances;
* wrk through nginx: non-streamed ``/api/chat``, then 16-token streams, against
  ``perf/fake_backend.py``. wrk sends no new request after a deadline (a Lua ``delay()`` that
  never returns once the deadline is past) and is stopped later, so every request it sent has
  completed and "sent" is exactly wrk's count of responses;
* the fleet's totals: pull = the sum of ``bridge_http_requests_total`` over each instance's
  ``/metrics``; push = ``sum(bridge_http_requests_total{instance=~"n<N>-.*"})`` in a real
  Prometheus scraping the Pushgateway with ``deploy/prometheus-push.yml``. Both must equal what
  wrk sent, exactly.

Before the steps, the costs the capacity model (``docs/scaling.md``) rests on, on one instance
with one worker, no nginx: worker CPU seconds per non-streamed request, per 16-token stream and
per paced 64-token stream (psutil CPU times of the worker around a wrk run / requests served),
and RSS per open stream (400 concurrent slow streams). Every process's CPU is read too, so the
whole machine's CPU cost of one request through nginx (bridge + nginx + backend + wrk) is known
and the measured fleet throughput can be compared with what those costs predict.

The machine is shared (2 vCPUs, other developers' jobs): compare figures within one run.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import psutil  # noqa: E402
import requests  # noqa: E402

from perf import driver  # noqa: E402
from perf.driver import Target  # noqa: E402
from perf.fake_backend import model_name  # noqa: E402
from perf.procs import (  # noqa: E402
    FakeBackendProcess,
    cpu_seconds,
    load_average,
    machine,
    raise_nofile,
    rss_of,
    stop_all,
)
from tests.bridgeproc import REPO, BridgeProcess, free_port  # noqa: E402
from tests.fleet.promprocs import PROMETHEUS, PUSHGATEWAY, Prometheus, Pushgateway  # noqa: E402

HOST = "127.0.0.1"
MESSAGES = [{"role": "user", "content": "Say hello in a few words."}]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
SECTION_START = "<!-- perf.fleet: start -->"
SECTION_END = "<!-- perf.fleet: end -->"

FULL = dict(steps=(1, 2, 3), nonstream_s=4.0, stream_s=3.0, conns=32, cost_s=4.0, streams_open=400)
SMOKE = dict(steps=(1, 2), nonstream_s=1.0, stream_s=1.0, conns=8, cost_s=1.0, streams_open=40)


def log(msg: str) -> None:
    print(f"[fleet {time.strftime('%H:%M:%S')} load {load_average()}] {msg}", flush=True)


# -- processes ----------------------------------------------------------------------------------------



def children_cpu_s() -> float:
    """CPU of this process's finished children (the wrk runs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class NginxFleet:
    """deploy/nginx.conf in a private nginx on 127.0.0.1, upstream = the given ports."""

    def __init__(self, directory: Path, ports: list[int]) -> None:
        self.dir = directory
        self.port = free_port()
        site = (REPO / "deploy" / "nginx.conf").read_text()
        servers = "\n".join(f"    server 127.0.0.1:{p};" for p in ports)
        for old, new in (("    server 127.0.0.1:8000;", servers), ("listen 80;", f"listen 127.0.0.1:{self.port};"),
                         ("listen [::]:80;", ""), ("/var/log/nginx/bridge.access.log", str(directory / "access.log"))):
            assert site.count(old) == 1, f"deploy/nginx.conf: expected one {old!r}"
            site = site.replace(old, new)
        (directory / "bridge.conf").write_text(site)
        temps = "\n".join(f"    {k}_temp_path {directory / 'temp' / k};" for k in ("client_body", "proxy", "fastcgi",
                                                                                    "uwsgi", "scgi"))
        (directory / "temp").mkdir(exist_ok=True)
        (directory / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"worker_processes 1;\ndaemon off;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} warn;\n"
            "worker_rlimit_nofile 20000;\nevents { worker_connections 8192; }\n"
            f"http {{\n{temps}\n    include {directory / 'bridge.conf'};\n}}\n")
        args = [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", str(directory / "error.log")]
        check = subprocess.run(args + ["-t"], capture_output=True, text=True, timeout=20)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://{HOST}:{self.port}/health", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def pids(self) -> list[int]:
        try:
            master = psutil.Process(self.proc.pid)
            return [master.pid] + [c.pid for c in master.children()]
        except psutil.Error:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# -- wrk until a deadline, then drain -----------------------------------------------------------------

_LUA = """\
local ffi = require("ffi")
ffi.cdef[[ typedef struct {{ long tv_sec; long tv_usec; }} fleet_timeval;
           int gettimeofday(fleet_timeval *tv, void *tz); ]]
local tv = ffi.new("fleet_timeval")
local function now() ffi.C.gettimeofday(tv, nil); return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6 end
local deadline = {deadline:.6f}
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
-- After the deadline a connection sends nothing more: what is in flight completes, nothing is cut.
function delay() if now() < deadline then return 0 end return 3600000 end
"""


def wrk_until(port: int, path: str, body: dict, *, seconds: float, connections: int, threads: int = 2,
              drain_s: float = 1.0) -> dict:
    """wrk sending for ``seconds``; ``drain_s`` later (every response in) it is stopped: exact counts."""
    t0 = time.time()
    deadline = t0 + seconds
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(_LUA.format(deadline=deadline, body=json.dumps(json.dumps(body, separators=(",", ":")))))
    try:
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds + drain_s) + 30}s", "--timeout", "5s",
               "--latency", "-s", str(script), f"http://{HOST}:{port}{path}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(max(0.0, deadline + drain_s - time.time()))
        proc.send_signal(signal.SIGINT)  # wrk stops and prints its figures
        out, err = proc.communicate(timeout=30)
        if proc.returncode != 0 or "requests in" not in out:
            raise RuntimeError(f"wrk failed: {err or out}")
        res = driver.parse_wrk(out, connections).as_dict()
    finally:
        script.unlink(missing_ok=True)
    res["rps"] = round(res["requests"] / seconds, 1)  # sent during `seconds`, all completed
    res["seconds"] = seconds
    return res


def chat_body(model: str, stream: bool) -> dict:
    return {"model": model, "messages": MESSAGES, "stream": stream}


# -- reading the counters -----------------------------------------------------------------------------

_REQ = re.compile(r'^bridge_http_requests_total\{([^}]*)\} (\S+)$', re.M)


def pulled_requests(url: str) -> int:
    """Sum of bridge_http_requests_total in one instance's /metrics (all its workers)."""
    text = requests.get(url + "/metrics", timeout=10).text
    return int(sum(float(v) for _, v in _REQ.findall(text)))


def series_count(url: str) -> int:
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


# -- 1. costs on one instance -------------------------------------------------------------------------

def scenario_costs(cfg: dict, tmp: Path, backend: FakeBackendProcess) -> dict:
    b = BridgeProcess({"OPENAI_API_BASE_URL": backend.url, "INSTANCE_NAME": "cost"}, workers=1, tmp_dir=tmp,
                      log_name="cost").wait_ready()
    try:
        pids = b.worker_pids()
        out: dict = {}
        kinds = (("nonstream", model_name(8), False, 16, 8, 1.0),
                 ("stream16", model_name(16), True, 16, 16, 1.0),
                 ("paced64", model_name(64, 20), True, 64, 64, 2.5))
        for kind, model, stream, conns, tokens, drain_s in kinds:
            body = chat_body(model, stream)
            wrk_until(b.port, "/api/chat", body, seconds=1.0, connections=conns, drain_s=drain_s)  # warm-up
            c0, w0, r0 = cpu_seconds(pids), children_cpu_s(), cpu_seconds(backend.worker_pids())
            res = wrk_until(b.port, "/api/chat", body, seconds=cfg["cost_s"], connections=conns, drain_s=drain_s)
            n = res["requests"]
            cpu = cpu_seconds(pids) - c0
            res.update(worker_cpu_s=round(cpu, 3), cpu_ms_per_request=round(cpu * 1000 / n, 4) if n else None,
                       backend_cpu_ms_per_request=round((cpu_seconds(backend.worker_pids()) - r0) * 1000 / n, 4)
                       if n else None,
                       wrk_cpu_ms_per_request=round((children_cpu_s() - w0) * 1000 / n, 4) if n else None,
                       tokens=tokens, worker_cpu_utilisation=round(cpu / cfg["cost_s"], 3))
            out[kind] = res
            log(f"cost {kind}: {res['rps']} req/s, {res['cpu_ms_per_request']} ms worker CPU per request, "
                f"errors {res['errors']}")
        ns, p64 = out["nonstream"]["cpu_ms_per_request"], out["paced64"]["cpu_ms_per_request"]
        s16 = out["stream16"]["cpu_ms_per_request"]
        # A paced stream's cost beyond a non-streamed request's, spread over its 64 tokens (each
        # token is its own read, translation and write). Conservative: stream set-up counts too.
        out["cpu_us_per_token_paced"] = round((p64 - ns) * 1000 / 64, 2)
        out["cpu_us_per_token_burst16"] = round((s16 - ns) * 1000 / 16, 2)

        # Memory per open stream: many slow streams (10 tokens 500 ms apart) open at once.
        n = cfg["streams_open"]
        target = Target("bridge", HOST, b.port, "/api/chat", chat_body(model_name(10, 500), True), True)
        rss0 = sum(rss_of(pids).values())
        samples: list[int] = []

        import gevent

        def sample() -> None:
            while True:
                samples.append(sum(rss_of(pids).values()))
                gevent.sleep(0.2)

        sampler = gevent.spawn(sample)
        res = driver.concurrent_streams(target, n=n, ramp_s=1.0, deadline_s=30)
        sampler.kill()
        peak = max(samples or [rss0])
        complete = sum(1 for r in res.results if r.ok and len(r.tokens) == 10)
        out["open_streams"] = {"streams": n, "complete": complete, "peak_open": res.peak_open,
                               "rss_idle_mb": round(rss0 / 2**20, 1), "rss_peak_mb": round(peak / 2**20, 1),
                               "kb_per_stream": round((peak - rss0) / 1024 / max(1, res.peak_open), 1)}
        log(f"open streams: {out['open_streams']}")
        out["series_one_instance"] = series_count(b.url)
        return out
    finally:
        b.stop()


# -- 2. the fleet steps ---------------------------------------------------------------------------------

def scenario_step(cfg: dict, n: int, tmp: Path, backend: FakeBackendProcess, gateway: Pushgateway,
                  prom: Prometheus) -> dict:
    names = [f"n{n}-{k + 1}" for k in range(n)]
    bridges = [BridgeProcess({"OPENAI_API_BASE_URL": backend.url, "INSTANCE_NAME": name,
                              "PUSHGATEWAY_URL": gateway.url, "PUSH_INTERVAL": "1", "GRACEFUL_TIMEOUT": "5"},
                             workers=1, tmp_dir=tmp, log_name=name) for name in names]
    nginx = None
    try:
        for b in bridges:
            b.wait_ready()
        step_dir = tmp / f"nginx-{n}"
        step_dir.mkdir()
        nginx = NginxFleet(step_dir, [b.port for b in bridges])
        worker_pids = {name: b.worker_pids() for name, b in zip(names, bridges)}
        runs = {}
        for kind, model, stream, seconds in (("nonstream", model_name(8), False, cfg["nonstream_s"]),
                                             ("stream16", model_name(16), True, cfg["stream_s"])):
            before = {name: pulled_requests(b.url) for name, b in zip(names, bridges)}
            c0 = {name: cpu_seconds(p) for name, p in worker_pids.items()}
            g0, x0, w0 = cpu_seconds(nginx.pids()), cpu_seconds(backend.worker_pids()), children_cpu_s()
            res = wrk_until(nginx.port, "/api/chat", chat_body(model, stream), seconds=seconds,
                            connections=cfg["conns"])
            after = {name: pulled_requests(b.url) for name, b in zip(names, bridges)}
            per = {name: after[name] - before[name] for name in names}
            cpu = {name: cpu_seconds(p) - c0[name] for name, p in worker_pids.items()}
            nginx_cpu, backend_cpu, wrk_cpu = cpu_seconds(nginx.pids()) - g0, cpu_seconds(backend.worker_pids()) - x0, \
                children_cpu_s() - w0
            total_cpu = sum(cpu.values()) + nginx_cpu + backend_cpu + wrk_cpu
            n_req = max(1, res["requests"])
            res.update(nginx_cpu_ms_per_request=round(nginx_cpu * 1000 / n_req, 4),
                       backend_cpu_ms_per_request=round(backend_cpu * 1000 / n_req, 4),
                       wrk_cpu_ms_per_request=round(wrk_cpu * 1000 / n_req, 4))
            res.update(per_instance_requests=per, per_instance_rps={k: round(v / seconds, 1) for k, v in per.items()},
                       bridge_cpu_s=round(sum(cpu.values()), 3),
                       bridge_cpu_ms_per_request=round(sum(cpu.values()) * 1000 / res["requests"], 4)
                       if res["requests"] else None,
                       machine_cpu_ms_per_request=round(total_cpu * 1000 / res["requests"], 4)
                       if res["requests"] else None,
                       machine_cpu_utilisation=round(total_cpu / seconds, 2))
            runs[kind] = res
            log(f"N={n} {kind}: {res['rps']} req/s through nginx, per instance {res['per_instance_rps']}, "
                f"errors {res['errors']}")
        sent = sum(r["requests"] for r in runs.values())
        pulled = {name: pulled_requests(b.url) for name, b in zip(names, bridges)}
        t0 = time.monotonic()
        selector = f'bridge_http_requests_total{{instance=~"n{n}-.*"}}'
        pushed = None
        while time.monotonic() - t0 < 20:
            pushed = prom.scalar(f"sum({selector})")
            if pushed == sent:
                break
            time.sleep(0.25)
        lag_s = round(time.monotonic() - t0, 2)
        per_pushed = prom.by(f"sum by (instance) ({selector})", "instance")
        fig = {"instances": n, "runs": runs, "sent": sent,
               "pull_total": sum(pulled.values()), "pull_per_instance": pulled,
               "push_total": pushed, "push_per_instance": per_pushed, "push_visible_after_s": lag_s,
               "pull_exact": sum(pulled.values()) == sent, "push_exact": pushed == sent,
               "prometheus_series_for_step": int(prom.scalar(f'count({{job="bridge",instance=~"n{n}-.*"}})') or 0)}
        log(f"N={n}: sent {sent}, pull {fig['pull_total']}, push {pushed} (in Prometheus {lag_s} s after the load)")
        return fig
    finally:
        if nginx is not None:
            nginx.stop()
        for b in bridges:
            b.stop(signal.SIGTERM, timeout_s=15)  # graceful: the last push
        for name in names:  # retire the groups, as an operator would after scaling down
            requests.delete(f"{gateway.url}/metrics/job/bridge/instance/{name}", timeout=5)


# -- report -----------------------------------------------------------------------------------------------

def predicted_rps(res: dict, kind: str, n: int) -> float:
    """The capacity model on this box, from the 1-instance step's costs: each instance's single
    worker is one core at most (1 / its CPU per request), and the whole machine's cores are shared
    by everything a request costs (bridge + nginx + backend + wrk)."""
    one = res["steps"][0]["runs"][kind]
    cores = int(res["machine"]["nproc"])
    return min(n * 1000.0 / one["bridge_cpu_ms_per_request"], cores * 1000.0 / one["machine_cpu_ms_per_request"])


def plot(res: dict, out: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("nonstream", "stream16")):
        steps = res["steps"]
        xs = [s["instances"] for s in steps]
        bottom = [0.0] * len(steps)
        for k in range(max(xs)):
            vals = [list(s["runs"][kind]["per_instance_rps"].values())[k] if k < s["instances"] else 0.0 for s in steps]
            ax.bar(xs, vals, bottom=bottom, label=f"instance {k + 1}")
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.plot(xs, [s["runs"][kind]["rps"] for s in steps], "ko-", label="fleet (wrk)")
        ax.plot(xs, [predicted_rps(res, kind, x) for x in xs], "k:", marker="x", label="model (N=1 costs)")
        ax.set_ylim(0, 1.35 * max(max(s["runs"][kind]["rps"] for s in steps),
                                  max(predicted_rps(res, kind, x) for x in xs)))
        ax.set_title(f"{kind}: req/s through nginx, 1 worker per instance")
        ax.set_xlabel("instances")
        ax.set_xticks(xs)
        ax.set_ylabel("req/s")
        ax.legend(loc="upper left", ncol=2, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "fleet.png", dpi=90)
    plt.close(fig)
    return "fleet.png"


def report(res: dict, png: str | None) -> str:
    c = res["costs"]
    L = [SECTION_START, "", "## Fleet: 1-3 instances behind nginx, pull and push (`perf/fleet.py`, issue 16)", "",
         f"- date: {res['date']}; command: `{res['command']}` ({res['wall_s']:.0f} s); "
         f"machine: {res['machine']['nproc']} vCPUs ({res['machine']['cpu']}), **shared** with other developers' jobs "
         f"(load at start `{res['load_start']}`, at end `{res['load_end']}`): "
         "read ratios within this run, not absolute figures.",
         "- each instance: its own gunicorn (Procfile command), 1 gevent worker, own metrics dir, push mode to a real "
         "Pushgateway every 1 s; nginx: `deploy/nginx.conf` with an upstream of N servers (round robin, keepalive 32); "
         f"backend: `perf/fake_backend.py` (gunicorn gevent, {res['backend_workers']} workers); load: wrk "
         f"(2 threads, {res['config']['conns']} connections) that sends nothing after its deadline, so every request "
         "it sent completed and is counted. Load generator, nginx, backend and bridges share the same 2 vCPUs.", "",
         "| instances | kind | wrk req/s (fleet) | per instance req/s | model req/s | measured / model "
         "| p50 ms | p99 ms | errors | bridge CPU ms/req | machine CPU ms/req | machine CPU used (cores) |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in res["steps"]:
        for kind, r in s["runs"].items():
            per = " / ".join(f"{v:.0f}" for v in r["per_instance_rps"].values())
            model = predicted_rps(res, kind, s["instances"])
            L.append(f"| {s['instances']} | {kind} | {r['rps']:.0f} | {per} | {model:.0f} | {r['rps'] / model:.2f} | "
                     f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {r['bridge_cpu_ms_per_request']} | "
                     f"{r['machine_cpu_ms_per_request']} | {r['machine_cpu_utilisation']} |")
    L += ["", "Where the machine's CPU per request goes (ms): " + "; ".join(
        f"N={s['instances']} {kind}: bridge {r['bridge_cpu_ms_per_request']}, nginx {r['nginx_cpu_ms_per_request']}, "
        f"backend {r['backend_cpu_ms_per_request']}, wrk {r['wrk_cpu_ms_per_request']}"
        for s in res["steps"] for kind, r in s["runs"].items()) + "."]
    L += ["", "Model: min(N / bridge CPU per request, vCPUs / machine CPU per request), both from the 1-instance "
          "step (docs/scaling.md): one gevent worker is one core at most, and the machine's cores are shared by "
          "everything a request costs (bridge, nginx, backend, wrk)."]
    L += ["", "Totals (every request wrk sent during the step, both kinds):", "",
          "| instances | sent (wrk) | pull: sum of instances' `/metrics` | push: `sum(bridge_http_requests_total)` in "
          "Prometheus via the Pushgateway | exact | in Prometheus after | Prometheus series of the step |",
          "|---|---|---|---|---|---|---|"]
    for s in res["steps"]:
        L.append(f"| {s['instances']} | {s['sent']} | {s['pull_total']} | {s['push_total']:.0f} | "
                 f"{'yes' if s['pull_exact'] and s['push_exact'] else '**no**'} | {s['push_visible_after_s']} s | "
                 f"{s['prometheus_series_for_step']} |")
    o = c["open_streams"]
    L += ["",
          "Costs on one instance (1 worker, no nginx; worker CPU from psutil around a wrk run / requests served):",
          "",
          "| kind | req/s | worker CPU ms/req | backend CPU ms/req | wrk CPU ms/req | worker CPU used (cores) |",
          "|---|---|---|---|---|---|"]
    for kind in ("nonstream", "stream16", "paced64"):
        r = c[kind]
        L.append(f"| {kind} | {r['rps']:.0f} | {r['cpu_ms_per_request']} | {r['backend_cpu_ms_per_request']} | "
                 f"{r['wrk_cpu_ms_per_request']} | {r['worker_cpu_utilisation']} |")
    L += ["", f"Per streamed token (paced 20 ms, (paced64 - nonstream) / 64): **{c['cpu_us_per_token_paced']} us** of "
          f"worker CPU; unpaced 16-token streams: {c['cpu_us_per_token_burst16']} us per token. "
          f"{o['streams']} slow streams open at once (peak {o['peak_open']}, {o['complete']} complete): worker RSS "
          f"{o['rss_idle_mb']} -> {o['rss_peak_mb']} MB, **{o['kb_per_stream']} KB per open stream**. One instance "
          f"exposes {c['series_one_instance']} samples after this traffic. The capacity model built on these is "
          "`docs/scaling.md`.", ""]
    if png:
        L += [f"![fleet]({png})", ""]
    L.append(SECTION_END)
    return "\n".join(L) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace this script's section of RESULTS.md, or append it."""
    old = path.read_text() if path.exists() else ""
    if SECTION_START in old and SECTION_END in old:
        head, rest = old.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1]
        new = head + text.rstrip("\n") + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="short durations")
    ap.add_argument("--no-write", action="store_true", help="do not touch perf/RESULTS.md, fleet.json, fleet.png")
    ap.add_argument("--out", type=Path, default=REPO / "perf")
    ap.add_argument("--backend-workers", type=int, default=2)
    args = ap.parse_args(argv)
    missing = [name for name, path in (("wrk", shutil.which("wrk")), ("nginx", NGINX),
                                       ("prometheus-pushgateway", PUSHGATEWAY), ("prometheus", PROMETHEUS)) if not path]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install wrk nginx prometheus prometheus-pushgateway)",
              file=sys.stderr)
        return 2
    cfg = SMOKE if args.smoke else FULL
    raise_nofile(20000)
    tmp = Path(tempfile.mkdtemp(prefix="bridge-fleet-"))
    t0 = time.monotonic()
    res: dict = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "command": ".venv/bin/python -m perf.fleet" + (" --smoke" if args.smoke else ""),
                 "machine": machine(), "load_start": load_average(), "config": {k: v for k, v in cfg.items()},
                 "backend_workers": args.backend_workers, "steps": []}
    procs: list = []
    try:
        backend = FakeBackendProcess(tmp, workers=args.backend_workers)
        procs.append(backend)
        gateway = Pushgateway(tmp)
        procs.append(gateway)
        prom = Prometheus(tmp, gateway.port, interval_s=1)
        procs.append(prom)
        backend.wait_ready()
        gateway.wait_ready()
        prom.wait_ready()
        res["costs"] = scenario_costs(cfg, tmp, backend)
        for n in cfg["steps"]:
            res["steps"].append(scenario_step(cfg, n, tmp, backend, gateway, prom))
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    res["load_end"] = load_average()
    res["wall_s"] = time.monotonic() - t0
    exact = all(s["pull_exact"] and s["push_exact"] for s in res["steps"])
    log(f"done in {res['wall_s']:.0f} s; totals exact: {exact}")
    if not args.no_write:
        png = plot(res, args.out)
        write_section(args.out / "RESULTS.md", report(res, png))
        (args.out / "fleet.json").write_text(json.dumps(res, indent=1, default=str))
        log(f"wrote {args.out / 'RESULTS.md'} (section), fleet.json, {png}")
    else:
        print(report(res, None))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
