"""The edge rollup against live pairing, on the real engine: same edges, counts and chains."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups import entries, protocol, refresh
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import TimeWindow, parse_window
from chainmap_otel.analysis.topology import edge_rows, split_hours, split_window, topology
from chainmap_otel.storage.schema import schema_versions
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from tests.analysis.conftest import CATALOG_YAML, insert_spans, load_fixture, span_row
from tests.analysis.test_topology import CASES
from tests.analysis.test_topology import edge_rows as json_edges

MINUTE = 60 * 1_000_000_000
HOUR = 60 * MINUTE


def versions_from(first: int) -> list[int]:
    """The shipped schema versions from ``first`` on (numbers another branch holds may be absent)."""
    return [v.version for v in schema_versions("otel") if v.version >= first]


def wanted(catalog: ChainCatalog) -> list[str]:
    return [*catalog.ids, ""]


def comparable(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows without the latency states' rounding: chain, edge, types, calls, errors, seen,
    and the latency histograms (buckets and sums) exactly."""
    return sorted(
        (
            *row[:7],
            row[8],
            row[9],
            *(sorted(v.items()) if isinstance(v, dict) else v for v in row[10:]),
        )
        for row in rows
    )


def rolled_window(now_ns: int) -> TimeWindow:
    """Whole minutes around the fixtures, all of them before the rollup's watermark."""
    return TimeWindow(
        protocol.floor_minute(now_ns) - 5 * MINUTE,
        protocol.floor_minute(time.time_ns() - protocol.LAG_SECONDS * 1_000_000_000),
    )


def rewind_schema(store: TraceStore, version: int) -> None:
    """Make ``store`` look applied up to ``version - 1``: its later versions' rows removed, and
    the objects of schema 17 (the hour level of the chain entry rows, fed by a view on the
    minute table) dropped, which no older store has: re-applying an older version's backfill
    into the minute table would otherwise push into that view."""
    for table in ("chainmap_chain_hour_mv", "chainmap_chain_hour"):
        store.command(f"DROP TABLE IF EXISTS {store.database}.{table}")
    store.command(
        f"ALTER TABLE {store.database}.chainmap_schema_version DELETE WHERE version >= {version} "
        "SETTINGS mutations_sync = 2"
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
    report = edge_rollup.refresh_edges(store, catalog)
    assert report.slices >= 1 and report.state.covers
    # The fixture's minutes come from the rollup (from the minute of its first span, which
    # may start before ``now_ns``); the live head before them holds no spans.
    since = report.state.since_ns
    assert since in (protocol.floor_minute(now_ns), protocol.floor_minute(now_ns) - MINUTE)
    assert split_window(window, report.state)[0] == (since, window.end_ns)
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
    first = edge_rollup.refresh_edges(store, catalog, until_ns=now_ns - MINUTE)
    assert first.slices == 0 and not first.state.covers  # nothing started before that
    lines: list[str] = []
    second = edge_rollup.refresh_edges(
        store, catalog, until_ns=now_ns + 3 * MINUTE, progress=lines.append
    )
    assert second.state.since_ns == protocol.floor_minute(now_ns)
    assert second.state.watermark_ns == protocol.floor_minute(now_ns + 3 * MINUTE)
    assert any("edge rollup" in line for line in lines)
    assert edge_rollup.read_state(store, catalog) == second.state
    # Entry edges of nested chains also get a row per chain as 'caller:' edges.
    calls = (
        f"SELECT sum(Calls) FROM {store.database}.chainmap_edge_minute "
        "WHERE NOT startsWith(Source, 'caller:')"
    )
    total = store.query(calls).result_rows[0][0]
    assert total == len(load_fixture("nested_chains")["expected_edges"])
    again = edge_rollup.refresh_edges(store, catalog, until_ns=now_ns + 3 * MINUTE)
    assert again.slices == 0 and store.query(calls).result_rows[0][0] == total
    later = edge_rollup.refresh_edges(store, catalog)
    assert later.state.watermark_ns > second.state.watermark_ns
    assert store.query(calls).result_rows[0][0] == total


def test_interrupted_slice_is_redone_once(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    load("nested_chains")
    window = rolled_window(now_ns)
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    # Failure injection: a slice inserted but its watermark never written (a crash between).
    fingerprint = edge_rollup.catalog_fingerprint(catalog)
    start, end = protocol.floor_minute(now_ns), protocol.floor_minute(now_ns) + 2 * MINUTE
    edge_rollup.MINUTES.write(store, protocol.LevelState(start, start, end), fingerprint)
    insert, params = edge_rollup.slice_sql(store, catalog)
    store.command(
        insert, {**params, **edge_rollup.range_params((start, end)), "catalog": fingerprint}
    )
    report = edge_rollup.refresh_edges(store, catalog)
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
    assert edge_rollup.refresh_edges(store, catalog).slices == 0
    insert_spans(store, client, base)  # the client span ends last, so it arrives last
    later = base + 3 * MINUTE
    state = edge_rollup.refresh_edges(store, catalog, until_ns=later).state
    window = TimeWindow(protocol.floor_minute(base), protocol.floor_minute(later))
    assert split_window(window, state)[0] == (window.start_ns, window.end_ns)
    rows = edge_rows(store, catalog, window, [""], state)
    assert sorted([r[1], r[2], r[3], r[5], r[6]] for r in rows) == sorted(
        load_fixture("client_server_pair")["expected_edges"]
    )


def test_topology_joins_rollup_minutes_and_the_live_tail(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("client_server_pair")  # ten minutes ago: rolled up, as chainmap serve would
    recent = [{**span, "trace": "recent"} for span in load_fixture("database_client")["spans"]]
    insert_spans(store, recent, time.time_ns() - 30 * 10**9)
    edge_rollup.refresh_edges(store, catalog)
    window = parse_window()
    topo = topology(store, catalog, window)
    state = edge_rollup.read_state(store, catalog)
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


def test_topology_reads_never_write_the_rollup(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    """A read leaves the rollup as it found it and pairs what it does not cover live."""
    load("client_server_pair")  # ten minutes ago: due for the rollup, not yet rolled up
    before = edge_rollup.read_state(store, catalog)
    topo = topology(store, catalog, parse_window())
    assert edge_rollup.read_state(store, catalog) == before and not before.covers
    rows = store.query(f"SELECT count() FROM {store.database}.chainmap_edge_minute").result_rows
    assert rows == [(0,)]
    expected = load_fixture("client_server_pair")["expected_edges"]
    assert json_edges(topo.to_json()) == sorted(expected)


def test_schema_apply_backfills_the_rollup_and_old_schema_reads_live(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    for table in ("chainmap_edge_minute", "chainmap_edge_hour", "chainmap_rollup_state"):
        store.command(f"DROP TABLE {store.database}.{table}")
    rewind_schema(store, 3)
    fixture = load_fixture("nested_chains")
    insert_spans(store, fixture["spans"], now_ns)
    before = topology(store, catalog, parse_window(), "B3")  # schema 2: paired live
    assert json_edges(before.to_json()) == sorted(fixture["expected_chain_edges"]["B3"])
    lines: list[str] = []
    report = refresh.apply_schema_with_rollup(store, catalog, progress=lines.append)
    assert report.applied_versions == versions_from(3)
    assert any("edge rollup: pairing traces" in line for line in lines)
    state = edge_rollup.read_state(store, catalog)
    assert state.covers and state.since_ns == protocol.floor_minute(now_ns)
    after = topology(store, catalog, parse_window(), "B3")
    assert json_edges(after.to_json()) == json_edges(before.to_json())


def test_another_catalog_has_its_own_rollup(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("nested_chains_untagged")
    edge_rollup.refresh_edges(store, catalog)
    b3 = topology(store, catalog, parse_window(), "B3").edge_set()
    assert b3
    other = parse_catalog(CATALOG_YAML.replace("/orders*", "/orders"), source="other.yaml")
    assert edge_rollup.catalog_fingerprint(other) != edge_rollup.catalog_fingerprint(catalog)
    edge_rollup.refresh_edges(store, other)
    assert topology(store, other, parse_window(), "B3").edge_set() == b3
    edge_rollup.invalidate_edges(store, catalog)
    assert not edge_rollup.read_state(store, catalog).covers
    assert edge_rollup.read_state(store, other).covers


# The hour level. Copies of every fixture are spread over the last hours (each copy's traces
# renamed): before the window, in the part-hour at its start, in two whole hours, in the
# part-hour at its end and in the live tail after the watermark. Every time derives from one
# pinned "now" (nothing here reads the wall clock: the rollup gets its ``until``), so a test
# reads the same at any minute of the hour; the offsets put it where it once failed.

DAY = 24 * HOUR
#: Offsets of the pinned "now" into its hour: on the hour, in the first minutes (the rolled
#: hour ``h`` is then the previous one and the live tail crosses the hour) and at the end.
NOW_OFFSETS = {"0s": 0, "2m": 2 * MINUTE, "59m50s": 59 * MINUTE + 50 * 10**9}


def pinned_now(offset_ns: int = 2 * MINUTE) -> int:
    """A "now" ``offset_ns`` after yesterday's midnight (UTC): in the past, aligned, and its
    first minutes cross both an hour and a day (a partition of ``otel_traces``)."""
    return time.time_ns() // DAY * DAY - DAY + offset_ns


def hour_zero(now: int) -> int:
    """The start of the hour the window ends in (at least 3 minutes of it rolled up)."""
    return protocol.floor_hour(now - 5 * MINUTE)


def closed(h: int) -> int:
    """The rollup's ``until`` for :func:`hour_zero` ``h``: 3 minutes into hour ``h``, whatever
    the clock reads when the refresh runs (a default ``now - LAG`` closes one more hour in the
    first minutes of an hour)."""
    return h + 3 * MINUTE


def spread(store: TraceStore, h: int, now: int) -> None:
    """Copies of every fixture at fixed offsets from ``h`` and one 30 s before ``now``.

    Each (copy, fixture) is its own trace: the fixtures all name their trace ``t1`` and
    reuse span names, so one trace per copy would hold several spans with the same id, and
    which of two same-id clients a server pairs with is then up to the engine's order of
    reading, which differs between live pairing and the rollup's slices.
    """
    bases = [
        h - 3 * HOUR + 10 * MINUTE,
        h - 3 * HOUR + 40 * MINUTE,
        h - 2 * HOUR + 15 * MINUTE,
        h - HOUR + 59 * MINUTE + 30 * 10**9,  # its spans reach into the next hour
        h + MINUTE,
        now - 30 * 10**9,
    ]
    # One insert: each insert pays the views' fixed cost (~60 ms), whatever it holds.
    store.insert_spans(
        rows=[row for copy, base in enumerate(bases) for row in fixture_rows(str(copy), base)]
    )


def per_hour(store: TraceStore, table: str, start: int, end: int) -> list[tuple[Any, ...]]:
    """Rows of ``table`` merged per hour and key, between ``start`` and ``end`` (ns)."""
    column = "Hour" if table == edge_rollup.HOUR_TABLE else "Minute"
    rows = store.query(
        f"""SELECT toDateTime(intDiv(toUnixTimestamp({column}), 3600) * 3600) AS h, Source, Target,
                   ConnectionType, TargetType, ChainIds, sum(Calls), sum(Errors),
                   quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency), min(FirstSeen), max(LastSeen),
                   sumMap(ClientBuckets), sum(ClientSum), sumMap(ServerBuckets), sum(ServerSum)
            FROM {store.database}.{table}
            WHERE {column} >= toDateTime({{start:Int64}}) AND {column} < toDateTime({{end:Int64}})
            GROUP BY h, Source, Target, ConnectionType, TargetType, ChainIds
            ORDER BY h, Source, Target, ConnectionType, TargetType, ChainIds""",
        {"start": start // 10**9, "end": end // 10**9},
    ).result_rows
    return [tuple(row) for row in rows]


def assert_hours_sum_minutes(store: TraceStore, state: edge_rollup.RollupState) -> None:
    hours = per_hour(store, edge_rollup.HOUR_TABLE, 0, 2**32 * 10**9)
    minutes = per_hour(
        store, edge_rollup.EDGE_TABLE, state.hours.since_ns, state.hours.watermark_ns
    )
    assert hours and [(*r[:8], *r[9:]) for r in hours] == [(*r[:8], *r[9:]) for r in minutes]
    for got, expected in zip(hours, minutes, strict=True):
        assert list(got[8]) == pytest.approx(list(expected[8]))


def assert_same_edges(got: list[tuple[Any, ...]], live: list[tuple[Any, ...]]) -> None:
    assert got and comparable(got) == comparable(live)
    for row, expected in zip(sorted(got), sorted(live), strict=True):
        assert list(row[7]) == pytest.approx(list(expected[7]))


@pytest.mark.parametrize("offset", NOW_OFFSETS.values(), ids=NOW_OFFSETS.keys())
def test_hours_and_minutes_and_live_tail_equal_live_pairing(
    store: TraceStore, catalog: ChainCatalog, offset: int
) -> None:
    now = pinned_now(offset)
    h = hour_zero(now)
    spread(store, h, now)
    window = TimeWindow(h - 3 * HOUR + 30 * MINUTE, now + MINUTE)
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    report = edge_rollup.refresh_edges(store, catalog, closed(h))
    state = report.state
    assert state == edge_rollup.read_state(store, catalog)
    # Hours wholly inside the minute level only: not the part-hour of the first span.
    assert (state.hours.since_ns, state.hours.watermark_ns) == (h - 2 * HOUR, h)
    assert report.hour_slices >= 1
    assert_hours_sum_minutes(store, state)
    minutes, head, tail = split_window(window, state)
    assert head == (window.start_ns, window.start_ns) and tail[0] < tail[1]  # live tail
    assert split_hours(minutes, state) == (
        (h - 2 * HOUR, h),
        (window.start_ns, h - 2 * HOUR),
        (h, state.watermark_ns),
    )
    assert_same_edges(edge_rows(store, catalog, window, wanted(catalog), state), live)
    # Part-hours at both ends, nothing live: from mid-hour to mid-hour.
    inner = TimeWindow(h - 2 * HOUR - 20 * MINUTE, h + 2 * MINUTE)
    assert split_hours(split_window(inner, state)[0], state)[0] == (h - 2 * HOUR, h)
    inner_live = edge_rows(store, catalog, inner, wanted(catalog), None)
    assert_same_edges(edge_rows(store, catalog, inner, wanted(catalog), state), inner_live)
    # A window inside one hour reads minutes only.
    short = TimeWindow(h - 2 * HOUR + 10 * MINUTE, h - 2 * HOUR + 20 * MINUTE)
    assert split_hours(split_window(short, state)[0], state)[0] == (0, 0)
    short_live = edge_rows(store, catalog, short, wanted(catalog), None)
    assert_same_edges(edge_rows(store, catalog, short, wanted(catalog), state), short_live)
    edge_rollup.invalidate_edges(store, catalog)
    assert edge_rollup.read_state(store, catalog) == edge_rollup.RollupState(state.catalog)
    assert not per_hour(store, edge_rollup.HOUR_TABLE, 0, 2**32 * 10**9)


def test_hour_level_advances_idempotently(store: TraceStore, catalog: ChainCatalog) -> None:
    now = pinned_now()
    h = hour_zero(now)
    spread(store, h, now)
    first = edge_rollup.refresh_edges(store, catalog, until_ns=h - HOUR + 30 * MINUTE).state
    assert (first.hours.since_ns, first.hours.watermark_ns) == (h - 2 * HOUR, h - HOUR)
    assert_hours_sum_minutes(store, first)
    second = edge_rollup.refresh_edges(store, catalog, closed(h)).state
    assert (second.hours.since_ns, second.hours.watermark_ns) == (h - 2 * HOUR, h)
    assert_hours_sum_minutes(store, second)
    again = edge_rollup.refresh_edges(store, catalog, closed(h))
    assert again.slices == again.hour_slices == 0 and again.state == second
    assert_hours_sum_minutes(store, again.state)


def test_interrupted_hour_slice_is_redone_once(store: TraceStore, catalog: ChainCatalog) -> None:
    now = pinned_now()
    h = hour_zero(now)
    spread(store, h, now)
    window = TimeWindow(h - 3 * HOUR + 30 * MINUTE, now + MINUTE)
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    first = edge_rollup.refresh_edges(store, catalog, until_ns=h - HOUR + 30 * MINUTE).state
    # Failure injection: the hour slice [h - 1h, h) inserted (from half of its minutes) but
    # its watermark never written.
    edge_rollup.HOURS.write(
        store, protocol.LevelState(first.hours.since_ns, h - HOUR, h), first.catalog
    )
    insert = load_sql("edge_hour", store.database)
    store.command(
        insert, {"catalog": first.catalog, "start": (h - HOUR) // 10**9, "end": h // 10**9}
    )
    report = edge_rollup.refresh_edges(store, catalog, closed(h))
    assert report.recovered and report.state.hours.watermark_ns == h
    assert_hours_sum_minutes(store, report.state)
    assert_same_edges(edge_rows(store, catalog, window, wanted(catalog), report.state), live)


def fixture_rows(suffix: str, base: int) -> list[tuple[Any, ...]]:
    """The span rows of a copy of every fixture, each its own trace, starting at ``base``."""
    return [
        span_row({**span, "trace": f"{span['trace']}-{case}-{suffix}"}, base)
        for case in CASES
        for span in load_fixture(case)["spans"]
    ]


def copies(store: TraceStore, suffix: str, base: int) -> None:
    """One more copy of every fixture, each its own trace, starting at ``base``."""
    store.insert_spans(rows=fixture_rows(suffix, base))


def test_spans_stored_below_the_watermark_are_paired_after_a_rewind(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    """Traces stored into hours both levels hold (an old file ingested) are missed until the
    rollup is moved back: then every classification is, reads pair them live, and the next
    refresh rolls them up once."""
    now = pinned_now()
    h = hour_zero(now)
    spread(store, h, now)
    other = parse_catalog(CATALOG_YAML.replace("/orders*", "/orders"), source="other.yaml")
    rolled = {
        c.source: edge_rollup.refresh_edges(store, c, closed(h)).state for c in (catalog, other)
    }
    window = TimeWindow(h - 4 * HOUR, now + MINUTE)
    late = h - HOUR + 20 * MINUTE + 30 * 10**9  # inside the rolled hour [h - 1h, h)
    copies(store, "late", late)
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    stale = edge_rows(store, catalog, window, wanted(catalog), rolled[catalog.source])
    assert comparable(stale) != comparable(live)  # the rollup does not see them
    assert edge_rollup.rewind_edges(store, late)
    assert not edge_rollup.rewind_edges(store, closed(h) + HOUR)  # not passed yet
    point = protocol.floor_minute(late)
    for c in (catalog, other):
        state = edge_rollup.read_state(store, c)
        before = rolled[c.source]
        assert (state.since_ns, state.watermark_ns, state.pending_ns) == (
            before.since_ns,
            point,
            point,
        )
        assert tuple(state.hours) == (h - 2 * HOUR, h - HOUR, h - HOUR)
        assert_same_edges(
            edge_rows(store, c, window, wanted(c), state),
            edge_rows(store, c, window, wanted(c), None),
        )
    report = edge_rollup.refresh_edges(store, catalog, closed(h))
    assert report.state == rolled[catalog.source]
    assert_hours_sum_minutes(store, report.state)
    assert_same_edges(edge_rows(store, catalog, window, wanted(catalog), report.state), live)
    # Older than everything rolled up (a whole hour): the minute level starts again at the
    # oldest data and the hour level, which began later, restarts from its first hour.
    copies(store, "oldest", h - 4 * HOUR)
    assert edge_rollup.rewind_edges(store, h - 4 * HOUR)
    state = edge_rollup.read_state(store, catalog)
    assert (state.since_ns, state.watermark_ns) == (h - 4 * HOUR, h - 4 * HOUR)
    assert state.hours == protocol.LevelState()
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    assert_same_edges(edge_rows(store, catalog, window, wanted(catalog), state), live)
    state = edge_rollup.refresh_edges(store, catalog, closed(h)).state
    assert (state.since_ns, state.hours.since_ns, state.hours.watermark_ns) == (
        h - 4 * HOUR,
        h - 4 * HOUR,
        h,
    )
    assert_hours_sum_minutes(store, state)
    assert_same_edges(edge_rows(store, catalog, window, wanted(catalog), state), live)


def test_schema_apply_adds_the_hour_level_to_a_minute_rollup(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    now = pinned_now()
    h = hour_zero(now)
    spread(store, h, now)
    store.command(f"DROP TABLE {store.database}.chainmap_edge_hour")
    rewind_schema(store, 4)
    window = TimeWindow(h - 3 * HOUR + 30 * MINUTE, now + MINUTE)
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    old = edge_rollup.refresh_edges(store, catalog, closed(h)).state  # schema 3: minutes only
    assert old.covers and not old.hours.covers
    assert_same_edges(edge_rows(store, catalog, window, wanted(catalog), old), live)
    lines: list[str] = []
    assert refresh.apply_schema_with_rollup(
        store, catalog, progress=lines.append, until_ns=closed(h)
    ).applied_versions == versions_from(4)
    assert any("merging hours" in line for line in lines)
    state = edge_rollup.read_state(store, catalog)
    assert (state.hours.since_ns, state.hours.watermark_ns) == (h - 2 * HOUR, h)
    assert_hours_sum_minutes(store, state)
    assert_same_edges(edge_rows(store, catalog, window, wanted(catalog), state), live)


HISTOGRAM_COLUMNS = ("ClientBuckets", "ClientSum", "ServerBuckets", "ServerSum")


def test_schema_7_rebuilds_a_rollup_made_without_histograms(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    """A store at schema 6 with rolled-up minutes and hours (rows without buckets), upgraded:
    the edge rollup is rebuilt from the oldest span with its histograms, counts unchanged,
    and the inferred-entry rollup is left as it was."""
    now = pinned_now()
    h = hour_zero(now)
    spread(store, h, now)
    insert_spans(store, load_fixture("latency_buckets")["spans"], h - 2 * HOUR + 5 * MINUTE)
    window = TimeWindow(h - 3 * HOUR, now + MINUTE)
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    entries.refresh_entries(store, closed(h))
    state_sql = (
        f"SELECT Rollup, Catalog, min(Since), max(Watermark), max(Pending) "
        f"FROM {store.database}.chainmap_rollup_state GROUP BY `Rollup`, Catalog ORDER BY `Rollup`"
    )
    entry_state = [r for r in store.query(state_sql).result_rows if r[0] == entries.ROLLUP]
    assert entry_state
    rolled = edge_rollup.refresh_edges(store, catalog, closed(h)).state
    assert rolled.covers and rolled.hours.covers
    # Back to schema 6: the same tables and rows without the histogram columns.
    for table in (edge_rollup.EDGE_TABLE, edge_rollup.HOUR_TABLE):
        drops = ", ".join(f"DROP COLUMN {column}" for column in HISTOGRAM_COLUMNS)
        store.command(f"ALTER TABLE {store.database}.{table} {drops}")
    rewind_schema(store, 7)
    calls_sql = f"SELECT sum(Calls) FROM {store.database}.{{table}}"
    calls = {
        t: store.query(calls_sql.format(table=t)).result_rows
        for t in ("chainmap_edge_minute", "chainmap_edge_hour")
    }
    assert all(rows[0][0] > 0 for rows in calls.values())

    lines: list[str] = []
    report = refresh.apply_schema_with_rollup(
        store, catalog, progress=lines.append, until_ns=closed(h)
    )
    assert report.applied_versions == versions_from(7)
    # Restarted from the oldest stored span, not resumed from the old watermark.
    assert any("edge rollup: pairing traces from" in line for line in lines)
    state = edge_rollup.read_state(store, catalog)
    assert (state.since_ns, state.watermark_ns) == (rolled.since_ns, rolled.watermark_ns)
    assert (state.hours.since_ns, state.hours.watermark_ns) == (h - 2 * HOUR, h)
    assert [r for r in store.query(state_sql).result_rows if r[0] == entries.ROLLUP] == entry_state
    for table, before in calls.items():
        assert store.query(calls_sql.format(table=table)).result_rows == before, table
    # Every row has its buckets again: as many client and server observations as calls.
    for table in (edge_rollup.EDGE_TABLE, edge_rollup.HOUR_TABLE):
        assert (
            store.query(
                f"SELECT countIf(arraySum(mapValues(ClientBuckets)) != Calls "
                f"OR arraySum(mapValues(ServerBuckets)) != Calls), count() "
                f"FROM {store.database}.{table}"
            ).result_rows[0][0]
            == 0
        ), table
    assert_hours_sum_minutes(store, state)
    assert_same_edges(edge_rows(store, catalog, window, wanted(catalog), state), live)


def test_years_of_empty_time_are_skipped_not_paired(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    # One span from years ago (an OTLP example file ingested by hand) and today's traffic:
    # the rollup must jump the empty years instead of pairing tens of thousands of hours.
    years_ago = now_ns - 6 * 365 * 24 * HOUR
    insert_spans(store, load_fixture("client_server_pair")["spans"], years_ago)
    load("nested_chains")
    until = now_ns + 3 * MINUTE
    report = edge_rollup.refresh_edges(store, catalog, until_ns=until)
    assert report.slices <= 4 and report.hour_slices <= 4
    assert report.state.watermark_ns == protocol.floor_minute(until)
    assert edge_rollup.read_state(store, catalog).watermark_ns == protocol.floor_minute(until)
    window = TimeWindow(protocol.floor_minute(now_ns) - 5 * MINUTE, protocol.floor_minute(until))
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    rolled = edge_rows(store, catalog, window, wanted(catalog), report.state)
    assert comparable(rolled) == comparable(live)


def test_rollup_refresh_command_rolls_up(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog, tmp_path: Any
) -> None:
    import importlib

    from typer.testing import CliRunner

    from chainmap_otel.cli import COMMAND_MODULES, app

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    chains = tmp_path / "chains.yaml"
    chains.write_text(CATALOG_YAML, encoding="utf-8")
    load("client_server_pair")
    assert not edge_rollup.read_state(store, catalog).covers
    url = f"chdb://{store.location.path}?database={store.database}"
    result = CliRunner().invoke(app, ["rollup", "refresh", "--store", url, "--chains", str(chains)])
    assert result.exit_code == 0, result.output
    assert "edge rollup:" in result.output
    assert edge_rollup.read_state(store, catalog).covers
