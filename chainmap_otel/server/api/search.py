"""``GET /api/v1/traces``: trace search for the web view, scripts and ``chainmap traces``.

It returns exactly the JSON of ``chainmap traces --format json`` (the contract of
:mod:`chainmap_otel.analysis.traces`). Parameters are read as text and checked by the
library, so a bad one gets a one-line 400 ``{"detail": ...}`` naming it, like the chain API.
``GET /api/v1/traces/services`` and ``/operations?service=`` are the search form's pick
lists: the names with spans in the window.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from chainmap_otel.analysis.membership import require_chain
from chainmap_otel.analysis.traces import TraceQuery, pick_list, search_traces
from chainmap_otel.errors import ParameterError
from chainmap_otel.server.http.errors import parse_api_window, translated_errors
from chainmap_otel.server.http.pool import ReadRoute

__all__ = ["TRACES_PATH", "traces_router"]

TRACES_PATH = "/api/v1/traces"


def traces_router() -> APIRouter:
    """The search endpoint; reads ``app.state.store`` and ``app.state.catalog``."""
    router = APIRouter(prefix=TRACES_PATH, tags=["traces"], route_class=ReadRoute)

    @router.get("", summary="Traces by chain, service, operation, status, duration, attributes")
    def list_traces(
        request: Request,
        chain: str | None = None,
        service: str | None = None,
        operation: str | None = None,
        status: str | None = Query(None, description="error or ok"),
        min_duration_ms: str | None = None,
        max_duration_ms: str | None = None,
        attr: list[str] = Query(
            [], description="key=value, key!=value, key=~regex or key (exists); repeatable"
        ),
        chain_status: str | None = Query(
            None, description="error or ok: the status of the chain's own entry span"
        ),
        since: str | None = None,
        until: str | None = None,
        limit: str | None = None,
        order: str | None = Query(None, description="start (newest first) or duration"),
        environment: str | None = Query(
            None, description="only traces whose root span is in this deployment environment"
        ),
    ) -> dict[str, Any]:
        catalog = request.app.state.catalog
        with translated_errors():
            query = TraceQuery.parse(
                chain=chain,
                service=service,
                operation=operation,
                status=status,
                min_duration_ms=min_duration_ms,
                max_duration_ms=max_duration_ms,
                attr=attr,
                chain_status=chain_status,
                order=order,
                limit=limit,
            )
            if chain is not None:
                require_chain(catalog, chain)
        window = parse_api_window(since, until, environment)
        with translated_errors():
            return search_traces(request.app.state.store, catalog, window, query).to_json()

    @router.get("/services", summary="Services with spans in the window (search pick list)")
    def services(
        request: Request, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        window = parse_api_window(since, until)
        with translated_errors():
            return {"services": pick_list(request.app.state.store, window)}

    @router.get("/operations", summary="Span names of a service in the window (pick list)")
    def operations(
        request: Request,
        service: str | None = Query(None, description="the service whose span names are listed"),
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        window = parse_api_window(since, until)
        with translated_errors():
            if service is None:
                raise ParameterError(
                    "service", "", "a service name", "{name} is required: {allowed}"
                )
            return {"operations": pick_list(request.app.state.store, window, service)}

    return router
