"""Critical paths: Jaeger's algorithm per trace, and where a chain's latency goes.

Per trace (:func:`compute_sections`, the jaeger-ui CriticalPath semantics, iterative):

1. a span whose parent is not in the trace is a root; several roots hang under a
   virtual root spanning them all (its own gaps are not reported);
2. CONSUMER children of PRODUCER spans are dropped (asynchronous: the producer does not
   wait for them), with their subtrees;
3. top-down, each child is clipped to its (already clipped) parent's interval; a child
   entirely before or after its parent is dropped with its subtree;
4. from the root's end walk backwards: take the last-finishing child that ends before
   the current point (any child on the first visit), emit the parent's section after it
   and descend; with no such child emit the span's own section from its start and
   return to the parent with the current point set to the span's start.

Sections come back in chronological order. Per chain (:func:`chain_critical_path`):
only the chain's part of each trace counts (the subtree of the span where the chain
begins, :func:`chain_subtree`; the whole trace when it was classified from its root);
the chain's traces in the window are ranked by that part's latency; at most ``sample_cap`` of them
(default :data:`DEFAULT_SAMPLE_CAP`, a deterministic sample by TraceId hash) plus the
slowest 5 % (at most ``sample_cap`` too) are fetched, only six span columns, and each
service's and operation's share of critical-path time is summed with numpy, for all
sampled traces and for the slowest 5 %.

JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainmap_otel.analysis.membership import (
    KIND_SQL,
    WINDOW_SQL,
    classify_expression,
    require_chain,
    tagged_chains_sql,
)
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.errors import NotFoundError, ParameterError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

#: Traces fetched per chain aggregate (and again at most this many slowest ones).
DEFAULT_SAMPLE_CAP = 2000
SLOW_FRACTION = 0.05
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_VIRTUAL_ROOT = "\0root"


@dataclass(frozen=True)
class SpanTiming:
    """The span fields the algorithm reads; times in Unix nanoseconds."""

    span_id: str
    parent_id: str
    service: str
    name: str
    kind: str  # lower-case: server, client, producer, consumer, internal
    start: int
    end: int
    entry_ids: str = ""  # chain.entry_ids: the chains that begin at this span


@dataclass(frozen=True)
class Section:
    span_id: str
    service: str
    name: str
    start_unix_nano: int
    end_unix_nano: int

    def to_json(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "service": self.service,
            "name": self.name,
            "start_unix_nano": self.start_unix_nano,
            "end_unix_nano": self.end_unix_nano,
        }


def compute_sections(spans: Sequence[SpanTiming]) -> list[Section]:
    """The critical path of one trace's spans, chronological (see the module docstring)."""
    if not spans:
        return []
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[str]] = {}
    for span in spans:
        parent = by_id.get(span.parent_id) if span.parent_id != span.span_id else None
        if parent is None:
            children.setdefault(_VIRTUAL_ROOT, []).append(span.span_id)
        elif not (span.kind == "consumer" and parent.kind == "producer"):
            children.setdefault(parent.span_id, []).append(span.span_id)
    roots = children.get(_VIRTUAL_ROOT, [])
    if not roots:  # a parent cycle: nothing to walk from
        return []
    # Clip top-down; `interval` holds the kept spans' clipped intervals.
    interval: dict[str, tuple[int, int]] = {
        _VIRTUAL_ROOT: (min(by_id[r].start for r in roots), max(by_id[r].end for r in roots))
    }
    kept: dict[str, list[str]] = {}
    queue = [_VIRTUAL_ROOT]
    while queue:
        parent_id = queue.pop()
        p_start, p_end = interval[parent_id]
        for child_id in children.get(parent_id, ()):
            child = by_id[child_id]
            if child_id in interval or child.start >= p_end or child.end <= p_start:
                continue
            interval[child_id] = (max(child.start, p_start), min(child.end, p_end))
            kept.setdefault(parent_id, []).append(child_id)
            queue.append(child_id)
    # Children by end time, latest first; a cursor per parent only moves forward because
    # the point a parent is revisited at (a child's start) only moves back in time.
    ordered = {
        pid: sorted(kids, key=lambda k: (-interval[k][1], interval[k][0]))
        for pid, kids in kept.items()
    }
    cursor: dict[str, int] = {}
    parent_of = {kid: pid for pid, kids in kept.items() for kid in kids}
    out: list[Section] = []

    def emit(span_id: str, start: int, end: int) -> None:
        if span_id != _VIRTUAL_ROOT and end > start:
            span = by_id[span_id]
            out.append(Section(span_id, span.service, span.name, start, end))

    current, point = _VIRTUAL_ROOT, interval[_VIRTUAL_ROOT][1]
    first_visit = True
    while True:
        kids = ordered.get(current, [])
        index = cursor.get(current, 0)
        if not first_visit:
            while index < len(kids) and interval[kids[index]][1] >= point:
                index += 1
        cursor[current] = index
        if index < len(kids):
            next_id = kids[index]
            cursor[current] = index + 1
            emit(current, interval[next_id][1], point)
            current, point, first_visit = next_id, interval[next_id][1], True
            continue
        start = interval[current][0]
        emit(current, start, point)
        if current == _VIRTUAL_ROOT:
            break
        current, point, first_visit = parent_of[current], start, False
    out.reverse()
    return out


_SPANS_SQL = f"""
SELECT TraceId, SpanId, ParentSpanId, toString(ServiceName), toString(SpanName), {KIND_SQL},
       toUnixTimestamp64Nano(Timestamp) AS start, Duration, SpanAttributes['chain.entry_ids']
FROM {{db}}.otel_traces
WHERE TraceId IN {{trace_ids:Array(String)}} {{window}}"""

_TRACE_RANGE_SQL = """
SELECT toUnixTimestamp(min(Start)), toUnixTimestamp(max(End)), count()
FROM {db}.otel_traces_trace_id_ts WHERE TraceId = {trace_id:String}"""


def _rows_to_timings(rows: Iterable[Sequence[Any]]) -> dict[str, list[SpanTiming]]:
    traces: dict[str, list[SpanTiming]] = {}
    for trace_id, span_id, parent, service, name, kind, start, duration, entry_ids in rows:
        traces.setdefault(str(trace_id), []).append(
            SpanTiming(
                str(span_id),
                str(parent),
                str(service),
                str(name),
                str(kind),
                int(start),
                int(start) + int(duration),
                str(entry_ids),
            )
        )
    return traces


def chain_subtree(spans: Sequence[SpanTiming], chain_id: str) -> list[SpanTiming]:
    """The part of a trace that is the chain: the subtree of the span where it begins.

    A nested chain (B3 inside B1) owns only its entry span and descendants, so its
    latency is not charged with the outer chains' time. Traces without a tagged entry
    span (classified from their root at query time) are the chain as a whole.
    """
    entries = [s for s in spans if s.entry_ids and chain_id in s.entry_ids.split(",")]
    if not entries:
        return list(spans)
    root = min(entries, key=lambda s: s.start)
    children: dict[str, list[SpanTiming]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
    subtree, queue = [root], [root.span_id]
    while queue:
        for child in children.get(queue.pop(), ()):
            if child is not root:
                subtree.append(child)
                queue.append(child.span_id)
    return subtree


def critical_path(store: TraceStore, trace_id: str) -> dict[str, Any]:
    """``{"trace_id", "sections": [...]}`` for one stored trace.

    A malformed id is a ParameterError (``trace_id``), an unknown one a NotFoundError.
    """
    wanted = trace_id.strip().lower()
    if not _TRACE_ID.match(wanted):
        raise ParameterError(
            "trace_id",
            trace_id,
            "32 hex characters",
            "{name} {value} is not {allowed}; copy it from X-Trace-ID or the trace view",
        )
    window = ""
    params: dict[str, Any] = {}
    if store.table_exists("otel_traces_trace_id_ts"):
        sql = _TRACE_RANGE_SQL.replace("{db}", store.database)
        first, last, found = store.query(sql, {"trace_id": wanted}).result_rows[0]
        if found:
            # The Collector's lookup table bounds the scan (second precision: pad it).
            window = (
                "AND Timestamp >= fromUnixTimestamp64Nano({first_ns:Int64}) "
                "AND Timestamp <= fromUnixTimestamp64Nano({last_ns:Int64})"
            )
            params = {"first_ns": (int(first) - 1) * 10**9, "last_ns": (int(last) + 2) * 10**9}
    sql = _SPANS_SQL.replace("{db}", store.database).replace("{window}", window)
    rows = store.query(sql, {**params, "trace_ids": [wanted]}).result_rows
    if not rows:
        raise NotFoundError(
            "trace",
            wanted,
            f"trace {wanted} not found in {store.url_for_display}; check the id and the store URL",
        )
    spans = _rows_to_timings(rows)[wanted]
    return {"trace_id": wanted, "sections": [s.to_json() for s in compute_sections(spans)]}


_CHAIN_TRACES_SQL = f"""
SELECT count() AS traces,
       quantileExact({{slow_q:Float64}})(extent) AS slow_threshold,
       groupArraySorted({{cap:UInt32}})((-extent, TraceId)) AS slowest,
       arrayMap(x -> x.2, groupArraySorted({{cap:UInt32}})((cityHash64(TraceId), TraceId))) AS sample
FROM (
    SELECT TraceId,
           -- The chain's own latency: its entry span's duration, else the trace's extent.
           maxIf(Duration, has(splitByChar(',', SpanAttributes['chain.entry_ids']), {{chain_id:String}}))
               AS entry_duration,
           if(entry_duration > 0, toInt64(entry_duration),
              toInt64(max(toUnixTimestamp64Nano(Timestamp) + Duration) - min(toUnixTimestamp64Nano(Timestamp))))
               AS extent,
           arrayDistinct(arrayConcat(groupUniqArrayArray({tagged_chains_sql()}),
               groupUniqArrayArrayIf({{classify}}, SpanAttributes['chain.ids'] = ''))) AS chains
    FROM {{db}}.otel_traces
    WHERE {WINDOW_SQL} AND TraceId != ''
    GROUP BY TraceId
    HAVING has(chains, {{chain_id:String}})
)"""


@dataclass(frozen=True)
class Share:
    service: str
    name: str | None
    share: float
    mean_ms: float

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"service": self.service}
        if self.name is not None:
            data["name"] = self.name
        data.update(share=round(self.share, 6), mean_ms=round(self.mean_ms, 3))
        return data


@dataclass(frozen=True)
class ChainCriticalPath:
    """Where a chain's critical-path time goes, for all (sampled) traces and the slowest 5 %."""

    chain_id: str
    window: TimeWindow
    traces: int
    sampled: int
    slow_traces: int
    slow_threshold_ms: float
    sample_cap: int
    services: list[Share]
    operations: list[Share]
    slow_services: list[Share]
    slow_operations: list[Share]

    def to_json(self) -> dict[str, Any]:
        """The shape in ``docs/json-contract.md``; shares sum to 1 within each list. Each
        block's ``traces`` is the number of traces its shares were computed from
        (``sampled_traces`` and ``slow_traces``), the count to print next to it."""
        return {
            "chain_id": self.chain_id,
            "window": self.window.to_json(),
            "traces": self.traces,
            "sampled_traces": self.sampled,
            "sample_cap": self.sample_cap,
            "slow_traces": self.slow_traces,
            "slow_threshold_ms": self.slow_threshold_ms,
            "all": {
                "traces": self.sampled,
                "services": [s.to_json() for s in self.services],
                "operations": [s.to_json() for s in self.operations],
            },
            "slowest_5pct": {
                "traces": self.slow_traces,
                "services": [s.to_json() for s in self.slow_services],
                "operations": [s.to_json() for s in self.slow_operations],
            },
        }


def _shares(
    keys: list[tuple[str, str | None]],
    codes: np.ndarray,
    durations: np.ndarray,
    mask: np.ndarray,
    traces: int,
) -> list[Share]:
    if traces == 0 or not mask.any():
        return []
    totals = np.bincount(codes[mask], weights=durations[mask], minlength=len(keys))
    grand = float(totals.sum()) or 1.0
    order = np.argsort(-totals, kind="stable")
    return [
        Share(keys[i][0], keys[i][1], float(totals[i]) / grand, float(totals[i]) / traces / 1e6)
        for i in order
        if totals[i] > 0
    ]


def chain_critical_path(
    store: TraceStore,
    catalog: ChainCatalog,
    chain_id: str,
    window: TimeWindow,
    sample_cap: int = DEFAULT_SAMPLE_CAP,
) -> ChainCriticalPath:
    """Critical-path shares of one chain's traces in ``window`` (see the module docstring)."""
    require_chain(catalog, chain_id)
    if sample_cap < 1:
        raise ValueError("sample_cap must be at least 1")
    classify, params = classify_expression(catalog)
    sql = _CHAIN_TRACES_SQL.replace("{db}", store.database).replace("{classify}", classify)
    bound = {
        **params,
        **window.params(),
        "chain_id": chain_id,
        "cap": sample_cap,
        "slow_q": 1 - SLOW_FRACTION,
    }
    traces, threshold, slowest, sample = store.query(sql, bound).result_rows[0]
    traces = int(traces)
    slow_count = min(sample_cap, math.ceil(traces * SLOW_FRACTION)) if traces else 0
    slow_ids = [str(tid) for _, tid in slowest[:slow_count]]
    sample_ids = [str(tid) for tid in sample]
    fetch = sorted(set(slow_ids) | set(sample_ids))
    timings: dict[str, list[SpanTiming]] = {}
    if fetch:
        spans_sql = _SPANS_SQL.replace("{db}", store.database).replace(
            "{window}", f"AND {WINDOW_SQL}"
        )
        timings = _rows_to_timings(
            store.query(spans_sql, {**window.params(), "trace_ids": fetch}).result_rows
        )
    service_keys: dict[tuple[str, str | None], int] = {}
    op_keys: dict[tuple[str, str | None], int] = {}
    rows: list[tuple[int, int, int, int]] = []  # trace index, service code, op code, ns
    trace_index = {tid: i for i, tid in enumerate(fetch)}
    for tid, spans in timings.items():
        for section in compute_sections(chain_subtree(spans, chain_id)):
            s_code = service_keys.setdefault((section.service, None), len(service_keys))
            o_code = op_keys.setdefault((section.service, section.name), len(op_keys))
            rows.append(
                (trace_index[tid], s_code, o_code, section.end_unix_nano - section.start_unix_nano)
            )
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    in_sample = np.isin(np.arange(len(fetch)), [trace_index[t] for t in sample_ids])
    in_slow = np.isin(np.arange(len(fetch)), [trace_index[t] for t in slow_ids])
    sample_mask = in_sample[table[:, 0]] if len(table) else np.zeros(0, dtype=bool)
    slow_mask = in_slow[table[:, 0]] if len(table) else np.zeros(0, dtype=bool)
    durations = table[:, 3].astype(np.float64)
    s_keys, o_keys = list(service_keys), list(op_keys)
    return ChainCriticalPath(
        chain_id=chain_id,
        window=window,
        traces=traces,
        sampled=len(sample_ids),
        slow_traces=len(slow_ids),
        slow_threshold_ms=round(float(threshold) / 1e6, 3) if traces else 0.0,
        sample_cap=sample_cap,
        services=_shares(s_keys, table[:, 1], durations, sample_mask, len(sample_ids)),
        operations=_shares(o_keys, table[:, 2], durations, sample_mask, len(sample_ids)),
        slow_services=_shares(s_keys, table[:, 1], durations, slow_mask, len(slow_ids)),
        slow_operations=_shares(o_keys, table[:, 2], durations, slow_mask, len(slow_ids)),
    )
