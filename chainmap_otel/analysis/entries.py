"""Inferred chain entries: spans tagged with ``chain.ids`` but no ``chain.entry``.

A baggage span processor in another language, an older SDK or OTTL that sets only the ids
tags spans with the chain stack but never marks where a chain begins, so health -- which
counts entry spans -- would not see those traces. The rule: **the span where a chain first
appears in a trace is its entry** (the chain is in the span's ``chain.ids`` and not in its
parent's, or the span has no parent). Chains a span names in ``chain.entry_ids`` are already
counted by ``chainmap_chain_minute_mv`` and are never inferred, so nothing counts twice.

Where the rows come from (schema version 5):

* root spans: knowable per span, so ``chainmap_chain_minute_root_mv`` adds them to
  ``chainmap_chain_minute`` at insert time;
* other spans: the parent's tags are needed and an insert block need not hold the parent,
  so :func:`refresh_entries` runs ``sql/inferred_entries.sql`` over closed slices (up to
  ``now - rollup.LAG_SECONDS``) into ``chainmap_inferred_entry_minute``, with the edge
  rollup's pending/watermark protocol under the rollup state ``entries`` (an interrupted
  slice is deleted and redone). Health reads that table below the watermark and runs the
  same SQL live above it (:func:`live_params`), so fresh spans count at once. Reads never
  write: the rollup is refreshed by ``chainmap serve``'s background loop, ``chainmap schema
  apply`` and ``chainmap rollup refresh``; until then health pairs the whole scan live.

Parents are read from :data:`REACH_SECONDS` before a slice; a parent that started earlier,
is not stored, or is not tagged counts as carrying no chain.
"""

from __future__ import annotations

import logging
import threading
import time

from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.storage.store import TraceStore

logger = logging.getLogger(__name__)

ROLLUP = "entries"
TABLE = "chainmap_inferred_entry_minute"
#: A span's parent is looked for this far before the span's slice.
REACH_SECONDS = 60
#: Slices end this long before now, as the edge rollup's do (spans still arriving).
LAG_SECONDS = 120
SLICE_SECONDS = 3600

_NS = 1_000_000_000
_MINUTE_NS = 60 * _NS
_GUARD = threading.Lock()

_STATE_SQL = """SELECT min(Since), max(Watermark), max(Pending)
FROM {db}.chainmap_rollup_state
WHERE Rollup = {{rollup:String}} AND Catalog = 0"""
_WRITE_STATE_SQL = """INSERT INTO {db}.chainmap_rollup_state
    (Rollup, Catalog, Since, Watermark, Pending, Updated)
SELECT {{rollup:String}}, 0, {{since:Int64}}, {{watermark:Int64}}, {{pending:Int64}}, now()
SETTINGS insert_distributed_sync = 1"""
_NEXT_SPAN_SQL = """SELECT count(), toUnixTimestamp64Nano(min(Timestamp))
FROM {db}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{start:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{until:Int64}})
  AND TraceId != '' AND SpanAttributes['chain.ids'] != ''"""
_DELETE_SQL = """ALTER TABLE {db}.chainmap_inferred_entry_minute{local} {on_cluster}
DELETE WHERE Minute >= toDateTime({{start:Int64}}) AND Minute < toDateTime({{end:Int64}})
SETTINGS mutations_sync = 2"""


def _floor_minute(ns: int) -> int:
    return ns - ns % _MINUTE_NS


def read_state(store: TraceStore) -> tuple[int, int, int]:
    """``(since, watermark, pending)`` in ns (zeros before the first refresh)."""
    since, watermark, pending = store.query(
        _STATE_SQL.format(db=store.database), {"rollup": ROLLUP}
    ).result_rows[0]
    return int(since or 0), int(watermark or 0), int(pending or 0)


def live_params(start_ns: int, end_ns: int) -> dict[str, int]:
    """Bind values of ``sql/inferred_entries.sql`` for spans starting in ``[start, end)``."""
    return {"inf_start": start_ns, "inf_end": end_ns, "inf_reach": REACH_SECONDS * _NS}


def refresh_entries(store: TraceStore, until_ns: int | None = None) -> int:
    """Roll up the inferred entries of spans started before ``until_ns`` (default
    ``now - LAG``); returns the watermark. Idempotent and cheap when nothing is due."""
    from chainmap_otel.analysis.rollup import cluster_parts

    until = _floor_minute(until_ns if until_ns is not None else time.time_ns() - LAG_SECONDS * _NS)
    db = store.database
    insert = f"INSERT INTO {db}.{TABLE}\n" + load_sql("inferred_entries", db)
    insert += "\nSETTINGS insert_distributed_sync = 1"
    with _GUARD:
        since, watermark, pending = read_state(store)

        def run_slice(first: int, start: int, end: int) -> None:
            _write_state(store, first, start, end)
            store.command(insert, live_params(start, end))
            _write_state(store, first, end, end)

        if since and pending > watermark:
            store.command(
                _DELETE_SQL.format(db=db, **cluster_parts()),
                {"start": watermark // _NS, "end": pending // _NS},
            )
            run_slice(since, watermark, pending)
            watermark = pending
        start = watermark
        if not since:
            first = _next_span_ns(store, 0, until)
            # No tagged span yet: start after ``until``, so health never scans the past
            # of an untagged store for tags.
            since = start = until if first is None else _floor_minute(first)
            if first is None:
                _write_state(store, since, start, start)
        slice_ns = SLICE_SECONDS * _NS
        while start < until:
            end = min(until, (start // slice_ns + 1) * slice_ns)
            if _next_span_ns(store, start, end) is None:
                following = _next_span_ns(store, end, until)
                start = until if following is None else max(end, _floor_minute(following))
                _write_state(store, since, start, start)
                continue
            run_slice(since, start, end)
            start = end
        return start


def analysis_watermark(store: TraceStore) -> int | None:
    """The watermark health reads the rollup below (and pairs live above); never refreshed
    here (reads never write). None when the store has no inferred-entry table (schema older
    than version 5)."""
    if not store.table_exists(TABLE):
        return None
    return read_state(store)[1]


def _write_state(store: TraceStore, since: int, watermark: int, pending: int) -> None:
    store.command(
        _WRITE_STATE_SQL.format(db=store.database),
        {"rollup": ROLLUP, "since": since, "watermark": watermark, "pending": pending},
    )


def _next_span_ns(store: TraceStore, start_ns: int, until_ns: int) -> int | None:
    count, first = store.query(
        _NEXT_SPAN_SQL.format(db=store.database), {"start": start_ns, "until": until_ns}
    ).result_rows[0]
    return int(first) if count else None
