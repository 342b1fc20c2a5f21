"""Trace search: the traces of a window filtered by chain, service, operation, status,
duration and attributes, newest or slowest first, each with its error source.

It reads ``chainmap_trace_summary`` (one row per trace: extent, root span, chain ids,
services, span and error counts), so listing a window costs what its traces cost, not its
spans. The span-level filters (operation, attributes, a duration with either) look at
``otel_traces``, bounded by the window and by the ids of the traces that start in it.

Semantics:

* a trace is in the window ``[since, until)`` when its first span starts in it, and in its
  environment (when it names one) when its root span is
  (``deployment.environment.name``, else ``deployment.environment``);
* ``duration_ms`` is the trace's extent (first span start to last span end);
* ``status`` is ``error`` when any span of the trace has status Error, else ``ok``;
* ``chain_ids``: the chains its spans are tagged with (``chain.ids``), plus the chains whose
  entry rules match its root span or one of its untagged spans
  (:mod:`chainmap_otel.analysis.membership`, the rules the processor applies), so traces
  through services without chainmap are found by chain too;
* ``service``: a span of the trace is in that service; ``operation``: a span's name or
  ``http.route`` equals it (in ``service`` when both are given, Jaeger's pairing);
* ``attr`` (repeatable, all must hold), on a span's attribute or else its resource's:
  ``key=value`` equals, ``key!=value`` has the key with another value, ``key`` has the key,
  ``key=~regex`` has the key with a value the RE2 regex finds (unanchored);
* ``min/max_duration_ms`` apply, as Jaeger's do, to **one span** matching every span-level
  filter given (service, operation, attributes); with a ``chain``, to the chain's own entry
  span (the span whose ``chain.entry_ids`` names the chain, as chainmap's processor or the
  Collector's generated OTTL mark it, else the trace's root span:
  ``sql/trace_chain_entries.sql``); with neither, to the trace's extent;
* with a ``chain``, each trace also has ``chain`` (its entry span's duration and status),
  ``chain_status`` filters on that status ("the chain failed", what health counts, against
  ``status``: "a span failed"), and ``order=duration`` ranks by the entry span;
* a trace whose root span has span links (the consumer of a message) and carries a chain only
  through the message (the chain is in the root's ``chain.ids``, no span of the trace enters
  it) is not found by that chain, as health counts the instance once: the producer's trace
  holding the chain's entry is;
* ``linked_traces``: the traces whose spans link to the trace's spans (the consumers of its
  messages: the rest of its chain instances), one query for the page;
* ``error_source``: the first Error span by start time and the deepest one (most ancestors;
  the earliest of equals), with service, operation and status message.

JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chainmap_otel.analysis.error_source import error_sources
from chainmap_otel.analysis.instances import LINK_REACH_NS, linked_traces
from chainmap_otel.analysis.membership import (
    Columns,
    SqlParams,
    classify_expression,
    require_chain,
    rule_sql,
    tuple_classify_expression,
    tuple_columns,
)
from chainmap_otel.analysis.rollups.traces import SLACK_NS, analysis_watermark, trace_merge_sql
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.topology import iso_time
from chainmap_otel.analysis.trace_query import (
    ATTRIBUTE_OPERATORS,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_TEXT,
    ORDERS,
    STATUSES,
    AttributeFilter,
    TraceQuery,
)
from chainmap_otel.errors import ParameterError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = [
    "ATTRIBUTE_OPERATORS",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ORDERS",
    "STATUSES",
    "AttributeFilter",
    "TraceQuery",
    "TraceSearch",
    "newest_first_parts",
    "pick_list",
    "search_traces",
]

#: Most values a pick list returns.
PICK_LIMIT = 1000


#: The summary's root-span columns, for classifying untagged traces by the entry rules.
SUMMARY_COLUMNS = Columns(
    service="RootService",
    kind="lower(RootKind)",
    name="RootName",
    route="RootRoute",
    path="RootPath",
    method="upper(RootMethod)",
    attributes=None,
)
_ORDER_SQL = {"start": "TraceStart", "duration": "DurationNs"}


@dataclass
class TraceSearch:
    """The traces found, in order, with the query and window that found them."""

    query: TraceQuery
    window: TimeWindow
    traces: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        bounds = self.window.to_json()
        return {
            "traces": self.traces,
            "limit": self.query.limit,
            "order": self.query.order,
            "since": bounds["since"],
            "until": bounds["until"],
        }


#: The newest part of the window searched first when the order is "start".
FIRST_PART_NS = 3600 * 10**9
#: Per-row tests: a row tagged with the chain, a row whose root span has span links and
#: carries the chain, a row with a span entering the chain, the row holding the root span
#: matching one of the chain's entry rules or a row with an untagged non-root span matching
#: one; a row's services. The live search folds them per trace with max(); a merged trace
#: has one row.
_CHAIN_TESTS = {
    "ChainTagged": "has(ChainIds, {chain:String})",
    "ChainLinked": "has(LinkedRootChains, {chain:String})",
    "ChainEntered": "has(EntryChainIds, {chain:String})",
    "ChainRules": (
        "(RootService != '' AND ({rules})) OR arrayExists(u_ -> {untagged}, UntaggedFields)"
    ),
}
#: A trace is in the chain when tagged with it, unless only its linked root carries it (the
#: consumer of a message, whose instance health counts in the producer's trace), or when one
#: of the chain's entry rules matches it.
_IN_CHAIN = "((ChainTagged AND NOT (ChainLinked AND NOT ChainEntered)) OR ChainRules)"
_SERVICE_TEST = "has(Services, {service:String})"
#: The live search's first step keeps only these traces for trace_merge.sql.
_FOUND_ROWS = "TraceId IN (SELECT TraceId FROM found)"
_SPAN_WINDOW = (
    "Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64} + {slack_ns:Int64})"
)


def _span_lookup(test: str) -> str:
    """TraceIds with a span passing ``test`` (a trace starting in the window has every
    span after the window's start)."""
    return (
        f"TraceId IN (SELECT TraceId FROM {{{{db}}}}.otel_traces WHERE {_SPAN_WINDOW} AND {test})"
    )


def _attribute_sql(index: int, attribute: AttributeFilter, params: dict[str, Any]) -> str:
    """A span-row test for one ``attr`` filter: on the span's attribute, else its resource's."""
    params[f"attr_key{index}"] = attribute.key
    k = f"{{attr_key{index}:String}}"
    exists = f"(mapContains(SpanAttributes, {k}) OR mapContains(ResourceAttributes, {k}))"
    if attribute.operator == "exists":
        return exists
    params[f"attr_value{index}"] = attribute.value
    v = f"{{attr_value{index}:String}}"
    if attribute.operator == "=":
        return f"(SpanAttributes[{k}] = {v} OR ResourceAttributes[{k}] = {v})"
    value = f"if(mapContains(SpanAttributes, {k}), SpanAttributes[{k}], ResourceAttributes[{k}])"
    if attribute.operator == "!=":
        return f"({exists} AND {value} != {v})"
    return f"({exists} AND match({value}, {v}))"


@dataclass(frozen=True)
class SearchSql:
    """The search's two queries (the live part over the summary and the merged part over
    ``chainmap_trace_merged``) and their bound parameters (the window's added per part)."""

    live: str
    merged: str
    params: dict[str, Any]


def search_sql(store: TraceStore, catalog: ChainCatalog, query: TraceQuery) -> SearchSql:
    """The search's SQL and its bound parameters (the window's are added by the caller)."""
    db = store.database
    classify, params = classify_expression(catalog, SUMMARY_COLUMNS, prefix="m")
    classify_untagged, untagged_params = tuple_classify_expression(
        catalog, "UntaggedFields", prefix="u"
    )
    params.update(untagged_params)
    lookups: list[str] = []
    span_tests: list[str] = []
    if query.operation is not None:
        params["operation"] = query.operation
        test = (
            "(SpanName = {operation:String} OR SpanAttributes['http.route'] = {operation:String})"
        )
        if query.service is not None:
            test += " AND ServiceName = {service:String}"
        span_tests.append(test)
    for index, attribute in enumerate(query.attributes):
        span_tests.append(_attribute_sql(index, attribute, params))
    if query.span_level_duration:
        # Jaeger's semantics: one span matches the service, operation, attributes and duration.
        if query.service is not None and query.operation is None:
            span_tests.append("ServiceName = {service:String}")
        if query.min_duration_ms is not None:
            params["min_ns"] = int(query.min_duration_ms * 1e6)
            span_tests.append("Duration >= {min_ns:UInt64}")
        if query.max_duration_ms is not None:
            params["max_ns"] = int(query.max_duration_ms * 1e6)
            span_tests.append("Duration <= {max_ns:UInt64}")
        lookups.append(_span_lookup(" AND ".join(f"({t})" for t in span_tests)))
    else:
        lookups.extend(_span_lookup(test) for test in span_tests)
    row_tests: dict[str, str] = {}
    tests: list[str] = []
    if query.chain is not None:
        params["chain"] = query.chain
        chain = require_chain(catalog, query.chain)
        rule_params = SqlParams("r")
        rules = [t for t in (rule_sql(r, SUMMARY_COLUMNS, rule_params) for r in chain.entry) if t]
        untagged = [
            t for t in (rule_sql(r, tuple_columns("u_"), rule_params) for r in chain.entry) if t
        ]
        params.update(rule_params.values)
        row_tests.update(_CHAIN_TESTS)
        row_tests["ChainRules"] = _CHAIN_TESTS["ChainRules"].format(
            rules=" OR ".join(rules) or "0", untagged=" OR ".join(untagged) or "0"
        )
        tests.append(_IN_CHAIN)
    if query.service is not None:
        params["service"] = query.service
        row_tests["InService"] = _SERVICE_TEST
        tests.append("InService")
    if query.status == "error":
        tests.append("ErrorCount > 0")
    elif query.status == "ok":
        tests.append("ErrorCount = 0")
    entry_join = ""
    order = _ORDER_SQL[query.order]
    live_entry = merged_entry = ""
    if query.by_entry_span:
        entries = load_sql("trace_chain_entries", db, rows="1").replace("{{db}}", db)
        entry_join = f"LEFT ANY JOIN ({entries}) AS entries USING (TraceId)"
        live_entry = (
            ",\n        if(max(EFound) = 1, max(ENs), DurationNs) AS ChainNs"
            ",\n        max(EFailed) AS ChainFailed"
        )
        merged_entry = (
            ",\n    if(EFound = 1, ENs, DurationNs) AS ChainNs,\n    EFailed AS ChainFailed"
        )
        if query.order == "duration":
            order = "ChainNs"
        if query.chain_status is not None:
            tests.append(f"ChainFailed = {int(query.chain_status == 'error')}")
    duration = "ChainNs" if query.by_entry_span else "DurationNs"
    if not query.span_level_duration:
        if query.min_duration_ms is not None:
            params["min_ns"] = int(query.min_duration_ms * 1e6)
            tests.append(f"{duration} >= {{min_ns:UInt64}}")
        if query.max_duration_ms is not None:
            params["max_ns"] = int(query.max_duration_ms * 1e6)
            tests.append(f"{duration} <= {{max_ns:UInt64}}")
    params["limit"] = query.limit
    params["slack_ns"] = SLACK_NS
    filters = {
        "candidate_filter": " AND ".join(lookups) or "1",
        "trace_filter": " AND ".join(tests) or "1",
        "order": order,
        "entry_join": entry_join,
    }
    live = load_sql(
        "trace_search_live",
        db,
        trace_merge=trace_merge_sql(db, rows=_FOUND_ROWS),
        found_columns="".join(f",\n        max({t}) AS {n}" for n, t in row_tests.items())
        + live_entry,
        **filters,
    )
    merged = load_sql(
        "trace_search_merged",
        db,
        found_columns="".join(f",\n    ({t}) AS {n}" for n, t in row_tests.items()) + merged_entry,
        **filters,
    )

    def listed(traces: str) -> str:
        sql = load_sql(
            "trace_search",
            db,
            traces=traces,
            classify=classify,
            classify_untagged=classify_untagged,
            order=_ORDER_SQL[query.order],
        )
        return sql.replace("{{db}}", db)

    return SearchSql(listed(live), listed(merged), params)


def newest_first_parts(window: TimeWindow) -> Iterator[TimeWindow]:
    """``window`` cut from its end into parts growing fourfold from an hour: the newest
    traces of a long window are usually in its last hour, so "newest first" reads that
    part alone, and a sparse filter costs a handful of queries, not one per hour."""
    end, span = window.end_ns, FIRST_PART_NS
    while end > window.start_ns:
        start = max(window.start_ns, end - span)
        yield TimeWindow(start, end, window.environment)
        end, span = start, span * 4


def search_traces(
    store: TraceStore, catalog: ChainCatalog, window: TimeWindow, query: TraceQuery
) -> TraceSearch:
    """The traces starting in ``window`` that pass every filter of ``query``.

    Trace starts below the merged-trace rollup's watermark
    (:mod:`~chainmap_otel.analysis.rollups.traces`) are read from ``chainmap_trace_merged``, one
    row per trace; the rest is merged live from the summary. Newest first, the live part is
    searched from the end in the parts of :func:`newest_first_parts` until ``limit`` traces
    are found, then the merged part: every trace of a part starts after every trace of the
    parts before it, so the order is the same as one query over the whole window. Slowest
    first, the best ``limit`` of each side are merged. A search ranked or filtered by a
    chain's entry span is merged live over the whole window.
    """
    sql = search_sql(store, catalog, query)
    found = TraceSearch(query, window)
    # Ranked or filtered by a chain's entry span, every part joins the window's entry spans
    # read from otel_traces; merging the summary live then measured 1.5-3.8x faster than
    # joining the rollup's rows (benchmarks/RESULTS.md), so the rollup is not read.
    watermark = 0 if query.by_entry_span else analysis_watermark(store) or 0
    split = min(max(watermark, window.start_ns), window.end_ns)
    live = TimeWindow(split, window.end_ns, window.environment) if split < window.end_ns else None
    merged = (
        TimeWindow(window.start_ns, split, window.environment) if window.start_ns < split else None
    )

    def run(text: str, part: TimeWindow, wanted: int) -> list[Sequence[Any]]:
        params = {**sql.params, **part.params(), "limit": wanted}
        return list(store.query(text, params).result_rows)

    rows: list[Sequence[Any]] = []
    if query.order == "start":
        for part in newest_first_parts(live) if live is not None else ():
            rows.extend(run(sql.live, part, query.limit - len(rows)))
            if len(rows) >= query.limit:
                break
        if merged is not None and len(rows) < query.limit:
            rows.extend(run(sql.merged, merged, query.limit - len(rows)))
    else:
        for text, side in ((sql.live, live), (sql.merged, merged)):
            if side is not None:
                rows.extend(run(text, side, query.limit))
    entries = _chain_entries(store, query, window, [str(row[0]) for row in rows])
    if query.order == "duration":
        # As the SQL orders: duration (the entry span's with a chain) descending, then trace
        # id descending.
        def duration(row: Sequence[Any]) -> int:
            entry = entries.get(str(row[0]))
            return entry[0] if entry is not None and query.by_entry_span else int(row[2])

        rows.sort(key=lambda row: (duration(row), str(row[0])), reverse=True)
    rows = rows[: query.limit]
    failed = [str(row[0]) for row in rows if int(row[8])]
    sources = error_sources(store, window, failed, SLACK_NS)
    linked = linked_traces(
        store, [str(row[0]) for row in rows], window.start_ns, window.end_ns + LINK_REACH_NS
    )
    found.traces = [
        {
            **_trace_json(row, query.chain, entries.get(str(row[0])), sources.get(str(row[0]))),
            "linked_traces": linked.get(str(row[0]), []),
        }
        for row in rows
    ]
    return found


def _chain_entries(
    store: TraceStore, query: TraceQuery, window: TimeWindow, trace_ids: list[str]
) -> dict[str, tuple[int, bool]]:
    """The chain's entry span (duration ns, failed) in each of ``trace_ids``."""
    if query.chain is None or not trace_ids:
        return {}
    sql = load_sql(
        "trace_chain_entries", store.database, rows="TraceId IN {trace_ids:Array(String)}"
    )
    params = {
        **window.params(),
        "chain": query.chain,
        "slack_ns": SLACK_NS,
        "trace_ids": trace_ids,
    }
    return {
        str(trace_id): (int(duration), bool(failed))
        for trace_id, _found, duration, failed in store.query(sql, params).result_rows
    }


def pick_list(
    store: TraceStore, window: TimeWindow, service: str | None = None, limit: int = PICK_LIMIT
) -> list[str]:
    """The services with spans in ``window`` (``service`` None), or the span names of
    ``service``, sorted: the search form's pick lists."""
    if service is not None and (not service.strip() or len(service) > MAX_TEXT):
        raise ParameterError(
            "service", service, f"1-{MAX_TEXT} characters", "{name} {value} must be {allowed}"
        )
    picked = "toString(ServiceName)" if service is None else "toString(SpanName)"
    sql = load_sql("trace_pick_lists", store.database, picked=picked)
    params = {**window.params(), "service": service or "", "limit": limit}
    return [str(row[0]) for row in store.query(sql, params).result_rows]


def _trace_json(
    row: Sequence[Any],
    chain: str | None,
    entry: tuple[int, bool] | None,
    source: dict[str, Any] | None,
) -> dict[str, Any]:
    trace_id, start_ns, duration_ns, service, operation, chains, services, spans, errors = row
    chain_json = None
    if chain is not None:
        chain_ns, chain_failed = entry if entry is not None else (int(duration_ns), False)
        chain_json = {
            "chain_id": chain,
            "duration_ms": round(chain_ns / 1e6, 3),
            "status": "error" if chain_failed else "ok",
        }
    return {
        "trace_id": str(trace_id),
        "start": iso_time(int(start_ns)),
        "duration_ms": round(int(duration_ns) / 1e6, 3),
        "root_service": str(service),
        "root_operation": str(operation),
        "status": "error" if int(errors) else "ok",
        "chain_ids": [str(c) for c in chains],
        "services": [str(s) for s in services],
        "span_count": int(spans),
        "error_count": int(errors),
        "chain": chain_json,
        "error_source": source,
    }
