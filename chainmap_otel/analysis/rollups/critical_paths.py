"""The critical-path rollup: every trace's critical path, walked once when its slice closes.

The per-chain aggregate (:func:`~chainmap_otel.analysis.critical_path.chain_critical_path`)
needs, per trace of the chain, the latency of the chain's part of it and where that part's
time goes on Jaeger's critical path. Computed live, it groups every span of its window by
trace and walks the sampled traces again (seconds at 10M spans). ``chainmap_critical_path``
(schema version 12) holds the answer per trace instead, so the aggregate reads one row per
trace below this rollup's watermark and computes live only the traces above it.

* **What is precomputed.** Which chains a trace belongs to depends on the entry rules at
  query time (an untagged span's chains are the rules that match it), so the rollup stores
  no membership verdict, only what the verdict reads: the trace's tagged chains, the chains
  whose entry a span marks, and the rule fields of its untagged spans (the root's included).
  What a chain owns of a trace does not depend on the rules: the subtree of the span that
  marks its entry (``chain.entry_ids``, :func:`~chainmap_otel.analysis.path_sections.chain_subtree`),
  else the whole trace -- a trace classified at query time, or tagged without entry marks,
  is the chain as a whole. So each trace gets one row per chain whose entry a span marks
  (:func:`~chainmap_otel.analysis.path_sections.trace_parts`) and one for the whole trace
  (``EntryChain`` '') unless no chain can own it (every tagged chain has its own part and
  no span is untagged, as in a fleet tagged by chainmap), each with its latency and, per
  operation on its critical path, the self time there: rules may change at any time and
  every part a chain could own is already there.
* **Attribution.** A trace belongs to the slice its first span starts in; its spans are
  read from :data:`REACH_SECONDS` before to :data:`REACH_SECONDS` after the slice (the
  spans read before it reveal traces that started earlier: they belong to the slice
  before), as the edge rollup pairs (:mod:`~chainmap_otel.analysis.rollups.edges`). Spans
  starting later than the reach after the slice are not in the trace's row.
* **Closed slices.** Up to ``now - LAG_SECONDS`` (whole minutes): spans have that long to
  arrive. A whole trace stored later (``chainmap ingest`` of old files) is walked once
  :func:`rewind_critical_paths` moves the watermark back to it, which the command does.
* **Protocol.** :mod:`~chainmap_otel.analysis.rollups.protocol` under the state
  ``critical_paths``: pending/watermark per slice (an interrupted slice deleted and redone),
  empty stretches skipped, one lock, ``stop``, rewind. The walk is Python
  (:func:`~chainmap_otel.analysis.path_sections.compute_sections`, the one per-trace
  algorithm); a slice with many spans is read and inserted in parts of about
  :data:`SPANS_PER_READ` spans.
"""

from __future__ import annotations

import threading
from typing import Any

from chainmap_otel.analysis.path_sections import SpanTiming, entry_chains, trace_parts
from chainmap_otel.analysis.rollups.protocol import (
    Level,
    LevelState,
    ProgressCallback,
    SliceRollup,
    SliceWork,
    closed_until,
)
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.storage.store import TraceStore

__all__ = [
    "REACH_SECONDS",
    "ROLLUP",
    "TABLE",
    "analysis_watermark",
    "invalidate_critical_paths",
    "read_state",
    "refresh_critical_paths",
    "rewind_critical_paths",
    "trace_rows",
    "traces_sql",
]

ROLLUP = "critical_paths"
TABLE = "chainmap_critical_path"
#: A slice's spans are read this far before and after it (as the edge rollup's).
REACH_SECONDS = 60
#: Backfill slice length (aligned, so none crosses a day partition).
SLICE_SECONDS = 3600
#: A slice holding more spans than this is read and walked in parts of about this many.
SPANS_PER_READ = 400_000

_NS = 1_000_000_000
_FIELDS_TYPE = "Array(Tuple(String, String, String, String, String, String))"
_COLUMNS: dict[str, str] = {
    "Start": "DateTime64(9)",
    "TraceId": "String",
    "EntryChain": "LowCardinality(String)",
    "LatencyNs": "UInt64",
    "Chains": "Array(LowCardinality(String))",
    "EntryChains": "Array(LowCardinality(String))",
    "UntaggedFields": _FIELDS_TYPE,
    "Services": "Array(LowCardinality(String))",
    "Names": "Array(LowCardinality(String))",
    "SelfNs": "Array(UInt64)",
    "Environment": "LowCardinality(String)",
}
_COUNT_SQL = """SELECT count() FROM {db}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{start:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{end:Int64}}) AND TraceId != ''"""

LEVEL = Level(
    name=ROLLUP,
    table=TABLE,
    delete="""ALTER TABLE {db}.chainmap_critical_path{local} {on_cluster}
DELETE WHERE Start >= fromUnixTimestamp64Nano({{start:Int64}})
    AND Start < fromUnixTimestamp64Nano({{end:Int64}})
SETTINGS mutations_sync = 2""",
    next_data="""SELECT count(), toUnixTimestamp64Nano(min(Timestamp))
FROM {db}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{start:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{until:Int64}}) AND TraceId != ''""",
    label="critical-path rollup",
    work="walking traces",
    slice_seconds=SLICE_SECONDS,
    slice_rows=SPANS_PER_READ,
)
JOB = SliceRollup(ROLLUP, (LEVEL,))


def traces_sql(database: str, narrowed: bool = False) -> str:
    """``sql/critical_path_traces.sql``: the traces starting in ``[from_ns, to_ns)`` with
    their spans, read ``reach_ns`` earlier up to ``read_to_ns``; ``narrowed``: only the
    traces ``{trace_ids:Array(String)}``."""
    traces = "AND TraceId IN {trace_ids:Array(String)}" if narrowed else ""
    spans = load_sql("critical_path_spans", database, traces=traces)
    return load_sql("critical_path_traces", database, spans=spans)


def trace_timings(row: Any) -> list[SpanTiming]:
    """One row of :func:`traces_sql` as the spans the walk reads."""
    _, ids, parents, services, names, kinds, starts, durations, entry_ids = row[:9]
    return [
        SpanTiming(i, p, svc, n, k, st, st + d, e)
        for i, p, svc, n, k, st, d, e in zip(
            ids, parents, services, names, kinds, starts, durations, entry_ids, strict=True
        )
    ]


def trace_rows(rows: Any) -> dict[str, list[Any]]:
    """The ``chainmap_critical_path`` columns of the traces ``rows`` (:func:`traces_sql`)."""
    out: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    for row in rows:
        trace_id, chains, untagged, environment = (
            str(row[0]),
            list(row[9]),
            list(row[10]),
            str(row[11]),
        )
        spans = trace_timings(row)
        start = min(s.start for s in spans)
        marked = entry_chains(spans)
        # No chain can own the whole trace when each has its own part and no span is
        # untagged (a fleet tagged by chainmap): that walk is left out.
        parts = trace_parts(spans, whole=bool(untagged) or not set(chains) <= set(marked))
        for part in parts:
            whole = not part.entry_chain
            out["Start"].append(start)
            out["TraceId"].append(trace_id)
            out["EntryChain"].append(part.entry_chain)
            out["LatencyNs"].append(part.latency_ns)
            out["Chains"].append(chains if whole else [])
            out["EntryChains"].append(marked if whole else [])
            out["UntaggedFields"].append(untagged if whole else [])
            out["Services"].append(list(part.services))
            out["Names"].append(list(part.names))
            out["SelfNs"].append(list(part.self_ns))
            out["Environment"].append(environment)
    return out


def _roll_slice(store: TraceStore, start_ns: int, end_ns: int) -> None:
    """Walk the traces starting in ``[start, end)`` and insert their parts, in parts of
    about :data:`SPANS_PER_READ` spans."""
    spans = int(
        store.query(
            _COUNT_SQL.format(db=store.database), {"start": start_ns, "end": end_ns}
        ).result_rows[0][0]
    )
    reads = max(1, -(-spans // SPANS_PER_READ))
    step = -(-(end_ns - start_ns) // reads)
    sql = traces_sql(store.database)
    reach = REACH_SECONDS * _NS
    for first in range(start_ns, end_ns, step):
        last = min(end_ns, first + step)
        params = {"from_ns": first, "to_ns": last, "reach_ns": reach, "read_to_ns": last + reach}
        rows = store.query(sql, params).result_rows
        store.insert_columns(TABLE, trace_rows(rows), list(_COLUMNS.values()))


def read_state(store: TraceStore) -> LevelState:
    """``(since, watermark, pending)`` in ns (zeros before the first refresh)."""
    return LEVEL.read(store)


def refresh_critical_paths(
    store: TraceStore,
    until_ns: int | None = None,
    *,
    stop: threading.Event | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Walk the traces started before ``until_ns`` (default ``now - LAG``) into
    ``chainmap_critical_path``; returns the watermark. Idempotent and cheap when nothing is
    due; a store without the table (schema older than version 12) is left alone."""
    (run,) = JOB.refresh(
        store,
        until_ns if until_ns is not None else closed_until(),
        (SliceWork(run=lambda start, end: _roll_slice(store, start, end)),),
        stop=stop,
        progress=progress,
    )
    return run.state.watermark_ns


def analysis_watermark(store: TraceStore) -> int | None:
    """Traces starting below this are read from ``chainmap_critical_path``; None without
    the table. Never refreshed here (reads never write)."""
    if not store.table_exists(TABLE):
        return None
    return read_state(store).watermark_ns


def rewind_critical_paths(store: TraceStore, start_ns: int) -> bool:
    """Walk again the traces from ``start_ns`` on (``chainmap ingest`` stored spans there
    after the rollup passed it); True when the rollup had."""
    return JOB.rewind(store, start_ns)


def invalidate_critical_paths(store: TraceStore) -> None:
    """Drop the rolled-up critical paths and their state; the next refresh rebuilds them."""
    JOB.invalidate(store)
