"""Analysis at scale: topology, health, critical-path aggregates and rule coverage over N
generated spans.

    python benchmarks/analysis_scale.py --spans 2000000
    python benchmarks/analysis_scale.py --spans 10000000 --path /tmp/bench-chdb

Traffic is generated inside chDB with ``INSERT ... SELECT`` from ``numbers()`` (through the
real schema, so chainmap's materialized views fill the aggregates as for real ingest),
spread evenly over the last 7 days: four trace shapes of the trading platform, three tagged
(nested B1 > A2 > B3 with 8 spans, A1 market data with 4, B1 with 3) and one untagged (2),
1 % failed traces, durations jittered 0.5-1.5x. Every query is timed (median of
``--repeat`` runs) and printed as a ratio to ``SELECT count(), sum(Duration) FROM
otel_traces`` measured in the same run; spans analysed per second use the spans the
query's window covers.

Topology reads chainmap's edge rollup (``chainmap_otel.analysis.rollups.edges``): hour rows for the
whole hours it covers, minute rows for the part-hours at the window's edges, and pairs only the
rest live. Building the rollup is ingest-side work, like a
materialized view's: it is timed separately (one backfill of everything generated, in spans
rolled up per second), and so are topology from the minute level alone (the cost before the
hour level) and topology paired entirely live, the cost without the rollup.

Health reads ``chainmap_chain_hour`` for a window's whole hours and ``chainmap_chain_minute``
for the hours its windows cut (``chainmap_otel.analysis.entry_rows.HOUR_SPLIT``); a 7-day
window is also timed on the minute rows alone, the cost before schema 17.

The per-chain critical-path aggregate reads the critical-path rollup
(``chainmap_otel.analysis.rollups.critical_paths``: each trace walked once when its slice
closes); its backfill is timed the same way, and the aggregate computed entirely live (as on a
store without the rollup) is timed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chainmap_otel.analysis.coverage import coverage
from chainmap_otel.analysis.critical_path import chain_critical_path
from chainmap_otel.analysis.entry_rows import entry_rows_sql
from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.rollups import critical_paths
from chainmap_otel.analysis.rollups.edges import (
    invalidate_edges,
    read_state,
    refresh_edges,
)
from chainmap_otel.analysis.rollups.entries import refresh_entries
from chainmap_otel.analysis.rollups.protocol import LevelState
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.topology import edge_rows, topologies
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import TraceStore, open_store
from chainmap_otel.tagging.definitions import load_catalog

WEEK_NS = 7 * 86400 * 10**9
CHAINS_FILE = Path(__file__).resolve().parent.parent / "chains.example.yaml"


def _attrs(**values: str) -> str:
    if not values:
        return "CAST(map(), 'Map(String, String)')"
    body = ", ".join(f"'{k.replace('__', '.')}', '{v}'" for k, v in values.items())
    return f"CAST(map({body}), 'Map(String, String)')"


def _tag(ids: str, entry: str = "") -> dict[str, str]:
    tags = {"chain__ids": ids, "chain__id": ids.split(",")[-1]}
    if entry:
        tags.update(chain__entry="true", chain__entry_ids=entry)
    return tags


# (index, parent index, service, name, kind, offset ms, duration ms, attributes, fails)
SHAPES: list[list[tuple[int, int, str, str, str, float, float, str, int]]] = [
    [
        (
            1,
            0,
            "api-gateway",
            "POST /api/v1/trading/decision",
            "Server",
            0,
            300,
            _attrs(
                http__route="/api/v1/trading/decision",
                http__request__method="POST",
                **_tag("B1", "B1"),
            ),
            1,
        ),
        (
            2,
            1,
            "api-gateway",
            "POST",
            "Client",
            5,
            280,
            _attrs(server__address="ai-orchestration", **_tag("B1")),
            0,
        ),
        (
            3,
            2,
            "ai-orchestration",
            "POST /decisions",
            "Server",
            10,
            260,
            _attrs(http__route="/decisions", http__request__method="POST", **_tag("B1,A2", "A2")),
            0,
        ),
        (
            4,
            3,
            "ai-orchestration",
            "POST",
            "Client",
            20,
            60,
            _attrs(server__address="ai-market-model", **_tag("B1,A2")),
            0,
        ),
        (
            5,
            4,
            "ai-market-model",
            "POST /predict",
            "Server",
            22,
            55,
            _attrs(http__route="/predict", **_tag("B1,A2")),
            0,
        ),
        (
            6,
            3,
            "ai-orchestration",
            "POST",
            "Client",
            100,
            150,
            _attrs(server__address="trading-engine", **_tag("B1,A2")),
            0,
        ),
        (
            7,
            6,
            "trading-engine",
            "POST /orders",
            "Server",
            105,
            140,
            _attrs(http__route="/orders", http__request__method="POST", **_tag("B1,A2,B3", "B3")),
            1,
        ),
        (
            8,
            7,
            "trading-engine",
            "INSERT orders",
            "Client",
            150,
            60,
            _attrs(db__system="postgresql", db__name="trading", **_tag("B1,A2,B3")),
            1,
        ),
    ],
    [
        (
            1,
            0,
            "data-bridge",
            "POST /market-data/ticks",
            "Server",
            0,
            40,
            _attrs(
                http__route="/market-data/ticks", http__request__method="POST", **_tag("A1", "A1")
            ),
            1,
        ),
        (
            2,
            1,
            "data-bridge",
            "POST",
            "Client",
            5,
            30,
            _attrs(server__address="database-service", **_tag("A1")),
            0,
        ),
        (
            3,
            2,
            "database-service",
            "POST /rows",
            "Server",
            7,
            25,
            _attrs(http__route="/rows", **_tag("A1")),
            0,
        ),
        (
            4,
            3,
            "database-service",
            "INSERT ticks",
            "Client",
            10,
            15,
            _attrs(db__system="postgresql", **_tag("A1")),
            1,
        ),
    ],
    [
        (
            1,
            0,
            "api-gateway",
            "GET /api/v1/portfolio",
            "Server",
            0,
            80,
            _attrs(
                http__route="/api/v1/portfolio", http__request__method="GET", **_tag("B1", "B1")
            ),
            1,
        ),
        (
            2,
            1,
            "api-gateway",
            "GET",
            "Client",
            5,
            60,
            _attrs(server__address="data-bridge", **_tag("B1")),
            0,
        ),
        (
            3,
            2,
            "data-bridge",
            "GET /prices",
            "Server",
            8,
            50,
            _attrs(http__route="/prices", **_tag("B1")),
            1,
        ),
    ],
    [
        (
            1,
            0,
            "reporting",
            "GET /reports/daily",
            "Server",
            0,
            500,
            _attrs(http__route="/reports/daily", http__request__method="GET"),
            1,
        ),
        (
            2,
            1,
            "reporting",
            "SELECT",
            "Client",
            20,
            450,
            _attrs(db__system="clickhouse", peer__service="warehouse"),
            0,
        ),
    ],
]
SPANS_PER_TRACE = sum(len(s) for s in SHAPES) / len(SHAPES)


def _shape_sql() -> str:
    shapes = []
    for shape in SHAPES:
        tuples = [
            f"({i}, {p}, '{svc}', '{name}', '{kind}', {off}, {dur}, {attrs}, {fails})"
            for i, p, svc, name, kind, off, dur, attrs, fails in shape
        ]
        shapes.append("[" + ", ".join(tuples) + "]")
    return "[" + ", ".join(shapes) + "]"


INSERT_SQL = """
INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName,
    SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
    StatusCode, StatusMessage)
SELECT
    fromUnixTimestamp64Nano(toInt64(base + s.6 * jitter * 1e6)),
    trace_id,
    leftPad(lower(hex(cityHash64(n, s.1))), 16, '0'),
    if(s.2 = 0, '', leftPad(lower(hex(cityHash64(n, s.2))), 16, '0')),
    '', s.4, s.5, s.3, map('service.name', s.3), 'bench', '1', s.8,
    toUInt64(s.7 * jitter * 1e6),
    if(failed AND s.9 = 1, 'Error', 'Unset'), ''
FROM (
    SELECT number AS n,
           concat(leftPad(lower(hex(cityHash64(number))), 16, '0'),
                  leftPad(lower(hex(cityHash64(number, 7))), 16, '0')) AS trace_id,
           {start} + toInt64(number) * {spacing} AS base,
           0.5 + (cityHash64(number, 3) % 1000) / 1000 AS jitter,
           cityHash64(number, 5) % 100 = 0 AS failed,
           cityHash64(number, 11) % 4 AS shape
    FROM numbers({first}, {count})
)
ARRAY JOIN arrayElement({shapes}, shape + 1) AS s
"""


def generate(store: TraceStore, spans: int, end_ns: int) -> int:
    traces = int(spans / SPANS_PER_TRACE)
    shapes = _shape_sql()
    batch = 250_000
    for first in range(0, traces, batch):
        count = min(batch, traces - first)
        store.command(
            INSERT_SQL.format(
                db=store.database,
                start=end_ns - WEEK_NS,
                spacing=WEEK_NS // traces,
                first=first,
                count=count,
                shapes=shapes,
            )
        )
        print(f"  generated {first + count:,} / {traces:,} traces", end="\r", flush=True)
    print()
    return int(store.query(f"SELECT count() FROM {store.database}.otel_traces").result_rows[0][0])


@contextmanager
def critical_path_rollup_unread() -> Iterator[None]:
    """The aggregate as on a store without the critical-path rollup: every trace live."""
    with mock.patch.object(critical_paths, "analysis_watermark", lambda store: None):
        yield


def minute_rows_health(store: TraceStore, catalog: Any, window: TimeWindow) -> Any:
    """Health from the minute rows alone, as before the hour rows (schema 17)."""

    def minutes(*args: Any, **kwargs: Any) -> str:
        return entry_rows_sql(*args, **{**kwargs, "hours": False})

    # The package re-exports the function ``health``: patch the module itself.
    with mock.patch.object(sys.modules[health.__module__], "entry_rows_sql", minutes):
        return health(store, catalog, window)


def live_critical_path(store: TraceStore, catalog: Any, chain_id: str, window: TimeWindow) -> Any:
    with critical_path_rollup_unread():
        return chain_critical_path(store, catalog, chain_id, window)


def timed(repeat: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--path", help="chDB data directory (default: a temporary one, removed after)"
    )
    args = parser.parse_args()
    path = args.path or tempfile.mkdtemp(prefix="chainmap-bench-")
    catalog = load_catalog(CHAINS_FILE)
    store = open_store(f"chdb://{path}")
    try:
        apply_schema(store, progress=lambda line: None)
        end_ns = time.time_ns()
        if store.query(f"SELECT count() FROM {store.database}.otel_traces").result_rows[0][0] == 0:
            started = time.perf_counter()
            total = generate(store, args.spans, end_ns)
            print(
                f"inserted {total:,} spans in {time.perf_counter() - started:.1f} s (with the materialized views)"
            )
        store.command(f"OPTIMIZE TABLE {store.database}.chainmap_chain_minute FINAL")
        total, first_ns, last_ns = store.query(
            f"SELECT count(), toUnixTimestamp64Nano(min(Timestamp)), toUnixTimestamp64Nano(max(Timestamp)) "
            f"FROM {store.database}.otel_traces"
        ).result_rows[0]
        everything = TimeWindow(int(first_ns), int(last_ns) + 1)
        end = TimeWindow(int(last_ns) + 1 - 3600 * 10**9, int(last_ns) + 1)
        week = TimeWindow(int(last_ns) + 1 - WEEK_NS, int(last_ns) + 1)
        quarter = TimeWindow(int(last_ns) + 1 - 900 * 10**9, int(last_ns) + 1)
        scan_sql = f"SELECT count(), sum(Duration) FROM {store.database}.otel_traces"
        scan = timed(args.repeat, lambda: store.query(scan_sql))
        print(
            f"\n{total:,} spans; full scan `count(), sum(Duration)`: {scan * 1000:.1f} ms "
            f"({total / scan:,.0f} spans/s)\n"
        )
        invalidate_edges(store, catalog)
        started = time.perf_counter()
        refresh = refresh_edges(store, catalog)
        build = time.perf_counter() - started
        state = read_state(store, catalog)
        rolled = store.query(
            f"SELECT count() FROM {store.database}.otel_traces WHERE Timestamp < "
            "fromUnixTimestamp64Nano({w:Int64})",
            {"w": state.watermark_ns},
        ).result_rows[0][0]
        rows = store.query(
            f"SELECT count() FROM {store.database}.chainmap_edge_minute"
        ).result_rows[0][0]
        hours = store.query(f"SELECT count() FROM {store.database}.chainmap_edge_hour").result_rows[
            0
        ][0]
        print(
            f"edge rollup backfill: {rolled:,} spans in {refresh.slices} slices "
            f"(+{refresh.hour_slices} hour slices), {build:.1f} s "
            f"({rolled / build:,.0f} spans/s, {build / scan:,.0f}x scan), "
            f"{rows:,} minute rows, {hours:,} hour rows\n"
        )
        # Health reads the inferred-entry rollup as serve keeps it (spans tagged without
        # chain.entry); time building it from nothing.
        started = time.perf_counter()
        refresh_entries(store)
        print(f"inferred-entry rollup backfill: {time.perf_counter() - started:.1f} s\n")
        critical_paths.invalidate_critical_paths(store)
        started = time.perf_counter()
        critical_paths.refresh_critical_paths(store)
        build = time.perf_counter() - started
        walked = store.query(
            f"SELECT count() FROM {store.database}.otel_traces WHERE Timestamp < "
            "fromUnixTimestamp64Nano({w:Int64})",
            {"w": critical_paths.read_state(store).watermark_ns},
        ).result_rows[0][0]
        parts = store.query(
            f"SELECT count() FROM {store.database}.chainmap_critical_path"
        ).result_rows[0][0]
        print(
            f"critical-path rollup backfill: {walked:,} spans, {build:.1f} s "
            f"({walked / build:,.0f} spans/s, {build / scan:,.0f}x scan), {parts:,} rows\n"
        )
        wanted = [*catalog.ids, ""]
        results: list[tuple[str, int, Callable[[], Any]]] = [
            (
                "topology, all chains + all traffic (whole data)",
                total,
                lambda: topologies(store, catalog, everything),
            ),
            (
                "topology, minute rollup only as at schema 3 (whole data)",
                total,
                lambda: edge_rows(
                    store,
                    catalog,
                    everything,
                    wanted,
                    dataclasses.replace(read_state(store, catalog), hours=LevelState()),
                ),
            ),
            (
                "topology paired live, no rollup (whole data)",
                total,
                lambda: edge_rows(store, catalog, everything, wanted, None),
            ),
            ("health, all chains, 1h", 0, lambda: health(store, catalog, end)),
            ("health, all chains, 7d", 0, lambda: health(store, catalog, week)),
            (
                "health, all chains, 7d, minute rows only as at schema 16",
                0,
                lambda: minute_rows_health(store, catalog, week),
            ),
            # Rule coverage reads the window's span rows (the aggregates keep no tagger):
            # its cost follows the window; /metrics counts the last 15 minutes by default.
            (
                "coverage, 15m",
                total * 900 // (WEEK_NS // 10**9),
                lambda: coverage(store, catalog, quarter),
            ),
            (
                "coverage, 1h",
                total * 3600 // (WEEK_NS // 10**9),
                lambda: coverage(store, catalog, end),
            ),
        ]
        for chain_id in ("B3", "A1"):
            results.append(
                (
                    f"critical-path aggregate {chain_id} (whole data, cap 2000)",
                    total,
                    lambda c=chain_id: chain_critical_path(store, catalog, c, everything),
                )
            )
        results.append(
            (
                "critical-path aggregate B3, live: no rollup (whole data)",
                total,
                lambda: live_critical_path(store, catalog, "B3", everything),
            )
        )
        print(f"{'query':58} {'ms':>9} {'x scan':>8} {'spans/s':>14}")
        for name, spans, run in results:
            seconds = timed(args.repeat, run)
            rate = f"{spans / seconds:,.0f}" if spans else "-"
            print(f"{name:58} {seconds * 1000:9.1f} {seconds / scan:8.1f} {rate:>14}")
    finally:
        store.close()
        if not args.path:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
