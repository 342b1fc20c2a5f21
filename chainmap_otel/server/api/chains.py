"""The chain API of ``chainmap serve``: ``/api/v1/chains``, ``/health/chains``, ``/health/detailed``.

Every read endpoint takes ``since``/``until`` (relative ages like ``15m``, ``7d`` or
ISO-8601 instants; default the last hour) and returns the same JSON as the matching
``chainmap ... --format json`` command. Analysis runs ClickHouse queries, so the
endpoints are plain ``def`` functions run in the read pool
(:class:`~chainmap_otel.server.http.pool.ReadRoute`) on store connections of their own,
apart from the workers and the connection OTLP ingest uses: ingest keeps flowing while
queries run, and a full read pool answers 503 with Retry-After. ``/health/detailed``
queries nothing: it reads a store check refreshed every few seconds in the background
(:func:`store_check_refresher`), with its age, and the writer's live counters. With the embedded chDB store this
process is the only one that can open the store, so this API is how the demo, scripts
and operators read analysis results while ``chainmap serve`` runs.

Errors are ``{"detail": "..."}`` naming the parameter and the fix: 400 for a malformed
parameter (time, trace id, format, number; windows and limits are range-checked), 404
for an unknown chain, trace or node, 503 when the trace store cannot be queried, 504 when
an analysis query runs longer than ``CHAINMAP_QUERY_TIMEOUT_S``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from chainmap_otel.analysis.membership import require_chain
from chainmap_otel.analysis.timewindow import (
    MIN_TRACES_RANGE,
    SAMPLE_CAP_RANGE,
    TimeWindow,
    check_limit,
)
from chainmap_otel.analysis.topology import Topology
from chainmap_otel.server.api.registry import add_registry_fields, operations_health
from chainmap_otel.server.http.errors import (
    one_line_validation_errors,
    parse_api_window,
    restored_plus,
    translated_errors,
)
from chainmap_otel.server.http.pool import ReadRoute, Refresher, Snapshot
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.active import default_catalog_path
from chainmap_otel.tagging.definitions import (
    ChainCatalog,
    ChainDefinition,
    load_catalog,
)

__all__ = [
    "API_PREFIX",
    "TOPOLOGY_FORMATS",
    "api_router",
    "chain_detail",
    "chain_list",
    "health_router",
    "install_api",
    "resolve_catalog",
    "store_check_refresher",
]

API_PREFIX = "/api/v1/chains"
TOPOLOGY_FORMATS = ("json", "mermaid", "grafana", "dot")


def resolve_catalog(chains: ChainCatalog | str | Path | None) -> ChainCatalog:
    """The catalog ``chains`` names (a catalog, a YAML path, or None for the default file)."""
    if isinstance(chains, ChainCatalog):
        return chains
    return load_catalog(Path(chains) if chains is not None else default_catalog_path())


def _require_chain(
    catalog: ChainCatalog, chain_id: str, parameter: str | None = None
) -> ChainDefinition:
    """The chain (of the path, or of query ``parameter``); else a 404 listing the known ids."""
    with translated_errors():
        return require_chain(catalog, chain_id, parameter)


def _require_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise HTTPException(
            400,
            f"query parameter {name}={value!r} is not supported; use one of {', '.join(choices)}",
        )
    return value


# --------------------------------------------------------------------------- state


def _store(request: Request) -> TraceStore:
    store: TraceStore = request.app.state.store
    return store


def _catalog(request: Request) -> ChainCatalog:
    catalog: ChainCatalog = request.app.state.catalog
    return catalog


# --------------------------------------------------------------------------- JSON shapes


_SUMMARY_KEYS = (
    "status",
    "reason",
    "traces",
    "rate_per_s",
    "rate_seconds",
    "errors",
    "error_ratio",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "burn_rates",
    "sampling",
)


def chain_list(store: TraceStore, catalog: ChainCatalog, window: TimeWindow) -> dict[str, Any]:
    """The catalog's chains with their current health summary (one health query), and, when
    the window is in every environment and holds more than one named one, each chain's
    summary per environment side by side (``environments``: name -> summary, one health
    query each)."""
    from chainmap_otel.analysis.by_environment import environment_names, health_by_environment
    from chainmap_otel.analysis.entry_counts import scope_counts
    from chainmap_otel.analysis.health import chain_series, health, health_counts, order_chains

    named = [] if window.environment else [n for n in environment_names(store, window) if n]
    # The services' counts read once, for the whole and each environment's column.
    counted = health_counts(store, catalog.ids, window)
    entries = order_chains(
        health(store, catalog, window, counted=scope_counts(counted, window.environment))
    )
    series = chain_series(store, catalog, window)
    columns = (
        health_by_environment(store, catalog, window, named, counted) if len(named) > 1 else {}
    )
    chains = []
    for found in entries:
        chain = catalog.by_id[str(found["chain_id"])]
        listed = {
            "id": chain.id,
            "name": chain.name,
            "category": chain.category,
            "criticality": chain.criticality,
            "description": chain.description,
            "slo": chain.in_environment(window.environment).to_dict()["slo"],
            "health": {key: found[key] for key in _SUMMARY_KEYS},
            "series": series[chain.id],
        }
        if columns:
            listed["environments"] = {
                name: {key: column[chain.id][key] for key in _SUMMARY_KEYS}
                for name, column in columns.items()
            }
        chains.append(listed)
    return {
        "window": window.to_json(),
        "catalog": {"source": catalog.source, "chains": len(catalog)},
        "environments": list(columns),
        "chains": chains,
    }


def chain_detail(
    store: TraceStore, catalog: ChainCatalog, chain_id: str, window: TimeWindow
) -> dict[str, Any]:
    """``{"chain": definition, "health": the health entry, "window"}``."""
    from chainmap_otel.analysis.health import health

    chain = _require_chain(catalog, chain_id)
    return {
        "window": window.to_json(),
        "chain": chain.in_environment(window.environment).to_dict(),
        "health": health(store, catalog, window, [chain.id])[0],
    }


def _topology(
    request: Request,
    chain_id: str | None,
    format: str,
    since: str | None,
    until: str | None,
    environment: str | None = None,
) -> Response:
    from chainmap_otel.analysis.topology import topology

    _require_choice("format", format, TOPOLOGY_FORMATS)
    window = parse_api_window(since, until, environment)
    with translated_errors():
        topo = topology(_store(request), _catalog(request), window, chain_id)
    return _topology_response(topo, format)


def _topology_response(topo: Topology, format: str) -> Response:
    from chainmap_otel.analysis import render

    if format == "mermaid":
        return PlainTextResponse(render.to_mermaid(topo))
    if format == "dot":
        return PlainTextResponse(render.to_dot(topo), media_type="text/vnd.graphviz")
    if format == "grafana":
        return JSONResponse(render.to_grafana(topo))
    return JSONResponse(topo.to_json())


# --------------------------------------------------------------------------- routers


def api_router() -> APIRouter:
    """``/api/v1/chains``; reads ``app.state.store`` and ``app.state.catalog``."""
    router = APIRouter(prefix=API_PREFIX, tags=["chains"], route_class=ReadRoute)

    @router.get("", summary="The catalog's chains with their current status")
    def list_chains(
        request: Request,
        since: str | None = None,
        until: str | None = None,
        environment: str | None = None,
    ) -> dict[str, Any]:
        window = parse_api_window(since, until, environment)
        with translated_errors():
            listed = chain_list(_store(request), _catalog(request), window)
        add_registry_fields(request, listed["chains"])
        return listed

    @router.get("/topology", summary="Service graph of all traffic")
    def all_topology(
        request: Request,
        format: str = "json",
        since: str | None = None,
        until: str | None = None,
        environment: str | None = None,
    ) -> Response:
        return _topology(request, None, format, since, until, environment)

    @router.get("/health", summary="Health of every chain (the chainmap health JSON)")
    def all_health(
        request: Request,
        chain: str | None = None,
        since: str | None = None,
        until: str | None = None,
        environment: str | None = None,
    ) -> dict[str, Any]:
        from chainmap_otel.analysis.health import health_json

        if chain is not None:
            _require_chain(_catalog(request), chain, "chain")
        window = parse_api_window(since, until, environment)
        with translated_errors():
            return health_json(_store(request), _catalog(request), window, chain)

    @router.get("/drift", summary="Observed versus expected edges per chain")
    def all_drift(
        request: Request,
        chain: str | None = None,
        history: str = "7d",
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        from chainmap_otel.analysis.drift import drift, history_window

        if chain is not None:
            _require_chain(_catalog(request), chain, "chain")
        window = parse_api_window(since, until)
        with translated_errors():
            lookback = history_window(restored_plus(history), restored_plus(until))
            return drift(_store(request), _catalog(request), window, chain, lookback)

    @router.get("/discover", summary="Chain proposals for recurring uncovered traces")
    def discover_chains(
        request: Request,
        min_traces: int = 10,
        format: str = "json",
        since: str | None = None,
        until: str | None = None,
    ) -> Response:
        from chainmap_otel.analysis.discovery import discover, proposals_yaml

        _require_choice("format", format, ("json", "yaml"))
        with translated_errors():
            check_limit("min_traces", min_traces, MIN_TRACES_RANGE)
        window = parse_api_window(since, until)
        with translated_errors():
            found = discover(_store(request), _catalog(request), window, min_traces)
        if format == "yaml":
            return PlainTextResponse(proposals_yaml(found), media_type="application/yaml")
        return JSONResponse(found.to_json())

    @router.get("/impact/{node}", summary="Chains that depend on a node")
    def node_impact(
        request: Request, node: str, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        from chainmap_otel.analysis.impact import impact

        window = parse_api_window(since, until)
        with translated_errors():
            return impact(_store(request), _catalog(request), window, node)

    @router.get("/traces/{trace_id}/critical-path", summary="Critical path of one trace")
    def trace_critical_path(request: Request, trace_id: str) -> dict[str, Any]:
        from chainmap_otel.analysis.critical_path import critical_path

        with translated_errors():
            return critical_path(_store(request), trace_id)

    @router.get("/{chain_id}", summary="A chain's definition and health")
    def get_chain(
        request: Request,
        response: Response,
        chain_id: str,
        since: str | None = None,
        until: str | None = None,
        environment: str | None = None,
    ) -> dict[str, Any]:
        _require_chain(_catalog(request), chain_id)
        window = parse_api_window(since, until, environment)
        with translated_errors():
            detail = chain_detail(_store(request), _catalog(request), chain_id, window)
        version = add_registry_fields(request, [detail["chain"]])
        if version is not None:
            response.headers["ETag"] = f'"{version}"'
        return detail

    @router.get("/{chain_id}/topology", summary="Service graph of a chain's traces")
    def chain_topology(
        request: Request,
        chain_id: str,
        format: str = "json",
        since: str | None = None,
        until: str | None = None,
        environment: str | None = None,
    ) -> Response:
        _require_chain(_catalog(request), chain_id)
        return _topology(request, chain_id, format, since, until, environment)

    @router.get("/{chain_id}/critical-path", summary="Where a chain's latency goes")
    def chain_critical(
        request: Request,
        chain_id: str,
        sample_cap: int = 2000,
        since: str | None = None,
        until: str | None = None,
        environment: str | None = None,
    ) -> dict[str, Any]:
        from chainmap_otel.analysis.critical_path import chain_critical_path

        _require_chain(_catalog(request), chain_id)
        with translated_errors():
            check_limit("sample_cap", sample_cap, SAMPLE_CAP_RANGE)
        window = parse_api_window(since, until, environment)
        with translated_errors():
            result = chain_critical_path(
                _store(request), _catalog(request), chain_id, window, sample_cap
            )
        return result.to_json()

    @router.get("/{chain_id}/operations", summary="Rate, errors and latency per operation")
    def chain_operations_red(
        request: Request,
        chain_id: str,
        limit: int = 50,
        since: str | None = None,
        until: str | None = None,
        environment: str | None = None,
    ) -> dict[str, Any]:
        from chainmap_otel.analysis.operations import chain_operations

        _require_chain(_catalog(request), chain_id)
        window = parse_api_window(since, until, environment)
        with translated_errors():
            result = chain_operations(_store(request), _catalog(request), window, chain_id, limit)
        return result.to_json()

    return router


_STATUS_RANK = {"no_slo": -1, "no_data": -1, "healthy": 0, "degraded": 1, "critical": 2}


#: How often the store check behind /health/detailed runs, and the age past which that
#: check (or the /metrics snapshot, past its own bound) is itself a problem.
STORE_CHECK_INTERVAL_S = 2.0
STORE_CHECK_STALE_S = 15.0
#: Intervals of /metrics refresh after which its snapshot counts as stale (at least 60 s).
METRICS_STALE_INTERVALS = 4
#: How long /health/detailed waits for the very first store check of a starting server.
FIRST_CHECK_WAIT_S = 2.0


def store_check_refresher(
    state: Any, on_start: Callable[[], None] | None = None
) -> Refresher[int | None]:
    """The background check /health/detailed reads: the store's schema version (not started)."""
    from chainmap_otel.storage.schema import current_version

    return Refresher(
        "chainmap-store-check",
        lambda: current_version(state.store),
        STORE_CHECK_INTERVAL_S,
        on_start,
    )


def _detailed_health(request: Request, check: Snapshot[int | None] | None) -> JSONResponse:
    """Reads only memory: the newest store check, the writer's counters, the registry state."""
    from chainmap_otel.storage.schema import latest_version

    store = _store(request)
    catalog = _catalog(request)
    now = time.monotonic()
    store_info: dict[str, Any] = {
        "url": store.url_for_display,
        "embedded": store.embedded,
        "database": store.database,
        "reachable": None if check is None else check.error is None,
        "schema_version": None if check is None else check.value,
        "latest_schema_version": latest_version(),
        "checked_at": None if check is None else _instant(check.at),
        "check_age_s": None if check is None else round(check.age_s(now), 3),
    }
    problems: list[dict[str, str]] = []
    if check is None:
        problems.append(
            {"component": "store", "reason": "the store has not answered its first check yet"}
        )
    else:
        if check.error is not None:
            store_info["error"] = check.error
        if check.age_s(now) > STORE_CHECK_STALE_S:
            problems.append(
                {
                    "component": "store",
                    "reason": f"the store has not answered a check for {check.age_s(now):.0f} s "
                    f"(checked every {STORE_CHECK_INTERVAL_S:g} s); the last answer is shown",
                }
            )
    writer = getattr(request.app.state, "span_writer", None)
    writer_info: dict[str, Any] | None = None
    if writer is not None:
        stats = writer.stats()
        writer_problems = writer.problems()
        writer_info = {
            "queued": stats.queued_spans,
            "accepted": stats.accepted_spans,
            "written": stats.written_spans,
            "dropped": stats.dropped_spans,
            "refused_requests": stats.refused_requests,
            "oldest_unstored_age_s": round(stats.oldest_unstored_age_s, 3),
            "write_ahead_log": (
                {"pending_bytes": stats.wal_pending_bytes, "disk_bytes": stats.wal_disk_bytes}
                if writer.durable
                else None
            ),
            "problems": writer_problems,
        }
        problems += [{"component": "ingest", "reason": reason} for reason in writer_problems]
    metrics_info, metrics_problem = _metrics_snapshot(request, now)
    if metrics_problem:
        problems.append({"component": "metrics", "reason": metrics_problem})
    reachable = store_info["reachable"] is not False
    ok = reachable and store_info["schema_version"] and not problems
    body: dict[str, Any] = {
        "status": "ok" if ok else "unavailable" if not reachable else "degraded",
        "timestamp": _now(),
        "store": store_info,
        "span_writer": writer_info,
        "metrics_snapshot": metrics_info,
        "catalog": {"source": catalog.source, "chains": len(catalog), "ids": list(catalog.ids)},
    }
    body.update(operations_health(request, body["status"] == "ok"))
    registry = body["chain_mapping"].get("registry")
    server = (registry or {}).get("embedded_postgres") or {}
    if server.get("error"):
        problems.append({"component": "registry", "reason": server["error"]})
    elif registry is not None and registry["status"] != "ready":
        problems.append(
            {"component": "registry", "reason": registry["error"] or registry["status"]}
        )
    body["problems"] = problems
    return JSONResponse(body, status_code=200 if reachable else 503)


def _metrics_snapshot(request: Request, now: float) -> tuple[dict[str, Any] | None, str]:
    """/metrics' snapshot as health reports it, and why it is a problem ('' if not)."""
    refresher: Refresher[Any] | None = getattr(request.app.state, "metrics_refresher", None)
    if refresher is None:
        return None, ""
    latest = refresher.latest
    info: dict[str, Any] = {
        "refresh_interval_s": refresher.interval_s,
        "age_s": None if latest is None else round(latest.age_s(now), 3),
        "refresh_s": None if latest is None else round(latest.finished - latest.started, 3),
        "error": None if latest is None else latest.error,
    }
    bound = max(60.0, METRICS_STALE_INTERVALS * refresher.interval_s)
    if latest is not None and latest.age_s(now) > bound:
        return info, (
            f"the /metrics series are {latest.age_s(now):.0f} s old (refreshed every "
            f"{refresher.interval_s:g} s): their refresh is stuck or slower than the interval"
        )
    return info, ""


def _instant(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat().replace("+00:00", "Z")


def _now() -> str:
    return datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")


def health_router() -> APIRouter:
    """``/health/chains`` (per-chain status) and ``/health/detailed`` (the serve process)."""
    router = APIRouter(prefix="/health", tags=["health"], route_class=ReadRoute)

    @router.get("/chains", summary="Status of every chain over the last hour")
    def chains_health(
        request: Request,
        since: str | None = None,
        until: str | None = None,
        environment: str | None = None,
    ) -> dict[str, Any]:
        from chainmap_otel.analysis.health import health

        window = parse_api_window(since, until, environment)
        with translated_errors():
            entries = health(_store(request), _catalog(request), window)
        counts = {status: 0 for status in _STATUS_RANK}
        for entry in entries:
            counts[entry["status"]] += 1
        worst = max((e["status"] for e in entries), key=_STATUS_RANK.__getitem__, default="healthy")
        return {
            "status": worst,
            "timestamp": _now(),
            "window": window.to_json(),
            "counts": counts,
            "chains": {
                e["chain_id"]: {
                    key: e[key]
                    for key in (
                        "name",
                        "criticality",
                        "status",
                        "reason",
                        "traces",
                        "error_ratio",
                        "p95_ms",
                    )
                }
                for e in entries
            },
        }

    @router.get("/detailed", summary="Store, schema, span writer and catalog of this process")
    async def detailed_health(request: Request) -> JSONResponse:
        # Not a read: it queries nothing, so it answers while reads queue and ingest is busy.
        refresher: Refresher[int | None] = request.app.state.store_check
        check = refresher.latest
        if check is None:
            check = await refresher.newer(0.0, FIRST_CHECK_WAIT_S)
        return await run_in_threadpool(_detailed_health, request, check)

    return router


def install_api(app: FastAPI) -> None:
    """Add the chain API and health routers and the one-line validation error handler."""
    app.add_exception_handler(RequestValidationError, one_line_validation_errors)
    app.include_router(health_router())
    app.include_router(api_router())
