"""The merged-trace rollup: one row per trace of a closed slice, for trace search.

``chainmap_trace_summary`` gets one row per trace and insert block; the rows of one trace
merge only when ClickHouse merges their parts, so ordering a window's traces by duration
means merging every trace of the window first (2.35M traces for a week at 10M spans).
:func:`refresh_traces` merges them once, slice by slice, into ``chainmap_trace_merged``
(schema version 8) with ``sql/trace_merge.sql`` -- the query the live search merges with --
and trace search (:mod:`chainmap_otel.analysis.traces`) reads that table below the
rollup's watermark and merges the summary live above it.

* **Closed slices.** A slice keeps the traces whose first span starts in it and merges their
  rows from :data:`~chainmap_otel.analysis.traces.SLACK_NS` before to ``SLACK_NS`` after it,
  as the live search does, so both give a trace the same extent. A slice is closed once
  ``SLACK_NS`` plus :data:`~chainmap_otel.analysis.rollups.protocol.LAG_SECONDS` have passed
  after its end: the spans of its traces (up to the slack long) have had ``LAG_SECONDS`` to
  arrive. A span arriving later than that into a rolled-up trace is not in its row (the
  trace's other spans are); a whole trace stored later than that is found once
  :func:`rewind_traces` moves the watermark back below it, which ``chainmap ingest`` does
  when it stores spans below the watermark.
* **Protocol.** :mod:`~chainmap_otel.analysis.rollups.protocol` under the rollup state
  ``traces``: pending/watermark per slice, an interrupted slice deleted and redone, empty
  stretches skipped; refreshed with the other rollups by ``chainmap serve``'s loop,
  ``chainmap schema apply`` and ``chainmap rollup refresh``. Reads never write.
"""

from __future__ import annotations

import threading
from typing import Any

from chainmap_otel.analysis.rollups import protocol
from chainmap_otel.analysis.rollups.protocol import (
    Level,
    LevelState,
    ProgressCallback,
    SliceRollup,
    SliceWork,
)
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.storage.store import TraceStore

__all__ = [
    "ROLLUP",
    "SLACK_NS",
    "TABLE",
    "analysis_watermark",
    "closed_until",
    "insert_sql",
    "invalidate_traces",
    "read_state",
    "refresh_traces",
    "rewind_traces",
    "slice_params",
    "trace_merge_sql",
]

ROLLUP = "traces"
TABLE = "chainmap_trace_merged"
#: Rows of the summary read either side of a window or slice (traces lasting up to this long
#: are merged whole); the live search and the rollup use the same.
SLACK_NS = 3600 * 10**9


def trace_merge_sql(database: str, rows: str = "1", having: str = "1") -> str:
    """``sql/trace_merge.sql`` for ``database``: the summary rows passing ``rows`` merged per
    trace, the traces passing ``having`` kept."""
    return load_sql("trace_merge", database, rows=rows, having=having)


def insert_sql(store: TraceStore) -> str:
    """The INSERT of one slice's merged traces, bound with :func:`slice_params`."""
    having = (
        "TraceStart >= fromUnixTimestamp64Nano({start_ns:Int64}) "
        "AND TraceStart < fromUnixTimestamp64Nano({end_ns:Int64})"
    )
    return load_sql(
        "trace_rollup", store.database, trace_merge=trace_merge_sql(store.database, having=having)
    )


def slice_params(start_ns: int, end_ns: int) -> dict[str, Any]:
    return {"start_ns": start_ns, "end_ns": end_ns, "slack_ns": SLACK_NS}


LEVEL = Level(
    name=ROLLUP,
    table=TABLE,
    delete="""ALTER TABLE {db}.chainmap_trace_merged{local} {on_cluster}
DELETE WHERE Start >= fromUnixTimestamp64Nano({{start:Int64}})
    AND Start < fromUnixTimestamp64Nano({{end:Int64}})
SETTINGS mutations_sync = 2""",
    next_data="""SELECT count(), toUnixTimestamp64Nano(min(Start))
FROM {db}.chainmap_trace_summary
WHERE Start >= fromUnixTimestamp64Nano({{start:Int64}})
  AND Start < fromUnixTimestamp64Nano({{until:Int64}})""",
    label="merged-trace rollup",
    work="merging traces",
)
JOB = SliceRollup(ROLLUP, (LEVEL,))


def closed_until(now_ns: int | None = None) -> int:
    """The end of the last closed slice: ``now - SLACK - LAG``."""
    return protocol.closed_until(now_ns) - SLACK_NS


def read_state(store: TraceStore) -> LevelState:
    """``(since, watermark, pending)`` in ns (zeros before the first refresh)."""
    return LEVEL.read(store)


def refresh_traces(
    store: TraceStore,
    until_ns: int | None = None,
    stop: threading.Event | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Merge the traces started before ``until_ns`` (default :func:`closed_until`) into
    ``chainmap_trace_merged``; returns the watermark. A store without the table (schema
    older than version 8) is left alone (returns 0)."""
    (run,) = JOB.refresh(
        store,
        until_ns if until_ns is not None else closed_until(),
        (SliceWork.same(lambda: insert_sql(store), slice_params),),
        stop=stop,
        progress=progress,
    )
    return run.state.watermark_ns


def analysis_watermark(store: TraceStore) -> int | None:
    """Trace starts below this are read from ``chainmap_trace_merged``; None without the
    table. Never refreshed here (reads never write)."""
    if not store.table_exists(TABLE):
        return None
    return read_state(store).watermark_ns


def rewind_traces(store: TraceStore, start_ns: int) -> bool:
    """Merge again the traces from ``start_ns`` on (``chainmap ingest`` stored spans there
    after the rollup passed it); True when the rollup had."""
    return JOB.rewind(store, start_ns)


def invalidate_traces(store: TraceStore) -> None:
    """Drop the merged traces and their state; the next refresh rebuilds them."""
    JOB.invalidate(store)
