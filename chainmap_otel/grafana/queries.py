"""The SQL of the Grafana dashboards, generated from a chain catalog.

Grafana's ClickHouse datasource sends a panel's SQL as text: it cannot bind the parameters
chainmap's own queries use. So the dashboards are generated: the analysis SQL
(``analysis/sql/*.sql``, :func:`~chainmap_otel.analysis.membership.classify_expression`) is
reused as is, and each bound parameter is replaced by a ClickHouse literal
(:func:`sql_literal`: quotes and backslashes escaped) or, for the time window, by an
expression over the datasource's macros (``$__fromTime``, ``$__toTime``, ``$__timeFilter``)
and the dashboard variables (``${chain:sqlstring}``, ``${trace_id:sqlstring}``), which
Grafana quotes and escapes itself. Nothing here classifies spans a second way: the entry
rules compile through :mod:`chainmap_otel.analysis.membership`, the topology is
``analysis/sql/topology.sql`` over ``trace_edges.sql``.

When the chains change, regenerate: ``chainmap sql dashboards --chains FILE``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from chainmap_otel.analysis.entry_counts import EXPORT_SLACK_S
from chainmap_otel.analysis.entry_rows import entry_rows_sql, slo_window_seconds
from chainmap_otel.analysis.membership import (
    MINUTE_COLUMNS,
    SPAN_COLUMNS,
    Columns,
    EntryRules,
    SqlParams,
    classify_expression,
    tuple_classify_expression,
)
from chainmap_otel.analysis.naming import ServiceGraphNaming
from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups import entries
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.topology import LINK_LOOKBACK_SECONDS
from chainmap_otel.errors import QueryError
from chainmap_otel.storage.sqltext import render_sql, strip_comments
from chainmap_otel.tagging.definitions import SLO, ChainCatalog
from chainmap_otel.tagging.fields import SCHEMA_PLACEHOLDERS

#: Matcher fields over the merged root columns of ``chainmap_trace_summary`` (see
#: ``chain_traces.sql``): the same fields the minute rows store, no attributes.
SUMMARY_COLUMNS = Columns(
    service="root_service",
    kind="lower(root_kind)",
    name="root_operation",
    route="root_route",
    path="root_path",
    method="upper(root_method)",
    attributes=None,
)
#: Which rows ``chainmap sql membership --table`` compiles the rules over.
TABLE_COLUMNS: dict[str, Columns] = {
    "otel_traces": SPAN_COLUMNS,
    "chainmap_chain_minute": MINUTE_COLUMNS,
    "chainmap_trace_summary": SUMMARY_COLUMNS,
}
#: The dashboard variables and the Grafana formats they are interpolated with.
CHAIN_VARIABLE = "${chain:sqlstring}"
TRACE_ID_VARIABLE = "${trace_id:sqlstring}"
#: The environment the chain panels read: the dashboards' ``environment`` variable, whose
#: All is ``''`` (every environment, as ``chainmap health`` without ``--env``).
ENVIRONMENT = "${environment:sqlstring}"
#: The environment filter over the per-minute tables and over spans (their resource's
#: deployment.environment.name, else deployment.environment).
ROW_ENVIRONMENT = f"({ENVIRONMENT} = '' OR Environment = {ENVIRONMENT})"
SPAN_ENVIRONMENT = (
    f"({ENVIRONMENT} = '' OR {SCHEMA_PLACEHOLDERS['environment_sql']} = {ENVIRONMENT})"
)

_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}")
#: Text Grafana would interpolate inside a literal: ``$name``, ``${...}``, ``[[name]]``.
_GRAFANA_SYNTAX = re.compile(r"\$[A-Za-z_{]|\[\[")


@cache
def _template(name: str) -> str:
    text = (
        resources.files("chainmap_otel.grafana")
        .joinpath("sql", f"{name}.sql")
        .read_text(encoding="utf-8")
    )
    return text


def sql_literal(value: Any) -> str:
    """``value`` as a ClickHouse literal; strings escaped, so no value can end the literal.

    A string Grafana would interpolate (``$name``, ``${...}``, ``[[...]]``) is refused: it
    would not reach ClickHouse as written.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if _GRAFANA_SYNTAX.search(value):
            raise QueryError(
                f"pattern {value!r} contains text Grafana interpolates as a variable "
                "($name, ${...} or [[...]]); rewrite it (e.g. use [$] for a literal $)"
            )
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    raise QueryError(f"cannot write {value!r} as a SQL literal")


def inline(sql: str, values: Mapping[str, str]) -> str:
    """Replace each bound parameter ``{name:Type}`` by ``values[name]`` (SQL text).

    Every parameter must be given: a left-over placeholder would fail in Grafana.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise QueryError(f"no value for the SQL parameter {match.group(0)}")
        return values[name]

    return _PLACEHOLDER.sub(replace, sql)


def membership_expression(catalog: ChainCatalog, table: str = "otel_traces") -> str:
    """``Array(String)`` SQL of the chains whose entry rules match a row of ``table``,
    the patterns written as literals."""
    columns = TABLE_COLUMNS.get(table)
    if columns is None:
        raise QueryError(f"unknown table {table!r}; use one of {', '.join(TABLE_COLUMNS)}")
    return _literal(*classify_expression(catalog, columns))


def _literal(sql: str, params: Mapping[str, Any]) -> str:
    """``sql`` with its bound parameters written as literals."""
    return inline(sql, {name: sql_literal(value) for name, value in params.items()})


def _fill(name: str, database: str, **fragments: str) -> str:
    return render_sql(_template(name), database, **fragments)


def _entry_rows(catalog: ChainCatalog, database: str, hours: bool = False) -> str:
    """Health's entry rows (:func:`~chainmap_otel.analysis.entry_rows.entry_rows_sql`) of every
    chain of ``catalog``, over the range the ``gf_scan_start``/``gf_end`` (s) and
    ``gf_inf_start``/``gf_inf_end`` (ns) aliases of the query's WITH clause bound; with
    ``hours``, whole hours from the hour rows, cut where health cuts them (the ``gf_main_start``
    and ``gf_w*`` aliases, each SLO window of the catalog)."""
    compiled = EntryRules.compile(catalog)
    literal = EntryRules(
        classify=_literal(compiled.classify, compiled.params),
        entered=_literal(compiled.entered, compiled.params),
        candidate=_literal(compiled.candidate, compiled.params),
        params={},
    )
    rows = entry_rows_sql(database, literal, hours=hours)
    slo_cuts = "".join(f", intDiv(gf_end - {s}, 60) * 60" for s in slo_window_seconds(catalog))
    return inline(
        rows,
        {
            "chains": sql_literal(list(catalog.ids)),
            "scan_start": "gf_scan_start",
            "end": "gf_end",
            "inf_start": "gf_inf_start",
            "inf_end": "gf_inf_end",
            "inf_reach": str(entries.REACH_SECONDS * 1_000_000_000),
            "environment": ENVIRONMENT,
            "environment_value": ENVIRONMENT,
            "hour_cuts": (
                f"[gf_main_start, gf_w5m, gf_w30m, gf_w1h, gf_w6h, gf_w3d{slo_cuts}]"
                if hours
                else "[]"
            ),
        },
    )


def _counted_windows(catalog: ChainCatalog, database: str) -> str:
    """Health's read of the services' counts
    (:func:`~chainmap_otel.analysis.entry_counts.counted_windows`, the same SQL) of every
    chain of ``catalog``, for the windows starting at the ``gf_starts`` alias (main window
    first) and ending before ``gf_after`` (s), per chain and environment."""
    return inline(
        load_sql("entry_counts_windows", database),
        {
            "chains": sql_literal(list(catalog.ids)),
            "starts": "gf_starts",
            "after_minute": "gf_after",
            "export_slack_s": str(EXPORT_SLACK_S),
            "environment": ENVIRONMENT,
            "environment_value": ENVIRONMENT,
        },
    )


def _objective_rows(chain_id: str, environment: str, slo: SLO) -> list[str]:
    """VALUES rows (chain, environment, objective, threshold_ms, budget) of one SLO."""
    rows = []
    if slo.error_rate is not None:
        rows.append(
            f"({sql_literal(chain_id)}, {sql_literal(environment)}, 'error_rate', 0, "
            f"{slo.error_rate!r})"
        )
    for percentile, threshold in slo.latency_ms.items():
        budget = 1 - int(percentile[1:]) / 100
        name = f"latency_{percentile}<{threshold:g}ms"
        rows.append(
            f"({sql_literal(chain_id)}, {sql_literal(environment)}, {sql_literal(name)}, "
            f"{float(threshold)!r}, {budget!r})"
        )
    return rows


def chains_overview_sql(catalog: ChainCatalog, database: str) -> str:
    """Per chain rate, errors, latency, SLO compliance, burn rates and status, in the
    ``environment`` variable's environment, judged by its objectives (``slo.environments``)."""
    chains = ",\n".join(
        f"({sql_literal(c.id)}, {sql_literal(c.name)}, {sql_literal(c.criticality)})"
        for c in catalog
    )
    objectives: list[str] = []
    windows: list[tuple[str, int]] = []
    overridden: list[str] = []
    for chain in catalog:
        slo = chain.slo
        if slo is None:
            continue
        windows.append((chain.id, slo.window_seconds))
        objectives.extend(_objective_rows(chain.id, "", slo))
        for environment in slo.environments:
            effective = slo.effective(environment)
            overridden.append(f"({sql_literal(chain.id)}, {sql_literal(environment)})")
            objectives.extend(_objective_rows(chain.id, environment, effective))
            # A chain id has no '|': "id|environment" names one environment's window.
            windows.append((f"{chain.id}|{environment}", effective.window_seconds))
    if not objectives:
        objectives.append("('', '', '', 0, 1)")
    base = [(c, s) for c, s in windows if "|" not in c]
    own = [(c, s) for c, s in windows if "|" in c]
    slo_seconds = (
        f"transform(chain, {sql_literal([c for c, _ in base])}, "
        f"{sql_literal([s for _, s in base])}, 0)"
        if base
        else "0"
    )
    if own:
        slo_seconds = (
            f"transform(concat(chain, '|', {ENVIRONMENT}), {sql_literal([c for c, _ in own])}, "
            f"{sql_literal([s for _, s in own])}, {slo_seconds})"
        )
    return strip_comments(
        _fill(
            "chains_overview",
            database,
            chains=chains or "('', '', '')",
            objectives=",\n".join(objectives),
            overridden=", ".join(overridden) or "('', '')",
            environment=ENVIRONMENT,
            row_environment=ROW_ENVIRONMENT,
            slo_seconds=slo_seconds,
            max_slo_seconds=str(max((s for _, s in windows), default=0)),
            entry_rows=_entry_rows(catalog, database, hours=True),
            counted_windows=_counted_windows(catalog, database),
            chain_order=", ".join(sql_literal(c.id) for c in catalog) or "''",
        )
    )


def _topology_sql(catalog: ChainCatalog, database: str) -> str:
    """``analysis/sql/topology.sql`` for ``$chain`` over the dashboard's time range: rollup
    hour and minute rows where the rollup covers the range, live pairing elsewhere."""
    # The node naming (CHAINMAP_SERVICEGRAPH_*) of this process, as the rollup's pairing
    # uses it: generate the dashboards with the settings `chainmap serve` runs with.
    naming = ServiceGraphNaming.from_config()
    classify, params = classify_expression(catalog)
    names = SqlParams("sg")
    inner = load_sql(
        "trace_edges",
        database,
        classify=classify,
        span_window=edge_rollup.SPAN_WINDOW_SQL,
        trace_window=edge_rollup.TRACE_WINDOW_SQL,
        **naming.fragments(names),
    )
    params = {**params, **names.values, **edge_rollup.histogram_params()}
    sql = load_sql(
        "topology",
        database,
        trace_edges=inner,
        edge_hour=f"{database}.{edge_rollup.HOUR_TABLE}",
        edge_minute=f"{database}.{edge_rollup.EDGE_TABLE}",
        # Consumers paired with their producers through span links.
        link_edges=load_sql("link_edges", database, classify=classify),
    )
    values = {name: sql_literal(value) for name, value in params.items()}
    values.update(
        {
            name: f"gf_{name}"
            for name in (
                "head_start",
                "head_end",
                "tail_start",
                "tail_end",
                "read_head_start",
                "read_head_end",
                "read_tail_start",
                "read_tail_end",
                "wanted",
            )
        }
    )
    values.update(
        {
            name: f"gf_{name}"
            for name in (
                "hour_start",
                "hour_end",
                "minute_head_start",
                "minute_head_end",
                "minute_tail_start",
                "minute_tail_end",
            )
        },
        catalog=str(edge_rollup.catalog_fingerprint(catalog, naming)),
        environment=ENVIRONMENT,
        environment_value=ENVIRONMENT,
        link_lookback=str(LINK_LOOKBACK_SECONDS * 1_000_000_000),
    )
    return inline(sql, values)


def _topology_frame(name: str, catalog: ChainCatalog, database: str) -> str:
    window = _fill(
        "topology_window",
        database,
        catalog=str(edge_rollup.catalog_fingerprint(catalog, ServiceGraphNaming.from_config())),
        reach_ns=str(edge_rollup.REACH_SECONDS * 1_000_000_000),
    )
    frame = _fill(name, database, topology=_topology_sql(catalog, database))
    return strip_comments(window + frame)


def topology_nodes_sql(catalog: ChainCatalog, database: str) -> str:
    """The Node Graph ``nodes`` frame of ``$chain``."""
    return _topology_frame("topology_nodes", catalog, database)


def topology_edges_sql(catalog: ChainCatalog, database: str) -> str:
    """The Node Graph ``edges`` frame of ``$chain``."""
    return _topology_frame("topology_edges", catalog, database)


def self_time_sql(catalog: ChainCatalog, database: str, by_operation: bool) -> str:
    """Share of ``$chain``'s exclusive span time per service (or service and operation)."""
    group = "service, operation" if by_operation else "service"
    return strip_comments(
        _fill(
            "self_time",
            database,
            group=group,
            classify=membership_expression(catalog, "otel_traces"),
            span_environment=SPAN_ENVIRONMENT,
        )
    )


#: The three trace lists of the Traces dashboard: (title, extra condition, ranking).
TRACE_LISTS: tuple[tuple[str, str, str], ...] = (
    ("Recent traces", "1", "start DESC, trace_id"),
    ("Slowest traces", "1", "duration_ms DESC, trace_id"),
    ("Failed traces", "(errors > 0 OR root_status = 'Error')", "start DESC, trace_id"),
)


def chain_traces_sql(catalog: ChainCatalog, database: str, filter: str, order: str) -> str:
    """Traces of ``$chain`` from ``chainmap_trace_summary``."""
    return strip_comments(
        _fill(
            "chain_traces",
            database,
            classify=membership_expression(catalog, "chainmap_trace_summary"),
            classify_untagged=_literal(*tuple_classify_expression(catalog, "untagged_fields")),
            filter=filter,
            order=order,
        )
    )


def trace_view_sql(database: str, trace_id: str = TRACE_ID_VARIABLE) -> str:
    """One trace's spans with the aliases of Grafana's trace view (query format 3)."""
    return strip_comments(_fill("trace_view", database, trace_id=trace_id))


def calls_per_minute_sql(catalog: ChainCatalog, database: str) -> str:
    """Entry calls per chain and time bucket (``$__timeInterval``), for a time series."""
    return strip_comments(
        _fill(
            "calls_per_minute",
            database,
            entry_rows=_entry_rows(catalog, database),
        )
    )
