"""Chain entries below the root that the insert-time views cannot see.

The rule (:mod:`~chainmap_otel.analysis.membership`): **a chain's entry is the first span,
from the root down, where the chain appears**. ``chainmap_chain_minute``'s views count, at
insert time, the spans that say where a chain begins (``chain.entry_ids``, set by the
chainmap processor or the Collector's generated OTTL) and every root span (tagged: its
chains; untagged: one row the rules classify at query time). The other entries need a
span's ancestors, which an insert block need not hold:

* a tagged span without ``chain.entry`` (a baggage span processor in another language, an
  older SDK, OTTL setting only the ids), or with the candidate marks of the Collector's
  generated OTTL (``chain.tagged_by = collector``: it sees one span at a time, so a rule
  matching a span and its descendant marks both), enters the chains of its ``chain.ids``
  that no ancestor holds;
* an untagged span below the root (a Node, Go or Java service called by a tagged one, or a
  Collector-only fleet) enters the chains its entry rules match at query time, minus those
  an ancestor holds.

:func:`refresh_entries` runs ``sql/inferred_entries.sql`` over closed slices (up to ``now -
LAG_SECONDS``) into ``chainmap_inferred_entry_minute``, under the rollup state ``entries`` of
the protocol every rollup follows (:mod:`~chainmap_otel.analysis.rollups.protocol`: an
interrupted slice is deleted and redone, ``chainmap ingest`` rewinds it). Each
row keeps what its ancestors hold: ``AboveChains`` (tagged ancestors' chains, untagged rows
only) and ``AboveFields`` (untagged ancestors' rule fields), so the rules, which can change,
are applied when health reads (:func:`~chainmap_otel.analysis.membership.entered_chains_expression`).
Health reads that table below the watermark and runs the same SQL live above it
(:func:`live_params`), so fresh spans count at once. Reads never write: the rollup is
refreshed by ``chainmap serve``'s background loop, ``chainmap schema apply`` and ``chainmap
rollup refresh``; until then health pairs the whole scan live.

Ancestors are read from :data:`REACH_SECONDS` before a slice; one that started earlier or is
not stored counts as holding no chain.
"""

from __future__ import annotations

import threading

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

ROLLUP = "entries"
TABLE = "chainmap_inferred_entry_minute"
#: A span's parent is looked for this far before the span's slice.
REACH_SECONDS = 60
#: A slice with fewer non-root spans grows by whole slices (up to a day; see the protocol).
SLICE_SPANS = 500_000

_NS = 1_000_000_000


def live_params(start_ns: int, end_ns: int) -> dict[str, int]:
    """Bind values of ``sql/inferred_entries.sql`` for spans starting in ``[start, end)``."""
    return {"inf_start": start_ns, "inf_end": end_ns, "inf_reach": REACH_SECONDS * _NS}


def _insert_sql(store: TraceStore) -> str:
    db = store.database
    insert = f"INSERT INTO {db}.{TABLE}\n" + load_sql("inferred_entries", db)
    return insert + "\nSETTINGS insert_distributed_sync = 1"


LEVEL = Level(
    name=ROLLUP,
    table=TABLE,
    delete="""ALTER TABLE {db}.chainmap_inferred_entry_minute{local} {on_cluster}
DELETE WHERE Minute >= toDateTime(intDiv({{start:Int64}}, 1000000000))
    AND Minute < toDateTime(intDiv({{end:Int64}}, 1000000000))
SETTINGS mutations_sync = 2""",
    # Root spans are counted at insert time: a store of root spans alone is never scanned.
    next_data="""SELECT count(), toUnixTimestamp64Nano(min(Timestamp))
FROM {db}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{start:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{until:Int64}})
  AND TraceId != '' AND ParentSpanId != ''""",
    label="inferred-entry rollup",
    work="finding entries below the root",
    slice_rows=SLICE_SPANS,
)
JOB = SliceRollup(ROLLUP, (LEVEL,))


def read_state(store: TraceStore) -> LevelState:
    """``(since, watermark, pending)`` in ns (zeros before the first refresh)."""
    return LEVEL.read(store)


def refresh_entries(
    store: TraceStore,
    until_ns: int | None = None,
    *,
    stop: threading.Event | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Roll up the inferred entries of spans started before ``until_ns`` (default
    ``now - LAG``); returns the watermark. Idempotent and cheap when nothing is due; a
    store without the table (schema older than version 5) is left alone (returns 0)."""
    (run,) = JOB.refresh(
        store,
        until_ns if until_ns is not None else closed_until(),
        (SliceWork.same(lambda: _insert_sql(store), live_params),),
        stop=stop,
        progress=progress,
    )
    return run.state.watermark_ns


def rewind_entries(store: TraceStore, start_ns: int) -> bool:
    """Roll up again the entries from ``start_ns`` on (``chainmap ingest`` stored spans there
    after the rollup passed it); True when the rollup had."""
    return JOB.rewind(store, start_ns)


def analysis_watermark(store: TraceStore) -> int | None:
    """The watermark health reads the rollup below (and pairs live above); never refreshed
    here (reads never write). None when the store has no inferred-entry table (schema older
    than version 5)."""
    if not store.table_exists(TABLE):
        return None
    return read_state(store).watermark_ns
