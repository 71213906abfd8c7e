"""The JSON summary: pure functions from records (and cumulative counts) to a dict.

No clock, no I/O, no Flask: the caller passes ``now``, the merged window records, the exact
cumulative counts read from the Prometheus counters and, optionally, a system section.

Definitions (one set, used everywhere, so global and per-endpoint figures agree):

* *successful*: outcome ``ok`` (a stream that failed after its 200 header is **not** a success);
* *cancelled*: outcome ``client_disconnect`` (the client left; neither success nor failure);
* *failed*: everything else, i.e. client errors (4xx outcomes) and server errors;
* ``success_rate`` = successful / (successful + failed); 1.0 when nothing finished yet.

Percentiles use linear interpolation between closest ranks (numpy's default method).
Durations are reported in milliseconds (``*_ms``) with microsecond precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from .records import Record

__all__ = [
    "CLIENT_OUTCOMES",
    "SERVER_OUTCOMES",
    "build_summary",
    "filter_records",
    "percentile",
]

CANCELLED = "client_disconnect"
CLIENT_OUTCOMES = frozenset({"bad_request", "unauthorized", "not_found", "not_supported", "http_4xx"})
SERVER_OUTCOMES = frozenset(
    {"upstream_error", "connect_error", "timeout", "http_429", "http_5xx", "protocol_error", "error"}
)
TIMEOUT = "timeout"
RECENT = 20


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) of already sorted values, linear interpolation; None if empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    pos = (n - 1) * min(100.0, max(0.0, q)) / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_values[lo]) + (float(sorted_values[hi]) - float(sorted_values[lo])) * frac


def filter_records(
    records: Iterable[Record], *, now: float, endpoint: str | None = None, window_s: float | None = None
) -> list[Record]:
    """Records whose route contains ``endpoint`` (case-insensitive) and that ended in the last
    ``window_s`` seconds; sorted oldest first."""
    needle = endpoint.lower() if endpoint else None
    since = now - window_s if window_s is not None else None
    out = [
        r for r in records
        if (needle is None or needle in r.route.lower()) and (since is None or r.ts_s >= since)
    ]
    out.sort(key=lambda r: r.ts_s)
    return out


def build_summary(
    records: Iterable[Record],
    *,
    now: float,
    cumulative: dict | None = None,
    endpoint: str | None = None,
    window_s: float | None = None,
    system: dict | None = None,
    version: str | None = None,
) -> dict:
    """The ``/metrics/summary`` body.

    ``cumulative`` is ``{"outcomes": {outcome: n}, "codes": {code: n}, "in_progress": n}`` over
    all workers (from the Prometheus counters); without it the window stands in for it.
    """
    recs = filter_records(records, now=now, endpoint=endpoint, window_s=window_s)

    if cumulative is None:
        outcomes_all: dict[str, int] = {}
        codes_all: dict[str, int] = {}
        for r in recs:
            outcomes_all[r.outcome] = outcomes_all.get(r.outcome, 0) + 1
            codes_all[str(r.status)] = codes_all.get(str(r.status), 0) + 1
        in_progress = 0
    else:
        outcomes_all = dict(cumulative.get("outcomes", {}))
        codes_all = dict(cumulative.get("codes", {}))
        in_progress = int(cumulative.get("in_progress", 0))
    total = sum(outcomes_all.values())
    ok = outcomes_all.get("ok", 0)
    cancelled = outcomes_all.get(CANCELLED, 0)
    failed = total - ok - cancelled
    success_rate = ok / (ok + failed) if ok + failed else 1.0

    body: dict = {
        "total_requests": total,
        "successful_requests": ok,
        "failed_requests": failed,
        "cancelled_requests": cancelled,
        "success_rate": round(success_rate, 6),
        "error_rate": round(1.0 - success_rate, 6),
        "active_requests": in_progress,
        "status_codes": dict(sorted(codes_all.items())),
        "performance": _latency([r.duration_s for r in recs]),
        "window": _window_health(recs),
        "endpoints": _endpoints(recs),
        "models": _models(recs),
        "streaming": {**_streaming(recs), "active": int((cumulative or {}).get("active_streams", 0))},
        "outcomes": _count(r.outcome for r in recs),
        "period": _period(recs, now=now, window_s=window_s),
        "filters": {"endpoint": endpoint, "window_s": window_s},
        # The existing proxy's name for "requests matching the filters" (its users' scripts read it).
        "filtered_requests": len(recs),
        "recent": [_recent(r) for r in recs[-RECENT:][::-1]],
    }
    if cumulative is not None and "backends" in cumulative:
        body["backends"] = {name: _backend_row(raw) for name, raw in cumulative["backends"].items()}
        body["keys"] = {name: _key_row(raw) for name, raw in cumulative.get("keys", {}).items()}
    if version is not None:
        body["version"] = version
    if system is not None:
        body["system"] = system
    return body


# -- sections ---------------------------------------------------------------------------------


def _latency(durations_s: list[float]) -> dict:
    values = sorted(durations_s)
    n = len(values)
    return {
        "count": n,
        "p50_ms": _ms(percentile(values, 50)),
        "p95_ms": _ms(percentile(values, 95)),
        "p99_ms": _ms(percentile(values, 99)),
        "avg_ms": _ms(sum(values) / n) if n else None,
        "min_ms": _ms(values[0]) if n else None,
        "max_ms": _ms(values[-1]) if n else None,
    }


def _is_error(r: Record) -> bool:
    return r.outcome != "ok" and r.outcome != CANCELLED


def _window_health(recs: list[Record]) -> dict:
    n = len(recs)
    client = sum(1 for r in recs if r.outcome in CLIENT_OUTCOMES)
    server = sum(1 for r in recs if r.outcome in SERVER_OUTCOMES)
    cancelled = sum(1 for r in recs if r.outcome == CANCELLED)
    return {
        "requests": n,
        "ok": sum(1 for r in recs if r.outcome == "ok"),
        "client_errors": client,
        "server_errors": server,
        "cancelled": cancelled,
        "server_error_rate": round(server / (n - cancelled), 6) if n - cancelled > 0 else 0.0,
    }


def _endpoints(recs: list[Record]) -> dict:
    groups: dict[str, list[Record]] = {}
    for r in recs:
        groups.setdefault(r.route, []).append(r)
    out = {}
    for route in sorted(groups):
        rs = groups[route]
        durations = sorted(r.duration_s for r in rs)
        errors = sum(1 for r in rs if _is_error(r))
        out[route] = {
            "count": len(rs),
            "errors": errors,
            "error_rate": round(errors / len(rs), 6),
            "cancelled": sum(1 for r in rs if r.outcome == CANCELLED),
            "p50_ms": _ms(percentile(durations, 50)),
            "p95_ms": _ms(percentile(durations, 95)),
            "p99_ms": _ms(percentile(durations, 99)),
            "avg_ms": _ms(sum(durations) / len(durations)),
            "streaming_requests": sum(1 for r in rs if r.stream),
            "methods": _count(r.method for r in rs),
        }
    return out


def _rate(r: Record) -> float | None:
    """Output tokens per second of one request: decode rate for streams, overall otherwise."""
    if r.tpot_s:
        return 1.0 / r.tpot_s
    if r.tokens_out and r.duration_s > 0 and not r.stream:
        return r.tokens_out / r.duration_s
    return None


def _models(recs: list[Record]) -> dict:
    groups: dict[str, list[Record]] = {}
    for r in recs:
        if r.model:
            groups.setdefault(r.model, []).append(r)
    out = {}
    for model in sorted(groups):
        rs = groups[model]
        ttfts = sorted(r.ttft_s for r in rs if r.ttft_s is not None)
        rates = sorted(x for x in (_rate(r) for r in rs) if x is not None)
        out[model] = {
            "requests": len(rs),
            "errors": sum(1 for r in rs if _is_error(r)),
            "streams": sum(1 for r in rs if r.stream),
            "tokens_in": sum(r.tokens_in or 0 for r in rs),
            "tokens_out": sum(r.tokens_out or 0 for r in rs),
            "ttft_p50_ms": _ms(percentile(ttfts, 50)),
            "tokens_per_s": _round(percentile(rates, 50), 3),
        }
    return out


def _streaming(recs: list[Record]) -> dict:
    streams = [r for r in recs if r.stream]
    ttfts = sorted(r.ttft_s for r in streams if r.ttft_s is not None)
    ttfbs = sorted(r.ttfb_s for r in streams if r.ttfb_s is not None)
    rates = sorted(1.0 / r.tpot_s for r in streams if r.tpot_s)
    gaps = [r.max_gap_s for r in streams if r.max_gap_s is not None]
    return {
        "total_streams": len(streams),
        "ttfb_p50_ms": _ms(percentile(ttfbs, 50)),
        "ttft_p50_ms": _ms(percentile(ttfts, 50)),
        "ttft_p95_ms": _ms(percentile(ttfts, 95)),
        "tokens_per_s_p50": _round(percentile(rates, 50), 3),
        "max_gap_ms": _ms(max(gaps)) if gaps else None,
        "total_chunks": sum(r.chunks for r in streams),
        "bytes_out": sum(r.bytes_out for r in streams),
        "outcomes": _count(r.outcome for r in streams),
        "cancelled": sum(1 for r in streams if r.outcome == CANCELLED),
        "timed_out": sum(1 for r in streams if r.outcome == TIMEOUT),
    }


def _period(recs: list[Record], *, now: float, window_s: float | None) -> dict:
    if recs:
        start = recs[0].ts_s - recs[0].duration_s
        end = recs[-1].ts_s
    else:
        start = end = None
    return {
        "start": _iso(start),
        "end": _iso(end),
        "duration_s": round(end - start, 3) if start is not None and end is not None else 0.0,
        "window_records": len(recs),
        "window_s": window_s,
        "now": _iso(now),
    }


def _recent(r: Record) -> dict:
    return {
        "ts": _iso(r.ts_s),
        "route": r.route,
        "method": r.method,
        "model": r.model,
        "status": r.status,
        "duration_ms": _ms(r.duration_s),
        "stream": r.stream,
        "ttft_ms": _ms(r.ttft_s),
        "tokens": {"in": r.tokens_in, "out": r.tokens_out},
        "outcome": r.outcome,
    }


#: bridge_backend_circuit_state values (bridge/routing.py).
CIRCUIT_STATES = {0: "closed", 1: "half_open", 2: "open"}


def _backend_row(raw: dict) -> dict:
    """One backend over all workers, from its raw Prometheus figures (exact counts; TTFT p50
    interpolated inside its histogram bucket, as Prometheus' histogram_quantile does)."""
    outcomes = {k: int(v) for k, v in sorted(raw.get("outcomes", {}).items()) if v}
    requests = sum(outcomes.values())
    return {
        "state": CIRCUIT_STATES.get(int(raw.get("state", 0)), "closed"),
        "requests": requests,
        "errors": requests - outcomes.get("ok", 0),
        "outcomes": outcomes,
        "failovers": int(raw.get("failovers", 0)),
        "in_flight": max(0, int(raw.get("in_flight", 0))),
        "tokens_in": int(raw.get("tokens_input", 0)),
        "tokens_out": int(raw.get("tokens_output", 0)),
        "ttft_p50_ms": _ms(_bucket_quantile(raw.get("ttft_buckets", {}), 0.5)),
    }


def _key_row(raw: dict) -> dict:
    return {"requests": int(raw.get("requests", 0)), "tokens_in": int(raw.get("tokens_input", 0)),
            "tokens_out": int(raw.get("tokens_output", 0))}


def _bucket_quantile(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile of cumulative histogram buckets {upper bound: count}; None without data."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 0.0)
        lower, below = bound, count
    return lower


# -- helpers ----------------------------------------------------------------------------------


def _count(items: Iterable[str]) -> dict:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None
