"""Health over many hours reads chainmap_chain_hour for the whole hours and the minute rows for
the ragged ends and the hours its windows start in: the same counts, errors and weighted
estimates as the minute rows alone, percentiles within the t-digest's tolerance, and every
surface reading one window through the same split agrees exactly.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from chainmap_otel.analysis.entry_rows import entry_rows_sql
from chainmap_otel.analysis.health import chain_series, health
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.grafana import dashboards
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.grafana.conftest import open_database
from tests.grafana.datasource import QueryContext, panel_sql
from tests.support import two_environment_fleet as sampled_fleet
from tests.support.catalog import chains_catalog

NS = 1_000_000_000
SEED = 17
#: Percentiles merged from hour states instead of minute states: the t-digest's tolerance.
QUANTILE_TOLERANCE = 0.05
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")


@dataclass
class Hours:
    catalog: ChainCatalog
    window: TimeWindow
    tail: TraceStore


@pytest.fixture(scope="module")
def hours(chdb_store: TraceStore, chdb_path: Path) -> Iterator[Hours]:
    """Requests of two environments (B1 entering in prod, B3 in staging) over 6 h 40 min starting mid-hour, tail-sampled with a
    keep-errors policy (weights 1 and 4)."""
    catalog = chains_catalog(("B1", "B3"))
    now = time.time_ns()
    start = now - (6 * 3600 + 47 * 60 + 13) * NS
    traffic = sampled_fleet.requests(
        {"api-gateway": 1600, "trading-engine": 900}, start, 6 * 3600 + 40 * 60, 0.05, SEED
    )
    spans = sampled_fleet.record(catalog, traffic, SEED)
    tail = open_database(chdb_path, "hours")
    tail.insert_arrow(spans_to_arrow(sampled_fleet.tail_sample(spans, 0.25)))
    yield Hours(catalog, TimeWindow(start - 60 * NS, now), tail)
    tail.command(f"DROP DATABASE IF EXISTS {tail.database}")
    tail.close()


def minute_rows_only() -> Any:
    """Health and its series as before the hour rows: every row from chainmap_chain_minute."""

    def minutes(*args: Any, **kwargs: Any) -> str:
        return entry_rows_sql(*args, **{**kwargs, "hours": False})

    # The package re-exports the function ``health``: reach the module itself.
    module = importlib.import_module("chainmap_otel.analysis.health")
    return mock.patch.object(module, "entry_rows_sql", minutes)


def by_chain(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(e["chain_id"]): e for e in entries}


def without_percentiles(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in PERCENTILES}


@pytest.mark.parametrize("environment", ["", "prod", "staging"])
@pytest.mark.parametrize("hours_back", [6.8, 4.25, 1.5])
def test_hour_rows_give_the_minute_rows_numbers(
    hours: Hours, environment: str, hours_back: float
) -> None:
    store = hours.tail
    assert store.query("SELECT count() FROM chainmap_chain_hour").result_rows[0][0] > 0
    # Ragged at both ends: neither the start nor the end is on a minute or an hour.
    end = hours.window.end_ns - 7 * 60 * NS - 123_456_789
    window = TimeWindow(end - int(hours_back * 3600 * NS), end, environment)
    got = by_chain(health(store, hours.catalog, window))
    with minute_rows_only():
        want = by_chain(health(store, hours.catalog, window))
    assert got.keys() == want.keys() == {"B1", "B3"}
    # B1 enters in prod, B3 in staging.
    assert all(e["traces"] > 0 and e["sampling"]["sampled"] for e in want.values()) == (
        environment == ""
    )
    assert any(e["traces"] > 0 for e in want.values())
    for chain, expected in want.items():
        assert without_percentiles(got[chain]) == without_percentiles(expected), chain
        for percentile in PERCENTILES:
            assert got[chain][percentile] == pytest.approx(
                expected[percentile], rel=QUANTILE_TOLERANCE
            ), (chain, percentile)


def test_the_series_reads_the_same_counts(hours: Hours) -> None:
    window = hours.window.within("prod")
    got = chain_series(hours.tail, hours.catalog, window)
    with minute_rows_only():
        want = chain_series(hours.tail, hours.catalog, window)
    for chain, expected in want.items():
        assert got[chain]["rate_per_s"] == expected["rate_per_s"], chain
        assert got[chain]["errors"] == expected["errors"], chain
        for p95, wanted in zip(got[chain]["p95_ms"], expected["p95_ms"], strict=True):
            assert (p95 is None) == (wanted is None)
            if wanted is not None:
                assert p95 == pytest.approx(wanted, rel=QUANTILE_TOLERANCE), chain


@pytest.mark.parametrize("environment", ["", "prod"])
def test_grafana_cuts_the_hours_where_health_does(hours: Hours, environment: str) -> None:
    """Over a range of whole and part hours, the overview's percentiles equal health's to the
    last digit: both read the same hour and minute rows."""
    store, catalog = hours.tail, hours.catalog
    sql = dashboards.DASHBOARDS["chains-overview.json"](catalog, store.database)["panels"][0][
        "targets"
    ][0]["rawSql"]
    ctx = QueryContext(
        from_s=hours.window.start_ns // NS + 1234, to_s=hours.window.end_ns // NS - 1111
    )
    result = store.query(panel_sql(sql, {"environment": environment}, ctx))
    rows = {r[0]: dict(zip(result.column_names, r, strict=True)) for r in result.result_rows}
    window = TimeWindow(ctx.from_s * NS, ctx.to_s * NS, environment)
    for chain, want in by_chain(health(store, catalog, window)).items():
        got = rows[chain]
        assert got["traces"] == want["traces"]
        assert got["errors"] == want["errors"]
        for percentile in PERCENTILES:
            assert got[percentile] == pytest.approx(want[percentile], abs=1e-3), percentile
        for label, burn in want["burn_rates"].items():
            assert got[f"burn_{label}"] == pytest.approx(burn, abs=1e-5), (chain, label)
