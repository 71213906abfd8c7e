"""Pure figures for the JSON summary: percentiles (of sorted values, of histogram buckets), counts,
and the rounding and time formats every section shares.

Percentiles use linear interpolation between closest ranks (numpy's default method); bucket
quantiles interpolate inside the bucket, as Prometheus' ``histogram_quantile`` does. Durations are
reported in milliseconds with microsecond precision; timestamps as ISO 8601 UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

__all__ = ["bucket_quantile", "count", "iso", "ms", "percentile", "rounded"]


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


def bucket_quantile(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile of cumulative histogram buckets {upper bound: count}; None without data."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        n = buckets[bound]
        if n >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / (n - below) if n > below else 0.0)
        lower, below = bound, n
    return lower


def count(items: Iterable[str]) -> dict[str, int]:
    """How often each item occurs, sorted by item."""
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, microsecond precision."""
    return None if seconds is None else round(seconds * 1000.0, 3)


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def iso(ts: float | None) -> str | None:
    """An epoch timestamp as ISO 8601 UTC, milliseconds; None if absent or out of range."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None
