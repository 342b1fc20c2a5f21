"""The alerts endpoints of ``chainmap serve``: ``GET /api/v1/alerts`` lists the active alerts
(``?history=24h``: the transitions of that period instead; ``?environment=staging``: that
environment's only), ``GET /api/v1/alerts/deliveries``
the webhook delivery log. Without a registry there is no monitor: nothing is or was ever
firing, which is not an error (the web view's alerts banner stays quiet)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request

from chainmap_otel import config
from chainmap_otel.analysis.timewindow import MAX_WINDOW_DAYS, parse_environment
from chainmap_otel.server.api.registry import registry_errors
from chainmap_otel.server.http.errors import translated_errors

if TYPE_CHECKING:
    from chainmap_otel.server.operations import Operations

__all__ = ["install_alerts_api"]

#: Longest alert history one request may ask for: the longest analysis window.
MAX_HISTORY_SECONDS = MAX_WINDOW_DAYS * 86400
#: Most webhook deliveries one answer lists.
MAX_DELIVERIES = 1000


def alerts_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

    @router.get("", summary="Active alerts, or the alert history of a period")
    def alerts(
        request: Request, history: str | None = None, environment: str | None = None
    ) -> dict[str, Any]:
        with translated_errors():
            env = parse_environment(environment)
        seconds = None
        if history is not None:
            seconds = config.parse_seconds(history)
            if seconds is None or not 0 < seconds <= MAX_HISTORY_SECONDS:
                raise HTTPException(
                    400,
                    f"query parameter history={history[:80]!r} must be a duration of at most "
                    f"{MAX_WINDOW_DAYS}d; use e.g. 24h or 7d",
                )
        operations: Operations | None = getattr(request.app.state, "operations", None)
        if operations is None:
            if seconds is None:
                return {"enabled": False, "alerts": []}
            return {"enabled": False, "history_seconds": seconds, "events": []}
        if seconds is None:
            return {"enabled": True, "alerts": _in(env, operations.active_alerts())}
        with registry_errors():
            return {
                "enabled": True,
                "history_seconds": seconds,
                "events": _in(env, operations.alert_history(seconds)),
            }

    @router.get("/deliveries", summary="The webhook delivery log, newest first")
    def deliveries(request: Request, limit: int = 100) -> dict[str, Any]:
        if not 1 <= limit <= MAX_DELIVERIES:
            raise HTTPException(
                400, f"query parameter limit={limit} must be between 1 and {MAX_DELIVERIES}"
            )
        operations: Operations | None = getattr(request.app.state, "operations", None)
        if operations is None:
            return {"enabled": False, "deliveries": []}
        with registry_errors():
            return {"enabled": True, "deliveries": operations.deliveries(limit)}

    return router


def _in(environment: str, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts of ``environment`` (``""``: all of them)."""
    if not environment:
        return alerts
    return [a for a in alerts if a.get("environment", "") == environment]


def install_alerts_api(app: FastAPI) -> None:
    """Add ``/api/v1/alerts`` and its delivery log."""
    app.include_router(alerts_router())
