"""Rollups against ingest at full speed: does the edge rollup's watermark keep up?

    python benchmarks/rollup_lag.py --seconds 60
    python benchmarks/rollup_lag.py --seconds 120 --batch 100000 --rollups all

One thread ingests: batches of the trading platform's traces (the shapes of
``analysis_scale.py``) inserted with ``INSERT ... SELECT`` through the real schema, so the
materialized views run as for real ingest, at ``--ingest-rate`` spans per second (default
40,000, the committed ingest rate of ``chainmap serve`` in RESULTS.md, i.e. serve ingesting
at full speed; 0: as fast as the engine stores them, several times that). Data time is a
clock of its own: each batch holds ``--batch`` spans spread over ``batch / --data-rate``
seconds after the previous one (default 4,000: data time runs ten times faster than the wall
clock at the default ingest rate, so the rollups, which close whole minutes, have several
minutes to roll up in a run of a minute or two; the density of spans in data time does not
change how much there is to roll up). Another thread refreshes the rollups as ``chainmap
serve`` does, each refresh up to ``data now - --closing-lag`` (``chainmap serve`` closes slices
``LAG_SECONDS`` of wall time after now; the closing lag only shifts the watermark, it does not
change how much there is to roll up), and the lag is sampled: how far
(in data seconds and in spans) the edge rollup's watermark trails the newest stored span. A
rollup that outruns ingest keeps that lag bounded (about the closing lag plus one refresh);
one that does not falls further behind with every batch.

Printed: spans ingested per second, spans rolled up per second and their ratio (>= 1: the
rollup keeps up with ingest running flat out), each pairing slice's spans and seconds, the lag
samples, and every rate as a ratio to a full scan ``count(), sum(Duration)`` of the same
store measured at the end (the baseline). The embedded store runs one statement at a time, so
the two threads share it as ``chainmap serve``'s writer and rollup loop do.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from analysis_scale import INSERT_SQL, SPANS_PER_TRACE, _shape_sql

from chainmap_otel.analysis.rollups import edges
from chainmap_otel.analysis.rollups.protocol import LAG_SECONDS
from chainmap_otel.analysis.rollups.refresh import refresh_rollups
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import TraceStore, open_store
from chainmap_otel.tagging.definitions import load_catalog

CHAINS_FILE = Path(__file__).resolve().parent.parent / "chains.example.yaml"
NS = 1_000_000_000


@dataclass
class Run:
    """What both threads saw."""

    data_start: int
    data_now: int = 0
    ingested: int = 0
    ingest_seconds: float = 0.0
    rolled: int = 0
    rollup_seconds: float = 0.0
    slices: list[tuple[int, float]] = field(default_factory=list)
    lag: list[tuple[float, float, int]] = field(default_factory=list)  # wall s, data s, spans
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def ingest(
    store: TraceStore, run: Run, seconds: float, batch: int, data_rate: int, rate: int
) -> None:
    shapes = _shape_sql()
    traces = max(1, int(batch / SPANS_PER_TRACE))
    spacing = int(NS * SPANS_PER_TRACE / data_rate)
    started = time.perf_counter()
    first = 0
    while time.perf_counter() - started < seconds:
        before = store.query(f"SELECT count() FROM {store.database}.otel_traces").result_rows
        t0 = time.perf_counter()
        store.command(
            INSERT_SQL.format(
                db=store.database,
                start=run.data_start,
                spacing=spacing,
                first=first,
                count=traces,
                shapes=shapes,
            )
        )
        elapsed = time.perf_counter() - t0
        after = store.query(f"SELECT count() FROM {store.database}.otel_traces").result_rows
        first += traces
        stored = int(after[0][0]) - int(before[0][0])
        with run.lock:
            run.ingested += stored
            run.ingest_seconds += elapsed
            run.data_now = run.data_start + first * spacing
            total = run.ingested
        if rate:  # throttled: the next batch when the rate allows it
            ahead = total / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
    run.done.set()


def roll(store: TraceStore, run: Run, rollups: str, interval: float, closing_ns: int) -> None:
    catalog = load_catalog(CHAINS_FILE)
    started = time.perf_counter()
    lines: list[str] = []
    while True:
        finished = run.done.is_set()
        with run.lock:
            data_now = run.data_now
        until = data_now - closing_ns
        if until > run.data_start:
            before = edges.read_state(store, catalog).watermark_ns
            t0 = time.perf_counter()
            if rollups == "edges":
                report = edges.refresh_edges(store, catalog, until, progress=lines.append)
            else:
                report = refresh_rollups(store, catalog, until, progress=lines.append)
            elapsed = time.perf_counter() - t0
            after = report.state.watermark_ns
            spans = spans_between(store, max(before, run.data_start), after)
            with run.lock:
                run.rolled += spans
                run.rollup_seconds += elapsed
                if spans:
                    run.slices.append((spans, elapsed))
        with run.lock:
            data_now = run.data_now
        mark = edges.read_state(store, catalog).watermark_ns or run.data_start
        behind = spans_between(store, mark, data_now + NS)
        run.lag.append((time.perf_counter() - started, (data_now - mark) / NS, behind))
        if finished:
            return
        run.done.wait(interval)


def spans_between(store: TraceStore, start_ns: int, end_ns: int) -> int:
    if end_ns <= start_ns:
        return 0
    return int(
        store.query(
            f"SELECT count() FROM {store.database}.otel_traces "
            "WHERE Timestamp >= fromUnixTimestamp64Nano({s:Int64}) "
            "AND Timestamp < fromUnixTimestamp64Nano({e:Int64})",
            {"s": start_ns, "e": end_ns},
        ).result_rows[0][0]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60, help="how long to ingest")
    parser.add_argument("--batch", type=int, default=50_000, help="spans per insert")
    parser.add_argument(
        "--ingest-rate", type=int, default=40_000, help="spans per wall second (0: unthrottled)"
    )
    parser.add_argument(
        "--data-rate", type=int, default=4_000, help="spans per second of data time"
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    parser.add_argument(
        "--closing-lag",
        type=float,
        default=10,
        help=f"data seconds before data now that slices close (serve: {LAG_SECONDS} wall s)",
    )
    parser.add_argument(
        "--rollups", choices=("edges", "all"), default="edges", help="which rollups to refresh"
    )
    parser.add_argument("--path", help="chDB data directory (default: a temporary one)")
    args = parser.parse_args()
    path = args.path or tempfile.mkdtemp(prefix="chainmap-lag-")
    store = open_store(f"chdb://{path}")
    try:
        apply_schema(store, progress=lambda line: None)
        # Data time starts two days back, so it never passes the wall clock.
        run = Run(data_start=(time.time_ns() // NS // 60 - 2 * 1440) * 60 * NS)
        run.data_now = run.data_start
        writer = threading.Thread(
            target=ingest,
            args=(store, run, args.seconds, args.batch, args.data_rate, args.ingest_rate),
        )
        roller = threading.Thread(
            target=roll,
            args=(store, run, args.rollups, args.interval, int(args.closing_lag * NS)),
        )
        wall = time.perf_counter()
        writer.start()
        roller.start()
        writer.join()
        roller.join()
        wall = time.perf_counter() - wall
        scan_sql = f"SELECT count(), sum(Duration) FROM {store.database}.otel_traces"
        scans = []
        for _ in range(5):
            t0 = time.perf_counter()
            store.query(scan_sql)
            scans.append(time.perf_counter() - t0)
        scan = statistics.median(scans)
        total = run.ingested
        scan_rate = total / scan
        ingest_rate = run.ingested / run.ingest_seconds if run.ingest_seconds else 0.0
        rollup_rate = run.rolled / run.rollup_seconds if run.rollup_seconds else 0.0
        print(
            f"{total:,} spans in {wall:.0f} s ({args.rollups} rollups every {args.interval:g} s,"
            f" ingest rate {args.ingest_rate or 'unthrottled'},"
            f" {args.data_rate:,} spans per data second)"
        )
        print(f"baseline full scan: {scan * 1000:.1f} ms ({scan_rate:,.0f} spans/s)")
        print(
            f"ingest (INSERT ... SELECT with the views): {ingest_rate:,.0f} spans/s while "
            f"inserting ({ingest_rate / scan_rate:.4f}x scan), {total / wall:,.0f} spans/s "
            f"over the run, {run.ingest_seconds:.1f} s busy"
        )
        print(
            f"rollup refreshes: {run.rolled:,} spans, {rollup_rate:,.0f} spans/s "
            f"({rollup_rate / scan_rate:.4f}x scan), {run.rollup_seconds:.1f} s busy; "
            f"rollup / ingest while inserting: "
            f"{rollup_rate / ingest_rate if ingest_rate else 0:.2f}x"
            + (
                f", rollup / the {args.ingest_rate:,} spans/s ingested: "
                f"{rollup_rate / args.ingest_rate:.2f}x"
                if args.ingest_rate
                else ""
            )
        )
        if run.slices:
            print("refreshes that rolled up spans (spans, seconds, spans/s):")
            for spans, seconds in run.slices:
                print(f"  {spans:>10,} {seconds:7.2f} {spans / seconds if seconds else 0:>12,.0f}")
        print("lag of the edge rollup behind the newest span (wall s, data s, spans):")
        step = max(1, len(run.lag) // 12)
        for wall_s, data_s, spans in run.lag[::step] + run.lag[-1:]:
            print(f"  {wall_s:7.1f} {data_s:9.1f} {spans:>12,}")
        lags = [spans for _, _, spans in run.lag]
        half = lags[len(lags) // 2 :] or lags
        print(
            f"lag in spans: max {max(lags):,}, second half max {max(half):,}, "
            f"last {lags[-1]:,} (bounded when the second half does not grow)"
        )
    finally:
        store.close()
        if not args.path:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
