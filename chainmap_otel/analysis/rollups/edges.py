"""The edge rollup: service-graph edges per minute, materialised from closed time slices.

Live topology pairs every span of the window (``sql/trace_edges.sql``), which costs ~100x a
plain scan of the spans. ``chainmap_edge_minute`` (schema version 3) holds the result of that
same pairing, grouped per minute of trace start, chain set and edge, so topology reads a few
rows per minute instead of every span and pairs live only the minutes the rollup does not
cover yet (:mod:`chainmap_otel.analysis.topology`).

Why a job and not a materialized view: an edge needs both spans of a client/server pair,
and the client span usually arrives *after* its server child (it ends later), so no insert
block is guaranteed to hold both. :func:`refresh_edges` runs ``trace_edges.sql`` -- the one
source of the pairing semantics -- over closed slices ``[watermark, until)``:

* **Attribution.** A trace belongs to the minute it starts in (its earliest span). A slice
  keeps the traces that start in it and reads their spans from :data:`REACH_SECONDS` before
  to :data:`REACH_SECONDS` after the slice, so a pair cut by a slice boundary still pairs;
  the spans read before the slice reveal the traces that started earlier (they belong to
  the previous slice and are skipped). Spans starting more than the reach after their
  trace's first span are cut off, as a window edge cuts a pair in live topology: they form
  a fragment counted in the minute of its own first span. Live topology uses the same rule,
  so the two give the same edges.
* **Closed slices.** ``until`` defaults to ``now - LAG_SECONDS`` (whole minutes), so spans may
  arrive up to ``LAG_SECONDS - REACH_SECONDS`` after they started and still be paired: a
  client span that lands after its server child within that delay pairs normally. Spans
  arriving later than that into a slice already rolled up are not counted by the rollup.
  :func:`invalidate_edges` drops a classification's rollup (e.g. after ingesting old files)
  so the next refresh rebuilds it.
* **Membership.** Untagged spans are classified with the catalog's rules while pairing, so
  rows carry the trace's whole chain set (tagged and classified) and a fingerprint of the
  rules (``Catalog``, :func:`catalog_fingerprint`). Each classification has its own rows and
  watermark; a catalog seen for the first time is backfilled from the oldest span.
* **Failures.** Each slice writes ``Pending = end`` to ``chainmap_rollup_state``, inserts, then
  writes ``Watermark = end``. A refresh that finds ``Pending > Watermark`` (a crash between
  the two) deletes that slice's minutes (slices are whole minutes, so those rows belong to it
  alone) and redoes it: a re-run never double counts. Within a process one lock serialises
  refreshes of a store; across processes run one refresher per store (``chainmap serve``;
  an embedded store has a single process by construction).
* **Reads never write.** Analysis only reads the rollup (:func:`analysis_state`) and pairs
  live whatever lies past its watermark, so a topology request never waits behind a
  backfill or needs write access. Refreshes run in ``chainmap serve``'s background loop
  (:class:`~chainmap_otel.analysis.rollups.refresh.RollupRefresher`, every 30 s), in ``chainmap
  schema apply`` and in ``chainmap rollup refresh``.
* **Hours.** Merging one t-digest state per minute and edge costs ~0.3 s for 7 days whatever
  the span count, so ``chainmap_edge_hour`` (schema version 4) holds the minute rows merged
  per hour (``sql/edge_hour.sql``: counts summed, states merged with -MergeState), written
  once an hour lies wholly inside the minute level's ``[since, watermark)``, in day-aligned
  slices with the same pending/watermark protocol under the state ``edges_hour``; an
  interrupted hour slice is deleted and redone like a minute slice. Topology reads hour
  rows for the whole hours of a window, minute rows for the part-hours at its edges and
  pairs live the rest. A store at schema version 3 has no hour table: the minute level
  alone is used.
* **Histograms.** Both levels also keep the servicegraph connector's client and server
  latency histograms per row (schema version 7: bucket counts keyed by the bucket's upper
  bound in ns, :data:`LATENCY_BOUNDS_NS`, and the sums), so ``/metrics`` reads them over
  every stored minute without pairing. Version 7 empties both levels and removes their
  states (rows rolled up before it have no buckets): the next refresh rebuilds them from
  the oldest span.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chainmap_otel.analysis.membership import SqlParams, classify_expression
from chainmap_otel.analysis.naming import ServiceGraphNaming
from chainmap_otel.analysis.rollups.protocol import cluster_parts
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.errors import StoreError
from chainmap_otel.storage.store import TraceStore, validate_identifier
from chainmap_otel.tagging.definitions import ChainCatalog

logger = logging.getLogger(__name__)

#: Receives one human-readable line per rollup step.
ProgressCallback = Callable[[str], None]

ROLLUP = "edges"
HOUR_ROLLUP = "edges_hour"
EDGE_TABLE = "chainmap_edge_minute"
HOUR_TABLE = "chainmap_edge_hour"
STATE_TABLE = "chainmap_rollup_state"
#: Slices end this long before now: the delay spans may take to arrive and still pair.
LAG_SECONDS = 120
#: Spans of a trace are read this far before and after the slice its first span starts in.
REACH_SECONDS = 60
#: Backfill slice length (slices are aligned to it, so none crosses a day partition).
SLICE_SECONDS = 3600
#: Hour-level slice length: at most a day of minute rows merged per insert.
HOUR_SLICE_SECONDS = 86400
#: Version of the pairing semantics in ``trace_edges.sql``, part of every fingerprint: rows
#: rolled up under older semantics (2: per-edge chain scope and caller edges; 3: chains
#: propagate through tagged spans too, the membership rule) are not read.
PAIRING_VERSION = 3
#: Upper bounds (seconds) of the edge latency histograms: the servicegraph connector's
#: default ``latency_histogram_buckets``, also used for the chain latency histogram.
LATENCY_BUCKETS_SECONDS = (
    0.002,
    0.004,
    0.006,
    0.008,
    0.01,
    0.05,
    0.1,
    0.2,
    0.4,
    0.8,
    1.0,
    1.4,
    2.0,
    5.0,
    10.0,
    15.0,
)
#: The same bounds in ns and a last one for +Inf (max UInt64): the keys of the rollup's
#: ``ClientBuckets``/``ServerBuckets`` maps. A duration goes to the first bound >= it, as
#: the connector's ``sort.SearchFloat64s`` (comparing whole ns is the same comparison).
LATENCY_BOUNDS_NS = (*(round(b * 1_000_000_000) for b in LATENCY_BUCKETS_SECONDS), 2**64 - 1)

_NS = 1_000_000_000
_MINUTE_NS = 60 * _NS
_HOUR_NS = 3600 * _NS

#: trace_edges' span filter: the spans of two ranges (head and tail of a window, or a slice).
SPAN_WINDOW_SQL = (
    "(Timestamp >= fromUnixTimestamp64Nano({read_head_start:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({read_head_end:Int64})) "
    "OR (Timestamp >= fromUnixTimestamp64Nano({read_tail_start:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({read_tail_end:Int64}))"
)
#: trace_edges' trace filter: traces whose first span starts in the head or the tail range.
TRACE_WINDOW_SQL = (
    "(start_ns >= {head_start:Int64} AND start_ns < {head_end:Int64}) "
    "OR (start_ns >= {tail_start:Int64} AND start_ns < {tail_end:Int64})"
)
#: The type of trace_edges.sql's ``edges``: (source, target, connection_type, failed,
#: latency_ns (client span; the server's for ``user`` edges), target_type, chains, entry,
#: server_ns, client_ns), the last two the connector's server and client latencies.
EDGE_TUPLES = (
    "Array(Tuple(String, String, String, UInt8, UInt64, String, Array(String), UInt8, "
    "UInt64, UInt64))"
)
#: Stands in for chainmap_edge_minute or chainmap_edge_hour where it is not read (no rows).
NO_ROLLUP_SQL = (
    "(SELECT * FROM (SELECT toUInt64(0) AS Catalog, toDateTime(0) AS Minute, "
    "toDateTime(0) AS Hour, '' AS Source, "
    "'' AS Target, '' AS ConnectionType, '' AS TargetType, CAST([], 'Array(String)') AS ChainIds, "
    "toUInt64(0) AS Calls, toUInt64(0) AS Errors, "
    "initializeAggregation('quantilesTDigestState(0.5, 0.95, 0.99)', toUInt64(0)) AS Latency, "
    "toInt64(0) AS FirstSeen, toInt64(0) AS LastSeen, "
    "CAST(map(), 'Map(UInt64, UInt64)') AS ClientBuckets, toUInt64(0) AS ClientSum, "
    "CAST(map(), 'Map(UInt64, UInt64)') AS ServerBuckets, toUInt64(0) AS ServerSum) WHERE 0)"
)

#: Stands in for trace_edges.sql when no part of a window is paired live (no rows).
NO_LIVE_SQL = (
    "SELECT * FROM (SELECT '' AS TraceId, "
    f"CAST([], '{EDGE_TUPLES}') AS edges, "
    "CAST([], 'Array(String)') AS trace_chains, toInt64(0) AS start_ns) WHERE 0"
)

_STATE_SQL = """SELECT Rollup, min(Since), max(Watermark), max(Pending)
FROM {db}.chainmap_rollup_state
WHERE Rollup IN {{rollups:Array(String)}} AND Catalog = {{catalog:UInt64}}
GROUP BY `Rollup`"""
_WRITE_STATE_SQL = """INSERT INTO {db}.chainmap_rollup_state
    (Rollup, Catalog, Since, Watermark, Pending, Updated)
SELECT {{rollup:String}}, {{catalog:UInt64}}, {{since:Int64}}, {{watermark:Int64}},
       {{pending:Int64}}, now()
SETTINGS insert_distributed_sync = 1"""
_FIRST_SPAN_SQL = """SELECT count(), toUnixTimestamp64Nano(min(Timestamp))
FROM {db}.otel_traces
WHERE Timestamp < fromUnixTimestamp64Nano({{until:Int64}}) AND TraceId != ''"""
_NEXT_SPAN_SQL = """SELECT count(), toUnixTimestamp64Nano(min(Timestamp))
FROM {db}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{start:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{until:Int64}}) AND TraceId != ''"""
_NEXT_MINUTE_SQL = """SELECT count(), toUnixTimestamp(min(Minute)) * 1000000000
FROM {db}.chainmap_edge_minute
WHERE Catalog = {{catalog:UInt64}}
  AND Minute >= toDateTime({{start:Int64}}) AND Minute < toDateTime({{end:Int64}})"""
_DELETE_SQL = """ALTER TABLE {db}.{table}{local} {on_cluster}
DELETE WHERE Catalog = {{catalog:UInt64}}
    AND {column} >= toDateTime({{start:Int64}}) AND {column} < toDateTime({{end:Int64}})
SETTINGS mutations_sync = 2"""
_DELETE_STATE_SQL = """ALTER TABLE {db}.chainmap_rollup_state{local} {on_cluster}
DELETE WHERE Rollup IN {{rollups:Array(String)}} AND Catalog = {{catalog:UInt64}}
SETTINGS mutations_sync = 2"""

_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class HourState:
    """What the hour level covers: trace starts in ``[since, watermark)``, whole hours."""

    since_ns: int = 0
    watermark_ns: int = 0
    pending_ns: int = 0

    @property
    def covers(self) -> bool:
        return self.watermark_ns > self.since_ns > 0


@dataclass(frozen=True)
class RollupState:
    """What the rollup of one classification covers: trace starts in ``[since, watermark)``
    per minute, and ``hours`` of it per hour."""

    catalog: int
    since_ns: int = 0
    watermark_ns: int = 0
    pending_ns: int = 0
    hours: HourState = HourState()

    @property
    def covers(self) -> bool:
        return self.watermark_ns > self.since_ns > 0

    def hours_due(self) -> tuple[int, int]:
        """The whole hours the minute level covers and the hour level not yet (may be empty)."""
        if not self.covers:
            return (0, 0)
        start = self.hours.watermark_ns if self.hours.since_ns else ceil_hour(self.since_ns)
        return (start, floor_hour(self.watermark_ns))

    def current(self, until_ns: int) -> bool:
        """Nothing to roll up before ``until_ns`` and no slice left interrupted."""
        start, end = self.hours_due()
        return (
            self.covers
            and self.watermark_ns >= until_ns
            and self.pending_ns <= self.watermark_ns
            and self.hours.pending_ns <= self.hours.watermark_ns
            and start >= end
        )


@dataclass
class RefreshReport:
    """What :func:`refresh_edges` did."""

    state: RollupState
    slices: int = 0
    hour_slices: int = 0
    recovered: bool = False
    seconds: float = 0.0


def floor_minute(ns: int) -> int:
    return ns - ns % _MINUTE_NS


def ceil_minute(ns: int) -> int:
    return -floor_minute(-ns)


def floor_hour(ns: int) -> int:
    return ns - ns % _HOUR_NS


def ceil_hour(ns: int) -> int:
    return -floor_hour(-ns)


def catalog_fingerprint(catalog: ChainCatalog, naming: ServiceGraphNaming | None = None) -> int:
    """UInt64 identifying how ``catalog`` classifies untagged spans (its compiled rules) and
    how nodes are named (``naming``, default from the environment)."""
    classify, params = classify_expression(catalog)
    naming = naming or ServiceGraphNaming.from_config()
    text = json.dumps(
        [PAIRING_VERSION, classify, sorted(params.items()), naming.key()],
        default=str,
        sort_keys=True,
    )
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def trace_edges_sql(
    store: TraceStore, catalog: ChainCatalog, naming: ServiceGraphNaming | None = None
) -> tuple[str, dict[str, Any]]:
    """``trace_edges.sql`` for two ranges of trace starts (see :func:`range_params`)."""
    return pairing_sql(
        store, catalog, naming, span_window=SPAN_WINDOW_SQL, trace_window=TRACE_WINDOW_SQL
    )


def pairing_sql(
    store: TraceStore,
    catalog: ChainCatalog,
    naming: ServiceGraphNaming | None = None,
    **fragments: str,
) -> tuple[str, dict[str, Any]]:
    """``trace_edges.sql`` with the catalog's classifier and the node naming filled in
    (``naming`` default from the environment), and its bound parameters."""
    classify, params = classify_expression(catalog)
    names = SqlParams("sg")
    sql = load_sql(
        "trace_edges",
        store.database,
        classify=classify,
        **(naming or ServiceGraphNaming.from_config()).fragments(names),
        **fragments,
    )
    return sql, {**params, **names.values}


def histogram_params() -> dict[str, list[int]]:
    """Bind value of ``{latency_bounds_ns:Array(UInt64)}`` (edge_rollup.sql, topology.sql)."""
    return {"latency_bounds_ns": list(LATENCY_BOUNDS_NS)}


def range_params(
    head: tuple[int, int], tail: tuple[int, int] | None = None, reach_ns: int = REACH_SECONDS * _NS
) -> dict[str, int]:
    """Bind values of :data:`SPAN_WINDOW_SQL`/:data:`TRACE_WINDOW_SQL` for trace starts in
    ``head`` or ``tail`` (``[start, end)`` ns; empty when ``start >= end``)."""
    out: dict[str, int] = {}
    for name, (start, end) in (("head", head), ("tail", tail or (0, 0))):
        empty = start >= end
        out[f"{name}_start"], out[f"{name}_end"] = (0, 0) if empty else (start, end)
        out[f"read_{name}_start"] = 0 if empty else start - reach_ns
        out[f"read_{name}_end"] = 0 if empty else end + reach_ns
    return out


def read_state(
    store: TraceStore, catalog: ChainCatalog | int, naming: ServiceGraphNaming | None = None
) -> RollupState:
    """The rollup state of ``catalog`` (a catalog or its fingerprint) under ``naming``."""
    fingerprint = catalog if isinstance(catalog, int) else catalog_fingerprint(catalog, naming)
    db = validate_identifier(store.database, "database")
    levels = {
        str(rollup): (int(since), int(watermark), int(pending))
        for rollup, since, watermark, pending in store.query(
            _STATE_SQL.format(db=db), {"rollups": [ROLLUP, HOUR_ROLLUP], "catalog": fingerprint}
        ).result_rows
    }
    hours = HourState(*levels.get(HOUR_ROLLUP, (0, 0, 0)))
    return RollupState(fingerprint, *levels.get(ROLLUP, (0, 0, 0)), hours=hours)


def refresh_edges(
    store: TraceStore,
    catalog: ChainCatalog,
    until_ns: int | None = None,
    *,
    slice_seconds: int = SLICE_SECONDS,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    naming: ServiceGraphNaming | None = None,
) -> RefreshReport:
    """Roll up the edges of the traces started before ``until_ns`` (default ``now - LAG``).

    Idempotent; cheap (one small query) when nothing new is due. ``stop`` ends a long
    backfill between slices. Raises :class:`StoreError` when the store refuses.
    """
    if slice_seconds < 60 or slice_seconds % 60:
        raise ValueError(f"slice_seconds must be a positive multiple of 60, not {slice_seconds}")
    started = time.perf_counter()
    say = progress or (lambda line: logger.debug("%s", line))
    until = floor_minute(until_ns if until_ns is not None else time.time_ns() - LAG_SECONDS * _NS)
    naming = naming or ServiceGraphNaming.from_config()
    with _lock(store):
        state = read_state(store, catalog, naming)
        report = RefreshReport(state)
        if state.current(until):
            return report
        sql, classify_params = trace_edges_sql(store, catalog, naming)
        insert = load_sql("edge_rollup", store.database, trace_edges=sql)

        def run_slice(since: int, start: int, end: int) -> None:
            _write_state(store, state.catalog, since, start, end)
            params = {
                **classify_params,
                **range_params((start, end)),
                **histogram_params(),
                "catalog": state.catalog,
            }
            store.command(insert, params)
            _write_state(store, state.catalog, since, end, end)

        if state.pending_ns > state.watermark_ns and state.since_ns:
            say(f"edge rollup: redoing the interrupted slice ending {_iso(state.pending_ns)}")
            _delete_rows(store, EDGE_TABLE, state.catalog, state.watermark_ns, state.pending_ns)
            run_slice(state.since_ns, state.watermark_ns, state.pending_ns)
            state = RollupState(
                state.catalog, state.since_ns, state.pending_ns, state.pending_ns, state.hours
            )
            report.recovered = True
        since, start = state.since_ns, state.watermark_ns
        if not state.since_ns:
            first = _first_span_ns(store, until)
            if first is None:
                report.seconds = time.perf_counter() - started
                return report
            since = start = floor_minute(first)
        slice_ns = slice_seconds * _NS
        total = max(1, -(-(until - start) // slice_ns))
        if start < until:
            say(f"edge rollup: pairing traces from {_iso(start)} to {_iso(until)}")
        while start < until:
            if stop is not None and stop.is_set():
                break
            end = min(until, (start // slice_ns + 1) * slice_ns)
            following = _next_span_ns(store, start, end)
            if following is None:
                # No trace starts in this slice (an idle night, a store with a few old
                # spans): nothing to pair, so jump to the next span instead of pairing
                # every empty hour since the oldest one.
                following = _next_span_ns(store, end, until)
                start = until if following is None else max(end, floor_minute(following))
                _write_state(store, state.catalog, since, start, start)
                continue
            run_slice(since, start, end)
            report.slices += 1
            start = end
            if report.slices % 24 == 0 or start >= until:
                say(f"  edge rollup: {report.slices}/{total} slices, up to {_iso(start)}")
        minutes = RollupState(state.catalog, since, start, start, state.hours)
        report.state = _refresh_hours(store, minutes, report, say, stop)
    report.seconds = time.perf_counter() - started
    return report


def _refresh_hours(
    store: TraceStore,
    state: RollupState,
    report: RefreshReport,
    say: ProgressCallback,
    stop: threading.Event | None,
) -> RollupState:
    """Merge the minute rows of the hours wholly inside the minute level into hour rows."""
    hours = state.hours
    insert = load_sql("edge_hour", store.database)

    def run_slice(since: int, start: int, end: int) -> None:
        _write_state(store, state.catalog, since, start, end, HOUR_ROLLUP)
        store.command(insert, {"catalog": state.catalog, "start": start // _NS, "end": end // _NS})
        _write_state(store, state.catalog, since, end, end, HOUR_ROLLUP)

    if hours.pending_ns > hours.watermark_ns and hours.since_ns:
        say(f"edge rollup: redoing the interrupted hour slice ending {_iso(hours.pending_ns)}")
        _delete_rows(store, HOUR_TABLE, state.catalog, hours.watermark_ns, hours.pending_ns)
        run_slice(hours.since_ns, hours.watermark_ns, hours.pending_ns)
        hours = HourState(hours.since_ns, hours.pending_ns, hours.pending_ns)
        report.recovered = True
    state = RollupState(state.catalog, state.since_ns, state.watermark_ns, state.pending_ns, hours)
    start, until = state.hours_due()
    if start >= until or (not hours.since_ns and not store.table_exists(HOUR_TABLE)):
        return state  # nothing due, or a schema older than version 4: minutes only
    since = hours.since_ns or start
    slice_ns = HOUR_SLICE_SECONDS * _NS
    say(f"edge rollup: merging hours from {_iso(start)} to {_iso(until)}")
    while start < until:
        if stop is not None and stop.is_set():
            break
        end = min(until, (start // slice_ns + 1) * slice_ns)
        if _next_minute_row_ns(store, state.catalog, start, end) is None:
            following = _next_minute_row_ns(store, state.catalog, end, until)
            start = until if following is None else max(end, floor_hour(following))
            _write_state(store, state.catalog, since, start, start, HOUR_ROLLUP)
            continue
        run_slice(since, start, end)
        report.hour_slices += 1
        start = end
    if start > since:
        hours = HourState(since, start, start)
    return RollupState(state.catalog, state.since_ns, state.watermark_ns, state.pending_ns, hours)


def analysis_state(
    store: TraceStore, catalog: ChainCatalog, naming: ServiceGraphNaming | None = None
) -> RollupState | None:
    """The rollup state analysis reads (never refreshed here); None without a rollup table.

    None when the store has no edge rollup (schema older than version 3). Whatever the
    state does not cover yet is paired live by topology.
    """
    naming = naming or ServiceGraphNaming.from_config()
    try:
        return read_state(store, catalog, naming)
    except StoreError:
        if store.table_exists(STATE_TABLE):
            raise
        return None


def invalidate_edges(store: TraceStore, catalog: ChainCatalog) -> None:
    """Drop ``catalog``'s rollup rows and state; the next refresh rebuilds it from the start."""
    fingerprint = catalog_fingerprint(catalog)
    with _lock(store):
        _delete_rows(store, EDGE_TABLE, fingerprint, 0, (2**32 - 1) * _NS)
        if store.table_exists(HOUR_TABLE):
            _delete_rows(store, HOUR_TABLE, fingerprint, 0, (2**32 - 1) * _NS)
        store.command(
            _DELETE_STATE_SQL.format(db=store.database, **cluster_parts()),
            {"rollups": [ROLLUP, HOUR_ROLLUP], "catalog": fingerprint},
        )


def _lock(store: TraceStore) -> threading.Lock:
    key = (store.url_for_display, store.database)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def _write_state(
    store: TraceStore,
    catalog: int,
    since: int,
    watermark: int,
    pending: int,
    rollup: str = ROLLUP,
) -> None:
    store.command(
        _WRITE_STATE_SQL.format(db=store.database),
        {
            "rollup": rollup,
            "catalog": catalog,
            "since": since,
            "watermark": watermark,
            "pending": pending,
        },
    )


def _delete_rows(store: TraceStore, table: str, catalog: int, start_ns: int, end_ns: int) -> None:
    column = "Hour" if table == HOUR_TABLE else "Minute"
    store.command(
        _DELETE_SQL.format(db=store.database, table=table, column=column, **cluster_parts()),
        {"catalog": catalog, "start": start_ns // _NS, "end": end_ns // _NS},
    )


def _next_span_ns(store: TraceStore, start_ns: int, until_ns: int) -> int | None:
    """Start of the first span in ``[start, until)``: empty stretches are skipped, not paired."""
    count, first = store.query(
        _NEXT_SPAN_SQL.format(db=store.database), {"start": start_ns, "until": until_ns}
    ).result_rows[0]
    return int(first) if count else None


def _next_minute_row_ns(
    store: TraceStore, catalog: int, start_ns: int, until_ns: int
) -> int | None:
    count, first = store.query(
        _NEXT_MINUTE_SQL.format(db=store.database),
        {"catalog": catalog, "start": start_ns // _NS, "end": until_ns // _NS},
    ).result_rows[0]
    return int(first) if count else None


def _first_span_ns(store: TraceStore, until_ns: int) -> int | None:
    count, first = store.query(
        _FIRST_SPAN_SQL.format(db=store.database), {"until": until_ns}
    ).result_rows[0]
    return int(first) if count else None


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / _NS))
