"""Critical paths: Jaeger's algorithm per trace, and where a chain's latency goes.

Per trace (:func:`critical_path`): the jaeger-ui CriticalPath algorithm,
:func:`~chainmap_otel.analysis.path_sections.compute_sections`, over the stored spans.

Per chain (:func:`chain_critical_path`): only the chain's part of each trace counts (the
subtree of the span that marks where the chain begins,
:func:`~chainmap_otel.analysis.path_sections.chain_subtree`; the whole trace when no span
marks it: a trace classified at query time, or tagged without entry marks). A trace is in
the window when its first span starts there, and belongs to the chain by the membership rule
(:mod:`~chainmap_otel.analysis.membership`): a span tagged with it, or an untagged span its
entry rules match, evaluated now over the rule fields of the trace's untagged spans; a
window with an environment keeps the traces whose root span is in it (one environment's
aggregate never mixes in another's). The
chain's traces are counted and ranked by that part's latency; at most ``sample_cap`` of them
(default :data:`DEFAULT_SAMPLE_CAP`, a deterministic sample by TraceId hash) plus the slowest
5 % (at most ``sample_cap`` too) give each service's and operation's share of critical-path
time, for all sampled traces and for the slowest 5 %.

Traces starting below the critical-path rollup's watermark are read from
``chainmap_critical_path`` (:mod:`~chainmap_otel.analysis.rollups.critical_paths`: each
trace's parts walked once, when its slice closed); the others (the live tail, or everything
on a store without the rollup) are ranked from their spans in one query and the sampled
ones among them walked here with the same functions, so both give the same answer (tested).
Every span read is narrowed by time.

JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chainmap_otel.analysis import instances
from chainmap_otel.analysis.membership import (
    KIND_SQL,
    SqlParams,
    require_chain,
    rule_sql,
    tuple_columns,
)
from chainmap_otel.analysis.path_sections import (
    Section,
    SpanTiming,
    chain_subtree,
    compute_sections,
    entry_chains,
    part_path,
    span_timing,
)
from chainmap_otel.analysis.rollups import critical_paths
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import TimeWindow, environment_params
from chainmap_otel.errors import NotFoundError, ParameterError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = [
    "DEFAULT_SAMPLE_CAP",
    "ChainCriticalPath",
    "Section",
    "Share",
    "SpanTiming",
    "chain_critical_path",
    "chain_subtree",
    "compute_sections",
    "critical_path",
]

#: Traces fetched per chain aggregate (and again at most this many slowest ones).
DEFAULT_SAMPLE_CAP = 2000
SLOW_FRACTION = 0.05
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


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
    for row in rows:
        traces.setdefault(str(row[0]), []).append(span_timing(row[1:]))
    return traces


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
    first_ns = min(s.start for s in spans)
    instance = instances.trace_instance(store, wanted, first_ns, max(s.end for s in spans))
    return {
        "trace_id": wanted,
        "sections": [s.to_json() for s in compute_sections(spans)],
        "instance": instance.to_json() if instance is not None else None,
    }


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
    end_to_end: instances.EndToEnd

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
            "through_queues": self.end_to_end.to_json(),
        }


#: Stands in for chainmap_critical_path on a store without it (no rows).
_NO_ROLLUP_SQL = (
    "(SELECT * FROM (SELECT toDateTime64(0, 9) AS Start, '' AS TraceId, '' AS EntryChain, "
    "toUInt64(0) AS LatencyNs, CAST([], 'Array(String)') AS Chains, "
    "CAST([], 'Array(String)') AS EntryChains, "
    "CAST([], 'Array(Tuple(String, String, String, String, String, String))') "
    "AS UntaggedFields, '' AS Environment) WHERE 0)"
)


#: The rolled-up paths of the sampled traces: the chain's own part, else the whole trace.
_ROLLED_PATHS_SQL = """
SELECT TraceId, Services, Names, SelfNs
FROM {db}.chainmap_critical_path
WHERE EntryChain IN ({{chain:String}}, '') AND TraceId IN {{trace_ids:Array(String)}}
  AND Start >= fromUnixTimestamp64Nano({{start_ns:Int64}})
  AND Start < fromUnixTimestamp64Nano({{rolled_to_ns:Int64}})
ORDER BY TraceId, EntryChain = ''
LIMIT 1 BY TraceId"""


#: Stands in for sql/critical_path_live.sql when no span lies past the rolled-up part.
_NO_LIVE_SQL = "SELECT '' AS TraceId, toUInt64(0) AS LatencyNs, toUInt8(0) AS Rolled WHERE 0"
_SPANS_AFTER_SQL = """SELECT count() FROM {db}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{start:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{end:Int64}}) AND TraceId != ''"""


def _spans_after(store: TraceStore, start_ns: int, end_ns: int) -> bool:
    """Whether a span starts in ``[start, end)``: the live part's SQL costs tens of ms to
    plan even over nothing (a window ending below the rollup's watermark)."""
    if start_ns >= end_ns:
        return False
    sql = _SPANS_AFTER_SQL.format(db=store.database)
    return bool(store.query(sql, {"start": start_ns, "end": end_ns}).result_rows[0][0])


def member_sql(catalog: ChainCatalog, chain_id: str) -> tuple[str, dict[str, Any]]:
    """The test that a trace belongs to ``chain_id`` over its ``Chains`` (tagged) and
    ``UntaggedFields`` (rule fields of its untagged spans), and its bound parameters."""
    chain = require_chain(catalog, chain_id)
    params = SqlParams("cp")
    rules = [t for t in (rule_sql(r, tuple_columns("u_"), params) for r in chain.entry) if t]
    untagged = " OR ".join(rules) or "0"
    return (
        f"has(Chains, {{chain:String}}) OR arrayExists(u_ -> {untagged}, UntaggedFields)",
        params.values,
    )


def _shares(totals: dict[tuple[str, str | None], int], traces: int) -> list[Share]:
    """Each key's share of the summed critical-path time, largest first (ties by key)."""
    grand = sum(totals.values())
    if traces == 0 or grand <= 0:
        return []
    order = sorted(
        ((ns, key) for key, ns in totals.items() if ns > 0),
        key=lambda item: (-item[0], item[1][0], item[1][1] or ""),
    )
    return [Share(key[0], key[1], ns / grand, ns / traces / 1e6) for ns, key in order]


def _tally(
    paths: dict[str, list[tuple[str, str, int]]], trace_ids: Iterable[str]
) -> tuple[list[Share], list[Share]]:
    """Service and operation shares over ``trace_ids`` (each with its path's operations)."""
    services: dict[tuple[str, str | None], int] = {}
    operations: dict[tuple[str, str | None], int] = {}
    count = 0
    for trace_id in trace_ids:
        count += 1
        for service, name, ns in paths.get(trace_id, ()):
            services[(service, None)] = services.get((service, None), 0) + ns
            operations[(service, name)] = operations.get((service, name), 0) + ns
    return _shares(services, count), _shares(operations, count)


def chain_critical_path(
    store: TraceStore,
    catalog: ChainCatalog,
    chain_id: str,
    window: TimeWindow,
    sample_cap: int = DEFAULT_SAMPLE_CAP,
) -> ChainCriticalPath:
    """Critical-path shares of one chain's traces in ``window`` (see the module docstring)."""
    member, member_params = member_sql(catalog, chain_id)
    if sample_cap < 1:
        raise ValueError("sample_cap must be at least 1")
    start, end = window.start_ns, window.end_ns
    watermark = critical_paths.analysis_watermark(store)
    rolled_to = start if watermark is None else max(start, min(end, watermark))
    reach = critical_paths.REACH_SECONDS * 1_000_000_000
    live_sql = _NO_LIVE_SQL
    if _spans_after(store, rolled_to, end):
        spans = load_sql("critical_path_spans", store.database, traces="")
        live_sql = load_sql("critical_path_live", store.database, member=member, spans=spans)
    rank_sql = load_sql(
        "critical_path_rank",
        store.database,
        rolled=_NO_ROLLUP_SQL if watermark is None else f"{store.database}.chainmap_critical_path",
        member=member,
        live=live_sql,
        slow_q=repr(1 - SLOW_FRACTION),
    )
    bound = {
        **member_params,
        "chain": chain_id,
        "start_ns": start,
        "end_ns": end,
        "rolled_to_ns": rolled_to,
        "from_ns": rolled_to,
        "reach_ns": reach,
        "read_to_ns": end,
        "cap": sample_cap,
        **environment_params(window.environment),
    }
    traces, threshold, sample, slowest = store.query(rank_sql, bound).result_rows[0]
    traces = int(traces)
    slow_count = min(sample_cap, math.ceil(traces * SLOW_FRACTION)) if traces else 0
    slowest = slowest[:slow_count]
    sample_ids = [str(row[0]) for row in sample]
    slow_ids = [str(row[0]) for row in slowest]
    paths: dict[str, list[tuple[str, str, int]]] = {}
    rolled = sorted({str(tid) for tid, from_rollup in (*sample, *slowest) if from_rollup})
    live = {str(tid) for tid, from_rollup in (*sample, *slowest) if not from_rollup}
    if rolled:
        rows = store.query(
            _ROLLED_PATHS_SQL.format(db=store.database), {**bound, "trace_ids": rolled}
        ).result_rows
        for trace_id, services, names, self_ns in rows:
            paths[str(trace_id)] = list(
                zip(map(str, services), map(str, names), map(int, self_ns), strict=True)
            )
    if live:
        rows = store.query(
            critical_paths.traces_sql(store.database, narrowed=True),
            {
                "from_ns": rolled_to,
                "to_ns": end,
                "reach_ns": reach,
                "read_to_ns": end,
                "trace_ids": sorted(live),
            },
        ).result_rows
        for row in rows:
            timings = critical_paths.trace_timings(row)
            part = chain_id if chain_id in entry_chains(timings) else ""
            paths[str(row[0])] = part_path(timings, part).operations()
    end_to_end = instances.extend_paths(
        store, chain_id, [*sample_ids, *slow_ids], start - reach, end, paths
    )
    services, operations = _tally(paths, sample_ids)
    slow_services, slow_operations = _tally(paths, slow_ids)
    return ChainCriticalPath(
        chain_id=chain_id,
        window=window,
        traces=traces,
        sampled=len(sample_ids),
        slow_traces=len(slow_ids),
        slow_threshold_ms=round(float(threshold) / 1e6, 3) if traces else 0.0,
        sample_cap=sample_cap,
        services=services,
        operations=operations,
        slow_services=slow_services,
        slow_operations=slow_operations,
        end_to_end=end_to_end,
    )
