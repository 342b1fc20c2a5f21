"""Which chains each span and trace belong to: the one membership rule, decided in ClickHouse.

**The rule** (every surface follows it: the span processor, the span-level SQL of topology,
membership and critical path, the rollups and the aggregates health and search read):

* each span contributes its *own* chains: a tagged span (``chain.ids``, set by
  :class:`~chainmap_otel.tagging.processor.ChainSpanProcessor` or a baggage span processor)
  its stack, outermost first; an untagged span (a Node, Go or Java service without chainmap,
  a Collector-only fleet, old data) the chains whose entry rules match it at query time;
* a span belongs to the own chains of every ancestor-or-self. With the chain stack carried
  in W3C baggage this is the nearest tagged ancestor's stack plus the chains matched at
  untagged ancestors; it also holds where a hop dropped the baggage;
* a chain's **entry** in a trace is the first span, from the root down, where the chain
  appears: a span whose own chains hold it and whose ancestors' do not. An untagged hop
  therefore neither creates a second entry (its descendants' stacks still hold the chains
  above it) nor cuts the subtree below it (a chain matched at an untagged span covers every
  descendant, tagged or not);
* across traces, a span with span links to a span of another trace holds that span's chains
  above itself (its subtree belongs to them, it enters none of them): a consumer tagged from
  the message's baggage through its tag, an untagged one (a service that tags nothing)
  through ``sql/linked_chains.sql``, which gives it the chains the linked span belongs to in
  its own trace (one hop: the linked span's own links are not followed);
* a trace belongs to every chain one of its spans belongs to. Health counts entries, trace
  search finds traces, topology draws the spans of the chain's traces: one number per chain.

The catalog's rules are compiled to one ClickHouse expression (:func:`classify_expression`)
evaluated over the span row: ``service`` -> ``ServiceName``, ``kind`` -> ``SpanKind`` (both
Collector spellings), ``name`` -> ``SpanName``, ``route``, ``path``, ``method`` (read as
:mod:`~chainmap_otel.tagging.fields` defines, as the processor reads them), ``rpc_service``,
``rpc_method``, ``messaging_destination`` and ``attributes``. ``equals`` patterns become
``=``, globs ``LIKE`` (or ``match()`` when they use ``[...]``), regexes ``match()`` (RE2,
unanchored like Python's ``re.search``). Every pattern is a bound parameter, never SQL text.

Where each part lives: ``sql/trace_edges.sql`` walks each trace (topology, the edge rollup),
reading the chains held through links from ``sql/linked_spans.sql`` (as rule coverage does);
``sql/inferred_entries.sql`` finds the entries below the root that no span marks (tagged spans
without ``chain.entry``, untagged spans the rules match), keeping what each one's ancestors
hold for :func:`entered_chains_expression`; the aggregates (``chainmap_chain_minute``,
``chainmap_trace_summary``) keep the rule fields of entry and root spans and, per trace, of
its untagged spans (:func:`tuple_columns`), classified with :data:`MINUTE_COLUMNS`, the
summary's columns and :func:`tuple_classify_expression`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chainmap_otel.errors import NotFoundError
from chainmap_otel.storage.location import validate_identifier
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging import fields
from chainmap_otel.tagging.definitions import ChainCatalog, ChainDefinition, EntryRule, Pattern
from chainmap_otel.tagging.patterns import glob_to_regex

#: ``SpanKind`` of either Collector generation, lower-cased: 'server', 'client', ...
KIND_SQL = "lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', ''))"
#: ``StatusCode`` is Error in either Collector generation.
IS_ERROR_SQL = "(StatusCode IN ('Error', 'STATUS_CODE_ERROR'))"
#: Span start and end as Int64 nanoseconds.
START_NS_SQL = "toUnixTimestamp64Nano(Timestamp)"
#: Span start restricted to a bound window (``{start_ns:Int64}``, ``{end_ns:Int64}``).
WINDOW_SQL = (
    "Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})"
)


@dataclass(frozen=True)
class Columns:
    """How a rule's matcher fields read one row: span rows or aggregate rows."""

    service: str
    kind: str
    name: str
    route: str
    path: str | None
    method: str
    attributes: str | None


#: Matcher fields over an ``otel_traces`` row (what each reads: :mod:`~chainmap_otel.tagging.fields`).
SPAN_COLUMNS = Columns(
    service="toString(ServiceName)",
    kind=KIND_SQL,
    name="toString(SpanName)",
    route=fields.field_sql(fields.ROUTE),
    path=fields.field_sql(fields.PATH),
    method=fields.method_sql(),
    attributes="SpanAttributes",
)
#: Matcher fields over a ``chainmap_chain_minute`` row (its Route, Path and Method columns
#: hold the same fields; no attributes stored there: rules that need them cannot match
#: untagged aggregate rows).
MINUTE_COLUMNS = Columns(
    service="toString(ServiceName)",
    kind=KIND_SQL,
    name="toString(SpanName)",
    route="toString(Route)",
    path="toString(Path)",
    method="upper(toString(Method))",
    attributes=None,
)


def tuple_columns(var: str) -> Columns:
    """Matcher fields over a rule-field tuple bound to the lambda variable ``var``.

    The aggregates keep the rule fields of an untagged span as one tuple
    (``chainmap_trace_summary.UntaggedFields``, ``chainmap_inferred_entry_minute.AboveFields``,
    schema version 10): ``(ServiceName, SpanName, Route, Path, Method, SpanKind)``, each read
    as the minute rows read them (the kind spelled ``Server``, ``Client``, ...)."""

    def element(index: int) -> str:
        return f"tupleElement({var}, {index})"

    return Columns(
        service=element(1),
        kind=f"lower(replaceOne({element(6)}, 'SPAN_KIND_', ''))",
        name=element(2),
        route=element(3),
        path=element(4),
        method=f"upper({element(5)})",
        attributes=None,
    )


@dataclass
class SqlParams:
    """Collects bound parameters under generated names (``p0``, ``p1``, ...)."""

    prefix: str = "p"
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any, sql_type: str = "String") -> str:
        name = f"{self.prefix}{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{sql_type}}}"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def pattern_sql(expr: str, pattern: Pattern, params: SqlParams) -> str:
    """A boolean SQL test of ``expr`` against ``pattern``; the pattern is a parameter."""
    if pattern.kind == "equals":
        return f"({expr} = {params.add(pattern.value)})"
    if pattern.kind == "glob":
        if "[" in pattern.value:
            return f"match({expr}, {params.add('(?s)' + glob_to_regex(pattern.value))})"
        like = _like_escape(pattern.value).replace("*", "%").replace("?", "_")
        return f"({expr} LIKE {params.add(like)})"
    return f"match({expr}, {params.add(pattern.value)})"


def rule_sql(rule: EntryRule, columns: Columns, params: SqlParams) -> str | None:
    """One entry rule as an AND of tests; None when ``columns`` cannot evaluate it."""
    tests: list[str] = []
    if rule.service is not None:
        tests.append(pattern_sql(columns.service, rule.service, params))
    if rule.kinds:
        tests.append(f"({columns.kind} IN {params.add(list(rule.kinds), 'Array(String)')})")
    if rule.name is not None:
        tests.append(pattern_sql(columns.name, rule.name, params))
    if rule.route is not None:
        tests.append(
            f"({columns.route} != '' AND {pattern_sql(columns.route, rule.route, params)})"
        )
    if rule.path is not None:
        if columns.path is None:
            return None
        tests.append(f"({columns.path} != '' AND {pattern_sql(columns.path, rule.path, params)})")
    if rule.method:
        tests.append(f"({columns.method} IN {params.add(list(rule.method), 'Array(String)')})")
    attribute_rules: list[tuple[tuple[str, ...], Pattern]] = [
        (k, p)
        for k, p in (
            (("rpc.service",), rule.rpc_service),
            (("rpc.method",), rule.rpc_method),
            (tuple(s.key for s in fields.DESTINATION), rule.messaging_destination),
        )
        if p is not None
    ]
    attribute_rules.extend(((key,), pattern) for key, pattern in rule.attributes)
    for keys, pattern in attribute_rules:
        if columns.attributes is None:
            return None
        key_params = [params.add(key) for key in keys]
        reads = [f"{columns.attributes}[{kp}]" for kp in key_params]
        value = reads[0] if len(reads) == 1 else f"if({reads[0]} != '', {reads[0]}, {reads[1]})"
        contains = " OR ".join(f"mapContains({columns.attributes}, {kp})" for kp in key_params)
        tests.append(f"(({contains}) AND {pattern_sql(value, pattern, params)})")
    return "(" + " AND ".join(tests) + ")" if tests else "1"


def classify_expression(
    catalog: ChainCatalog, columns: Columns = SPAN_COLUMNS, prefix: str = "m"
) -> tuple[str, dict[str, Any]]:
    """``Array(String)`` SQL of the chain ids whose entry rules match the row, in catalog order.

    Returns the expression and its bound parameters. A catalog without rules gives ``[]``.
    """
    params = SqlParams(prefix)
    parts: list[str] = []
    for chain in catalog:
        tests = [t for t in (rule_sql(rule, columns, params) for rule in chain.entry) if t]
        if tests:
            chain_param = params.add(chain.id)
            parts.append(f"if({' OR '.join(tests)}, {chain_param}, '')")
    if not parts:
        return "CAST([], 'Array(String)')", params.values
    return f"arrayFilter(x -> x != '', [{', '.join(parts)}])", params.values


def tuple_classify_expression(
    catalog: ChainCatalog, tuples: str, prefix: str = "t"
) -> tuple[str, dict[str, Any]]:
    """``Array(String)`` SQL of the chains whose entry rules match any rule-field tuple of
    the array expression ``tuples`` (:func:`tuple_columns`), and its bound parameters."""
    classify, params = classify_expression(catalog, tuple_columns("u_"), prefix)
    if not params:
        return "CAST([], 'Array(String)')", params
    return f"arrayDistinct(arrayFlatten(arrayMap(u_ -> {classify}, {tuples})))", params


def entered_chains_expression(
    catalog: ChainCatalog, prefix: str = "e"
) -> tuple[str, dict[str, Any]]:
    """``Array(String)`` SQL of the chains a row of ``chainmap_inferred_entry_minute`` enters,
    and its bound parameters: its ``ChainId`` when tagged, else the chains the rules match on
    its fields (:data:`MINUTE_COLUMNS`); minus the chains an ancestor holds, tagged
    (``AboveChains``) or matched by the rules on an untagged ancestor (``AboveFields``)."""
    own, params = classify_expression(catalog, MINUTE_COLUMNS, prefix + "r")
    above, above_params = tuple_classify_expression(catalog, "AboveFields", prefix + "a")
    params.update(above_params)
    return (
        "arrayFilter(c_ -> NOT has(AboveChains, c_) AND NOT has(" + above + ", c_), "
        f"if(ChainId != '', [toString(ChainId)], {own}))",
        params,
    )


def candidate_expression(
    catalog: ChainCatalog, columns: Columns = MINUTE_COLUMNS, prefix: str = "c"
) -> tuple[str, dict[str, Any]]:
    """A cheap boolean SQL test, true for every row some entry rule could match: the rules'
    service patterns (``IN`` for the equals ones), or ``1`` when a rule names no service.
    Aggregate queries filter untagged rows with it before classifying them."""
    params = SqlParams(prefix)
    equals: list[str] = []
    tests: list[str] = []
    for chain in catalog:
        for rule in chain.entry:
            if rule.service is None:
                return "1", {}
            if rule.service.kind == "equals":
                equals.append(rule.service.value)
            else:
                tests.append(pattern_sql(columns.service, rule.service, params))
    if equals:
        tests.append(f"({columns.service} IN {params.add(sorted(set(equals)), 'Array(String)')})")
    return ("(" + " OR ".join(tests) + ")" if tests else "0"), params.values


@dataclass(frozen=True)
class EntryRules:
    """The entry rules compiled for the per-minute entry rows health reads
    (:func:`chainmap_otel.analysis.entry_rows.entry_rows_sql`): ``classify`` an untagged root
    row, ``entered`` a row of the entries rollup (:func:`entered_chains_expression`),
    ``candidate`` the cheap test an untagged row passes before either
    (:func:`candidate_expression`), and their bound parameters."""

    classify: str
    entered: str
    candidate: str
    params: dict[str, Any]

    @classmethod
    def compile(cls, catalog: ChainCatalog) -> EntryRules:
        classify, params = classify_expression(catalog, MINUTE_COLUMNS)
        entered, entered_params = entered_chains_expression(catalog)
        candidate, candidate_params = candidate_expression(catalog)
        return cls(classify, entered, candidate, {**params, **entered_params, **candidate_params})


def tagged_chains_sql() -> str:
    """``Array(String)`` of the chain ids a span row is tagged with (its ``chain.ids``)."""
    return "arrayFilter(x -> x != '', splitByChar(',', SpanAttributes['chain.ids']))"


def membership_sql(
    store: TraceStore, catalog: ChainCatalog, table: str = "otel_traces"
) -> tuple[str, dict[str, Any]]:
    """SQL returning ``(TraceId, ChainIds Array(String))`` for every trace with a span in
    the window bound as ``{start_ns:Int64}``/``{end_ns:Int64}``."""
    validate_identifier(table, "table")
    classify, params = classify_expression(catalog)
    sql = f"""
SELECT TraceId,
       arrayDistinct(arrayConcat(
           groupUniqArrayArray({tagged_chains_sql()}),
           groupUniqArrayArrayIf({classify}, SpanAttributes['chain.ids'] = ''))) AS ChainIds
FROM {store.database}.{table}
WHERE {WINDOW_SQL} AND TraceId != ''
GROUP BY TraceId"""
    return sql, params


def require_chain(
    catalog: ChainCatalog, chain_id: str, parameter: str | None = "chain"
) -> ChainDefinition:
    """The chain ``chain_id`` of ``catalog``, or a NotFoundError listing the known ids.

    ``parameter`` is the parameter that named the chain (the analyses' ``chain`` filter);
    None when the caller knows better (a chain id in a URL path).
    """
    chain = catalog.get(chain_id)
    if chain is None:
        known = ", ".join(catalog.ids) or "none"
        raise NotFoundError(
            "chain",
            chain_id,
            f"unknown chain id {chain_id!r} in {catalog.source or 'the chain catalog'}; "
            f"known ids: {known}",
            parameter,
        )
    return chain


def trace_chains(
    store: TraceStore, catalog: ChainCatalog, params: Mapping[str, Any]
) -> dict[str, list[str]]:
    """Membership of every trace in the window ``params`` (start_ns/end_ns): trace -> chains."""
    sql, extra = membership_sql(store, catalog)
    rows = store.query(sql, {**extra, **params}).result_rows
    return {str(trace_id): list(chains) for trace_id, chains in rows}
