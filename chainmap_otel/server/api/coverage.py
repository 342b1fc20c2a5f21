"""``GET /api/v1/coverage``: how each chain's instances were recognised, where tags and rules
disagree, and the entry endpoints no chain covers.

The JSON of ``chainmap coverage --format json`` (:mod:`chainmap_otel.analysis.coverage`,
``docs/json-contract.md``), over ``window`` (a length ending now or at ``until``: ``15m``,
``7d``) or ``since``/``until`` like every read endpoint; ``limit`` bounds the lists of
disagreements and unmatched endpoints. A bad parameter is a one-line 400 naming it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request

from chainmap_otel.analysis.coverage import coverage_json, parse_limit, window_start
from chainmap_otel.server.http.errors import parse_api_window, translated_errors
from chainmap_otel.server.http.pool import ReadRoute

__all__ = ["COVERAGE_PATH", "coverage_router", "install_coverage_api"]

COVERAGE_PATH = "/api/v1/coverage"


def coverage_router() -> APIRouter:
    """The coverage endpoint; reads ``app.state.store`` and ``app.state.catalog``."""
    router = APIRouter(prefix=COVERAGE_PATH, tags=["coverage"], route_class=ReadRoute)

    @router.get(
        "", summary="Chain instances by tagger (source, Collector, query time), disagreements"
    )
    def chain_coverage(
        request: Request,
        window: str | None = Query(None, description="a length ending at until: 15m, 2h, 7d"),
        since: str | None = None,
        until: str | None = None,
        limit: str | None = Query(None, description="disagreements and endpoints listed"),
        environment: str | None = Query(
            None, description="only the spans of this deployment environment"
        ),
    ) -> dict[str, Any]:
        with translated_errors():
            start = window_start(window, since)
            count = parse_limit(limit)
        span = parse_api_window(start, until, environment)
        with translated_errors():
            return coverage_json(request.app.state.store, request.app.state.catalog, span, count)

    return router


def install_coverage_api(app: FastAPI) -> None:
    app.include_router(coverage_router())
