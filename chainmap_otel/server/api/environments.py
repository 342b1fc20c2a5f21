"""``GET /api/v1/environments``: the ``deployment.environment.name`` values whose entry spans
a window holds, with their entry counts, the most traffic first: the choices of every
surface's ``environment`` filter (the web view's selector, ``--env``, Grafana's variable).

``environment`` is ``""`` for spans whose resource names none (``deployment.environment.name``,
else the older ``deployment.environment``); ``traces`` estimates the unsampled fleet's
entries (OTEP 235 adjusted counts), ``stored`` counts the entry spans stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request

from chainmap_otel.server.http.errors import parse_api_window, translated_errors
from chainmap_otel.server.http.pool import ReadRoute

__all__ = ["ENVIRONMENTS_PATH", "environments_router", "install_environments_api"]

ENVIRONMENTS_PATH = "/api/v1/environments"


def environments_router() -> APIRouter:
    """The environments endpoint; reads ``app.state.store``."""
    router = APIRouter(prefix=ENVIRONMENTS_PATH, tags=["environments"], route_class=ReadRoute)

    @router.get("", summary="Environments seen in the window, with their entry counts")
    def list_environments(
        request: Request, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        from chainmap_otel.analysis.entry_rows import environments

        window = parse_api_window(since, until)
        with translated_errors():
            found = environments(request.app.state.store, window)
        return {"window": window.to_json(), "environments": found}

    return router


def install_environments_api(app: FastAPI) -> None:
    app.include_router(environments_router())
