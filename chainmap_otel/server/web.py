"""The built-in web view of ``chainmap serve``: server-rendered HTML, no external resources.

Pages render the same library results the JSON API returns (each page links to its
JSON): ``/`` the chains with status badges, rate, error ratio and p95 against the SLO;
``/chains/{id}`` a chain's topology as SVG, health and burn rates, critical-path shares
and drift; ``/topology`` all traffic; ``/traces?trace_id=`` a trace's critical path as a
waterfall. A few lines of vanilla JS (``static/app.js``) refresh the page every 10 s.
Pages are ``def`` endpoints so their ClickHouse queries run in the threadpool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from chainmap_otel.server.api import (
    API_PREFIX,
    chain_detail,
    chain_list,
    parse_api_window,
    translated_errors,
)
from chainmap_otel.server.topology_svg import NODE_COLOURS, topology_svg
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = ["STATIC_DIR", "install_web", "web_router"]

STATIC_DIR = Path(__file__).parent / "static"
WINDOWS = ("15m", "1h", "6h", "24h", "7d")


def _e(value: object) -> str:
    return escape(str(value))


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 10_000 else f"{value / 1000:,.2f} s"


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status)}</span>'


def _query(since: str | None, until: str | None, **extra: str) -> str:
    params = {k: v for k, v in (("since", since), ("until", until), *extra.items()) if v}
    return ("?" + urlencode(params)) if params else ""


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _page(
    title: str, body: str, since: str | None = None, status: int = 200, window_text: str = ""
) -> HTMLResponse:
    """A full page; pages over a time window get the window picker and the auto-refresh."""
    windows = " ".join(
        f'<a href="?{urlencode({"since": w})}" class="{"on" if (since or "1h") == w else ""}">{w}</a>'
        for w in WINDOWS
    )
    picker = (
        f'<div class="window">window: {windows} <span class="muted">{_e(window_text)}</span></div>'
        if window_text
        else ""
    )
    refresh = ' data-refresh="10"' if window_text else ""
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · chainmap</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
<script src="/static/alerts.js" defer></script>
</head><body>
<header><a class="brand" href="/">chainmap</a>
<nav><a href="/">chains</a> <a href="/topology">all traffic</a> <a href="/docs">API</a></nav>
<form class="lookup" action="/traces" method="get">
<input name="trace_id" placeholder="trace id (32 hex)" size="34" aria-label="trace id">
<button>critical path</button></form>
</header>
<main{refresh}>
{picker}
{body}
</main></body></html>"""
    return HTMLResponse(html, status_code=status)


def _error_page(exc: HTTPException) -> HTMLResponse:
    body = f'<h1>Error {exc.status_code}</h1><p class="error">{_e(exc.detail)}</p>'
    return _page(f"error {exc.status_code}", body, status=exc.status_code)


def _window_text(window: dict[str, Any]) -> str:
    return f"{window['since']} .. {window['until']}"


def _slo_p95(slo: dict[str, Any] | None) -> float | None:
    if not slo:
        return None
    value = slo["latency_ms"].get("p95")
    return float(value) if value is not None else None


def _p95_cell(p95: float, slo: dict[str, Any] | None, traces: int) -> str:
    if not traces:
        return '<span class="muted">no traffic</span>'
    target = _slo_p95(slo)
    if target is None:
        return _e(_ms(p95))
    over = " over" if p95 > target else ""
    return f'<span class="{over.strip()}">{_e(_ms(p95))}</span> <span class="muted">/ {_e(_ms(target))}</span>'


def index_body(data: dict[str, Any], since: str | None, until: str | None) -> str:
    rows = []
    for chain in data["chains"]:
        h = chain["health"]
        link = f"/chains/{quote(chain['id'])}{_query(since, until)}"
        burn = h["burn_rates"]
        rows.append(
            (
                f'<a href="{_e(link)}"><b>{_e(chain["id"])}</b> {_e(chain["name"])}</a>',
                _badge(h["status"]),
                _e(chain["category"]),
                _e(chain["criticality"]),
                _e(h["traces"]),
                _e(f"{h['rate_per_s']:.3f}/s"),
                _e(_pct(h["error_ratio"])) if h["traces"] else '<span class="muted">-</span>',
                _p95_cell(h["p95_ms"], chain["slo"], h["traces"]),
                _e(f"{burn['1h']:.2f}x") if burn else '<span class="muted">no SLO</span>',
                f'<span class="reason">{_e(h["reason"])}</span>',
            )
        )
    table = _table(
        (
            "chain",
            "status",
            "category",
            "criticality",
            "traces",
            "rate",
            "errors",
            "p95 / SLO",
            "burn 1h",
            "why",
        ),
        rows,
        "chains",
    )
    api = f"{API_PREFIX}{_query(since, until)}"
    return (
        f'<h1>Chains <a class="json" href="{_e(api)}">JSON</a></h1>{table}'
        f'<p class="muted">{data["catalog"]["chains"]} chains from '
        f"{_e(data['catalog']['source'])}</p>"
    )


def _burn_table(slo: dict[str, Any] | None) -> str:
    if not slo or not slo["objectives"]:
        return (
            '<p class="muted">This chain defines no SLO, so there is no error budget to burn.</p>'
        )
    labels = list(slo["objectives"][0]["burn_rates"])
    rows = []
    for o in slo["objectives"]:
        cells = [
            _e(o["objective"]),
            _e(_pct(o["budget"])),
            _e(_pct(o["bad_ratio"])),
            _e(_pct(o["budget_remaining"])),
        ]
        for label in labels:
            rate = o["burn_rates"][label]
            hot = "hot" if rate > 1 else ""
            cells.append(f'<span class="{hot}">{rate:.2f}x</span>')
        rows.append(cells)
    headers = ["objective", "budget", "bad ratio", "budget left", *(f"burn {lb}" for lb in labels)]
    return _table(headers, rows, "burn")


def _health_block(h: dict[str, Any]) -> str:
    facts = [
        ("status", _badge(h["status"])),
        ("traces", _e(h["traces"])),
        ("rate", _e(f"{h['rate_per_s']:.3f}/s")),
        ("errors", _e(f"{h['errors']} ({_pct(h['error_ratio'])})")),
        ("p50", _e(_ms(h["p50_ms"]))),
        ("p95", _e(_ms(h["p95_ms"]))),
        ("p99", _e(_ms(h["p99_ms"]))),
    ]
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    return (
        f'<section><h2>Health</h2><dl class="facts">{dl}</dl>'
        f'<p class="reason">{_e(h["reason"])}</p>{_burn_table(h["slo"])}</section>'
    )


def _share_bars(title: str, shares: list[dict[str, Any]], limit: int = 12) -> str:
    if not shares:
        return f'<h3>{_e(title)}</h3><p class="muted">no traces</p>'
    rows = []
    for s in shares[:limit]:
        name = s["service"] + (f" · {s['name']}" if "name" in s else "")
        rows.append(
            f'<div class="bar"><span class="label" title="{_e(name)}">{_e(name)}</span>'
            f'<span class="track"><span class="fill" style="width:{s["share"] * 100:.1f}%"></span></span>'
            f'<span class="value">{s["share"]:.1%} · {_e(_ms(s["mean_ms"]))}/trace</span></div>'
        )
    more = f'<p class="muted">{len(shares) - limit} more</p>' if len(shares) > limit else ""
    return f'<h3>{_e(title)}</h3><div class="bars">{"".join(rows)}</div>{more}'


def _critical_block(cp: dict[str, Any]) -> str:
    head = (
        f'<p class="muted">{cp["traces"]} traces, {cp["sampled_traces"]} sampled; slowest 5 %: '
        f"{_plural(cp['slow_traces'], 'trace')} above {_e(_ms(cp['slow_threshold_ms']))}</p>"
    )
    return (
        "<section><h2>Critical path: where the time goes</h2>"
        + head
        + '<div class="columns"><div>'
        + _share_bars("services, all traces", cp["all"]["services"])
        + _share_bars("operations, all traces", cp["all"]["operations"])
        + "</div><div>"
        + _share_bars("services, slowest 5 %", cp["slowest_5pct"]["services"])
        + _share_bars("operations, slowest 5 %", cp["slowest_5pct"]["operations"])
        + "</div></div></section>"
    )


def _drift_block(chain: dict[str, Any] | None) -> str:
    if chain is None:
        return (
            '<section><h2>Drift</h2><p class="muted">No <code>expected</code> topology '
            "is declared for this chain.</p></section>"
        )
    rows = [
        ("new", f"{_e(e['source'])} → {_e(e['target'])}", _e(e["calls"]), _e(e["last_seen"] or "-"))
        for e in chain["new"]
    ]
    rows += [
        ("missing", f"{_e(e['source'])} → {_e(e['target'])}", "0", _e(e["last_seen"] or "never"))
        for e in chain["missing"]
    ]
    verdict = (
        "drifted from its expected topology"
        if chain["drifted"]
        else "matches its expected topology"
    )
    table = _table(("change", "edge", "calls", "last seen"), rows, "drift") if rows else ""
    return f"<section><h2>Drift</h2><p>This chain {verdict}.</p>{table}</section>"


def _legend() -> str:
    items = "".join(
        f'<span><i style="background:{c}"></i>{_e(t)}</span>' for t, c in NODE_COLOURS.items()
    )
    return f'<div class="legend">{items}<span><i class="failed"></i>received errors</span></div>'


def chain_body(
    store: TraceStore, catalog: ChainCatalog, chain_id: str, since: str | None, until: str | None
) -> tuple[str, str]:
    from chainmap_otel.analysis.critical_path import chain_critical_path
    from chainmap_otel.analysis.drift import drift
    from chainmap_otel.analysis.topology import topology

    window = parse_api_window(since, until)
    detail = chain_detail(store, catalog, chain_id, window)
    definition = detail["chain"]
    topo = topology(store, catalog, window, chain_id)
    cp = chain_critical_path(store, catalog, chain_id, window, 500).to_json()
    drifted = None
    if definition["expected"] is not None:
        drifted = drift(store, catalog, window, chain_id, parse_api_window("7d", until))["chains"][
            0
        ]
    q = _query(since, until)
    api = f"{API_PREFIX}/{quote(chain_id)}"
    links = " ".join(
        f'<a class="json" href="{_e(href)}">{_e(text)}</a>'
        for text, href in (
            ("JSON", api + q),
            ("topology", f"{api}/topology{q}"),
            ("mermaid", f"{api}/topology{_query(since, until, format='mermaid')}"),
            ("critical path", f"{api}/critical-path{q}"),
        )
    )
    body = (
        f"<h1>{_e(definition['id'])} {_e(definition['name'])} {_badge(detail['health']['status'])} {links}</h1>"
        f'<p class="muted">{_e(definition["category"])} · criticality {_e(definition["criticality"])}'
        f" · {_e(definition['description'])}</p>"
        f'<section><h2>Topology</h2>{_legend()}<div class="graph">{topology_svg(topo)}</div></section>'
        + _health_block(detail["health"])
        + _critical_block(cp)
        + _drift_block(drifted)
    )
    return body, _window_text(detail["window"])


def waterfall_body(result: dict[str, Any]) -> str:
    sections = result["sections"]
    if not sections:
        return f'<h1>Trace {_e(result["trace_id"])}</h1><p class="muted">no critical path</p>'
    start = min(s["start_unix_nano"] for s in sections)
    end = max(s["end_unix_nano"] for s in sections)
    total = max(end - start, 1)
    rows = []
    for s in sections:
        left = (s["start_unix_nano"] - start) / total * 100
        width = max((s["end_unix_nano"] - s["start_unix_nano"]) / total * 100, 0.3)
        took = (s["end_unix_nano"] - s["start_unix_nano"]) / 1e6
        at = (s["start_unix_nano"] - start) / 1e6
        rows.append(
            f'<div class="wf"><span class="label" title="{_e(s["span_id"])}">{_e(s["service"])} · '
            f'{_e(s["name"])}</span><span class="track"><span class="fill" style="left:{left:.2f}%;'
            f'width:{width:.2f}%"></span></span><span class="value">+{_e(_ms(at))} · {_e(_ms(took))}</span></div>'
        )
    api = f"{API_PREFIX}/traces/{result['trace_id']}/critical-path"
    return (
        f'<h1>Critical path of {_e(result["trace_id"])} <a class="json" href="{_e(api)}">JSON</a></h1>'
        f'<p class="muted">{len(sections)} sections over {_e(_ms(total / 1e6))}; each bar is the part '
        f"of a span the trace waited on (Jaeger's critical path).</p>"
        f'<div class="waterfall">{"".join(rows)}</div>'
    )


def web_router() -> APIRouter:
    """The HTML pages; read ``app.state.store`` and ``app.state.catalog``."""
    router = APIRouter(include_in_schema=False)

    def render(title: str, since: str | None, build: Callable[[], tuple[str, str]]) -> HTMLResponse:
        try:
            with translated_errors(not_found=True):
                body, window_text = build()
        except HTTPException as exc:
            return _error_page(exc)
        return _page(title, body, since, window_text=window_text)

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request, since: str | None = None, until: str | None = None) -> HTMLResponse:
        def build() -> tuple[str, str]:
            data = chain_list(
                request.app.state.store, request.app.state.catalog, parse_api_window(since, until)
            )
            return index_body(data, since, until), _window_text(data["window"])

        return render("chains", since, build)

    @router.get("/chains/{chain_id}", response_class=HTMLResponse)
    def chain_page(
        request: Request, chain_id: str, since: str | None = None, until: str | None = None
    ) -> HTMLResponse:
        return render(
            chain_id,
            since,
            lambda: chain_body(
                request.app.state.store, request.app.state.catalog, chain_id, since, until
            ),
        )

    @router.get("/topology", response_class=HTMLResponse)
    def all_traffic(
        request: Request, since: str | None = None, until: str | None = None
    ) -> HTMLResponse:
        from chainmap_otel.analysis.topology import topology

        def build() -> tuple[str, str]:
            window = parse_api_window(since, until)
            topo = topology(request.app.state.store, request.app.state.catalog, window, None)
            api = f"{API_PREFIX}/topology{_query(since, until)}"
            body = (
                f'<h1>All traffic <a class="json" href="{_e(api)}">JSON</a></h1>{_legend()}'
                f'<div class="graph">{topology_svg(topo)}</div>'
            )
            return body, _window_text(window.to_json())

        return render("all traffic", since, build)

    @router.get("/traces", response_class=HTMLResponse)
    def trace_page(request: Request, trace_id: str = "") -> HTMLResponse:
        from chainmap_otel.analysis.critical_path import critical_path

        def build() -> tuple[str, str]:
            wanted = trace_id.strip()
            if not wanted:
                return (
                    "<h1>Trace lookup</h1><p>Paste a trace id (the <code>X-Trace-ID</code> "
                    "response header) in the box above.</p>",
                    "",
                )
            if len(wanted) != 32 or any(c not in "0123456789abcdefABCDEF" for c in wanted):
                raise HTTPException(
                    400,
                    f"trace id {wanted!r} is not 32 hex characters; copy it "
                    "from the X-Trace-ID response header or a trace view",
                )
            return waterfall_body(critical_path(request.app.state.store, wanted)), ""

        return render("trace", None, build)

    return router


def install_web(app: FastAPI) -> None:
    """Mount the pages and their static files (``chainmap_otel/server/static``)."""
    app.include_router(web_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
