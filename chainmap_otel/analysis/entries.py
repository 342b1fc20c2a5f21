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
  rollup's pending/watermark protocol under the rollup state ``entries``
  (:mod:`~chainmap_otel.analysis.slices`: an interrupted slice is deleted and redone). Health reads that table below the watermark and runs the
  same SQL live above it (:func:`live_params`), so fresh spans count at once. Reads never
  write: the rollup is refreshed by ``chainmap serve``'s background loop, ``chainmap schema
  apply`` and ``chainmap rollup refresh``; until then health pairs the whole scan live.

Parents are read from :data:`REACH_SECONDS` before a slice; a parent that started earlier,
is not stored, or is not tagged counts as carrying no chain.
"""

from __future__ import annotations

import time

from chainmap_otel.analysis.slices import SliceRollup
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.storage.store import TraceStore

ROLLUP = "entries"
TABLE = "chainmap_inferred_entry_minute"
#: A span's parent is looked for this far before the span's slice.
REACH_SECONDS = 60
#: Slices end this long before now, as the edge rollup's do (spans still arriving).
LAG_SECONDS = 120

_NS = 1_000_000_000


def live_params(start_ns: int, end_ns: int) -> dict[str, int]:
    """Bind values of ``sql/inferred_entries.sql`` for spans starting in ``[start, end)``."""
    return {"inf_start": start_ns, "inf_end": end_ns, "inf_reach": REACH_SECONDS * _NS}


def _insert_sql(store: TraceStore) -> str:
    db = store.database
    insert = f"INSERT INTO {db}.{TABLE}\n" + load_sql("inferred_entries", db)
    return insert + "\nSETTINGS insert_distributed_sync = 1"


JOB = SliceRollup(
    name=ROLLUP,
    table=TABLE,
    insert=_insert_sql,
    params=live_params,
    delete="""ALTER TABLE {db}.chainmap_inferred_entry_minute{local} {on_cluster}
DELETE WHERE Minute >= toDateTime(intDiv({{start:Int64}}, 1000000000))
    AND Minute < toDateTime(intDiv({{end:Int64}}, 1000000000))
SETTINGS mutations_sync = 2""",
    # Only tagged spans can be inferred entries: an untagged store is never scanned.
    next_data="""SELECT count(), toUnixTimestamp64Nano(min(Timestamp))
FROM {db}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{start:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{until:Int64}})
  AND TraceId != '' AND SpanAttributes['chain.ids'] != ''""",
)


def read_state(store: TraceStore) -> tuple[int, int, int]:
    """``(since, watermark, pending)`` in ns (zeros before the first refresh)."""
    return JOB.read_state(store)


def refresh_entries(store: TraceStore, until_ns: int | None = None) -> int:
    """Roll up the inferred entries of spans started before ``until_ns`` (default
    ``now - LAG``); returns the watermark. Idempotent and cheap when nothing is due."""
    return JOB.refresh(
        store, until_ns if until_ns is not None else time.time_ns() - LAG_SECONDS * _NS
    )


def analysis_watermark(store: TraceStore) -> int | None:
    """The watermark health reads the rollup below (and pairs live above); never refreshed
    here (reads never write). None when the store has no inferred-entry table (schema older
    than version 5)."""
    return JOB.analysis_watermark(store)
