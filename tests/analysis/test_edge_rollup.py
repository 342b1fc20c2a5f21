"""The edge rollup against live pairing, on the real engine: same edges, counts and chains."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from chainmap_otel.analysis import rollup
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import TimeWindow, parse_window
from chainmap_otel.analysis.topology import edge_rows, split_window, topology
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from tests.analysis.conftest import CATALOG_YAML, insert_spans, load_fixture
from tests.analysis.test_topology import CASES
from tests.analysis.test_topology import edge_rows as json_edges

MINUTE = 60 * 1_000_000_000


def wanted(catalog: ChainCatalog) -> list[str]:
    return [*catalog.ids, ""]


def comparable(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows without the latency states' rounding: chain, edge, types, calls, errors, seen."""
    return sorted((*row[:7], row[8], row[9]) for row in rows)


def rolled_window(now_ns: int) -> TimeWindow:
    """Whole minutes around the fixtures, all of them before the rollup's watermark."""
    return TimeWindow(
        rollup.floor_minute(now_ns) - 5 * MINUTE,
        rollup.floor_minute(time.time_ns() - rollup.LAG_SECONDS * 1_000_000_000),
    )


@pytest.mark.parametrize("case", CASES)
def test_rollup_equals_live_pairing(
    case: str,
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    catalog: ChainCatalog,
    now_ns: int,
) -> None:
    load(case)
    window = rolled_window(now_ns)
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    report = rollup.refresh_edges(store, catalog)
    assert report.slices >= 1 and report.state.covers
    # The fixture's minutes come from the rollup; the live head before them holds no spans.
    assert split_window(window, report.state)[0] == (rollup.floor_minute(now_ns), window.end_ns)
    rolled = edge_rows(store, catalog, window, wanted(catalog), report.state)
    assert comparable(rolled) == comparable(live)
    for got, expected in zip(sorted(rolled), sorted(live), strict=True):
        assert list(got[7]) == pytest.approx(list(expected[7]))
    all_traffic = sorted([r[1], r[2], r[3], r[5], r[6]] for r in rolled if r[0] == "")
    assert all_traffic == sorted(load_fixture(case)["expected_edges"])


def test_watermark_advances_and_refresh_is_idempotent(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    load("nested_chains")
    first = rollup.refresh_edges(store, catalog, until_ns=now_ns - MINUTE)
    assert first.slices == 0 and not first.state.covers  # nothing started before that
    lines: list[str] = []
    second = rollup.refresh_edges(
        store, catalog, until_ns=now_ns + 3 * MINUTE, progress=lines.append
    )
    assert second.state.since_ns == rollup.floor_minute(now_ns)
    assert second.state.watermark_ns == rollup.floor_minute(now_ns + 3 * MINUTE)
    assert any("edge rollup" in line for line in lines)
    assert rollup.read_state(store, catalog) == second.state
    calls = f"SELECT sum(Calls) FROM {store.database}.chainmap_edge_minute"
    total = store.query(calls).result_rows[0][0]
    assert total == len(load_fixture("nested_chains")["expected_edges"])
    again = rollup.refresh_edges(store, catalog, until_ns=now_ns + 3 * MINUTE)
    assert again.slices == 0 and store.query(calls).result_rows[0][0] == total
    later = rollup.refresh_edges(store, catalog)
    assert later.state.watermark_ns > second.state.watermark_ns
    assert store.query(calls).result_rows[0][0] == total


def test_interrupted_slice_is_redone_once(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    load("nested_chains")
    window = rolled_window(now_ns)
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    # Failure injection: a slice inserted but its watermark never written (a crash between).
    fingerprint = rollup.catalog_fingerprint(catalog)
    start, end = rollup.floor_minute(now_ns), rollup.floor_minute(now_ns) + 2 * MINUTE
    rollup._write_state(store, fingerprint, start, start, end)
    sql, params = rollup.trace_edges_sql(store, catalog)
    insert = load_sql("edge_rollup", store.database, trace_edges=sql)
    store.command(insert, {**params, **rollup.range_params((start, end)), "catalog": fingerprint})
    report = rollup.refresh_edges(store, catalog)
    assert report.recovered
    rolled = edge_rows(store, catalog, window, wanted(catalog), report.state)
    assert comparable(rolled) == comparable(live)


def test_late_client_span_within_the_lag_still_pairs(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    base = time.time_ns() - 90 * 1_000_000_000  # inside the lag: not rolled up yet
    spans = load_fixture("client_server_pair")["spans"]
    client = [s for s in spans if s["kind"] == "Client"]
    insert_spans(store, [s for s in spans if s["kind"] != "Client"], base)
    assert rollup.refresh_edges(store, catalog).slices == 0
    insert_spans(store, client, base)  # the client span ends last, so it arrives last
    later = base + 3 * MINUTE
    state = rollup.refresh_edges(store, catalog, until_ns=later).state
    window = TimeWindow(rollup.floor_minute(base), rollup.floor_minute(later))
    assert split_window(window, state)[0] == (window.start_ns, window.end_ns)
    rows = edge_rows(store, catalog, window, [""], state)
    assert sorted([r[1], r[2], r[3], r[5], r[6]] for r in rows) == sorted(
        load_fixture("client_server_pair")["expected_edges"]
    )


def test_topology_joins_rollup_minutes_and_the_live_tail(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("client_server_pair")  # ten minutes ago: rolled up by topology() itself
    recent = [{**span, "trace": "recent"} for span in load_fixture("database_client")["spans"]]
    insert_spans(store, recent, time.time_ns() - 30 * 10**9)
    window = parse_window()
    topo = topology(store, catalog, window)
    state = rollup.read_state(store, catalog)
    assert state.covers and window.end_ns > state.watermark_ns
    expected = load_fixture("client_server_pair")["expected_edges"]
    expected += load_fixture("database_client")["expected_edges"]
    merged: dict[tuple[str, str, str], list[int]] = {}
    for source, target, ctype, calls, errors in expected:
        counts = merged.setdefault((source, target, ctype), [0, 0])
        counts[0] += calls
        counts[1] += errors
    assert json_edges(topo.to_json()) == sorted([*k, *v] for k, v in merged.items())
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    assert comparable(edge_rows(store, catalog, window, wanted(catalog), state)) == comparable(live)


def test_schema_apply_backfills_the_rollup_and_old_schema_reads_live(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    for table in ("chainmap_edge_minute", "chainmap_rollup_state"):
        store.command(f"DROP TABLE {store.database}.{table}")
    store.command(
        f"ALTER TABLE {store.database}.chainmap_schema_version DELETE WHERE version = 3 "
        "SETTINGS mutations_sync = 2"
    )
    fixture = load_fixture("nested_chains")
    insert_spans(store, fixture["spans"], now_ns)
    before = topology(store, catalog, parse_window(), "B3")  # schema 2: paired live
    assert json_edges(before.to_json()) == sorted(fixture["expected_edges"])
    lines: list[str] = []
    report = rollup.apply_schema_with_rollup(store, catalog, progress=lines.append)
    assert report.applied_versions == [3]
    assert any("edge rollup: pairing traces" in line for line in lines)
    state = rollup.read_state(store, catalog)
    assert state.covers and state.since_ns == rollup.floor_minute(now_ns)
    after = topology(store, catalog, parse_window(), "B3")
    assert json_edges(after.to_json()) == json_edges(before.to_json())


def test_another_catalog_has_its_own_rollup(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("nested_chains_untagged")
    b3 = topology(store, catalog, parse_window(), "B3").edge_set()
    assert b3
    other = parse_catalog(CATALOG_YAML.replace("/orders*", "/orders"), source="other.yaml")
    assert rollup.catalog_fingerprint(other) != rollup.catalog_fingerprint(catalog)
    assert topology(store, other, parse_window(), "B3").edge_set() == b3
    rollup.invalidate_edges(store, catalog)
    assert not rollup.read_state(store, catalog).covers
    assert rollup.read_state(store, other).covers
