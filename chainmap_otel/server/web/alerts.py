"""``/alerts``: what fires, what is pending, what resolved, the last day's transitions and the
webhook deliveries, each alert linked to its chain and to the failing traces of the window it
burns in.

The same data as ``GET /api/v1/alerts`` (``?history=24h``) and
``GET /api/v1/alerts/deliveries``: active alerts from the monitor, the rest from the chain
registry. A part the registry cannot give right now says so in its place; the rest of the
page still renders. Without a registry (``CHAINMAP_REGISTRY_URL=off``) no alert is evaluated
and the page says how to turn them on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from chainmap_otel.errors import RegistryError
from chainmap_otel.server.web.layout import html_table, page

if TYPE_CHECKING:
    from chainmap_otel.server.operations import Operations

__all__ = ["HISTORY_SECONDS", "alerts_body", "install_alerts_page"]

logger = logging.getLogger(__name__)

#: How far back the page lists resolved alerts and transitions.
HISTORY_SECONDS = 24 * 3600
#: Deliveries listed (newest first).
DELIVERIES = 50


def _e(value: object) -> str:
    return escape(str(value))


def _chain_link(chain_id: str, environment: str = "") -> str:
    """The chain's page, in the alert's environment when it has one."""
    query = f"?env={quote(environment, safe='')}" if environment else ""
    return f'<a href="/chains/{_e(quote(chain_id, safe=""))}{_e(query)}">{_e(chain_id)}</a>'


def _environment(alert: dict[str, Any]) -> str:
    return str(alert.get("environment") or (alert.get("labels") or {}).get("environment", ""))


def failing_traces_link(alert: dict[str, Any]) -> str:
    """The search for the chain's failing traces over the rule's long window (``1h/5m`` ->
    the last hour), slowest first: the traces that burn the budget."""
    window = str(alert.get("rule", "")).split("/", 1)[0] or "1h"
    query = urlencode(
        {"chain": alert["chain_id"], "status": "error", "order": "duration", "since": window}
    )
    return f'<a href="/search?{_e(query)}">failing traces ({_e(window)})</a>'


def _alert_rows(alerts: Sequence[dict[str, Any]], when: str) -> list[list[str]]:
    return [
        [
            _chain_link(a["chain_id"], _environment(a)),
            _e(_environment(a)),
            f'<span class="badge {"critical" if a["severity"] == "page" else "degraded"}">'
            f"{_e(a['severity'])}</span>",
            _e(a["objective"]),
            _e(a["rule"]),
            _e(a.get(when) or a.get("active_since") or ""),
            _e((a.get("annotations") or {}).get("summary", "")),
            failing_traces_link(a),
        ]
        for a in alerts
    ]


_ALERT_HEADERS = (
    "chain",
    "environment",
    "severity",
    "objective",
    "window",
    "{when}",
    "summary",
    "traces",
)


def _section(
    anchor: str, title: str, headers: Sequence[str], rows: list[list[str]], css: str = ""
) -> str:
    """A titled part of the page with its count, its table or "none"."""
    heading = f'<h2 id="{anchor}">{_e(title)} <span class="count">{len(rows)}</span></h2>'
    body = html_table(headers, rows) if rows else '<p class="muted">none</p>'
    classes = f' class="{css}"' if css else ""
    return f"<section{classes}>{heading}{body}</section>"


def _alert_section(
    title: str, css: str, alerts: Sequence[dict[str, Any]], when: str, label: str
) -> str:
    headers = [h.format(when=label) for h in _ALERT_HEADERS]
    return _section(css, title, headers, _alert_rows(alerts, when), f"alert-list {css}")


def _history_section(events: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            _e(e["at"]),
            _chain_link(e["chain_id"], _environment(e)),
            _e(_environment(e)),
            _e(e["state"]),
            _e(e["labels"].get("objective", "")),
            _e(e["labels"].get("window", "")),
            _e(e["labels"].get("severity", "")),
        ]
        for e in events
    ]
    headers = ("at", "chain", "environment", "state", "objective", "window", "severity")
    return _section("history", "Transitions, last 24 h", headers, rows)


def _deliveries_section(deliveries: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            _e(d["at"]),
            _e(d["url"]),
            _e(d["status"]),
            f'<span class="outcome {_e(d["outcome"])}">{_e(d["outcome"])}</span>',
            _e(d["attempts"]),
            _e(d["http_status"] if d["http_status"] is not None else ""),
            _e(d["error"] or ""),
        ]
        for d in deliveries
    ]
    headers = ("queued", "receiver", "notification", "outcome", "attempts", "HTTP", "error")
    return _section("deliveries", "Webhook deliveries", headers, rows)


def _unavailable(title: str, exc: Exception) -> str:
    return (
        f'<section><h2>{_e(title)}</h2><p class="error">the chain registry cannot answer: '
        f"{_e(exc)}</p></section>"
    )


def _part(title: str, read: Callable[[], Any], render: Callable[[Any], str]) -> str:
    """One section from the registry; its failure is shown in its place, not as a 500."""
    try:
        return render(read())
    except (RegistryError, OSError) as exc:
        logger.warning("alerts page: %s unavailable: %s", title, exc)
        return _unavailable(title, exc)


def alerts_body(operations: Operations | None) -> str:
    """The page's HTML body (without the shared layout)."""
    api = '<a class="json" href="/api/v1/alerts">JSON</a>'
    if operations is None:
        return (
            f"<h1>Alerts {api}</h1><p>This serve runs without a chain registry "
            "(<code>CHAINMAP_REGISTRY_URL=off</code>), so no alert is evaluated. Alerts need "
            "the registry: leave <code>CHAINMAP_REGISTRY_URL</code> unset for the embedded "
            "PostgreSQL, or point it at a PostgreSQL database.</p>"
        )
    active = operations.active_alerts()
    firing = [a for a in active if a["state"] == "firing"]
    pending = [a for a in active if a["state"] == "pending"]
    # The monitor's own state only: chain_mapping() would read the active alerts again.
    status = operations.monitoring_status()
    running = (
        f"monitor running, every {status.get('interval_seconds', '?')} s; alerts fire after "
        f"{status.get('for_seconds', '?')} s"
        if status.get("running")
        else "the monitor is not running yet (waiting for the chain registry)"
    )
    parts = [
        f'<h1>Alerts {api}</h1><p class="muted">{_e(running)}</p>',
        _alert_section("Firing", "firing", firing, "fired_at", "firing since"),
        _alert_section("Pending", "pending", pending, "active_since", "pending since"),
        _part(
            "Resolved, last 24 h",
            lambda: operations.resolved_alerts(HISTORY_SECONDS),
            lambda rows: _alert_section(
                "Resolved, last 24 h", "resolved", rows, "resolved_at", "resolved at"
            ),
        ),
        _part(
            "Transitions, last 24 h",
            lambda: operations.alert_history(HISTORY_SECONDS),
            _history_section,
        ),
        _part("Webhook deliveries", lambda: operations.deliveries(DELIVERIES), _deliveries_section),
    ]
    return "".join(parts)


def alerts_page_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/alerts", response_class=HTMLResponse)
    def alerts_page(request: Request) -> HTMLResponse:
        operations: Operations | None = getattr(request.app.state, "operations", None)
        return page("alerts", alerts_body(operations), refresh=True)

    return router


def install_alerts_page(app: FastAPI) -> None:
    app.include_router(alerts_page_router())
