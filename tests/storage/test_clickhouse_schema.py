"""The schema: Collector-made tables analyse like chainmap-made ones, backfill, idempotence."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainmap_otel.storage.columns import TRACE_COLUMNS, TRACE_SCHEMA
from chainmap_otel.storage.schema import (
    apply_schema,
    current_version,
    latest_version,
    schema_dir,
    schema_versions,
    show_schema,
)
from chainmap_otel.storage.store import TraceStore, open_store

COLLECTOR_DDL = Path(__file__).parent / "fixtures" / "collector_clickhouseexporter_traces.sql"
NOW = time.time_ns() // 60_000_000_000 * 60_000_000_000  # a minute boundary
DAY = 86_400_000_000_000
#: Every version in schemas/clickhouse/, in order (numbers another branch holds may be absent).
VERSIONS = [v.version for v in schema_versions("otel")]


@pytest.fixture
def empty_store(chdb_store: TraceStore, chdb_path: Path) -> Iterator[TraceStore]:
    """A store on a fresh database with no tables."""
    store = open_store(f"chdb://{chdb_path}?database=t_{uuid.uuid4().hex[:12]}")
    yield store
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


def _collector_tables(store: TraceStore) -> None:
    for statement in COLLECTOR_DDL.read_text().split(";"):
        if statement.strip():
            store.command(statement.replace("{db}", store.database))


def _row(
    trace: str,
    span: str,
    parent: str,
    kind: str,
    status: str,
    attributes: dict[str, str],
    *,
    service: str = "gateway",
    ts: int = NOW,
    duration: int = 4_000_000,
    name: str = "GET /quote",
    links: tuple[str, str] | None = None,
) -> tuple[object, ...]:
    """One otel_traces row; ``links`` a (trace id, span id) the span links to."""
    return (
        ts,
        trace,
        span,
        parent,
        "",
        name,
        kind,
        service,
        {"service.name": service},
        "",
        "",
        attributes,
        duration,
        status,
        "",
        [],
        [],
        [],
        [links[0]] if links else [],
        [links[1]] if links else [],
        [""] if links else [],
        [{}] if links else [],
    )


def _old_and_new_form_rows(ts: int = NOW) -> list[tuple[object, ...]]:
    """The same two traces twice: as an old Collector wrote them and as the current one does."""
    rows = []
    for suffix, server, client, error, ok in (
        ("old", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "STATUS_CODE_ERROR", "STATUS_CODE_UNSET"),
        ("new", "Server", "Client", "Error", "Unset"),
    ):
        tagged = {
            "http.route": "/quote",
            "http.request.method": "GET",
            "chain.id": "Q1",
            "chain.ids": "Q1",
            "chain.entry": "true",
            "chain.entry_ids": "Q1",
        }
        rows += [
            _row(f"a-{suffix}", "1", "", server, error, tagged, ts=ts),
            _row(
                f"a-{suffix}", "2", "1", client, ok, {"chain.ids": "Q1"}, service="pricing", ts=ts
            ),
            _row(
                f"b-{suffix}",
                "3",
                "",
                server,
                ok,
                {"url.path": "/health", "http.method": "GET"},
                ts=ts,
                duration=1_000_000,
                name="GET",
            ),
        ]
    return rows


def _minute_rows(store: TraceStore) -> list[tuple[object, ...]]:
    return store.query(
        "SELECT ChainId, ServiceName, Route, Method, SpanKind, sum(Calls), sum(Errors), "
        "sum(DurationSum), quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency), sumMap(LatencyBuckets) "
        "FROM chainmap_chain_minute GROUP BY ChainId, ServiceName, Route, Method, SpanKind "
        "ORDER BY ChainId"
    ).result_rows


def _summaries(store: TraceStore) -> dict[str, tuple[object, ...]]:
    rows = store.query(
        "SELECT TraceId, max(RootService), max(RootRoute), max(RootMethod), max(RootKind), "
        "max(RootStatus), max(RootDuration), arraySort(groupUniqArrayArray(ChainIds)), "
        "arraySort(groupUniqArrayArray(Services)), sum(SpanCount), sum(ErrorCount), "
        "toUnixTimestamp64Nano(min(Start)), toUnixTimestamp64Nano(max(End)) "
        "FROM chainmap_trace_summary GROUP BY TraceId"
    ).result_rows
    return {str(row[0]): tuple(row[1:]) for row in rows}


def _check_both_forms_read_alike(store: TraceStore, factor: int = 1) -> None:
    summaries = _summaries(store)
    for suffix in ("old", "new"):
        assert summaries[f"a-{suffix}"] == (
            "gateway",
            "/quote",
            "GET",
            "Server",
            "Error",
            4_000_000,
            ["Q1"],
            ["gateway", "pricing"],
            2 * factor,
            1 * factor,
            NOW,
            NOW + 4_000_000,
        )
        assert summaries[f"b-{suffix}"][:8] == (
            "gateway",
            "/health",
            "GET",
            "Server",
            "Unset",
            1_000_000,
            [],
            ["gateway"],
        )
    minutes = _minute_rows(store)
    untagged, quote = minutes
    # ChainId '' holds untagged roots, counted from both generations of rows.
    assert untagged[:8] == (
        "",
        "gateway",
        "/health",
        "GET",
        "Server",
        2 * factor,
        0,
        2_000_000 * factor,
    )
    assert quote[:8] == (
        "Q1",
        "gateway",
        "/quote",
        "GET",
        "Server",
        2 * factor,
        2 * factor,
        8_000_000 * factor,
    )
    assert quote[8] == [4_000_000.0, 4_000_000.0, 4_000_000.0]
    bucket = 47  # 1 µs * 2^(47/4) <= 4 ms < 1 µs * 2^(48/4)
    assert quote[9] == ([bucket], [2 * factor])


def test_collector_made_tables_analyse_like_chainmap_made_ones(empty_store: TraceStore) -> None:
    _collector_tables(empty_store)
    apply_schema(empty_store, progress=lambda line: None)
    empty_store.insert_spans(rows=_old_and_new_form_rows())
    _check_both_forms_read_alike(empty_store)
    lookup = empty_store.query(
        "SELECT count() FROM otel_traces_trace_id_ts WHERE TraceId = 'a-new'"
    ).result_rows
    assert lookup == [(1,)]


def test_spans_stored_before_install_are_backfilled_once(empty_store: TraceStore) -> None:
    _collector_tables(empty_store)
    old_rows = _old_and_new_form_rows()
    empty_store.insert_spans(rows=old_rows[:3])  # one insert: one part
    empty_store.insert_spans(rows=old_rows[3:])
    lines: list[str] = []
    report = apply_schema(empty_store, progress=lines.append)
    assert report.backfilled_spans == 6
    assert report.applied_versions == VERSIONS
    assert any("copying 6 stored spans from 1 partitions" in line for line in lines)
    assert any("1/1, 6/6 spans" in line for line in lines)
    _check_both_forms_read_alike(empty_store)
    again = apply_schema(empty_store, progress=lines.append)
    assert (again.applied_versions, again.backfilled_spans) == ([], 0)
    _check_both_forms_read_alike(empty_store)
    # New spans flow through the views, on top of the backfilled ones.
    empty_store.insert_spans(rows=old_rows)
    _check_both_forms_read_alike(empty_store, factor=2)


def test_backfill_goes_partition_by_partition(empty_store: TraceStore) -> None:
    _collector_tables(empty_store)
    for day in range(3):
        empty_store.insert_spans(rows=_old_and_new_form_rows(ts=NOW - day * DAY)[:1])
    lines: list[str] = []
    assert apply_schema(empty_store, progress=lines.append).backfilled_spans == 3
    # Versions 2 and 5 add views over otel_traces, versions 9, 10, 11, 13, 14 and 16 create
    # them anew: each copies the three partitions; version 17 copies the three partitions of
    # chainmap_chain_minute into the hour rows.
    assert sum("partition " in line for line in lines) == 27
    count = empty_store.query("SELECT sum(SpanCount) FROM chainmap_trace_summary").result_rows
    assert count == [(3,)]


def test_version_10_recounts_a_summary_with_untagged_spans_once(
    empty_store: TraceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at version 9 holding spans: version 10 empties the trace summary, copies the
    spans into it again with the rule fields of the untagged non-root spans, and counts
    every span once; new spans then flow through the new view."""
    import chainmap_otel.storage.schema as schema

    every = schema.schema_versions
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 9]
    )
    assert apply_schema(empty_store, progress=lambda line: None).current_version == 9
    root = _row("t10", "r", "", "Server", "Unset", {"chain.ids": "A", "chain.id": "A"})
    node = _row(
        "t10", "n", "r", "Server", "Unset", {"url.path": "/q/1"}, service="node", name="GET"
    )
    empty_store.insert_spans(rows=[root, node])
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 10]
    )
    report = apply_schema(empty_store, progress=lambda line: None)
    assert (report.applied_versions, report.backfilled_spans) == ([10], 2)
    summary = "SELECT sum(SpanCount), groupUniqArrayArray(UntaggedFields) FROM {t}"
    expected = [(2, [("node", "GET", "/q/1", "/q/1", "", "Server")])]
    assert empty_store.query(summary.format(t="chainmap_trace_summary")).result_rows == expected
    empty_store.insert_spans(rows=[_row("t10", "c", "n", "Client", "Unset", {}, service="node")])
    count = empty_store.query("SELECT sum(SpanCount) FROM chainmap_trace_summary").result_rows
    assert count == [(3,)]


def test_version_17_rolls_the_stored_minutes_up_per_hour(
    empty_store: TraceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at version 16 holding entry rows: version 17 copies chainmap_chain_minute into
    chainmap_chain_hour once, per hour and environment, and new spans then flow into both."""
    import chainmap_otel.storage.schema as schema

    every = schema.schema_versions
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 16]
    )
    apply_schema(empty_store, progress=lambda line: None)
    hour = NOW // (3600 * 10**9) * 3600 * 10**9 - 2 * 3600 * 10**9
    tagged = {"chain.ids": "A", "chain.id": "A", "chain.entry": "true", "chain.entry_ids": "A"}
    rows = []
    for i, minute in enumerate((0, 1, 1, 59, 60, 61, 119)):
        row = _row(
            f"h{i}",
            "r",
            "",
            "Server",
            "Error" if i % 3 == 0 else "Unset",
            tagged,
            ts=hour + minute * 60 * 10**9 + i * 10**9,
            duration=(i + 1) * 3_000_000,
        )
        resource = {"service.name": "gateway", "deployment.environment.name": f"e{i % 2}"}
        rows.append((*row[:8], resource, *row[9:]))
    empty_store.insert_spans(rows=rows)
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 17]
    )
    lines: list[str] = []
    report = apply_schema(empty_store, progress=lines.append)
    assert report.applied_versions == [17]
    assert any("rows of chainmap_chain_minute" in line for line in lines)
    per_hour = (
        "SELECT {hour} AS h, Environment, sum(Calls), sum(Errors), sum(DurationSum), "
        "sum(AdjustedCalls), sumMap(LatencyBuckets), min(FirstSeen), max(LastSeen), "
        "quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency), "
        "quantilesTDigestWeightedMerge(0.5, 0.95, 0.99)(AdjustedLatency) "
        "FROM {table} GROUP BY h, Environment ORDER BY h, Environment"
    )
    minutes = per_hour.format(
        hour="intDiv(toUnixTimestamp(Minute), 3600) * 3600", table="chainmap_chain_minute"
    )
    hours = per_hour.format(hour="toUnixTimestamp(Hour)", table="chainmap_chain_hour")
    want = empty_store.query(minutes).result_rows
    assert len(want) == 4  # two hours, two environments
    assert sum(r[2] for r in want) == 7
    assert empty_store.query(hours).result_rows == want
    empty_store.insert_spans(rows=rows)
    doubled = empty_store.query(hours).result_rows
    assert [r[2:6] for r in doubled] == [tuple(2 * v for v in r[2:6]) for r in want]
    assert doubled == empty_store.query(minutes).result_rows


def test_version_11_keeps_each_minutes_first_and_last_entry(
    empty_store: TraceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at version 10 holding root spans: version 11 recounts chainmap_chain_minute once,
    with the first and last entry span start of each row, and new spans flow through its
    new views."""
    import chainmap_otel.storage.schema as schema

    every = schema.schema_versions
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 10]
    )
    apply_schema(empty_store, progress=lambda line: None)
    minute = NOW // 60_000_000_000 * 60_000_000_000
    tagged = {"chain.ids": "A", "chain.id": "A", "chain.entry": "true", "chain.entry_ids": "A"}
    empty_store.insert_spans(
        rows=[
            _row(f"t{i}", "r", "", "Server", "Unset", tagged, ts=minute + i * 10**9) for i in (5, 9)
        ]
    )
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 11]
    )
    report = apply_schema(empty_store, progress=lambda line: None)
    assert (report.applied_versions, report.backfilled_spans) == ([11], 2)
    extent = (
        "SELECT sum(Calls), toUnixTimestamp64Nano(min(FirstSeen)), "
        "toUnixTimestamp64Nano(max(LastSeen)) FROM chainmap_chain_minute WHERE ChainId = 'A'"
    )
    assert empty_store.query(extent).result_rows == [(2, minute + 5 * 10**9, minute + 9 * 10**9)]
    empty_store.insert_spans(rows=[_row("t7", "r", "", "Server", "Unset", tagged, ts=minute + 7)])
    empty_store.insert_spans(rows=[_row("t2", "r", "", "Server", "Unset", tagged, ts=minute + 2)])
    assert empty_store.query(extent).result_rows == [(4, minute + 2, minute + 9 * 10**9)]


def test_version_11_counts_a_linked_root_as_no_second_entry(
    empty_store: TraceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at version 10 holding a chain's entry and the linked consumer root that
    inherited the chain through the message: version 11 recounts chainmap_chain_minute with
    the consumer left out; new linked roots are left out too, while a root without links
    keeps its inherited chain and a linked root still counts the chains it enters itself."""
    import chainmap_otel.storage.schema as schema

    every = schema.schema_versions
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 10]
    )
    apply_schema(empty_store, progress=lambda line: None)
    entry = {"chain.ids": "A", "chain.id": "A", "chain.entry": "true", "chain.entry_ids": "A"}
    inherited = {"chain.ids": "A", "chain.id": "A"}
    producer = _row("tp", "p", "", "Server", "Unset", entry)
    consumer = _row(
        "tc", "c", "", "Consumer", "Unset", inherited, service="settle", links=("tp", "p")
    )
    empty_store.insert_spans(rows=[producer, consumer])
    calls = "SELECT ChainId, sum(Calls) FROM chainmap_chain_minute GROUP BY ChainId ORDER BY 1"
    assert empty_store.query(calls).result_rows == [("A", 2)]  # counted once per trace
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 11]
    )
    report = apply_schema(empty_store, progress=lambda line: None)
    assert (report.applied_versions, report.backfilled_spans) == ([11], 2)
    assert empty_store.query(calls).result_rows == [("A", 1)]
    pushes_b = {"chain.ids": "A,B", "chain.id": "B", "chain.entry": "true", "chain.entry_ids": "B"}
    empty_store.insert_spans(
        rows=[
            _row("tc2", "c", "", "Consumer", "Unset", inherited, links=("tp", "p")),
            _row("tc3", "c", "", "Consumer", "Unset", pushes_b, links=("tp", "p")),
            _row("tb", "r", "", "Server", "Unset", inherited),
        ]
    )
    assert empty_store.query(calls).result_rows == [("A", 2), ("B", 1)]


def test_version_16_learns_the_chains_of_linked_roots(
    empty_store: TraceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at version 15 holding a producer and its linked consumer: version 16 copies
    them into the trace summary again with the chains of the linked root and the chains
    entered per trace, removes the merged-trace rollup's state, and new spans flow through
    the new view."""
    import chainmap_otel.storage.schema as schema

    every = schema.schema_versions
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 15]
    )
    apply_schema(empty_store, progress=lambda line: None)
    entry = {"chain.ids": "A", "chain.id": "A", "chain.entry": "true", "chain.entry_ids": "A"}
    inherited = {"chain.ids": "A", "chain.id": "A"}
    pushes_b = {"chain.ids": "A,B", "chain.id": "B", "chain.entry": "true", "chain.entry_ids": "B"}
    empty_store.insert_spans(
        rows=[
            _row("tp", "p", "", "Server", "Unset", entry),
            _row("tc", "c", "", "Consumer", "Unset", inherited, links=("tp", "p")),
            _row("tc", "b", "c", "Internal", "Unset", pushes_b),
        ]
    )
    empty_store.command(
        "INSERT INTO chainmap_rollup_state (Rollup, Since, Watermark, Pending) "
        "VALUES ('traces', 1, 2, 0)"
    )
    monkeypatch.setattr(
        schema, "schema_versions", lambda *a, **k: [v for v in every(*a, **k) if v.version <= 16]
    )
    report = apply_schema(empty_store, progress=lambda line: None)
    assert (report.applied_versions, report.backfilled_spans) == ([16], 3)
    summary = (
        "SELECT TraceId, sum(SpanCount), arraySort(groupUniqArrayArray(LinkedRootChains)), "
        "arraySort(groupUniqArrayArray(EntryChainIds)) FROM chainmap_trace_summary "
        "GROUP BY TraceId ORDER BY TraceId"
    )
    assert empty_store.query(summary).result_rows == [("tc", 2, ["A"], ["B"]), ("tp", 1, [], ["A"])]
    state = "SELECT count() FROM chainmap_rollup_state WHERE Rollup = 'traces'"
    assert empty_store.query(state).result_rows == [(0,)]
    empty_store.insert_spans(
        rows=[_row("tc2", "c", "", "Consumer", "Unset", inherited, links=("tp", "p"))]
    )
    assert empty_store.query(summary).result_rows[1] == ("tc2", 1, ["A"], [])


def test_apply_is_idempotent_and_versioned(empty_store: TraceStore) -> None:
    first = apply_schema(empty_store, progress=lambda line: None)
    assert first.applied_versions == VERSIONS
    tables = empty_store.query(
        "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
        {"db": empty_store.database},
    ).result_rows
    assert [t[0] for t in tables] == [
        "chainmap_chain_hour",
        "chainmap_chain_hour_mv",
        "chainmap_chain_minute",
        "chainmap_chain_minute_mv",
        "chainmap_chain_minute_root_mv",
        "chainmap_critical_path",
        "chainmap_edge_hour",
        "chainmap_edge_minute",
        "chainmap_entry_counts",
        "chainmap_inferred_entry_minute",
        "chainmap_rollup_state",
        "chainmap_schema_version",
        "chainmap_trace_merged",
        "chainmap_trace_summary",
        "chainmap_trace_summary_mv",
        "otel_traces",
        "otel_traces_trace_id_ts",
        "otel_traces_trace_id_ts_mv",
    ]
    second = apply_schema(empty_store, progress=lambda line: None)
    assert second.applied_versions == [] and not second.changed
    assert current_version(empty_store) == latest_version()
    versions = empty_store.query("SELECT version FROM chainmap_schema_version ORDER BY version")
    assert [v[0] for v in versions.result_rows] == VERSIONS


def test_ttl_is_applied_to_every_table(empty_store: TraceStore) -> None:
    apply_schema(empty_store, ttl_days=14, progress=lambda line: None)
    ddl = empty_store.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = {db:String} "
        "AND engine LIKE '%MergeTree' "
        "AND name NOT IN ('chainmap_schema_version', 'chainmap_rollup_state')",
        {"db": empty_store.database},
    ).result_rows
    assert len(ddl) == 11
    for name, query in ddl:
        assert "toIntervalDay(14)" in query, name


def test_show_schema_renders_the_cluster_variant() -> None:
    text = show_schema("otel", cluster="prod", ttl_days=0)
    assert 'CREATE TABLE IF NOT EXISTS "otel"."otel_traces_local" ON CLUSTER prod' in text
    assert "ENGINE = ReplicatedMergeTree\n" in text
    assert "ENGINE = ReplicatedAggregatingMergeTree\n" in text
    assert "ENGINE = Distributed('prod', 'otel', 'otel_traces_local', cityHash64(TraceId))" in text
    assert 'FROM "otel"."otel_traces_local"' in text
    assert "TTL" not in text
    single = show_schema("otel", cluster="", ttl_days=3)
    assert "ON CLUSTER" not in single and "Distributed" not in single
    assert "TTL toDateTime(Timestamp) + toIntervalDay(3)" in single
    with pytest.raises(ValueError, match="not a plain identifier"):
        show_schema("otel; DROP", cluster="")


def test_schema_files_ship_with_the_package() -> None:
    assert (schema_dir() / "clickhouse" / "001_otel_traces.sql").is_file()


def test_insert_columns_match_the_table(chdb_store: TraceStore) -> None:
    described = chdb_store.query("DESCRIBE TABLE otel_traces").result_rows
    assert tuple(row[0] for row in described) == TRACE_COLUMNS
    # The one column definition matches the DDL in names and types, in order.
    assert [(row[0], row[1]) for row in described] == [
        (column.name, column.clickhouse_type) for column in TRACE_SCHEMA
    ]


@pytest.mark.skipif(
    not os.environ.get("CHAINMAP_TEST_CLICKHOUSE_URL"),
    reason=(
        "CHAINMAP_TEST_CLICKHOUSE_URL is unset: no ClickHouse server runs here (Debian ships "
        "ClickHouse 18.16, without Map or DateTime64; chDB covers the same SQL in-process)"
    ),
)
def test_against_a_clickhouse_server() -> None:
    base = os.environ["CHAINMAP_TEST_CLICKHOUSE_URL"].rstrip("/")
    root = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    store = open_store(f"{root}/t_{uuid.uuid4().hex[:12]}")
    try:
        _collector_tables(store)
        store.insert_spans(rows=_old_and_new_form_rows()[:3])
        assert apply_schema(store, progress=lambda line: None).backfilled_spans == 3
        store.insert_spans(rows=_old_and_new_form_rows()[3:])
        _check_both_forms_read_alike(store)
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()
