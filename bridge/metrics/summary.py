"""The JSON summary: pure functions from records (and cumulative counts) to a dict.

No clock, no I/O, no Flask: the caller passes ``now``, the merged window records, the exact
cumulative counts read from the Prometheus counters and, optionally, a system section.

Definitions (one set, used everywhere, so global and per-endpoint figures agree):

* *successful*: outcome ``ok`` (a stream that failed after its 200 header is **not** a success);
* *cancelled*: outcome ``client_disconnect`` (the client left; neither success nor failure);
* *failed*: everything else, i.e. client errors (4xx outcomes) and server errors;
* ``success_rate`` = successful / (successful + failed); 1.0 when nothing finished yet.

Percentiles use linear interpolation between closest ranks (numpy's default method).
Durations are reported in milliseconds (``*_ms``) with microsecond precision (see ``stats.py``).
The ``backends`` and ``keys`` sections are shaped in ``summary_backends.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .records import Record
from .stats import bucket_quantile, count, iso, ms, percentile, rounded
from .summary_backends import backend_row, key_row

if TYPE_CHECKING:
    from .scrape import Cumulative

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

#: The old private name, still importable from here.
_bucket_quantile = bucket_quantile


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
    cumulative: Cumulative | None = None,
    endpoint: str | None = None,
    window_s: float | None = None,
    system: dict[str, object] | None = None,
    version: str | None = None,
) -> dict[str, object]:
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

    body: dict[str, object] = {
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
        "outcomes": count(r.outcome for r in recs),
        "period": _period(recs, now=now, window_s=window_s),
        "filters": {"endpoint": endpoint, "window_s": window_s},
        # The existing proxy's name for "requests matching the filters" (its users' scripts read it).
        "filtered_requests": len(recs),
        "recent": [_recent(r) for r in recs[-RECENT:][::-1]],
    }
    if cumulative is not None and "backends" in cumulative:
        body["backends"] = {name: backend_row(raw) for name, raw in cumulative["backends"].items()}
        body["keys"] = {name: key_row(raw) for name, raw in cumulative.get("keys", {}).items()}
    if version is not None:
        body["version"] = version
    if system is not None:
        body["system"] = system
    return body


# -- sections ---------------------------------------------------------------------------------


def _latency(durations_s: list[float]) -> dict[str, float | int | None]:
    values = sorted(durations_s)
    n = len(values)
    return {
        "count": n,
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "p99_ms": ms(percentile(values, 99)),
        "avg_ms": ms(sum(values) / n) if n else None,
        "min_ms": ms(values[0]) if n else None,
        "max_ms": ms(values[-1]) if n else None,
    }


def _is_error(r: Record) -> bool:
    return r.outcome != "ok" and r.outcome != CANCELLED


def _window_health(recs: list[Record]) -> dict[str, float | int]:
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


def _endpoints(recs: list[Record]) -> dict[str, dict[str, object]]:
    groups: dict[str, list[Record]] = {}
    for r in recs:
        groups.setdefault(r.route, []).append(r)
    out: dict[str, dict[str, object]] = {}
    for route in sorted(groups):
        rs = groups[route]
        durations = sorted(r.duration_s for r in rs)
        errors = sum(1 for r in rs if _is_error(r))
        out[route] = {
            "count": len(rs),
            "errors": errors,
            "error_rate": round(errors / len(rs), 6),
            "cancelled": sum(1 for r in rs if r.outcome == CANCELLED),
            "p50_ms": ms(percentile(durations, 50)),
            "p95_ms": ms(percentile(durations, 95)),
            "p99_ms": ms(percentile(durations, 99)),
            "avg_ms": ms(sum(durations) / len(durations)),
            "streaming_requests": sum(1 for r in rs if r.stream),
            "methods": count(r.method for r in rs),
        }
    return out


def _rate(r: Record) -> float | None:
    """Output tokens per second of one request: decode rate for streams, overall otherwise."""
    if r.tpot_s:
        return 1.0 / r.tpot_s
    if r.tokens_out and r.duration_s > 0 and not r.stream:
        return r.tokens_out / r.duration_s
    return None


def _models(recs: list[Record]) -> dict[str, dict[str, object]]:
    groups: dict[str, list[Record]] = {}
    for r in recs:
        if r.model:
            groups.setdefault(r.model, []).append(r)
    out: dict[str, dict[str, object]] = {}
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
            "ttft_p50_ms": ms(percentile(ttfts, 50)),
            "tokens_per_s": rounded(percentile(rates, 50), 3),
        }
    return out


def _streaming(recs: list[Record]) -> dict[str, object]:
    streams = [r for r in recs if r.stream]
    ttfts = sorted(r.ttft_s for r in streams if r.ttft_s is not None)
    ttfbs = sorted(r.ttfb_s for r in streams if r.ttfb_s is not None)
    rates = sorted(1.0 / r.tpot_s for r in streams if r.tpot_s)
    gaps = [r.max_gap_s for r in streams if r.max_gap_s is not None]
    return {
        "total_streams": len(streams),
        "ttfb_p50_ms": ms(percentile(ttfbs, 50)),
        "ttft_p50_ms": ms(percentile(ttfts, 50)),
        "ttft_p95_ms": ms(percentile(ttfts, 95)),
        "tokens_per_s_p50": rounded(percentile(rates, 50), 3),
        "max_gap_ms": ms(max(gaps)) if gaps else None,
        "total_chunks": sum(r.chunks for r in streams),
        "bytes_out": sum(r.bytes_out for r in streams),
        "outcomes": count(r.outcome for r in streams),
        "cancelled": sum(1 for r in streams if r.outcome == CANCELLED),
        "timed_out": sum(1 for r in streams if r.outcome == TIMEOUT),
    }


def _period(recs: list[Record], *, now: float, window_s: float | None) -> dict[str, object]:
    start: float | None
    end: float | None
    if recs:
        start = recs[0].ts_s - recs[0].duration_s
        end = recs[-1].ts_s
    else:
        start = end = None
    return {
        "start": iso(start),
        "end": iso(end),
        "duration_s": round(end - start, 3) if start is not None and end is not None else 0.0,
        "window_records": len(recs),
        "window_s": window_s,
        "now": iso(now),
    }


def _recent(r: Record) -> dict[str, object]:
    return {
        "ts": iso(r.ts_s),
        "route": r.route,
        "method": r.method,
        "model": r.model,
        "status": r.status,
        "duration_ms": ms(r.duration_s),
        "stream": r.stream,
        "ttft_ms": ms(r.ttft_s),
        "tokens": {"in": r.tokens_in, "out": r.tokens_out},
        "outcome": r.outcome,
    }
