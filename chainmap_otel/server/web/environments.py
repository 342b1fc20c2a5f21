"""The chain list's environments side by side: for each chain, its rate, error ratio, p95
and status in each ``deployment.environment.name`` of the window (the ``environments`` of
the chain list JSON, present when the window holds more than one), each cell linking to
the chain's page in that environment."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from chainmap_otel.server.web.layout import (
    escape_html,
    html_table,
    ms_text,
    pct_text,
    query_string,
    status_badge,
)

__all__ = ["environments_table"]


def _cell(
    chain_id: str, environment: str, summary: dict[str, Any], since: str | None, until: str | None
) -> str:
    link = f"/chains/{quote(chain_id, safe='')}{query_string(since, until, env=environment)}"
    if not summary["traces"]:
        figures = '<span class="muted">no traffic</span>'
    else:
        figures = escape_html(
            f"{summary['rate_per_s']:.3f}/s · {pct_text(summary['error_ratio'])} errors · "
            f"p95 {ms_text(summary['p95_ms'])}"
        )
    return (
        f'<a href="{escape_html(link)}">{status_badge(summary["status"])}</a> '
        f'<span class="env-figures">{figures}</span>'
    )


def environments_table(data: dict[str, Any], since: str | None, until: str | None) -> str:
    """The side-by-side section, or ``""`` when the window holds at most one environment."""
    names: list[str] = list(data.get("environments") or [])
    if len(names) < 2:
        return ""
    rows = []
    for chain in data["chains"]:
        per = chain.get("environments") or {}
        rows.append(
            [
                f"<b>{escape_html(chain['id'])}</b> {escape_html(chain['name'])}",
                *(
                    _cell(chain["id"], name, per[name], since, until)
                    if name in per
                    else '<span class="muted">-</span>'
                    for name in names
                ),
            ]
        )
    table = html_table(["chain", *names], rows, "chains by-environment")
    return (
        '<section><h2 id="environments">By environment</h2>'
        '<p class="muted">rate, error ratio and p95 of each chain in each environment, '
        "judged by that environment's objectives</p>"
        f"{table}</section>"
    )
