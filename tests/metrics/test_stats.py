"""bridge.metrics.stats: percentiles of sorted values and of histogram buckets, and the formats."""

from __future__ import annotations

import math

import pytest

from bridge.metrics import summary
from bridge.metrics.stats import bucket_quantile, count, iso, ms, percentile, rounded


def test_percentile_linear_interpolation():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert percentile(values, 50) == pytest.approx(5.5)
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile(values, 99) == pytest.approx(9.91)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 10
    assert percentile([], 50) is None
    assert percentile([4.0], 99) == 4.0


def test_bucket_quantile_interpolates_inside_the_bucket_like_histogram_quantile():
    assert bucket_quantile({}, 0.5) is None
    assert bucket_quantile({0.1: 0, 1.0: 0, math.inf: 0}, 0.5) is None
    assert bucket_quantile({0.1: 0, 1.0: 4, math.inf: 4}, 0.5) == 0.1 + 0.9 * 0.5
    assert bucket_quantile({0.1: 2, 1.0: 2, math.inf: 4}, 0.9) == 1.0  # beyond the last finite bound


def test_the_summary_still_exports_its_old_names():
    assert summary.percentile is percentile
    assert summary._bucket_quantile is bucket_quantile


def test_count_ms_rounded_iso():
    assert count(["b", "a", "b"]) == {"a": 1, "b": 2} and list(count(["b", "a"])) == ["a", "b"]
    assert ms(None) is None and ms(0.0015) == 1.5 and ms(2) == 2000.0
    assert rounded(None, 3) is None and rounded(1.23456, 3) == 1.235
    assert iso(None) is None and iso(1e20) is None
    assert iso(0.0) == "1970-01-01T00:00:00.000+00:00"
