"""Trace search at scale: ``search_traces`` over N generated spans (7 days of traffic).

    python benchmarks/trace_search.py --spans 10000000 --path /tmp/bench-search

The traffic is analysis_scale.py's (four trace shapes of the trading platform, ~4.25 spans
per trace, 1 % failed, spread over the last 7 days), generated through the real schema so
``chainmap_trace_summary`` fills as for real ingest. Each search is timed (median of
``--repeat`` runs) and printed as a ratio to two baselines measured in the same run: the
plain full scan ``SELECT count(), sum(Duration) FROM otel_traces`` and the same search done
the obvious way, grouping the window's spans of ``otel_traces`` by trace.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from analysis_scale import CHAINS_FILE, WEEK_NS, generate

from chainmap_otel.analysis.rollups import traces as trace_rollup
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.traces import TraceQuery, search_traces
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import TraceStore, open_store
from chainmap_otel.tagging.definitions import load_catalog

#: The obvious search: newest traces of the window straight from the spans.
SPANS_SEARCH_SQL = """
SELECT TraceId, min(Timestamp) AS start, max(Timestamp + toIntervalNanosecond(Duration)) AS end,
       groupUniqArray(ServiceName), count(), countIf(StatusCode = 'Error')
FROM {db}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{start_ns:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{end_ns:Int64}})
GROUP BY TraceId
ORDER BY {order} DESC
LIMIT 20
"""


def timed(repeat: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def spans_search(store: TraceStore, window: TimeWindow, order: str) -> Any:
    sql = SPANS_SEARCH_SQL.format(db=store.database, order=order)
    return store.query(sql, window.params())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--path", help="chDB data directory (default: a temporary one, removed after)"
    )
    args = parser.parse_args()
    path = args.path or tempfile.mkdtemp(prefix="chainmap-bench-")
    catalog = load_catalog(CHAINS_FILE)
    store = open_store(f"chdb://{path}")
    try:
        apply_schema(store, progress=lambda line: None)
        db = store.database
        if store.query(f"SELECT count() FROM {db}.otel_traces").result_rows[0][0] == 0:
            started = time.perf_counter()
            total = generate(store, args.spans, time.time_ns())
            print(f"inserted {total:,} spans in {time.perf_counter() - started:.1f} s")
        total, last_ns = store.query(
            f"SELECT count(), toUnixTimestamp64Nano(max(Timestamp)) FROM {db}.otel_traces"
        ).result_rows[0]
        summary_rows = store.query(f"SELECT count() FROM {db}.chainmap_trace_summary").result_rows[
            0
        ][0]
        end = int(last_ns) + 1
        hour = TimeWindow(end - 3600 * 10**9, end)
        week = TimeWindow(end - WEEK_NS, end)
        scan_sql = f"SELECT count(), sum(Duration) FROM {db}.otel_traces"
        scan = timed(args.repeat, lambda: store.query(scan_sql))
        print(
            f"\n{total:,} spans, {summary_rows:,} trace summary rows; full scan "
            f"`count(), sum(Duration)`: {scan * 1000:.1f} ms\n"
        )
        searches: list[tuple[str, TimeWindow, TraceQuery, str]] = [
            ("newest 20, last hour", hour, TraceQuery(), "min(Timestamp)"),
            ("slowest 20, last hour", hour, TraceQuery(order="duration"), "end - start"),
            (
                "chain B3 failing, slowest, last hour",
                hour,
                TraceQuery.parse(chain="B3", status="error", order="duration"),
                "",
            ),
            (
                "service + operation, last hour",
                hour,
                TraceQuery.parse(service="trading-engine", operation="POST /orders"),
                "",
            ),
            (
                "attr http.route=/orders, last hour",
                hour,
                TraceQuery.parse(attr=["http.route=/orders"]),
                "",
            ),
            ("newest 20, 7 days", week, TraceQuery(), "min(Timestamp)"),
            ("slowest 20, 7 days", week, TraceQuery(order="duration"), "end - start"),
            (
                "chain A2 > 400 ms, slowest, 7 days",
                week,
                TraceQuery.parse(chain="A2", min_duration_ms=400, order="duration"),
                "",
            ),
            ("failing, newest, 7 days", week, TraceQuery.parse(status="error"), ""),
            (
                "chain B3 slowest by entry span, 7 days",
                week,
                TraceQuery.parse(chain="B3", order="duration"),
                "",
            ),
            (
                "chain B3 failed (entry span), 7 days",
                week,
                TraceQuery.parse(chain="B3", chain_status="error"),
                "",
            ),
            (
                "span POST /orders >= 200 ms, 7 days",
                week,
                TraceQuery.parse(
                    service="trading-engine", operation="POST /orders", min_duration_ms=200
                ),
                "",
            ),
            (
                "attr http.route=~^/ord, last hour",
                hour,
                TraceQuery.parse(attr=["http.route=~^/ord"]),
                "",
            ),
        ]
        # Live only first (no merged traces), then with the rollup as serve keeps it: trace
        # starts up to "now" (the newest span) minus the slack and the lag merged.
        trace_rollup.invalidate_traces(store)
        live = {
            name: timed(args.repeat, lambda w=window, q=query: search_traces(store, catalog, w, q))
            for name, window, query, _ in searches
        }
        started = time.perf_counter()
        watermark = trace_rollup.refresh_traces(store, trace_rollup.closed_until(end))
        merged_rows, merged_bytes = store.query(
            f"SELECT sum(rows), sum(data_compressed_bytes) FROM system.parts "
            f"WHERE database = '{db}' AND table = 'chainmap_trace_merged' AND active"
        ).result_rows[0]
        print(
            f"merged-trace rollup: {int(merged_rows):,} traces ({int(merged_bytes) / 2**20:.1f} "
            f"MiB) up to {(end - watermark) / 60e9:.0f} min before the newest span, built in "
            f"{time.perf_counter() - started:.1f} s\n"
        )
        print(
            f"{'search':40} {'ms':>8} {'live ms':>8} {'x live':>7} {'x scan':>7} "
            f"{'spans way ms':>13} {'x spans way':>12}"
        )
        for name, window, query, spans_order in searches:
            seconds = timed(
                args.repeat, lambda w=window, q=query: search_traces(store, catalog, w, q)
            )
            if spans_order:
                naive = timed(
                    args.repeat, lambda w=window, o=spans_order: spans_search(store, w, o)
                )
                versus = f"{naive * 1000:13.1f} {seconds / naive:12.2f}"
            else:
                versus = f"{'-':>13} {'-':>12}"
            print(
                f"{name:40} {seconds * 1000:8.1f} {live[name] * 1000:8.1f} "
                f"{seconds / live[name]:7.2f} {seconds / scan:7.2f} {versus}"
            )
    finally:
        store.close()
        if not args.path:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
