"""``/coverage``: how each chain's instances were recognised in the window (tagged at the
source, by the Collector's OTTL, or only at query time), where the tags and the current
rules disagree, and the entry endpoints no chain covers.

The same JSON as ``GET /api/v1/coverage`` (:mod:`chainmap_otel.analysis.coverage`) over the
page's window, linked from the heading; a chain links to its page, an unmatched endpoint
to its traces. The services whose spans carry tags, and who tagged them, close the page.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from chainmap_otel.analysis.by_environment import environment_names
from chainmap_otel.analysis.coverage import TAGGERS, coverage_json
from chainmap_otel.server.api.coverage import COVERAGE_PATH
from chainmap_otel.server.http.errors import parse_api_window, translated_errors
from chainmap_otel.server.http.pool import ReadRoute
from chainmap_otel.server.web.layout import error_page, html_table, page, window_text

__all__ = ["coverage_body", "install_coverage_page"]

#: How the page names each tagger.
TAGGER_LABELS = {"source": "source", "collector": "Collector", "query_time": "query time"}


def _e(value: object) -> str:
    return escape(str(value))


def _query(since: str | None, until: str | None, **extra: str) -> str:
    params = {k: v for k, v in (("since", since), ("until", until), *extra.items()) if v}
    return ("?" + urlencode(params)) if params else ""


def _split_bar(chain: dict[str, Any]) -> str:
    """The instances' shares by tagger, one stacked bar."""
    total = chain["instances"]
    if not total:
        return '<span class="muted">no instances</span>'
    parts = "".join(
        f'<span class="{tagger}" style="width:{chain["tagged_by"][tagger] / total * 100:.1f}%" '
        f'title="{_e(TAGGER_LABELS[tagger])}: {chain["tagged_by"][tagger]}"></span>'
        for tagger in TAGGERS
        if chain["tagged_by"][tagger]
    )
    return f'<span class="split">{parts}</span>'


def _chain_rows(
    data: dict[str, Any], since: str | None, until: str | None, env: str = ""
) -> list[list[str]]:
    rows = []
    for c in data["chains"]:
        if c["known"]:
            link = f"/chains/{quote(c['chain_id'], safe='')}{_query(since, until, env=env)}"
            name = f'<a href="{_e(link)}"><b>{_e(c["chain_id"])}</b> {_e(c["name"])}</a>'
        else:
            name = f'<b>{_e(c["chain_id"])}</b> <span class="muted">not in the rules</span>'
        disagree = (
            f'<span class="disagree">{c["disagreements"]}</span>'
            if c["disagreements"]
            else '<span class="muted">0</span>'
        )
        rows.append(
            [
                name,
                _e(c["instances"]),
                *(_e(c["tagged_by"][t]) for t in TAGGERS),
                _split_bar(c),
                disagree,
            ]
        )
    return rows


def _disagreement_rows(data: dict[str, Any]) -> list[list[str]]:
    return [
        [
            _e(d["chain_id"]),
            _e("tag, not the rules" if d["kind"] == "tag_not_rules" else "rules, not the tag"),
            _e(TAGGER_LABELS.get(d["tagged_by"] or "", "untagged")),
            _e(d["service"]),
            _e(" ".join(p for p in (d["method"], d["route"]) if p)),
            _e(",".join(d["tagged"]) or "-"),
            _e(",".join(d["rules"]) or "-"),
            _e(d["instances"]),
        ]
        for d in data["disagreements"]
    ]


def _unmatched_rows(data: dict[str, Any], since: str | None, env: str = "") -> list[list[str]]:
    rows = []
    for e in data["unmatched"]["endpoints"]:
        search = "/search" + _query(since, None, service=e["service"], environment=env)
        rows.append(
            [
                _e(e["service"]),
                _e(e["method"]),
                _e(e["route"]),
                _e(e["kind"]),
                _e(e["traces"]),
                f'<a href="{_e(search)}">traces</a>',
            ]
        )
    return rows


def _legend() -> str:
    keys = "".join(
        f'<span class="key"><span class="swatch {t}"></span>{_e(TAGGER_LABELS[t])}</span>'
        for t in TAGGERS
    )
    return f'<p class="muted split-legend">split: {keys}</p>'


def _tagging_rows(data: dict[str, Any]) -> list[list[str]]:
    return [
        [_e(t["service"]), _e(TAGGER_LABELS[t["tagged_by"]]), _e(t["spans"])]
        for t in data["tagging_services"]
    ]


def _section(anchor: str, title: str, table: str, empty: str, count: int) -> str:
    heading = f'<h2 id="{anchor}">{_e(title)} <span class="count">{count}</span></h2>'
    return f"<section>{heading}{table if count else f'<p class=muted>{_e(empty)}</p>'}</section>"


def coverage_body(data: dict[str, Any], since: str | None, until: str | None, env: str = "") -> str:
    """The page's HTML body (without the shared layout); links keep the environment."""
    totals = data["totals"]
    api = f"{COVERAGE_PATH}{_query(since, until, environment=env)}"
    split = ", ".join(f"{totals['tagged_by'][t]} {TAGGER_LABELS[t]}" for t in TAGGERS)
    summary = (
        f'<p class="totals">{totals["instances"]} chain instances: {_e(split)}; '
        f"{totals['disagreements']} where tag and rules disagree; "
        f"{data['unmatched']['traces']} traces in no chain</p>"
    )
    chains = html_table(
        ("chain", "instances", *(TAGGER_LABELS[t] for t in TAGGERS), "split", "disagree"),
        _chain_rows(data, since, until, env),
        "coverage",
    )
    disagreements = html_table(
        ("chain", "says", "tagged by", "service", "endpoint", "tag", "rules", "instances"),
        _disagreement_rows(data),
        "disagreements",
    )
    unmatched = html_table(
        ("service", "method", "route", "kind", "traces", ""),
        _unmatched_rows(data, since, env),
        "unmatched",
    )
    return (
        f'<h1>Rule coverage <a class="json" href="{_e(api)}">JSON</a></h1>{summary}'
        + _section(
            "chains",
            "Instances by what recognised them",
            chains + _legend(),
            "no chains defined",
            len(data["chains"]),
        )
        + _section(
            "disagreements",
            "Tags and current rules that disagree",
            disagreements,
            "none: every tag agrees with the current rules",
            len(data["disagreements"]),
        )
        + _section(
            "unmatched",
            "Entry endpoints matching no chain",
            unmatched,
            "none: every trace belongs to a chain",
            len(data["unmatched"]["endpoints"]),
        )
        + _section(
            "tagging",
            "Services whose spans carry tags",
            html_table(("service", "tagged by", "spans"), _tagging_rows(data), "tagging"),
            "none: every chain is recognised at query time",
            len(data["tagging_services"]),
        )
    )


def coverage_page_router() -> APIRouter:
    router = APIRouter(include_in_schema=False, route_class=ReadRoute)

    @router.get("/coverage", response_class=HTMLResponse)
    def coverage_page(
        request: Request, since: str | None = None, until: str | None = None, env: str | None = None
    ) -> HTMLResponse:
        try:
            window = parse_api_window(since, until, env)
            with translated_errors():
                data = coverage_json(request.app.state.store, request.app.state.catalog, window)
        except HTTPException as exc:
            return error_page(exc)
        text = window_text(data["window"])
        body = coverage_body(data, since, until, window.environment)
        return page(
            "coverage",
            body,
            since,
            window_text=text,
            environment=window.environment,
            environments=environment_names(request.app.state.store, window),
            until=until,
        )

    return router


def install_coverage_page(app: FastAPI) -> None:
    app.include_router(coverage_page_router())
