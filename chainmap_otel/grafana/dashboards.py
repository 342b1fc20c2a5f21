"""Grafana dashboards of a chain catalog: chains overview, chain topology, where the time
goes, traces.

They are generated (the panel SQL compiles the catalog's entry rules, see
:mod:`chainmap_otel.grafana.queries`), written by ``chainmap sql dashboards`` into
``grafana/dashboards/`` and loaded by the file provider in ``grafana/provisioning``. Every
panel queries the datasource provisioned with the uid :data:`DATASOURCE_UID`. Regenerate
them whenever the chains file changes; the committed ones are for ``chains.example.yaml``
and the database ``otel``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chainmap_otel.errors import ChainmapError
from chainmap_otel.grafana import queries
from chainmap_otel.tagging.definitions import ChainCatalog

DATASOURCE_TYPE = "grafana-clickhouse-datasource"
DATASOURCE_UID = "chainmap-clickhouse"
#: The datasource's query formats (sqlds): 0 time series, 1 table, 3 trace.
FORMAT_TIME_SERIES = 0
FORMAT_TABLE = 1
FORMAT_TRACE = 3
SCHEMA_VERSION = 39
TRACES_UID = "chainmap-traces"


def _datasource() -> dict[str, str]:
    return {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}


def _target(ref_id: str, sql: str, fmt: int, query_type: str) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "datasource": _datasource(),
        "editorType": "sql",
        "format": fmt,
        "queryType": query_type,
        "rawSql": sql,
    }


def _panel(
    panel_id: int,
    title: str,
    kind: str,
    grid: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    description: str,
    **extra: Any,
) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "id": panel_id,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": _datasource(),
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        **extra,
    }


def _chain_variable(catalog: ChainCatalog) -> dict[str, Any]:
    ids = list(catalog.ids)
    first = ids[0] if ids else ""
    return {
        "name": "chain",
        "label": "Chain",
        "type": "custom",
        "query": ",".join(ids),
        "current": {"text": first, "value": first},
        "options": [{"text": i, "value": i, "selected": i == first} for i in ids],
        "multi": False,
        "includeAll": False,
    }


def _environment_variable(database: str) -> dict[str, Any]:
    """The ``environment`` variable: the environments of the time range's entry spans, and
    All, whose value ``''`` (inserted as written, not quoted) means every environment."""
    query = (
        f"SELECT DISTINCT toString(Environment) FROM {database}.chainmap_chain_minute "
        "WHERE $__timeFilter(Minute) AND Environment != '' ORDER BY 1"
    )
    return {
        "name": "environment",
        "label": "Environment",
        "type": "query",
        "datasource": _datasource(),
        "query": query,
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "current": {"text": "All", "value": "$__all"},
        "options": [],
        "multi": False,
        "includeAll": True,
        "allValue": "''",
    }


def _dashboard(
    uid: str, title: str, description: str, panels: list[dict[str, Any]], variables: list[Any]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["chainmap"],
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "utc",
        "templating": {"list": variables},
        "links": [
            {
                "type": "dashboards",
                "tags": ["chainmap"],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "title": "chainmap",
            }
        ],
        "panels": panels,
    }


def chains_overview(catalog: ChainCatalog, database: str) -> dict[str, Any]:
    table = _panel(
        1,
        "Chains",
        "table",
        (0, 0, 24, 10),
        [_target("A", queries.chains_overview_sql(catalog, database), FORMAT_TABLE, "table")],
        "Per chain over the time range: entry-span rate, errors, latency percentiles, SLO "
        "compliance and burn rates (5m to 3d, ending at the range's end) and the "
        "multi-window, multi-burn-rate status, as `chainmap health --env $environment` "
        "computes them (an environment with objectives of its own is judged by those). "
        "Where the services counted a chain's entries before sampling and the counts cover "
        "the range, its traces, errors, rate and error % are those counts (counted = 1), "
        "and the error-rate burn of each burn window they cover reads them too.",
    )
    series = _panel(
        2,
        "Entry calls per chain",
        "timeseries",
        (0, 10, 24, 9),
        [
            _target(
                "A",
                queries.calls_per_minute_sql(catalog, database),
                FORMAT_TIME_SERIES,
                "timeseries",
            )
        ],
        "Entry spans per chain and time bucket, untagged roots classified by the rules.",
    )
    return _dashboard(
        "chainmap-chains-overview",
        "chainmap: chains overview",
        "Health of every chain, from the per-minute aggregates chainmap maintains.",
        [table, series],
        [_environment_variable(database)],
    )


def chain_topology(catalog: ChainCatalog, database: str) -> dict[str, Any]:
    graph = _panel(
        1,
        "Topology of chain $chain",
        "nodeGraph",
        (0, 0, 24, 18),
        [
            _target("nodes", queries.topology_nodes_sql(catalog, database), FORMAT_TABLE, "table"),
            _target("edges", queries.topology_edges_sql(catalog, database), FORMAT_TABLE, "table"),
        ],
        "Service graph of the chain's traces (servicegraph connector semantics): node "
        "main stat = calls received, secondary = error ratio; edge main stat = calls, "
        "secondary = p95 ms; calls weighted by sampling, edges of `$environment` only. Same "
        "numbers as `chainmap topology --chain $chain --env ENV --format grafana`.",
    )
    return _dashboard(
        "chainmap-chain-topology",
        "chainmap: chain topology",
        "The services and dependencies a chain really touches.",
        [graph],
        [_chain_variable(catalog), _environment_variable(database)],
    )


def where_the_time_goes(catalog: ChainCatalog, database: str) -> dict[str, Any]:
    note = (
        "Share of the chain's exclusive span time (span duration minus its children's). "
        "Equal to the critical-path share when a trace has no concurrent spans; for the "
        "exact critical path run `chainmap critical-path --chain $chain`."
    )
    panels = [
        _panel(
            1,
            "By service",
            "table",
            (0, 0, 10, 12),
            [_target("A", queries.self_time_sql(catalog, database, False), FORMAT_TABLE, "table")],
            note,
        ),
        _panel(
            2,
            "By operation",
            "table",
            (10, 0, 14, 12),
            [_target("A", queries.self_time_sql(catalog, database, True), FORMAT_TABLE, "table")],
            note,
        ),
    ]
    return _dashboard(
        "chainmap-where-the-time-goes",
        "chainmap: where the time goes",
        "Where a chain's latency is spent, per service and per operation.",
        panels,
        [_chain_variable(catalog), _environment_variable(database)],
    )


def _trace_links(database: str) -> list[dict[str, Any]]:
    return [
        {
            "title": "Open trace ${__value.raw}",
            "url": f"/d/{TRACES_UID}/?var-chain=${{chain}}&var-trace_id=${{__value.raw}}"
            "&${__url_time_range}",
        },
        {
            "title": "Explore trace ${__value.raw}",
            "url": "",
            "internal": {
                "datasourceUid": DATASOURCE_UID,
                "datasourceName": "chainmap ClickHouse",
                "query": _target(
                    "A",
                    queries.trace_view_sql(database, "'${__value.raw}'"),
                    FORMAT_TRACE,
                    "traces",
                ),
            },
        },
    ]


def traces(catalog: ChainCatalog, database: str) -> dict[str, Any]:
    links = _trace_links(database)
    overrides = [
        {
            "matcher": {"id": "byName", "options": "trace_id"},
            "properties": [{"id": "links", "value": links}],
        }
    ]
    panels = []
    for index, (title, condition, order) in enumerate(queries.TRACE_LISTS):
        panels.append(
            _panel(
                index + 1,
                f"{title} of chain $chain",
                "table",
                (index * 8, 0, 8, 12),
                [
                    _target(
                        "A",
                        queries.chain_traces_sql(catalog, database, condition, order),
                        FORMAT_TABLE,
                        "table",
                    )
                ],
                "From chainmap_trace_summary; click a trace id to open it below or in Explore.",
                fieldConfig={"defaults": {}, "overrides": overrides},
            )
        )
    panels.append(
        _panel(
            len(panels) + 1,
            "Trace $trace_id",
            "traces",
            (0, 12, 24, 16),
            [_target("A", queries.trace_view_sql(database), FORMAT_TRACE, "traces")],
            "Grafana's trace view of the trace picked above (format 3 query on otel_traces).",
        )
    )
    trace_variable = {
        "name": "trace_id",
        "label": "Trace id",
        "type": "textbox",
        "query": "",
        "current": {"text": "", "value": ""},
    }
    return _dashboard(
        TRACES_UID,
        "chainmap: traces",
        "Recent, slow and failed traces of a chain, and the trace view.",
        panels,
        [_chain_variable(catalog), trace_variable],
    )


#: File name -> builder, in the order they are written.
DASHBOARDS = {
    "chains-overview.json": chains_overview,
    "chain-topology.json": chain_topology,
    "where-the-time-goes.json": where_the_time_goes,
    "traces.json": traces,
}


def render(catalog: ChainCatalog, database: str) -> dict[str, str]:
    """File name -> dashboard JSON text for ``catalog`` on ``database``."""
    return {
        name: json.dumps(build(catalog, database), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def write(catalog: ChainCatalog, database: str, directory: Path) -> list[Path]:
    """Write every dashboard into ``directory``; returns the paths written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in render(catalog, database).items():
            path = directory / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise ChainmapError(
            f"cannot write the dashboards into {directory}: {exc.strerror}; "
            "pick a writable --output-dir"
        ) from None
    return written
