"""Trace search: the traces of a window filtered by chain, service, operation, status,
duration and attributes, newest or slowest first.

It reads ``chainmap_trace_summary`` (one row per trace: extent, root span, chain ids,
services, span and error counts), so listing a window costs what its traces cost, not its
spans. Only the ``operation`` and ``attr`` filters look at ``otel_traces``, bounded by the
window's start and by the ids of the traces that start in the window.

Semantics:

* a trace is in the window ``[since, until)`` when its first span starts in it;
* ``duration_ms`` is the trace's extent (first span start to last span end);
* ``status`` is ``error`` when any span of the trace has status Error, else ``ok``;
* ``chain_ids``: the chains its spans are tagged with (``chain.ids``), plus the chains whose
  entry rules match its root span or one of its untagged spans
  (:mod:`chainmap_otel.analysis.membership`, the rules the processor applies), so traces
  through services without chainmap are found by chain too;
* ``service``: a span of the trace is in that service; ``operation``: a span's name or
  ``http.route`` equals it (in ``service`` when both are given, Jaeger's pairing);
* ``attr`` (``key=value``, repeatable, all must hold): a span's attribute or its resource's
  attribute equals the value.

JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from chainmap_otel.errors import ParameterError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ORDERS",
    "STATUSES",
    "TraceQuery",
    "TraceSearch",
    "newest_first_parts",
    "search_traces",
]

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
ORDERS = ("start", "duration")
STATUSES = ("error", "ok")
#: Longest service, operation, attribute key or value accepted (longer ones match nothing
#: real and only cost memory).
MAX_TEXT = 512
#: Most ``attr`` filters in one search.
MAX_ATTRS = 16

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


@dataclass(frozen=True)
class TraceQuery:
    """Validated search filters; build one with :meth:`parse` from user input."""

    chain: str | None = None
    service: str | None = None
    operation: str | None = None
    status: str | None = None
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    order: str = "start"
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(
        cls,
        *,
        chain: str | None = None,
        service: str | None = None,
        operation: str | None = None,
        status: str | None = None,
        min_duration_ms: str | float | None = None,
        max_duration_ms: str | float | None = None,
        attr: Sequence[str] = (),
        order: str | None = None,
        limit: str | int | None = None,
    ) -> TraceQuery:
        """Check every filter; a bad one raises ParameterError naming it."""
        for key, text in (("chain", chain), ("service", service), ("operation", operation)):
            if text is not None and (not text.strip() or len(text) > MAX_TEXT):
                raise ParameterError(
                    key,
                    text,
                    f"1-{MAX_TEXT} characters",
                    "{name} {value} must be {allowed}; leave it out to match every trace",
                )
        if status is not None and status.lower() not in STATUSES:
            raise ParameterError(
                "status",
                status,
                " or ".join(STATUSES),
                "{name} {value} is not supported; use {allowed}",
            )
        if order is not None and order.lower() not in ORDERS:
            raise ParameterError(
                "order",
                order,
                " or ".join(ORDERS),
                "{name} {value} is not supported; use {allowed}",
            )
        low = _duration(min_duration_ms, "min_duration_ms")
        high = _duration(max_duration_ms, "max_duration_ms")
        if low is not None and high is not None and low > high:
            raise ParameterError(
                "min_duration_ms",
                low,
                "at most the maximum",
                "{name} {value} is above {related}: no trace can match; swap them",
                {"max_duration_ms": high},
            )
        return cls(
            chain=chain,
            service=service,
            operation=operation,
            status=status.lower() if status is not None else None,
            min_duration_ms=low,
            max_duration_ms=high,
            attributes=_attributes(attr),
            order=order.lower() if order is not None else "start",
            limit=_limit(limit),
        )


def _duration(value: str | float | None, key: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 <= number < 1e12:
        raise ParameterError(
            key, value, "a number of milliseconds, 0 or more", "{name} {value} must be {allowed}"
        )
    return number


def _limit(value: str | int | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_LIMIT:
        raise ParameterError(
            "limit",
            value,
            f"a whole number from 1 to {MAX_LIMIT}",
            "{name} {value} must be {allowed}",
        )
    return number


def _attributes(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    if len(values) > MAX_ATTRS:
        raise ParameterError(
            "attr", len(values), f"at most {MAX_ATTRS}", "{name} is given {value} times; {allowed}"
        )
    pairs = []
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or len(key) > MAX_TEXT or len(value) > MAX_TEXT:
            raise ParameterError(
                "attr",
                text[:80],
                f"key=value, up to {MAX_TEXT} characters each",
                "{name} {value} is not key=value (e.g. http.route=/orders, up to "
                f"{MAX_TEXT} characters each)",
            )
        pairs.append((key.strip(), value))
    return tuple(pairs)


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
#: Per-row tests: a row tagged with the chain, the row holding the root span matching one of
#: the chain's entry rules, or a row with an untagged non-root span matching one; a row's
#: services. The live search folds them per trace with max(); a merged trace has one row.
_CHAIN_TEST = (
    "has(ChainIds, {{chain:String}}) OR (RootService != '' AND ({rules}))"
    " OR arrayExists(u_ -> {untagged}, UntaggedFields)"
)
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


@dataclass(frozen=True)
class SearchSql:
    """The search's two queries (the live part over the summary and the merged part over
    ``chainmap_trace_merged``) and their bound parameters (the window's added per part)."""

    live: str
    merged: str
    params: dict[str, Any]


def search_sql(store: TraceStore, catalog: ChainCatalog, query: TraceQuery) -> SearchSql:
    """The search's SQL and its bound parameters (the window's are added by the caller)."""
    classify, params = classify_expression(catalog, SUMMARY_COLUMNS, prefix="m")
    classify_untagged, untagged_params = tuple_classify_expression(
        catalog, "UntaggedFields", prefix="u"
    )
    params.update(untagged_params)
    lookups: list[str] = []
    if query.operation is not None:
        params["operation"] = query.operation
        test = (
            "(SpanName = {operation:String} OR SpanAttributes['http.route'] = {operation:String})"
        )
        if query.service is not None:
            test += " AND ServiceName = {service:String}"
        lookups.append(_span_lookup(test))
    for index, (key, value) in enumerate(query.attributes):
        params[f"attr_key{index}"] = key
        params[f"attr_value{index}"] = value
        k, v = f"{{attr_key{index}:String}}", f"{{attr_value{index}:String}}"
        lookups.append(
            _span_lookup(f"(SpanAttributes[{k}] = {v} OR ResourceAttributes[{k}] = {v})")
        )
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
        row_tests["InChain"] = _CHAIN_TEST.format(
            rules=" OR ".join(rules) or "0", untagged=" OR ".join(untagged) or "0"
        )
    if query.service is not None:
        params["service"] = query.service
        row_tests["InService"] = _SERVICE_TEST
    tests.extend(row_tests)
    if query.status == "error":
        tests.append("ErrorCount > 0")
    elif query.status == "ok":
        tests.append("ErrorCount = 0")
    if query.min_duration_ms is not None:
        params["min_ns"] = int(query.min_duration_ms * 1e6)
        tests.append("DurationNs >= {min_ns:UInt64}")
    if query.max_duration_ms is not None:
        params["max_ns"] = int(query.max_duration_ms * 1e6)
        tests.append("DurationNs <= {max_ns:UInt64}")
    params["limit"] = query.limit
    params["slack_ns"] = SLACK_NS
    db = store.database
    filters = {
        "candidate_filter": " AND ".join(lookups) or "1",
        "trace_filter": " AND ".join(tests) or "1",
        "order": _ORDER_SQL[query.order],
    }
    live = load_sql(
        "trace_search_live",
        db,
        trace_merge=trace_merge_sql(db, rows=_FOUND_ROWS),
        found_columns="".join(f",\n        max({t}) AS {n}" for n, t in row_tests.items()),
        **filters,
    )
    merged = load_sql(
        "trace_search_merged",
        db,
        found_columns="".join(f",\n    ({t}) AS {n}" for n, t in row_tests.items()),
        **filters,
    )

    def listed(traces: str) -> str:
        sql = load_sql(
            "trace_search",
            db,
            traces=traces,
            classify=classify,
            classify_untagged=classify_untagged,
            order=filters["order"],
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
        yield TimeWindow(start, end)
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
    first, the best ``limit`` of each side are merged.
    """
    sql = search_sql(store, catalog, query)
    found = TraceSearch(query, window)
    watermark = analysis_watermark(store) or 0
    split = min(max(watermark, window.start_ns), window.end_ns)
    live = TimeWindow(split, window.end_ns) if split < window.end_ns else None
    merged = TimeWindow(window.start_ns, split) if window.start_ns < split else None

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
        # As the SQL orders: duration descending, then trace id descending.
        rows.sort(key=lambda row: (int(row[2]), str(row[0])), reverse=True)
    found.traces = [_trace_json(row) for row in rows[: query.limit]]
    return found


def _trace_json(row: Sequence[Any]) -> dict[str, Any]:
    trace_id, start_ns, duration_ns, service, operation, chains, services, spans, errors = row
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
    }
