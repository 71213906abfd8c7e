"""The whole perf suite, one command: ``.venv/bin/python -m perf.run`` (``--smoke`` for CI).

Starts a fake OpenAI backend (``perf.fake_backend``, gunicorn gevent, 1 worker) and bridges exactly
as the Procfile does, all on 127.0.0.1, then runs every scenario with the bridge and the direct
path (the backend's own ``/v1/chat/completions``) side by side, interleaved in the same run:

1. added latency at concurrency 1 (non-stream and stream), p50/p99
2. throughput frontier with wrk: max req/s with p99 under 10 ms and 50 ms (non-stream, 16-token streams)
3. paced streams (64 tokens, 20 ms apart): added TTFT and added per-frame delay
4. 1,000 concurrent slow streams on one worker (WEB_CONCURRENCY=1)
5. monitoring cost: METRICS_ENABLED true vs false, paired interleaved wrk runs
6. memory: RSS of each worker after warm-up and after 100K requests (time-capped)
7. collector micro-benchmarks (pytest-benchmark, ``perf/test_collector_bench.py``)
8. same-run anchors (``perf/anchors.py``): Flask hello (the stack's ceiling) and a bare same-stack
   proxy; non-stream as a fraction of hello, streams as a multiple of the proxy, interleaved rounds
9. worker CPU per streamed token against stream length (16 to 4,096 tokens), bridge and bare proxy
10. read side (``perf/scaling.py``): /metrics/summary time against window and workers, /metrics
    time against workers and label values
11. memory per open stream, 10 to 5,000 streams held open on one worker

RESULTS.md sections written by other scripts (``<!-- name: start -->`` ... ``<!-- name: end -->``,
e.g. ``perf/fleet.py``'s) are kept as they are.

Writes ``perf/RESULTS.md``, ``perf/results.json`` and PNG plots to ``--out`` (default ``perf/``).
Everything is bounded in time and count; the machine is shared, so each comparison is a ratio or
difference taken within one run.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from perf import driver  # noqa: E402
from perf.anchors import AnchorProcess  # noqa: E402
from perf.driver import Target, percentile  # noqa: E402
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
from tests.bridgeproc import REPO  # noqa: E402

HOST = "127.0.0.1"
MESSAGES = [{"role": "user", "content": "Say hello in a few words."}]

FULL = dict(c1_rounds=12, c1_nonstream=40, c1_stream=15, frontier=[1, 2, 4, 8, 16, 32, 64], frontier_s=2.0,
            paced_conc=4, paced_count=24, many=1000, many_ramp_s=3.0, mon_pairs=6, mon_s=3.0, mon_conns=8,
            mem_requests=100_000, mem_cap_s=200.0, mem_warm_s=5.0, bench_s="1.0",
            anchor_rounds=4, anchor_s=2.0, anchor_conns=16,
            token_lengths=[16, 64, 256, 1024, 4096], token_s=2.0,
            summary_windows=[2000, 20000, 200000], summary_workers=[2, 4, 8],
            scrape_workers=[2, 4, 8], scrape_labels=[1, 10, 100],
            open_streams=[10, 100, 1000, 5000], open_ramp_s=4.0)
SMOKE = dict(c1_rounds=2, c1_nonstream=5, c1_stream=2, frontier=[2], frontier_s=1,
             paced_conc=2, paced_count=2, many=20, many_ramp_s=0.2, mon_pairs=1, mon_s=1, mon_conns=4,
             mem_requests=300, mem_cap_s=1.0, mem_warm_s=0, bench_s="0.05",
             anchor_rounds=1, anchor_s=1, anchor_conns=4,
             token_lengths=[16, 64], token_s=1,
             summary_windows=[2000], summary_workers=[2],
             scrape_workers=[2], scrape_labels=[1, 10],
             open_streams=[10, 20], open_ramp_s=0.2)

TARGETS = {  # issue 8, tightened by issue 17 (ratios to the same-run anchors)
    "added_p50_ms": 1.5, "added_p99_ms": 5.0, "added_ttft_p99_ms": 3.0, "added_frame_p99_ms": 0.5,
    "added_p50_nonstream_ms": 0.4, "added_p50_stream_ms": 1.0,
    "nonstream_vs_hello": 0.45, "stream_vs_proxy": 1.25,
    "nonstream_rps": 1000, "streams_rps": 600, "monitoring_cost_pct": 3.0, "many_errors": 0,
    "rss_growth_mb_per_100k": 5.0, "collector_rps": 100_000,
}


def ms(x: float) -> float:
    return round(x * 1000.0, 3)


def log(msg: str) -> None:
    print(f"[perf {time.strftime('%H:%M:%S')} load {load_average()}] {msg}", flush=True)


def targets_for(bridge_port: int, backend_port: int, model: str, stream: bool) -> tuple[Target, Target]:
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    return (Target("bridge", HOST, bridge_port, "/api/chat", body, stream),
            Target("direct", HOST, backend_port, "/v1/chat/completions", body, stream))


# -- 1. added latency at concurrency 1 --------------------------------------------------------------

def scenario_c1(cfg: dict, bport: int, fport: int) -> dict:
    out = {}
    for kind, model, per_round in (("nonstream", model_name(8), cfg["c1_nonstream"]),
                                   ("stream", model_name(16), cfg["c1_stream"])):
        stream = kind == "stream"
        pair = targets_for(bport, fport, model, stream)
        conns = {t.name: driver.Conn(HOST, t.port) for t in pair}
        raws = {t.name: t.request_bytes() for t in pair}
        lat: dict[str, list[float]] = {t.name: [] for t in pair}
        ttft: dict[str, list[float]] = {t.name: [] for t in pair}
        errors = {t.name: 0 for t in pair}
        for t in pair:  # warm-up: connections, model list cache, pools
            for _ in range(10):
                conns[t.name].request(t, raws[t.name])
        for r in range(cfg["c1_rounds"]):
            order = pair if r % 2 == 0 else pair[::-1]
            for t in order:
                for _ in range(per_round):
                    res = conns[t.name].request(t, raws[t.name], timed=stream)
                    if not res.ok:
                        errors[t.name] += 1
                        continue
                    lat[t.name].append(res.latency_s)
                    if stream and res.ttft_s is not None:
                        ttft[t.name].append(res.ttft_s)
        for c in conns.values():
            c.close()
        fig = {"n": {k: len(v) for k, v in lat.items()}, "errors": errors, "samples_s": lat}
        for name in lat:
            fig[f"{name}_p50_ms"] = ms(percentile(lat[name], 50))
            fig[f"{name}_p99_ms"] = ms(percentile(lat[name], 99))
            if stream:
                fig[f"{name}_ttft_p50_ms"] = ms(percentile(ttft[name], 50))
                fig[f"{name}_ttft_p99_ms"] = ms(percentile(ttft[name], 99))
        fig["added_p50_ms"] = round(fig["bridge_p50_ms"] - fig["direct_p50_ms"], 3)
        fig["added_p99_ms"] = round(fig["bridge_p99_ms"] - fig["direct_p99_ms"], 3)
        out[kind] = fig
        log(f"c=1 {kind}: bridge p50 {fig['bridge_p50_ms']} p99 {fig['bridge_p99_ms']} / direct p50 "
            f"{fig['direct_p50_ms']} p99 {fig['direct_p99_ms']} ms")
    return out


# -- 2. throughput frontier --------------------------------------------------------------------------

def scenario_frontier(cfg: dict, bport: int, fport: int) -> dict:
    out = {}
    for kind, model in (("nonstream", model_name(8)), ("stream16", model_name(16))):
        stream = kind != "nonstream"
        pair = targets_for(bport, fport, model, stream)
        runs: dict[str, list[dict]] = {"bridge": [], "direct": []}
        for i, c in enumerate(cfg["frontier"]):
            for t in (pair if i % 2 == 0 else pair[::-1]):
                runs[t.name].append(driver.wrk(t, connections=c, duration_s=cfg["frontier_s"]).as_dict())
        fig: dict = {"runs": runs}
        for name, rs in runs.items():
            fig[f"{name}_max_rps"] = round(max(r["rps"] for r in rs), 1)
            fig[f"{name}_errors"] = sum(r["errors"] for r in rs)
            for slo in (10, 50):
                ok = [r["rps"] for r in rs if r["p99_ms"] <= slo]
                fig[f"{name}_rps_p99_under_{slo}ms"] = round(max(ok), 1) if ok else 0.0
        out[kind] = fig
        log(f"frontier {kind}: bridge max {fig['bridge_max_rps']} req/s (p99<10ms {fig['bridge_rps_p99_under_10ms']}, "
            f"<50ms {fig['bridge_rps_p99_under_50ms']}); direct max {fig['direct_max_rps']}")
    return out


# -- 3. paced streams ----------------------------------------------------------------------------------

def scenario_paced(cfg: dict, bport: int, fport: int) -> dict:
    pair = targets_for(bport, fport, model_name(64, 20), True)
    # both paths at the same time, so they see the same machine load
    jobs = {t.name: gevent.spawn(driver.paced_streams, t, concurrency=cfg["paced_conc"], count=cfg["paced_count"],
                                 deadline_s=60) for t in pair}
    gevent.joinall(list(jobs.values()), timeout=120)
    fig: dict = {"samples": {}}
    for name, job in jobs.items():
        res: driver.StreamResult = job.value
        ok = [r for r in res.results if r.ok]
        ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
        transit = [x for r in ok for x in r.transits_s()]
        gaps = [x for r in ok for x in r.gaps_s()]
        frames = sum(len(r.tokens) for r in ok)
        fig[name] = {"streams": len(res.results), "errors": len(res.errors), "frames": frames,
                     "frames_expected": 64 * len(res.results),
                     "ttft_p50_ms": ms(percentile(ttft, 50)), "ttft_p99_ms": ms(percentile(ttft, 99)),
                     "transit_p50_ms": ms(percentile(transit, 50)), "transit_p99_ms": ms(percentile(transit, 99)),
                     "transit_mean_ms": ms(statistics.fmean(transit)) if transit else float("nan"),
                     "gap_mean_ms": ms(statistics.fmean(gaps)) if gaps else float("nan"),
                     "gap_p99_ms": ms(percentile(gaps, 99))}
        fig["samples"][name] = {"ttft_s": ttft, "transit_s": transit}
    b, d = fig["bridge"], fig["direct"]
    fig["added_ttft_p50_ms"] = round(b["ttft_p50_ms"] - d["ttft_p50_ms"], 3)
    fig["added_ttft_p99_ms"] = round(b["ttft_p99_ms"] - d["ttft_p99_ms"], 3)
    fig["added_frame_p50_ms"] = round(b["transit_p50_ms"] - d["transit_p50_ms"], 3)
    fig["added_frame_p99_ms"] = round(b["transit_p99_ms"] - d["transit_p99_ms"], 3)
    fig["added_frame_mean_ms"] = round(b["transit_mean_ms"] - d["transit_mean_ms"], 3)
    fig["added_gap_p99_ms"] = round(b["gap_p99_ms"] - d["gap_p99_ms"], 3)
    log(f"paced: added TTFT p99 {fig['added_ttft_p99_ms']} ms, added frame p99 {fig['added_frame_p99_ms']} ms")
    return fig


# -- 4. many concurrent streams on one worker -----------------------------------------------------------

def scenario_many(cfg: dict, bridge1, fport: int) -> dict:
    n = cfg["many"]
    tokens, delay_ms = 10, 500
    target, _ = targets_for(bridge1.port, fport, model_name(tokens, delay_ms), True)
    pids = bridge1.worker_pids()
    res = driver.concurrent_streams(target, n=n, ramp_s=cfg["many_ramp_s"], deadline_s=cfg["many_ramp_s"] + 60)
    rss = rss_of(pids)
    ok = [r for r in res.results if r.ok]
    full = [r for r in ok if len(r.tokens) == tokens]
    errors = [r.error for r in res.results if not r.ok][:5]
    fig = {"streams": n, "completed": len(ok), "complete_frames": len(full), "errors": n - len(full),
           "peak_open": res.peak_open, "wall_s": round(res.wall_s, 2), "workers": len(pids),
           "worker_rss_mb": {str(k): round(v / 2**20, 1) for k, v in rss.items()},
           "duration_p50_s": round(percentile([r.latency_s for r in ok], 50), 3),
           "duration_max_s": round(max((r.latency_s for r in ok), default=float("nan")), 3),
           "nominal_s": round((tokens - 1) * delay_ms / 1000, 3), "error_examples": errors}
    log(f"{n} concurrent streams on {len(pids)} worker: {len(full)} complete, peak open {res.peak_open}")
    return fig


# -- 5. monitoring cost ----------------------------------------------------------------------------------



def scenario_monitoring(cfg: dict, on_b, off_b, fport: int) -> dict:
    """Paired wrk runs; also the workers' CPU time per request (less sensitive to others' load)."""
    on_port, off_port = on_b.port, off_b.port
    pids = {on_port: on_b.worker_pids(), off_port: off_b.worker_pids()}
    out = {}
    for kind, model in (("nonstream", model_name(8)), ("stream16", model_name(16))):
        stream = kind != "nonstream"
        on, _ = targets_for(on_port, fport, model, stream)
        off, _ = targets_for(off_port, fport, model, stream)
        for t in (on, off) if cfg["mon_pairs"] > 1 else ():  # warm-up
            driver.wrk(t, connections=cfg["mon_conns"], duration_s=1)
        pairs = []
        for i in range(cfg["mon_pairs"]):
            order = (on, off) if i % 2 == 0 else (off, on)  # ABBA against drift
            got = {}
            for t in order:
                c0 = cpu_seconds(pids[t.port])
                got[t.port] = driver.wrk(t, connections=cfg["mon_conns"], duration_s=cfg["mon_s"]).as_dict()
                got[t.port]["cpu_us_per_req"] = ((cpu_seconds(pids[t.port]) - c0) * 1e6 / got[t.port]["requests"]
                                                 if got[t.port]["requests"] else float("nan"))
            pairs.append({"on": got[on_port], "off": got[off_port],
                          "ratio": got[on_port]["rps"] / got[off_port]["rps"]
                          if got[off_port]["rps"] else float("nan")})
        ratios = [p["ratio"] for p in pairs]
        med = statistics.median(ratios)
        on_sum = sum(p["on"]["requests"] for p in pairs) / sum(p["on"]["duration_s"] for p in pairs)
        off_sum = sum(p["off"]["requests"] for p in pairs) / sum(p["off"]["duration_s"] for p in pairs)
        cpu_on = statistics.median(p["on"]["cpu_us_per_req"] for p in pairs)
        cpu_off = statistics.median(p["off"]["cpu_us_per_req"] for p in pairs)
        out[kind] = {"pairs": pairs, "median_ratio": round(med, 4), "cost_pct": round((1 - med) * 100, 2),
                     "cpu_us_per_req_on": round(cpu_on, 1), "cpu_us_per_req_off": round(cpu_off, 1),
                     "cpu_cost_pct": round((cpu_on / cpu_off - 1) * 100, 2) if cpu_off else float("nan"),
                     "pooled_on_rps": round(on_sum, 1), "pooled_off_rps": round(off_sum, 1),
                     "pooled_cost_pct": round((1 - on_sum / off_sum) * 100, 2) if off_sum else float("nan"),
                     "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4),
                     "errors": sum(p["on"]["errors"] + p["off"]["errors"] for p in pairs)}
        log(f"monitoring {kind}: on/off median ratio {med:.4f} (cost {out[kind]['cost_pct']} %)")
    return out


# -- 6. memory -------------------------------------------------------------------------------------------

def scenario_memory(cfg: dict, bridge, fport: int) -> dict:
    pids = bridge.worker_pids()
    kinds = [targets_for(bridge.port, fport, model_name(8), False)[0],
             targets_for(bridge.port, fport, model_name(16), True)[0]]
    for t in kinds if cfg["mem_warm_s"] else ():  # warm-up: fill the metrics window, pools, caches
        driver.wrk(t, connections=8, duration_s=cfg["mem_warm_s"])
    warm = rss_of(pids)
    done, curve, errors = 0, [(0, sum(warm.values()))], 0
    start = time.monotonic()
    i = 0
    while done < cfg["mem_requests"] and time.monotonic() - start < cfg["mem_cap_s"]:
        left_s = cfg["mem_cap_s"] - (time.monotonic() - start)
        chunk_s = max(1, int(min(10.0, left_s, cfg["mem_cap_s"] / 4)))
        r = driver.wrk(kinds[i % 2], connections=8, duration_s=chunk_s)
        done += r.requests
        errors += r.errors
        curve.append((done, sum(rss_of(pids).values())))
        i += 1
    end = rss_of(pids)
    per_worker = {str(p): {"warm_mb": round(warm.get(p, 0) / 2**20, 2), "end_mb": round(end.get(p, 0) / 2**20, 2),
                           "growth_mb": round((end.get(p, 0) - warm.get(p, 0)) / 2**20, 2)} for p in pids}
    max_growth = max((v["growth_mb"] for v in per_worker.values()), default=float("nan"))
    total_growth = (sum(end.values()) - sum(warm.values())) / 2**20
    fig = {"requests": done, "errors": errors, "workers": per_worker, "curve": curve,
           "max_worker_growth_mb": max_growth, "total_growth_mb": round(total_growth, 2),
           "growth_mb_per_100k": round(total_growth * 100_000 / done, 2) if done else float("nan"),
           "reached_100k": done >= 100_000}
    log(f"memory: {done} requests, RSS growth {fig['total_growth_mb']} MB total (workers {per_worker})")
    return fig


# -- 8. same-run anchors: Flask hello (the stack's ceiling) and a bare same-stack proxy ----------------

def scenario_anchors(cfg: dict, hello, proxy, bport: int) -> dict:
    """Interleaved rounds (order rotated each round) of wrk at the same connection count: the hello
    app, the bridge and the bare proxy, non-streamed and 16-token streams; ratios per round."""
    conns, secs = cfg["anchor_conns"], cfg["anchor_s"]
    t_hello = Target("hello", HOST, hello.port, "/", None, False)
    runs = {
        "hello": t_hello,
        "bridge_nonstream": targets_for(bport, 0, model_name(8), False)[0],
        "proxy_nonstream": Target("proxy", HOST, proxy.port, "/v1/chat/completions",
                                  {"model": model_name(8), "messages": MESSAGES, "stream": False}, False),
        "bridge_stream16": targets_for(bport, 0, model_name(16), True)[0],
        "proxy_stream16": Target("proxy", HOST, proxy.port, "/v1/chat/completions",
                                 {"model": model_name(16), "messages": MESSAGES, "stream": True}, True),
    }
    names = list(runs)
    for name in names if cfg["anchor_rounds"] > 1 else ():  # warm-up
        driver.wrk(runs[name], connections=conns, duration_s=1)
    rounds = []
    for r in range(cfg["anchor_rounds"]):
        order = names[r % len(names):] + names[:r % len(names)]
        got = {n: driver.wrk(runs[n], connections=conns, duration_s=secs).as_dict() for n in order}
        got["nonstream_vs_hello"] = got["bridge_nonstream"]["rps"] / max(got["hello"]["rps"], 1e-9)
        got["proxy_nonstream_vs_hello"] = got["proxy_nonstream"]["rps"] / max(got["hello"]["rps"], 1e-9)
        got["stream_vs_proxy"] = got["bridge_stream16"]["rps"] / max(got["proxy_stream16"]["rps"], 1e-9)
        got["nonstream_vs_proxy"] = got["bridge_nonstream"]["rps"] / max(got["proxy_nonstream"]["rps"], 1e-9)
        rounds.append(got)
    fig: dict = {"rounds": rounds, "connections": conns, "seconds": secs}
    for key in ("nonstream_vs_hello", "proxy_nonstream_vs_hello", "stream_vs_proxy", "nonstream_vs_proxy"):
        vals = [g[key] for g in rounds]
        fig[key] = round(statistics.median(vals), 3)
        fig[key + "_range"] = [round(min(vals), 3), round(max(vals), 3)]
    for n in names:
        fig[n + "_rps"] = round(statistics.median(g[n]["rps"] for g in rounds), 1)
        fig[n + "_errors"] = sum(g[n]["errors"] for g in rounds)
    log(f"anchors: bridge/hello {fig['nonstream_vs_hello']} (proxy/hello {fig['proxy_nonstream_vs_hello']}), "
        f"bridge/proxy streams {fig['stream_vs_proxy']}")
    return fig


# -- 9. CPU per streamed token against stream length ---------------------------------------------------

def scenario_token_cost(cfg: dict, bridge, proxy, fport: int) -> dict:
    """Worker CPU (psutil, all workers) per streamed token, bridge and bare proxy, 16..4,096 tokens."""
    rows = []
    bpids, ppids = bridge.worker_pids(), proxy.worker_pids()
    for n in cfg["token_lengths"]:
        row: dict = {"tokens": n}
        conns = 4 if n <= 256 else 2
        for name, pids, target in (
                ("bridge", bpids, targets_for(bridge.port, fport, model_name(n), True)[0]),
                ("proxy", ppids, Target("proxy", HOST, proxy.port, "/v1/chat/completions",
                                        {"model": model_name(n), "messages": MESSAGES, "stream": True}, True))):
            c0 = cpu_seconds(pids)
            r = driver.wrk(target, connections=conns, duration_s=cfg["token_s"])
            cpu = cpu_seconds(pids) - c0
            row[name] = {"streams": r.requests, "errors": r.errors, "streams_per_s": round(r.rps, 1),
                         "cpu_us_per_token": round(cpu * 1e6 / (r.requests * n), 2) if r.requests else float("nan"),
                         "cpu_us_per_stream": round(cpu * 1e6 / r.requests, 1) if r.requests else float("nan")}
        rows.append(row)
        log(f"tokens {n}: bridge {row['bridge']['cpu_us_per_token']} us/token, "
            f"proxy {row['proxy']['cpu_us_per_token']}")
    return {"rows": rows}


# -- 10. read side: /metrics/summary and /metrics build time --------------------------------------------

def scenario_readside(cfg: dict) -> dict:
    from perf.scaling import run_case

    summary = []
    for w in cfg["summary_windows"]:
        for n in cfg["summary_workers"]:
            summary.append(run_case("summary", window=w, workers=n, reps=1 if w >= 100_000 else 3))
            log(f"summary window {w} workers {n}: {summary[-1].get('median_ms')} ms")
    scrape = []
    for n in cfg["scrape_workers"]:
        for labels in cfg["scrape_labels"]:
            scrape.append(run_case("scrape", workers=n, labels=labels, reps=5))
            log(f"scrape workers {n} labels {labels}: {scrape[-1].get('median_ms')} ms")
    return {"summary": summary, "scrape": scrape}


# -- 11. memory per open stream -------------------------------------------------------------------------

def scenario_open_streams(cfg: dict, tmp: Path) -> dict:
    """One worker holding 10..5,000 open streams (6 tokens 1 s apart): its RSS while they are all
    open, against its RSS idle just before; per open stream = growth / streams."""
    top = max(cfg["open_streams"])
    fake = FakeBackendProcess(tmp, connections=top * 2 + 100).wait_ready()
    from tests.bridgeproc import BridgeProcess

    b = BridgeProcess({"OPENAI_API_BASE_URL": fake.url, "METRICS_ENABLED": "true",
                       "WORKER_CONNECTIONS": str(top + 200), "UPSTREAM_POOL_SIZE": str(top + 200)},
                      workers=1, tmp_dir=tmp, log_name="bridge-open").wait_ready()
    rows = []
    try:
        pids = b.worker_pids()
        target = targets_for(b.port, fake.port, model_name(6, 1000), True)[0]
        driver.concurrent_streams(target, n=10, ramp_s=0.1, deadline_s=30)  # warm-up: pools, caches
        for n in cfg["open_streams"]:
            idle = sum(rss_of(pids).values())
            peak = {"rss": idle, "open": 0}
            job = gevent.spawn(driver.concurrent_streams, target, n=n, ramp_s=cfg["open_ramp_s"] * n / top,
                               deadline_s=cfg["open_ramp_s"] + 60)
            while not job.ready():  # sample while the streams are open (the peak is when all are)
                gevent.sleep(0.25)
                rss = sum(rss_of(pids).values())
                if rss > peak["rss"]:
                    peak["rss"] = rss
            res = job.value
            ok = sum(1 for r in res.results if r.ok and len(r.tokens) == 6)
            rows.append({"streams": n, "complete": ok, "errors": n - ok, "peak_open": res.peak_open,
                         "idle_mb": round(idle / 2**20, 2), "peak_mb": round(peak["rss"] / 2**20, 2),
                         "kb_per_stream": round((peak["rss"] - idle) / 1024 / n, 1)})
            log(f"open streams {n}: {rows[-1]['kb_per_stream']} KB per stream, errors {rows[-1]['errors']}")
    finally:
        b.stop()
        fake.stop()
    return {"rows": rows}


# -- 7. collector micro-benchmarks ----------------------------------------------------------------------

def scenario_collector(cfg: dict, tmp: Path) -> dict:
    out_json = tmp / "collector_bench.json"
    env = {**os.environ, "PERF_BENCH_SECONDS": cfg["bench_s"],
           "PERF_BENCH_ASSERT_RATE": "1" if float(cfg["bench_s"]) >= 0.5 else "0"}
    cmd = [sys.executable, "-m", "pytest", "perf/test_collector_bench.py", "--benchmark-enable",
           f"--benchmark-json={out_json}", "-q", "-p", "no:cacheprovider", "--timeout=300"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    fig: dict = {"pytest_rc": proc.returncode, "cases": {}}
    if proc.returncode != 0:
        fig["pytest_tail"] = proc.stdout[-3000:]
    if out_json.exists():
        for b in json.loads(out_json.read_text())["benchmarks"]:
            info = dict(b.get("extra_info") or {})
            info["mean_us"] = round(b["stats"]["mean"] * 1e6, 3)
            fig["cases"][b["name"]] = info
    log(f"collector: pytest rc {proc.returncode}, {len(fig['cases'])} cases")
    return fig


# -- plots -------------------------------------------------------------------------------------------------

def plots(res: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        made.append(name)

    def cdf(ax, values, label):
        if not values:
            return
        s = sorted(v * 1000 for v in values)
        ax.plot(s, [(i + 1) / len(s) for i in range(len(s))], label=label)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("nonstream", "stream")):
        for name, vals in res["c1"][kind]["samples_s"].items():
            cdf(ax, vals, f"{name} (p50 {res['c1'][kind][name + '_p50_ms']} ms)")
        ax.set_title(f"concurrency 1, {kind}: request latency CDF")
        ax.set_xlabel("ms")
        ax.set_xscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
    save(fig, "latency_c1.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("nonstream", "stream16")):
        for name, runs in res["frontier"][kind]["runs"].items():
            ax.plot([r["rps"] for r in runs], [r["p99_ms"] for r in runs], marker="o", label=f"{name} p99")
            ax.plot([r["rps"] for r in runs], [r["p50_ms"] for r in runs], marker=".", ls="--", label=f"{name} p50")
        for slo in (10, 50):
            ax.axhline(slo, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_title(f"throughput frontier, {kind} (wrk, connections {res['config']['frontier']})")
        ax.set_xlabel("req/s")
        ax.set_ylabel("latency ms")
        ax.legend()
        ax.grid(alpha=0.3)
    save(fig, "throughput_frontier.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, s in res["paced"]["samples"].items():
        cdf(axes[0], s["ttft_s"], name)
        cdf(axes[1], s["transit_s"], name)
    axes[0].set_title("paced stream (64 x 20 ms): TTFT CDF")
    axes[1].set_title("paced stream: per-frame transit (arrival - backend send) CDF")
    for ax in axes:
        ax.set_xlabel("ms")
        ax.set_xscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
    save(fig, "streaming_paced.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("nonstream", "stream16")):
        pairs = res["monitoring"][kind]["pairs"]
        x = range(len(pairs))
        ax.bar([i - 0.2 for i in x], [p["on"]["rps"] for p in pairs], width=0.4, label="METRICS_ENABLED=true")
        ax.bar([i + 0.2 for i in x], [p["off"]["rps"] for p in pairs], width=0.4, label="METRICS_ENABLED=false")
        ax.set_title(f"monitoring cost, {kind}: median on/off {res['monitoring'][kind]['median_ratio']}")
        ax.set_xlabel("interleaved pair")
        ax.set_ylabel("req/s")
        ax.legend()
    save(fig, "monitoring_cost.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    curve = res["memory"]["curve"]
    ax.plot([c[0] for c in curve], [c[1] / 2**20 for c in curve], marker="o")
    ax.set_title("RSS of all bridge workers vs requests served")
    ax.set_xlabel("requests after warm-up")
    ax.set_ylabel("MB")
    ax.grid(alpha=0.3)
    save(fig, "memory.png")

    rows = res["token_cost"]["rows"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("bridge", "proxy"):
        ax.plot([r["tokens"] for r in rows], [r[name]["cpu_us_per_token"] for r in rows], marker="o",
                label="bridge" if name == "bridge" else "bare proxy (anchor)")
    ax.set_xscale("log", base=2)
    ax.set_title("Worker CPU per streamed token vs stream length")
    ax.set_xlabel("tokens per stream")
    ax.set_ylabel("CPU us per token (all workers)")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, "token_cost.png")

    rs = res["readside"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for w in sorted({c["window"] for c in rs["summary"] if "window" in c}):
        pts = [c for c in rs["summary"] if c.get("window") == w and "median_ms" in c]
        axes[0].plot([c["workers"] for c in pts], [c["median_ms"] for c in pts], marker="o", label=f"window {w}")
    axes[0].set_yscale("log")
    axes[0].set_title("/metrics/summary build time")
    axes[0].set_xlabel("workers")
    axes[0].set_ylabel("ms")
    axes[0].legend()
    for labels in sorted({c["labels"] for c in rs["scrape"] if "labels" in c}):
        pts = [c for c in rs["scrape"] if c.get("labels") == labels and "median_ms" in c]
        axes[1].plot([c["workers"] for c in pts], [c["median_ms"] for c in pts], marker="o",
                     label=f"{labels} model labels")
    axes[1].set_title("/metrics exposition time")
    axes[1].set_xlabel("workers")
    axes[1].set_ylabel("ms")
    axes[1].legend()
    for a in axes:
        a.grid(alpha=0.3)
    save(fig, "readside.png")

    rows = res["open_streams"]["rows"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["streams"] for r in rows], [r["peak_mb"] - r["idle_mb"] for r in rows], marker="o")
    ax.set_xscale("log")
    ax.set_title("One worker's RSS growth with open streams")
    ax.set_xlabel("open streams")
    ax.set_ylabel("MB over idle")
    ax.grid(alpha=0.3)
    save(fig, "open_streams.png")
    return made


# -- report ------------------------------------------------------------------------------------------------

def verdict(value: float, target: float, higher_is_better: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "**missed**"


def target_rows(res: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    a = res["anchors"]
    rows.append(("non-stream req/s / Flask hello req/s (same run, median of rounds)",
                 f"{a['nonstream_vs_hello']} "
                 f"(range {a['nonstream_vs_hello_range'][0]}-{a['nonstream_vs_hello_range'][1]}; "
                 f"bare proxy {a['proxy_nonstream_vs_hello']})", ">= 0.45",
                 verdict(a["nonstream_vs_hello"], TARGETS["nonstream_vs_hello"], True)))
    rows.append(("16-token streams/s / bare proxy streams/s (same run, median of rounds)",
                 f"{a['stream_vs_proxy']} (range {a['stream_vs_proxy_range'][0]}-{a['stream_vs_proxy_range'][1]})",
                 ">= 1.25", verdict(a["stream_vs_proxy"], TARGETS["stream_vs_proxy"], True)))
    c1 = res["c1"]
    rows.append(("added latency c=1 p50 (nonstream), issue 17", f"{c1['nonstream']['added_p50_ms']} ms", "<= 0.4 ms",
                 verdict(c1["nonstream"]["added_p50_ms"], TARGETS["added_p50_nonstream_ms"], False)))
    rows.append(("added latency c=1 p50 (16-token stream), issue 17", f"{c1['stream']['added_p50_ms']} ms", "<= 1.0 ms",
                 verdict(c1["stream"]["added_p50_ms"], TARGETS["added_p50_stream_ms"], False)))
    for kind in ("nonstream", "stream"):
        rows.append((f"added latency c=1 p50 ({kind})", f"{c1[kind]['added_p50_ms']} ms", "<= 1.5 ms",
                     verdict(c1[kind]["added_p50_ms"], TARGETS["added_p50_ms"], False)))
        rows.append((f"added latency c=1 p99 ({kind})", f"{c1[kind]['added_p99_ms']} ms", "<= 5 ms",
                     verdict(c1[kind]["added_p99_ms"], TARGETS["added_p99_ms"], False)))
    p = res["paced"]
    rows.append(("added TTFT p99 (paced 64x20 ms)", f"{p['added_ttft_p99_ms']} ms", "<= 3 ms",
                 verdict(p["added_ttft_p99_ms"], TARGETS["added_ttft_p99_ms"], False)))
    rows.append(("added inter-chunk (per-frame) p99", f"{p['added_frame_p99_ms']} ms", "<= 0.5 ms",
                 verdict(p["added_frame_p99_ms"], TARGETS["added_frame_p99_ms"], False)))
    f = res["frontier"]
    rows.append(("non-stream req/s, 2 workers, metrics on (max)", f"{f['nonstream']['bridge_max_rps']}",
                 ">= 1,000", verdict(f["nonstream"]["bridge_max_rps"], TARGETS["nonstream_rps"], True)))
    rows.append(("16-token streams/s, 2 workers, metrics on (max)", f"{f['stream16']['bridge_max_rps']}",
                 ">= 600", verdict(f["stream16"]["bridge_max_rps"], TARGETS["streams_rps"], True)))
    m = res["monitoring"]
    for kind in ("nonstream", "stream16"):
        rows.append((f"monitoring cost, {kind} (median of paired ratios)", f"{m[kind]['cost_pct']} %", "<= 3 %",
                     verdict(m[kind]["cost_pct"], TARGETS["monitoring_cost_pct"], False)))
    o = res["open_streams"]["rows"]
    rows.append((f"{o[-1]['streams']} open streams on 1 worker: errors", f"{sum(r['errors'] for r in o)}", "0",
                 verdict(sum(r["errors"] for r in o), 0, False)))
    many = res["many"]
    rows.append((f"{many['streams']} concurrent streams on 1 worker: errors", f"{many['errors']}", "0",
                 verdict(many["errors"], 0, False)))
    mem = res["memory"]
    rows.append(("RSS growth per 100K requests (all workers)", f"{mem['growth_mb_per_100k']} MB", "<= 5 MB",
                 verdict(mem["growth_mb_per_100k"], TARGETS["rss_growth_mb_per_100k"], False)))
    cases = res["collector"]["cases"]
    c100 = cases.get("test_collector_ingest[100000]", {})
    rows.append(("collector ingest at 100K offered/s", f"{round(c100.get('ingested_per_s', float('nan')))} /s, "
                 f"lost {c100.get('lost', 'n/a')}", ">= 100K/s, 0 lost",
                 "met" if c100 and c100["ingested_per_s"] >= 0.99 * TARGETS["collector_rps"] and c100["lost"] == 0
                 else "**missed**"))
    return rows


def write_report(res: dict, out: Path, pngs: list[str]) -> None:
    L = []
    mach = res["machine"]
    L += ["# bridge performance results", "",
          f"- date: {res['date']}  ",
          f"- command: `{res['command']}` ({res['mode']} mode, {res['wall_s']:.0f} s)  ",
          f"- machine: {mach['nproc']} CPUs, {mach['cpu']}, kernel {mach['kernel']}, Python {mach['python']}  ",
          f"- load at start: `{mach['uptime']}`  ",
          f"- load at end: `{res['uptime_end']}`  ",
          "- shared machine: other developers run tests and compiles, so every comparison below is bridge vs "
          "direct (or metrics on vs off) interleaved in the same run; absolute figures move with the load.",
          "- setup: fake OpenAI backend (`perf/fake_backend.py`, gunicorn gevent, 1 worker) on 127.0.0.1; "
          "bridge started exactly as the Procfile does (`tests/bridgeproc.py`, 2 gevent workers, "
          "default logging: JSON app log with one `bridge.access` line per request, gunicorn's own access log off); "
          "load from `perf/driver.py` (gevent, raw "
          "HTTP/1.1 keep-alive) and wrk 1 thread. Load generator, backend and bridge share the same cores.",
          "", "## Figures vs targets", "", "| figure | measured | target | verdict |", "|---|---|---|---|"]
    L += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in target_rows(res)]

    c1 = res["c1"]
    L += ["", "## 1. Added latency at concurrency 1", "",
          "| kind | bridge p50 | bridge p99 | direct p50 | direct p99 | added p50 | added p99 | n each | errors |",
          "|---|---|---|---|---|---|---|---|---|"]
    for kind in ("nonstream", "stream"):
        f = c1[kind]
        L.append(f"| {kind} | {f['bridge_p50_ms']} | {f['bridge_p99_ms']} | {f['direct_p50_ms']} | "
                 f"{f['direct_p99_ms']} | {f['added_p50_ms']} | {f['added_p99_ms']} | {f['n']['bridge']} | "
                 f"{f['errors']} |")
    s = c1["stream"]
    L += ["", f"ms. Stream = 16 tokens, no delay (`/api/chat` vs the backend's `/v1/chat/completions`). "
          f"TTFT at c=1: bridge p50 {s['bridge_ttft_p50_ms']} / p99 {s['bridge_ttft_p99_ms']} ms, direct p50 "
          f"{s['direct_ttft_p50_ms']} / p99 {s['direct_ttft_p99_ms']} ms. Rounds alternate the order of the two paths."]

    L += ["", "## 2. Throughput frontier (wrk, increasing connections)", ""]
    for kind in ("nonstream", "stream16"):
        f = res["frontier"][kind]
        L += [f"**{kind}**: bridge max {f['bridge_max_rps']} req/s, "
              f"with p99 <= 10 ms: {f['bridge_rps_p99_under_10ms']}, "
              f"<= 50 ms: {f['bridge_rps_p99_under_50ms']}; direct (= the fake backend's own ceiling) max "
              f"{f['direct_max_rps']}, p99 <= 10 ms: {f['direct_rps_p99_under_10ms']}, <= 50 ms: "
              f"{f['direct_rps_p99_under_50ms']}. Errors: bridge {f['bridge_errors']}, direct {f['direct_errors']}.",
              "",
              "| connections | bridge req/s | bridge p50 | bridge p99 | direct req/s | direct p50 | direct p99 |",
              "|---|---|---|---|---|---|---|"]
        for b, d in zip(f["runs"]["bridge"], f["runs"]["direct"]):
            L.append(f"| {b['connections']} | {b['rps']:.0f} | {b['p50_ms']} | {b['p99_ms']} | {d['rps']:.0f} | "
                     f"{d['p50_ms']} | {d['p99_ms']} |")
        L.append("")

    p = res["paced"]
    L += ["## 3. Paced streams (64 tokens, 20 ms apart)", "",
          f"Bridge and direct run at the same time, {res['config']['paced_conc']} streams each. Per-frame transit = "
          "arrival at the client minus the backend's send stamp in the token (same host, CLOCK_MONOTONIC).", "",
          "| path | streams | errors | frames/expected | TTFT p50 | TTFT p99 "
          "| transit p50 | transit p99 | transit mean | gap mean | gap p99 |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("bridge", "direct"):
        f = p[name]
        L.append(f"| {name} | {f['streams']} | {f['errors']} | {f['frames']}/{f['frames_expected']} | "
                 f"{f['ttft_p50_ms']} | {f['ttft_p99_ms']} | {f['transit_p50_ms']} | {f['transit_p99_ms']} | "
                 f"{f['transit_mean_ms']} | "
                 f"{f['gap_mean_ms']} | {f['gap_p99_ms']} |")
    L += ["", f"Added TTFT p50 {p['added_ttft_p50_ms']} ms, p99 {p['added_ttft_p99_ms']} ms; added per-frame delay "
          f"p50 {p['added_frame_p50_ms']} ms, p99 {p['added_frame_p99_ms']} ms, mean {p['added_frame_mean_ms']} ms; "
          f"added inter-chunk gap p99 {p['added_gap_p99_ms']} ms.", ""]

    m = res["many"]
    L += [f"## 4. {m['streams']} concurrent slow streams, WEB_CONCURRENCY=1", "",
          f"10 tokens 500 ms apart (nominal {m['nominal_s']} s each), "
          f"opened over {res['config']['many_ramp_s']} s, one connection each. "
          f"Completed with all frames: {m['complete_frames']}/{m['streams']}; errors {m['errors']}; "
          f"peak simultaneously open {m['peak_open']}; stream duration p50 {m['duration_p50_s']} s, max "
          f"{m['duration_max_s']} s; worker RSS {m['worker_rss_mb']} MB; wall {m['wall_s']} s. "
          f"Open-file limit raised to {res['nofile']}."]
    if m["error_examples"]:
        L.append(f"Error examples: {m['error_examples']}")
    L.append("")

    L += ["## 5. Monitoring cost (METRICS_ENABLED=true vs false)", "",
          "Two bridges (2 workers each) on the same backend; paired wrk runs, order alternated (ABBA).", "",
          "| kind | pairs | median on/off | cost | ratio range | pooled on | pooled off | pooled cost | "
          "worker CPU us/req on | off | CPU cost | errors |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in ("nonstream", "stream16"):
        f = res["monitoring"][kind]
        L.append(f"| {kind} | {len(f['pairs'])} | {f['median_ratio']} | {f['cost_pct']} % | "
                 f"{f['ratio_min']}-{f['ratio_max']} | {f['pooled_on_rps']} | {f['pooled_off_rps']} | "
                 f"{f['pooled_cost_pct']} % | {f['cpu_us_per_req_on']} | {f['cpu_us_per_req_off']} | "
                 f"{f['cpu_cost_pct']} % | {f['errors']} |")
    L += ["", "METRICS_ENABLED=false also drops the bridge's per-request JSON access line (`bridge.access`, written "
          "by the metrics hooks); gunicorn's own access log stays on in both. Worker CPU per request is read with "
          "psutil around each wrk run."]
    L.append("")

    mem = res["memory"]
    L += ["## 6. Memory", "",
          f"{mem['requests']} requests after warm-up (alternating non-stream and 16-token stream chunks; "
          f"capped at {res['config']['mem_cap_s']:.0f} s, reached 100K: {mem['reached_100k']}); "
          f"errors {mem['errors']}.",
          "",
          "| worker | RSS after warm-up MB | RSS at end MB | growth MB |", "|---|---|---|---|"]
    for pid, v in mem["workers"].items():
        L.append(f"| {pid} | {v['warm_mb']} | {v['end_mb']} | {v['growth_mb']} |")
    L += ["", f"Total growth {mem['total_growth_mb']} MB = {mem['growth_mb_per_100k']} MB per 100K requests "
          "(scaled linearly when fewer than 100K were served).", ""]

    col = res["collector"]
    L += ["## 7. Collector micro-benchmarks (`perf/test_collector_bench.py`, pytest-benchmark)", "",
          f"pytest exit code {col['pytest_rc']}. Paced producer, one batch per ms, "
          f"{res['config']['bench_s']} s per case; window 2000 records.", "",
          "| case | offered/s | ingested/s | lost | capacity/s (1/busy time) "
          "| window | ring file records | RSS growth | new objects |",
          "|---|---|---|---|---|---|---|---|---|"]
    for name, c in col["cases"].items():
        if "offered_per_s" not in c:
            L.append(f"| {name} | | | | mean {c['mean_us']} us per call | | | | |")
            continue
        L.append(f"| {name} | {c['offered_per_s']} | {c['ingested_per_s']:.0f} | {c['lost']} | "
                 f"{c['capacity_per_s']:.0f} | {c.get('window_len', '')} | {c.get('ring_file_records', '')} | "
                 f"{c.get('rss_growth_bytes', '')} | "
                 f"{c.get('gc_objects_growth', '')} |")
    if col.get("pytest_tail"):
        L += ["", "```", col["pytest_tail"], "```"]
    a = res["anchors"]
    L += ["", "## 8. Same-run anchors: Flask hello and a bare same-stack proxy (`perf/anchors.py`)", "",
          f"Both on gunicorn gevent with 2 workers, like the bridge. wrk, {a['connections']} connections, "
          f"{a['seconds']} s per run; each round runs all five in a rotated order, ratios are taken within a "
          "round, the figure is the median over rounds. The bare proxy is Flask + one pooled `requests` session: "
          "no metrics, no translation, streams relayed chunk by chunk (`iter_content(None)`).", "",
          "| round | hello | bridge non-stream | proxy non-stream | bridge 16-token streams | proxy 16-token streams "
          "| bridge/hello | proxy/hello | bridge/proxy streams |", "|---|---|---|---|---|---|---|---|---|"]
    for i, g in enumerate(a["rounds"]):
        L.append(f"| {i + 1} | {g['hello']['rps']:.0f} | {g['bridge_nonstream']['rps']:.0f} | "
                 f"{g['proxy_nonstream']['rps']:.0f} | {g['bridge_stream16']['rps']:.0f} | "
                 f"{g['proxy_stream16']['rps']:.0f} | {g['nonstream_vs_hello']:.3f} | "
                 f"{g['proxy_nonstream_vs_hello']:.3f} | {g['stream_vs_proxy']:.3f} |")
    L += ["", "Errors: " + ", ".join(f"{k[:-7]} {v}" for k, v in a.items() if k.endswith("_errors")) + ".", ""]

    L += ["## 9. CPU per streamed token against stream length", "",
          "Worker CPU (user + system, psutil, all workers) over a wrk run of streams of each length; bridge "
          "(`/api/chat`, translated to NDJSON) and the bare proxy (SSE relayed) on the same fake backend.", "",
          "| tokens | bridge streams/s | bridge CPU us/token | bridge CPU us/stream | proxy streams/s | "
          "proxy CPU us/token | proxy CPU us/stream | errors |", "|---|---|---|---|---|---|---|---|"]
    for r in res["token_cost"]["rows"]:
        b, pr = r["bridge"], r["proxy"]
        L.append(f"| {r['tokens']} | {b['streams_per_s']} | {b['cpu_us_per_token']} | {b['cpu_us_per_stream']} | "
                 f"{pr['streams_per_s']} | {pr['cpu_us_per_token']} | {pr['cpu_us_per_stream']} | "
                 f"{b['errors'] + pr['errors']} |")
    L.append("")

    rs = res["readside"]
    L += ["## 10. Read side: `/metrics/summary` and `/metrics` against window, workers and labels (`perf/scaling.py`)",
          "",
          "`Metrics.summary()` (what `/metrics/summary` runs) over `workers` full ring files of `window` records; "
          "`PromMetrics.exposition()` (the body of `/metrics`) over the files of `workers` processes that each "
          "recorded requests under `labels` distinct model labels. One fresh process per case; ms.", "",
          "| window | workers | records merged | summary median ms | max ms | merge only ms |",
          "|---|---|---|---|---|---|"]
    for c in rs["summary"]:
        L.append(f"| {c.get('window')} | {c.get('workers')} | {c.get('records', c.get('error', '')[:60])} | "
                 f"{c.get('median_ms')} | {c.get('max_ms')} | {c.get('merge_ms')} |")
    L += ["", "| workers | model labels | series | body bytes | .db files | exposition median ms | max ms |",
          "|---|---|---|---|---|---|---|"]
    for c in rs["scrape"]:
        L.append(f"| {c.get('workers')} | {c.get('labels')} | {c.get('series')} | {c.get('body_bytes')} | "
                 f"{c.get('files')} | {c.get('median_ms')} | {c.get('max_ms')} |")
    L.append("")

    L += ["## 11. Memory per open stream (1 worker)", "",
          "Streams of 6 tokens 1 s apart held open together on one worker (WORKER_CONNECTIONS and "
          "UPSTREAM_POOL_SIZE raised to fit); RSS sampled every 0.25 s while they are open, against the "
          "worker's RSS just before.", "",
          "| open streams | complete | errors | peak open | idle MB | peak MB | KB per stream |",
          "|---|---|---|---|---|---|---|"]
    for r in res["open_streams"]["rows"]:
        L.append(f"| {r['streams']} | {r['complete']} | {r['errors']} | {r['peak_open']} | {r['idle_mb']} | "
                 f"{r['peak_mb']} | {r['kb_per_stream']} |")
    L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in pngs]
    notes = res.get("notes")
    if notes:
        L += ["", "## Notes", "", notes]
    path = out / "RESULTS.md"
    kept = foreign_sections(path.read_text() if path.exists() else "")
    (out / "RESULTS.md").write_text("\n".join(L) + "\n" + "".join("\n" + k + "\n" for k in kept))


_SECTION = re.compile(r"<!-- ([\w.-]+): start -->.*?<!-- \1: end -->", re.S)


def foreign_sections(text: str) -> list[str]:
    """Sections of RESULTS.md written by other scripts (``<!-- perf.fleet: start -->`` ...
    ``<!-- perf.fleet: end -->``): this script rewrites everything else and keeps these as they are."""
    return [m.group(0) for m in _SECTION.finditer(text) if m.group(1) != "perf.run"]


# -- main ----------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny counts and durations (CI)")
    ap.add_argument("--out", type=Path, default=REPO / "perf")
    ap.add_argument("--notes", type=Path, default=Path(__file__).with_name("NOTES.md"),
                    help="markdown appended to RESULTS.md (default: perf/NOTES.md)")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite RESULTS.md from --out's results.json and the notes (no measurement)")
    args = ap.parse_args(argv)
    if args.report_only:
        res = json.loads((args.out / "results.json").read_text())
        if args.notes and args.notes.exists():
            res["notes"] = args.notes.read_text()
        pngs = [p for p in ("latency_c1.png", "throughput_frontier.png", "streaming_paced.png", "monitoring_cost.png",
                            "memory.png", "token_cost.png", "readside.png", "open_streams.png")
                if (args.out / p).exists()]
        write_report(res, args.out, pngs)
        return 0
    if not driver.wrk_available():
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    cfg = SMOKE if args.smoke else FULL
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bridge-perf-"))
    nofile = raise_nofile(20000)
    t0 = time.monotonic()
    res: dict = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "command": ".venv/bin/python -m perf.run" + (" --smoke" if args.smoke else ""),
                 "mode": "smoke" if args.smoke else "full", "machine": machine(), "nofile": nofile,
                 "config": cfg}
    log(f"start ({res['mode']}), tmp {tmp}")
    procs = []
    try:
        fake = FakeBackendProcess(tmp)
        procs.append(fake)
        fake.wait_ready()
        from tests.bridgeproc import BridgeProcess  # started together, then waited for

        env = {"OPENAI_API_BASE_URL": fake.url}
        main_b = BridgeProcess({**env, "METRICS_ENABLED": "true"}, workers=2, tmp_dir=tmp, log_name="bridge-on")
        off_b = BridgeProcess({**env, "METRICS_ENABLED": "false"}, workers=2, tmp_dir=tmp, log_name="bridge-off")
        one_b = BridgeProcess({**env, "METRICS_ENABLED": "true", "UPSTREAM_POOL_SIZE": str(cfg["many"] + 100)},
                              workers=1, tmp_dir=tmp, log_name="bridge-1w")
        hello = AnchorProcess("hello", tmp, workers=2)
        proxy = AnchorProcess("proxy", tmp, workers=2, backend_url=fake.url)
        procs += [main_b, off_b, one_b, hello, proxy]
        for b in (main_b, off_b, one_b, hello, proxy):
            b.wait_ready()
        bp, fp = main_b.port, fake.port
        res["anchors"] = scenario_anchors(cfg, hello, proxy, bp)
        res["c1"] = scenario_c1(cfg, bp, fp)
        res["frontier"] = scenario_frontier(cfg, bp, fp)
        res["paced"] = scenario_paced(cfg, bp, fp)
        res["many"] = scenario_many(cfg, one_b, fp)
        one_b.stop()
        res["monitoring"] = scenario_monitoring(cfg, main_b, off_b, fp)
        off_b.stop()
        res["token_cost"] = scenario_token_cost(cfg, main_b, proxy, fp)
        hello.stop()
        proxy.stop()
        res["memory"] = scenario_memory(cfg, main_b, fp)
        main_b.stop()
        res["open_streams"] = scenario_open_streams(cfg, tmp)
    finally:
        stop_all(procs)
    res["collector"] = scenario_collector(cfg, tmp)
    res["readside"] = scenario_readside(cfg)
    res["uptime_end"] = machine()["uptime"]
    res["wall_s"] = time.monotonic() - t0
    if args.notes and args.notes.exists():
        res["notes"] = args.notes.read_text()
    pngs = plots(res, out)
    write_report(res, out, pngs)
    slim = json.loads(json.dumps(res, default=str))
    for kind in ("nonstream", "stream"):
        slim["c1"][kind].pop("samples_s", None)
    slim["paced"].pop("samples", None)
    (out / "results.json").write_text(json.dumps(slim, indent=1, default=str))
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"done in {res['wall_s']:.0f} s: {out / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
