"""Health under OTEP 235 sampling and per environment, on real SDK spans.

The same seeded requests (tests/support/two_environment_fleet.py) are stored whole (the truth) and
sampled: tail-sampled with a keep-errors policy (errors ``th:0``, the rest at p = 0.25), or
head-sampled by the SDK's composable trace-id-ratio sampler. Weighted by their adjusted
counts, the sampled spans must give the truth's rates, error ratios and p95 within a
tolerance; the environment filter must split the counts exactly; the surfaces that read the
same entry rows (operations, /metrics' totals, Grafana's overview) must agree with health.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chainmap_otel.analysis.entry_rows import environments
from chainmap_otel.analysis.health import (
    chain_series,
    chain_totals,
    health,
    health_json,
    sampling_note,
)
from chainmap_otel.analysis.operations import chain_operations
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.grafana import dashboards
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.grafana.datasource import QueryContext, panel_sql
from tests.support import two_environment_fleet as sampled_fleet
from tests.support.catalog import chains_catalog, chains_yaml

NS = 1_000_000_000
COUNTS = {"api-gateway": 1500, "trading-engine": 900}
ERROR_RATIO = 0.05
PROBABILITY = 0.25
SEED = 235


@dataclass
class Fleet:
    catalog: ChainCatalog
    window: TimeWindow
    truth: TraceStore
    tail: TraceStore
    head: TraceStore
    failed: dict[str, int]


@pytest.fixture(scope="module")
def fleet(chdb_store: TraceStore, chdb_path: Any) -> Iterator[Fleet]:
    from tests.grafana.conftest import open_database

    catalog = chains_catalog(("B1", "B3"))
    start = time.time_ns() - 12 * 60 * NS
    traffic = sampled_fleet.requests(COUNTS, start, 8 * 60, ERROR_RATIO, SEED)
    spans = sampled_fleet.record(catalog, traffic, SEED)
    stores = [open_database(chdb_path, name) for name in ("truth", "tail", "head")]
    truth, tail, head = stores
    truth.insert_arrow(spans_to_arrow(spans))
    tail.insert_arrow(spans_to_arrow(sampled_fleet.tail_sample(spans, PROBABILITY)))
    sampler = sampled_fleet.head_sampler(PROBABILITY)
    head.insert_arrow(spans_to_arrow(sampled_fleet.record(catalog, traffic, SEED, sampler)))
    failed = {
        "B1": sum(r.failed for r in traffic if r.service == "api-gateway"),
        "B3": sum(r.failed for r in traffic if r.service == "trading-engine"),
    }
    window = TimeWindow(start - 60 * NS, time.time_ns())
    yield Fleet(catalog, window, truth, tail, head, failed)
    for store in stores:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def by_chain(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(e["chain_id"]): e for e in entries}


def test_unsampled_spans_read_exactly_as_stored(fleet: Fleet) -> None:
    got = by_chain(health(fleet.truth, fleet.catalog, fleet.window))
    for chain, service in (("B1", "api-gateway"), ("B3", "trading-engine")):
        assert got[chain]["traces"] == COUNTS[service]
        assert got[chain]["errors"] == fleet.failed[chain]
        assert got[chain]["sampling"] == {
            "sampled": False,
            "stored": COUNTS[service],
            "estimated": COUNTS[service],
            "coverage": 1.0,
        }


@pytest.mark.parametrize("kind", ["tail", "head"])
def test_weighted_numbers_estimate_the_unsampled_truth(fleet: Fleet, kind: str) -> None:
    sampled = fleet.tail if kind == "tail" else fleet.head
    truth = by_chain(health(fleet.truth, fleet.catalog, fleet.window))
    got = by_chain(health(sampled, fleet.catalog, fleet.window))
    for chain in ("B1", "B3"):
        want, est = truth[chain], got[chain]
        sampling = est["sampling"]
        assert sampling["sampled"] is True
        assert sampling["stored"] < want["traces"] * 0.5
        assert sampling["coverage"] == pytest.approx(
            sampling["stored"] / sampling["estimated"], abs=1e-6
        )
        assert est["traces"] == pytest.approx(want["traces"], rel=0.1), chain
        assert est["rate_per_s"] == pytest.approx(want["rate_per_s"], rel=0.1), chain
        assert est["p95_ms"] == pytest.approx(want["p95_ms"], rel=0.1), chain
        if kind == "tail":
            # Every error is kept with th:0 (weight 1): the estimate is the true count.
            assert est["errors"] == want["errors"] == fleet.failed[chain]
            assert est["error_ratio"] == pytest.approx(want["error_ratio"], rel=0.1), chain
            # Stored alone, the kept errors would read as several times the true ratio.
            stored_ratio = fleet.failed[chain] / sampling["stored"]
            assert stored_ratio > 2 * want["error_ratio"]


def test_the_sampled_p95_is_only_right_weighted(fleet: Fleet) -> None:
    """The stored digest of a keep-errors sample is pulled up by the slow failed requests;
    the weighted one is not."""
    truth = by_chain(health(fleet.truth, fleet.catalog, fleet.window))["B1"]["p95_ms"]
    stored = fleet.tail.query(
        "SELECT quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency)[2] / 1e6 "
        "FROM chainmap_chain_minute WHERE ChainId = 'B1'"
    ).result_rows[0][0]
    weighted = by_chain(health(fleet.tail, fleet.catalog, fleet.window))["B1"]["p95_ms"]
    assert abs(weighted - truth) < abs(stored - truth) / 2


@pytest.mark.parametrize("store_name", ["truth", "tail"])
def test_the_environment_filter_splits_the_counts_exactly(fleet: Fleet, store_name: str) -> None:
    store: TraceStore = getattr(fleet, store_name)
    every = by_chain(health(store, fleet.catalog, fleet.window))
    prod = by_chain(health(store, fleet.catalog, fleet.window.within("prod")))
    staging = by_chain(health(store, fleet.catalog, fleet.window.within("staging")))
    assert prod["B1"]["sampling"] == every["B1"]["sampling"]
    assert prod["B1"]["errors"] == every["B1"]["errors"]
    assert staging["B3"]["sampling"] == every["B3"]["sampling"]
    assert prod["B3"]["traces"] == staging["B1"]["traces"] == 0
    assert prod["B3"]["status"] == staging["B1"]["status"] == "no_data"
    assert by_chain(health(store, fleet.catalog, fleet.window.within("dev")))["B1"]["traces"] == 0
    listed = environments(store, fleet.window)
    assert [e["environment"] for e in listed] == ["prod", "staging"]  # most traffic first
    assert [e["stored"] for e in listed] == [
        every["B1"]["sampling"]["stored"],
        every["B3"]["sampling"]["stored"],
    ]
    series = chain_series(store, fleet.catalog, fleet.window.within("staging"))
    assert sum(series["B1"]["errors"]) == 0
    assert sum(series["B3"]["errors"]) == every["B3"]["errors"]


def test_series_operations_metrics_and_grafana_agree_with_health(fleet: Fleet) -> None:
    store, catalog, window = fleet.tail, fleet.catalog, fleet.window
    expected = by_chain(health_json(store, catalog, window)["chains"])
    series = chain_series(store, catalog, window)
    totals = chain_totals(store, catalog)
    for chain in ("B1", "B3"):
        want = expected[chain]
        steps = series[chain]
        calls = sum(r * s for r, s in zip(steps["rate_per_s"], steps["seconds"], strict=True))
        assert calls == pytest.approx(want["sampling"]["estimated"], rel=1e-4)
        assert totals[chain]["calls"] == pytest.approx(want["sampling"]["estimated"])
        assert totals[chain]["sampling"] == want["sampling"]
        entry = chain_operations(store, catalog, window, chain).operations
        server = next(o for o in entry if o.kind == "server")
        assert server.calls == pytest.approx(want["sampling"]["estimated"])
        assert server.to_json()["sampling"] == want["sampling"]
        assert server.rate_per_s == pytest.approx(want["rate_per_s"], abs=1e-6)
    # Operations in another environment than the chain's entry count nothing.
    staging = chain_operations(store, catalog, window.within("staging"), "B1")
    assert staging.operations == []
    sql = dashboards.DASHBOARDS["chains-overview.json"](catalog, store.database)["panels"][0][
        "targets"
    ][0]["rawSql"]
    ctx = QueryContext(from_s=window.start_ns // NS, to_s=window.end_ns // NS)
    # The dashboard's environment variable on All ('').
    result = store.query(panel_sql(sql, {"environment": ""}, ctx))
    rows = {r[0]: dict(zip(result.column_names, r, strict=True)) for r in result.result_rows}
    grafana_window = TimeWindow(ctx.from_s * NS, ctx.to_s * NS)
    for chain, want in by_chain(health_json(store, catalog, grafana_window)["chains"]).items():
        got = rows[chain]
        assert got["traces"] == want["traces"]
        assert got["errors"] == want["errors"]
        assert got["rate_per_s"] == pytest.approx(want["rate_per_s"], abs=1e-6)
        assert got["error_pct"] == pytest.approx(100 * want["error_ratio"], abs=1e-3)
        assert got["p95_ms"] == pytest.approx(want["p95_ms"], abs=1e-3)
        assert got["stored"] == want["sampling"]["stored"]
        assert bool(got["sampled"]) is want["sampling"]["sampled"]
        for label, burn in want["burn_rates"].items():
            assert got[f"burn_{label}"] == pytest.approx(burn, abs=1e-5), (chain, label)


def test_the_chain_list_says_how_much_of_a_sampled_count_is_stored(fleet: Fleet) -> None:
    from chainmap_otel.server.api.chains import chain_list
    from chainmap_otel.server.web.pages import index_body

    sampled = chain_list(fleet.tail, fleet.catalog, fleet.window)
    b1 = next(c for c in sampled["chains"] if c["id"] == "B1")["health"]
    note = sampling_note(b1["sampling"])
    assert note == f"sampled, ~{b1['sampling']['coverage']:.0%} stored"
    assert note in index_body(sampled, None, None)
    whole = chain_list(fleet.truth, fleet.catalog, fleet.window)
    assert "sampled, ~" not in index_body(whole, None, None)
    assert sampling_note(whole["chains"][0]["health"]["sampling"]) == ""


def test_chainmap_health_prints_how_much_of_a_sampled_count_is_stored(
    fleet: Fleet, tmp_path: Path
) -> None:
    import importlib

    from typer.testing import CliRunner

    from chainmap_otel.cli import COMMAND_MODULES, app
    from tests.analysis.test_cli import url

    for module in COMMAND_MODULES:  # what the chainmap script does before running
        importlib.import_module(module)

    chains_file = tmp_path / "chains.yaml"
    chains_file.write_text(chains_yaml(("B1", "B3")), encoding="utf-8")
    b1 = by_chain(health(fleet.tail, fleet.catalog, fleet.window))["B1"]
    args = ["health", "--chains", str(chains_file), "--since", "1h"]
    sampled = CliRunner().invoke(app, [*args, "--store", url(fleet.tail)], terminal_width=200)
    assert sampled.exit_code == 0, sampled.output
    assert f"(sampled, ~{b1['sampling']['coverage']:.0%} stored)" in sampled.output
    whole = CliRunner().invoke(app, [*args, "--store", url(fleet.truth)], terminal_width=200)
    assert whole.exit_code == 0 and "sampled" not in whole.output
