"""Percentiles estimated from the distro's duration buckets, as histogram_quantile does."""

from __future__ import annotations

import math

from chainmap_otel.analysis.entry_counts import (
    CountedWindows,
    EntryCount,
    estimate_quantile,
    scope_counts,
)


def test_the_rank_is_interpolated_inside_its_bucket() -> None:
    buckets = {10.0: 50, 20.0: 40, 50.0: 10, math.inf: 0}
    assert estimate_quantile(0.5, buckets) == 10.0  # exactly the first bucket's 50
    assert estimate_quantile(0.7, buckets) == 15.0  # 20 of the next 40, 10..20 ms
    assert estimate_quantile(0.95, buckets) == 35.0


def test_the_overflow_bucket_gives_the_highest_finite_bound() -> None:
    assert estimate_quantile(0.95, {100.0: 1, math.inf: 9}) == 100.0


def test_an_empty_histogram_has_no_percentiles() -> None:
    assert estimate_quantile(0.5, {}) is None
    assert estimate_quantile(0.5, {5.0: 0}) is None


def test_coverage_and_error_ratio_need_counted_entries() -> None:
    none = EntryCount("B1", 0, 0, None, None, None, stored=3)
    assert none.coverage is None and none.error_ratio is None
    some = EntryCount("B1", 200, 10, 5.0, 9.0, 6.0, stored=20)
    assert some.to_json() == {
        "chain_id": "B1",
        "entries": 200,
        "errors": 10,
        "error_ratio": 0.05,
        "p50_ms": 5.0,
        "p95_ms": 9.0,
        "mean_ms": 6.0,
        "stored_entries": 20,
        "coverage": 0.1,
    }


def _windows(entries: int, covered: tuple[bool, ...], counting: bool = True) -> CountedWindows:
    return CountedWindows(
        "B1",
        (entries,) * len(covered),
        (entries // 10,) * len(covered),
        covered,
        {10.0: entries},
        entries,
        5.0 * entries,
        counting,
    )


def test_every_environment_merged_is_covered_only_where_each_one_is() -> None:
    by_environment = {
        "prod": {"B1": _windows(100, (True, True, True))},
        # Staging's traces in the last two windows, and no counts of its own.
        "staging": {"B1": _windows(0, (True, False, False), counting=False)},
    }
    merged = scope_counts(by_environment, "")["B1"]
    assert merged.entries == (100, 100, 100) and merged.errors == (10, 10, 10)
    assert merged.covered == (True, False, False)
    assert merged.histogram == {10.0: 100}
    assert scope_counts(by_environment, "prod")["B1"] is by_environment["prod"]["B1"]
    # An environment that counted nothing has no counts of its own.
    assert scope_counts(by_environment, "staging") == {}
    assert scope_counts(by_environment, "dev") == {}
