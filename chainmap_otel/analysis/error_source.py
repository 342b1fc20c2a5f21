"""Where a trace failed: its first Error span by start time and its deepest one.

Trace lists show both next to each failing trace. The first is where the failure showed up
first; the deepest (most ancestors) is usually where it began, since a failure propagates
up as each caller fails in turn. A trace's spans are read only for traces with an Error
span, at most a search's limit of them (``sql/trace_error_spans.sql``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.storage.store import TraceStore

__all__ = ["error_sources"]


def error_sources(
    store: TraceStore, window: TimeWindow, trace_ids: Sequence[str], slack_ns: int
) -> dict[str, dict[str, Any]]:
    """trace id -> ``{"first": span, "deepest": span}`` for the ``trace_ids`` (traces
    starting in ``window``) that have an Error span; each span is ``{"span_id", "service",
    "operation", "message"}``."""
    if not trace_ids:
        return {}
    sql = load_sql("trace_error_spans", store.database)
    params = {**window.params(), "slack_ns": slack_ns, "trace_ids": list(trace_ids)}
    by_trace: dict[str, list[Sequence[Any]]] = defaultdict(list)
    for row in store.query(sql, params).result_rows:
        by_trace[str(row[0])].append(row)
    found = {}
    for trace_id, rows in by_trace.items():
        parents = {str(r[1]): str(r[2]) for r in rows}
        failed = sorted((r for r in rows if r[4]), key=lambda r: (int(r[3]), str(r[1])))
        if not failed:
            continue
        deepest = max(failed, key=lambda r: _depth(str(r[1]), parents))
        found[trace_id] = {"first": _span(failed[0]), "deepest": _span(deepest)}
    return found


def _depth(span_id: str, parents: dict[str, str]) -> int:
    """Ancestors of ``span_id`` that are stored (a cycle or a missing parent ends the walk)."""
    depth, seen = 0, {span_id}
    parent = parents.get(span_id, "")
    while parent in parents and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = parents[parent]
    return depth


def _span(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "span_id": str(row[1]),
        "service": str(row[5]),
        "operation": str(row[6]),
        "message": str(row[7]),
    }
