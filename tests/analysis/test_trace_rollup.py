"""The merged-trace rollup: one row per trace of a closed slice, equal to the live merge.

Search results in each of its modes (live, rolled up, split) are compared by
test_traces.py; here: traces whose spans arrive in several insert blocks and straddle a
slice boundary, an interrupted slice, spans stored below the watermark, and the bound of
closed slices.
"""

from __future__ import annotations

from typing import Any

from chainmap_otel.analysis.rollups import traces as trace_rollup
from chainmap_otel.analysis.rollups.protocol import LevelState
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.traces import TraceQuery, search_traces
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import MS, hex_id, insert_spans

S = 10**9
HOUR = 3600 * S


def span(
    trace: str, name: str, parent: str, start_ms: float, duration_ms: float, **extra: Any
) -> dict[str, Any]:
    return {
        "trace": trace,
        "span": name,
        "parent": parent,
        "service": extra.pop("service", "svc"),
        "kind": extra.pop("kind", "Server" if not parent else "Internal"),
        "name": name,
        "start_ms": start_ms,
        "duration_ms": duration_ms,
        **extra,
    }


def merged_rows(store: TraceStore) -> dict[str, tuple[int, int, int]]:
    rows = store.query(
        f"SELECT TraceId, DurationNs, SpanCount, ErrorCount FROM {store.database}."
        "chainmap_trace_merged"
    ).result_rows
    assert len(rows) == len({r[0] for r in rows}), "a trace has more than one merged row"
    return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def search(
    store: TraceStore, catalog: ChainCatalog, window: TimeWindow, **filters: Any
) -> list[dict[str, Any]]:
    return search_traces(store, catalog, window, TraceQuery.parse(**filters)).traces


def test_a_trace_stored_in_several_blocks_across_a_slice_edge_is_one_row(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    # Three hours ago, one minute before an hour boundary (slices are whole hours).
    base = (trace_rollup.closed_until() // HOUR - 2) * HOUR - 60 * S
    # "long": its root first, a child 2 minutes later (in the next slice), a failing span
    # last, each in its own insert block as three exporters would send them.
    insert_spans(store, [span("long", "root", "", 0, 1_000)], base)
    insert_spans(store, [span("long", "late", "root", 120_000, 30_000, service="worker")], base)
    insert_spans(store, [span("long", "last", "late", 140_000, 15_000, status="Error")], base)
    insert_spans(store, [span("short", "root", "", 90_000, 50)], base)
    window = TimeWindow(base - HOUR, base + HOUR)
    live = search(store, catalog, window, order="duration")
    assert trace_rollup.refresh_traces(store) >= base + HOUR
    assert merged_rows(store) == {
        hex_id("long", 32): (155_000 * MS, 3, 1),
        hex_id("short", 32): (50 * MS, 1, 0),
    }
    rolled = search(store, catalog, window, order="duration")
    assert rolled == live
    assert [t["duration_ms"] for t in rolled] == [155_000.0, 50.0]
    assert rolled[0]["services"] == ["svc", "worker"] and rolled[0]["status"] == "error"
    assert search(store, catalog, window, service="worker") == rolled[:1]
    assert search(store, catalog, window, min_duration_ms=100_000) == rolled[:1]


def test_closed_slices_only_and_idempotent(store: TraceStore, catalog: ChainCatalog) -> None:
    recent = trace_rollup.closed_until() + 10 * 60 * S  # inside the slack: not closed yet
    old = recent - 3 * HOUR
    insert_spans(store, [span("recent", "root", "", 0, 20)], recent)
    insert_spans(store, [span("old", "root", "", 0, 30)], old)
    # One closing time for both refreshes, so a slice boundary passing between them
    # cannot move the watermark.
    until = trace_rollup.closed_until()
    watermark = trace_rollup.refresh_traces(store, until_ns=until)
    assert old < watermark <= until < recent
    assert set(merged_rows(store)) == {hex_id("old", 32)}
    assert trace_rollup.refresh_traces(store, until_ns=until) == watermark
    assert set(merged_rows(store)) == {hex_id("old", 32)}
    # Both found, one from each side of the watermark, newest first and slowest first.
    window = TimeWindow(old - HOUR, recent + HOUR)
    newest = [t["trace_id"] for t in search(store, catalog, window)]
    assert newest == [hex_id("recent", 32), hex_id("old", 32)]
    slowest = [t["trace_id"] for t in search(store, catalog, window, order="duration")]
    assert slowest == [hex_id("old", 32), hex_id("recent", 32)]


def test_ties_at_the_limit_are_broken_by_trace_id_on_both_sides(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    base = (trace_rollup.closed_until() // HOUR - 3) * HOUR
    names = [f"tie{index}" for index in range(5)]
    insert_spans(store, [span(n, "root", "", i * 1000, 50) for i, n in enumerate(names)], base)
    window = TimeWindow(base - HOUR, base + HOUR)
    live = {
        order: search(store, catalog, window, order=order, limit=3)
        for order in ("duration", "start")
    }
    trace_rollup.refresh_traces(store)
    assert len(merged_rows(store)) == 5
    for order, expected in live.items():
        assert search(store, catalog, window, order=order, limit=3) == expected
    assert [t["trace_id"] for t in live["duration"]] == sorted(
        (hex_id(n, 32) for n in names), reverse=True
    )[:3]


def test_an_interrupted_slice_is_redone_once(store: TraceStore, catalog: ChainCatalog) -> None:
    base = (trace_rollup.closed_until() // HOUR - 3) * HOUR
    for index in range(3):
        insert_spans(store, [span(f"t{index}", "root", "", index * 3_600_000, 10)], base)
    until = base + 2 * HOUR
    trace_rollup.refresh_traces(store, until_ns=base + HOUR)
    # A crash after the slice's insert, before its watermark: pending is ahead and the
    # slice's rows are already there.
    since, watermark, _ = trace_rollup.read_state(store)
    trace_rollup.LEVEL.write(store, LevelState(since, watermark, until))
    store.command(trace_rollup.insert_sql(store), trace_rollup.slice_params(watermark, until))
    assert len(merged_rows(store)) == 2
    trace_rollup.refresh_traces(store, until_ns=until)
    assert set(merged_rows(store)) == {hex_id("t0", 32), hex_id("t1", 32)}
    assert trace_rollup.read_state(store) == (since, until, until)


def test_spans_stored_below_the_watermark_are_found_after_a_rewind(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    base = (trace_rollup.closed_until() // HOUR - 5) * HOUR
    insert_spans(store, [span("first", "root", "", 0, 10)], base)
    until = trace_rollup.closed_until()
    watermark = trace_rollup.refresh_traces(store, until_ns=until)
    window = TimeWindow(base - 2 * HOUR, base + 2 * HOUR)
    # Traces of an older file ingested now: below the watermark, so not in the rollup.
    insert_spans(store, [span("file", "root", "", -3_600_000, 99)], base)
    assert [t["trace_id"] for t in search(store, catalog, window)] == [hex_id("first", 32)]
    assert trace_rollup.rewind_traces(store, base - HOUR)
    assert not trace_rollup.rewind_traces(store, watermark + HOUR)  # not passed yet
    assert trace_rollup.refresh_traces(store, until_ns=until) == watermark
    found = [t["trace_id"] for t in search(store, catalog, window)]
    assert found == [hex_id("first", 32), hex_id("file", 32)]
    assert set(merged_rows(store)) == {hex_id("first", 32), hex_id("file", 32)}


def test_a_store_without_the_table_searches_live(store: TraceStore, catalog: ChainCatalog) -> None:
    base = trace_rollup.closed_until() - 2 * HOUR
    insert_spans(store, [span("only", "root", "", 0, 10)], base)
    store.command(f"DROP TABLE {store.database}.chainmap_trace_merged")
    assert trace_rollup.refresh_traces(store) == 0
    assert trace_rollup.analysis_watermark(store) is None
    window = TimeWindow(base - HOUR, base + HOUR)
    assert [t["trace_id"] for t in search(store, catalog, window)] == [hex_id("only", 32)]
