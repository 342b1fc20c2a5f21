"""The built-in web view of ``chainmap serve``: server-rendered HTML, no external resources.

Pages render the same library results the JSON API returns (each page links to its
JSON): ``/`` the chains, worst status and highest criticality first, with status
badges, rate, error ratio and p95 against the SLO; ``/chains/{id}`` a chain's topology,
its slowest / failing / recent traces, health and burn rates, critical-path shares and
drift; ``/topology`` all traffic. Graphs are drawn in the browser by Cytoscape.js with
the dagre layout (vendored under ``static/vendor``, so the view works offline) from the
topology JSON embedded in the page. The trace pages (search, trace view) and the
offline API docs are in :mod:`chainmap_otel.server.web.traces`. ``static/app.js``
refreshes windowed pages every 10 s. Pages are ``def`` endpoints so their ClickHouse
queries run in the threadpool.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from chainmap_otel.server.api.chains import API_PREFIX, chain_detail, chain_list
from chainmap_otel.server.http.errors import parse_api_window, translated_errors
from chainmap_otel.server.http.pool import ReadRoute
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = [
    "GRAPH_SCRIPTS",
    "NODE_COLOURS",
    "STATIC_DIR",
    "error_page",
    "graph_block",
    "html_table",
    "install_web",
    "json_for_html",
    "page",
    "sparkline",
    "status_badge",
    "web_router",
]

STATIC_DIR = Path(__file__).parent / "static"
WINDOWS = ("15m", "1h", "6h", "24h", "7d")
#: Node fill per node type; keep in step with ``static/topology.js``.
NODE_COLOURS = {
    "service": "#2f6fb0",
    "database": "#c77d1a",
    "messaging": "#7b4fb3",
    "virtual": "#6b7280",
    "user": "#2e8b57",
}


def _e(value: object) -> str:
    return escape(str(value))


#: What JSON must not carry verbatim inside an HTML ``<script>``: ``<`` and ``>`` (``<!--``,
#: ``<script``, ``</script`` change how the browser tokenises the element), ``&``, and the
#: line separators JavaScript before ES2019 ends a string at.
_HTML_UNSAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def json_for_html(value: Any) -> str:
    """``value`` as JSON safe to embed in an HTML ``<script type="application/json">``.

    Every page that embeds JSON goes through this: the escapes are JSON string escapes,
    so ``JSON.parse`` of the element's text gives ``value`` back unchanged, whatever
    span, service or chain names it holds.
    """
    return json.dumps(value, separators=(",", ":")).translate(_HTML_UNSAFE)


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 10_000 else f"{value / 1000:,.2f} s"


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def status_badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status.replace("_", " "))}</span>'


def _query(since: str | None, until: str | None, **extra: str) -> str:
    params = {k: v for k, v in (("since", since), ("until", until), *extra.items()) if v}
    return ("?" + urlencode(params)) if params else ""


def html_table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def page(
    title: str,
    body: str,
    since: str | None = None,
    status: int = 200,
    window_text: str = "",
    scripts: Sequence[str] = (),
    refresh: bool = False,
    env: str | None = None,
) -> HTMLResponse:
    """A full page; pages over a time window get the window picker and the auto-refresh
    (``refresh``: the auto-refresh without a window); its links keep the environment ``env``.

    ``scripts`` are more files under ``/static`` the page needs (graph, trace view, ...).
    """
    tags = "".join(f'<script src="/static/{_e(name)}" defer></script>\n' for name in scripts)
    windows = " ".join(
        f'<a href="?{urlencode({"since": w, **({"env": env} if env else {})})}" '
        f'class="{"on" if (since or "1h") == w else ""}">{w}</a>'
        for w in WINDOWS
    )
    picker = (
        f'<div class="window">window: {windows} <span class="muted">{_e(window_text)}</span></div>'
        if window_text
        else ""
    )
    refresh_attribute = ' data-refresh="10"' if window_text or refresh else ""
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · chainmap</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
{tags}</head><body>
<header><a class="brand" href="/">chainmap</a>
<nav><a href="/">chains</a> <a href="/topology">all traffic</a> <a href="/search">traces</a> <a href="/coverage">coverage</a> <a href="/alerts">alerts</a> <a href="/docs">API</a></nav>
<form class="lookup" action="/traces" method="get">
<input name="trace_id" placeholder="trace id (32 hex)" size="34" aria-label="trace id">
<button>open trace</button></form>
</header>
<main{refresh_attribute}>
{picker}
{body}
</main></body></html>"""
    return HTMLResponse(html, status_code=status)


def error_page(exc: HTTPException) -> HTMLResponse:
    body = f'<h1>Error {exc.status_code}</h1><p class="error">{_e(exc.detail)}</p>'
    return page(f"error {exc.status_code}", body, status=exc.status_code)


def _window_text(window: dict[str, Any]) -> str:
    shown = f"{window['since']} .. {window['until']}"
    return f"{shown} · environment {window['environment']}" if "environment" in window else shown


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


def sparkline(values: Sequence[float | None], title: str, css: str = "") -> str:
    """A tiny inline SVG line of ``values`` (gaps for ``None`` bridged), scaled to its own
    maximum; one step (a short window) is a level line, one value among empty steps a dot."""
    points = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    if not points:
        return '<span class="muted" title="no traffic in the window">no data</span>'
    width, height = 80.0, 18.0
    top = max(v for _, v in points) or 1.0
    if len(values) == 1:  # one step (a short window): a level line across the box
        points = [(0, points[0][1]), (1, points[0][1])]
    step = width / max(1, len(values) - 1)
    xy = [(i * step, height - 1 - v / top * (height - 2)) for i, v in points]
    mark = (
        f'<circle cx="{xy[0][0]:.1f}" cy="{xy[0][1]:.1f}" r="2"/>'
        if len(xy) == 1
        else f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in xy)}"/>'
    )
    return (
        f'<svg class="spark {_e(css)}" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{_e(title)}">'
        f"<title>{_e(title)}</title>{mark}</svg>"
    )


#: Sparkline columns of the chain list: (heading, key in the chain's ``series``, unit).
SPARK_SERIES = (("rate", "rate_per_s", "/s"), ("errors", "errors", ""), ("p95", "p95_ms", " ms"))


def _spark_cells(chain: dict[str, Any]) -> list[str]:
    """Rate, errors and p95 over the window (``series`` of the chain list JSON)."""
    series = chain.get("series") or {}
    minutes = round(series.get("step_seconds", 60) / 60)
    cells = []
    for heading, key, unit in SPARK_SERIES:
        values = series.get(key) or []
        peak = max((v for v in values if v is not None), default=None)
        title = f"{chain['id']} {heading}, {len(values)} steps of {minutes} min" + (
            f", peak {peak:,.3g}{unit}" if peak is not None else ""
        )
        cells.append(sparkline(values, title, heading))
    return cells


def _traces_cell(h: dict[str, Any]) -> str:
    """Traces, and ``sampled, ~N% stored`` when the count is an estimate from sampled ones."""
    from chainmap_otel.analysis.health import sampling_note

    note = sampling_note(h.get("sampling"))
    return _e(h["traces"]) + (f' <span class="muted">({_e(note)})</span>' if note else "")


def index_body(data: dict[str, Any], since: str | None, until: str | None) -> str:
    rows = []
    for chain in data["chains"]:  # already worst status first, then most critical
        h = chain["health"]
        link = f"/chains/{quote(chain['id'])}{_query(since, until)}"
        burn = h["burn_rates"]
        rows.append(
            (
                f'<a href="{_e(link)}"><b>{_e(chain["id"])}</b> {_e(chain["name"])}</a>',
                status_badge(h["status"]),
                _e(chain["category"]),
                _e(chain["criticality"]),
                _traces_cell(h),
                _e(f"{h['rate_per_s']:.3f}/s"),
                _e(_pct(h["error_ratio"])) if h["traces"] else '<span class="muted">-</span>',
                _p95_cell(h["p95_ms"], chain["slo"], h["traces"]),
                *_spark_cells(chain),
                _e(f"{burn['1h']:.2f}x") if burn else '<span class="muted">no SLO</span>',
                f'<span class="reason">{_e(h["reason"])}</span>',
            )
        )
    spark_heads = tuple(f"{heading} trend" for heading, _, _ in SPARK_SERIES)
    table = html_table(
        (
            "chain",
            "status",
            "category",
            "criticality",
            "traces",
            "rate",
            "errors",
            "p95 / SLO",
            *spark_heads,
            "burn 1h",
            "why",
        ),
        rows,
        "chains",
    )
    api = f"{API_PREFIX}{_query(since, until)}"
    if not rows:
        table = (
            '<p class="empty">No chains are defined yet. Give <code>chainmap serve --chains '
            "chains.yaml</code> (or <code>CHAINMAP_CHAINS_FILE</code>) to seed them, or "
            "<code>chainmap registry push chains.yaml</code> when serve keeps them in its "
            "registry; <code>chainmap discover</code> proposes chains from the traces already "
            'stored, and <a href="/search">traces</a> lists them.</p>'
        )
    return (
        f'<h1>Chains <a class="json" href="{_e(api)}">JSON</a></h1>{table}'
        f'<p class="muted">{data["catalog"]["chains"]} chains from '
        f"{_e(data['catalog']['source'])}, worst status and most critical first</p>"
    )


def budget_left(remaining: float, bad_ratio: float, budget: float) -> str:
    """What is left of an error budget: a percentage, or how many times it was overspent."""
    if remaining >= 0:
        return _pct(remaining)
    return f"exhausted ({bad_ratio / budget:.1f}x)" if budget else "exhausted"


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
            _e(budget_left(o["budget_remaining"], o["bad_ratio"], o["budget"])),
        ]
        for label in labels:
            rate = o["burn_rates"][label]
            hot = "hot" if rate > 1 else ""
            cells.append(f'<span class="{hot}">{rate:.2f}x</span>')
        rows.append(cells)
    headers = ["objective", "budget", "bad ratio", "budget left", *(f"burn {lb}" for lb in labels)]
    return html_table(headers, rows, "burn")


def _health_block(h: dict[str, Any]) -> str:
    facts = [
        ("status", status_badge(h["status"])),
        ("traces", _traces_cell(h)),
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


#: Operations the chain page lists (the busiest first; the JSON link has them all).
OPERATIONS_SHOWN = 25


def _operations_block(data: dict[str, Any], since: str | None, until: str | None) -> str:
    """RED per operation of the chain, each operation linked to its traces in the chain."""
    chain_id = data["chain_id"]
    rows = []
    for o in data["operations"]:
        search = urlencode(
            {
                "chain": chain_id,
                "service": o["service"],
                "operation": o["operation"],
                "order": "duration",
                **_window_params(since, until),
            }
        )
        name = f"{chain_id} {o['service']} {o['operation']}"
        rows.append(
            (
                _e(o["service"]),
                f'<a href="/search?{_e(search)}">{_e(o["operation"])}</a>',
                _e(o["kind"]),
                _e(f"{o['rate_per_s']:.3f}/s"),
                _e(o["errors"]) if o["errors"] else '<span class="muted">0</span>',
                _e(_pct(o["error_ratio"])),
                _e(_ms(o["p50_ms"])),
                _e(_ms(o["p95_ms"])),
                _e(_ms(o["p99_ms"])),
                sparkline(o["series"]["rate_per_s"], f"{name} rate", "rate"),
                sparkline(o["series"]["p95_ms"], f"{name} p95", "p95"),
            )
        )
    shown = (
        f"the {len(rows)} busiest of {data['operations_total']}"
        if len(rows) < data["operations_total"]
        else f"{len(rows)}"
    )
    heading = (
        f'<h2 id="operations">Operations <span class="count">{_e(shown)}</span></h2>'
        '<p class="muted">Rate, errors and latency of each operation run as part of this chain '
        f"(rates over the {data['rate_seconds']:,.0f} s of the window that hold data).</p>"
    )
    if not rows:
        return (
            f'<section>{heading}<p class="muted">no spans of this chain in the window</p></section>'
        )
    headers = (
        "service",
        "operation",
        "kind",
        "rate",
        "errors",
        "error ratio",
        "p50",
        "p95",
        "p99",
        "rate trend",
        "p95 trend",
    )
    return f"<section>{heading}{html_table(headers, rows, 'operations')}</section>"


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
    table = html_table(("change", "edge", "calls", "last seen"), rows, "drift") if rows else ""
    return f"<section><h2>Drift</h2><p>This chain {verdict}.</p>{table}</section>"


def _legend() -> str:
    items = "".join(
        f'<span><i style="background:{c}"></i>{_e(t)}</span>' for t, c in NODE_COLOURS.items()
    )
    return (
        f'<div class="legend">{items}<span><i class="caller"></i>caller of the chain</span>'
        '<span><i class="failed"></i>received errors</span>'
        "<span>drag to pan, wheel to zoom, click a node for its chains and traces</span></div>"
    )


def graph_block(topo: dict[str, Any], key: str, since: str | None) -> str:
    """A topology for ``static/topology.js``: its JSON in the page, a canvas and a node panel."""
    data = json_for_html(topo)
    return (
        f'{_legend()}<div class="graph" data-topology="{_e(key)}" data-since="{_e(since or "")}">'
        f'<script type="application/json" class="topology-data">{data}</script>'
        '<button type="button" class="fit" title="fit the graph to the box">fit</button>'
        '<div class="canvas"></div><aside class="node-panel" hidden></aside></div>'
    )


def _trace_lists(chain_id: str, since: str | None, until: str | None, env: str = "") -> str:
    """The chain's slowest traces, those where the chain failed (its entry span: what health
    counts), those where only another span failed, and the most recent (filled by
    ``static/search.js``). Durations and ranks are the chain's own entry span's."""
    lists = (
        ("slowest (entry span)", {"order": "duration"}),
        ("chain failed, slowest first", {"chain_status": "error", "order": "duration"}),
        (
            "a span failed, chain ok",
            {"status": "error", "chain_status": "ok", "order": "duration"},
        ),
        ("most recent", {"order": "start"}),
    )
    blocks = []
    window = {**_window_params(since, until), **({"environment": env} if env else {})}
    for title, params in lists:
        query = urlencode({"chain": chain_id, **params, "limit": "8", **window})
        more = f"/search?{urlencode({'chain': chain_id, **params, **window})}"
        blocks.append(
            f'<div><h3>{_e(title)} <a class="json" href="{_e(more)}">search</a></h3>'
            f'<div class="trace-list" data-compact data-query="{_e(query)}"></div></div>'
        )
    return f'<section><h2>Traces</h2><div class="lists">{"".join(blocks)}</div></section>'


def _window_params(since: str | None, until: str | None) -> dict[str, str]:
    return {k: v for k, v in (("since", since), ("until", until)) if v}


def chain_body(
    store: TraceStore,
    catalog: ChainCatalog,
    chain_id: str,
    since: str | None,
    until: str | None,
    env: str | None = None,
) -> tuple[str, str]:
    from chainmap_otel.analysis.critical_path import chain_critical_path
    from chainmap_otel.analysis.drift import drift
    from chainmap_otel.analysis.operations import chain_operations
    from chainmap_otel.analysis.topology import topology

    window = parse_api_window(since, until, env)
    detail = chain_detail(store, catalog, chain_id, window)
    definition = detail["chain"]
    topo = topology(store, catalog, window, chain_id)
    cp = chain_critical_path(store, catalog, chain_id, window, 500).to_json()
    operations = chain_operations(store, catalog, window, chain_id, OPERATIONS_SHOWN).to_json()
    drifted = None
    if definition["expected"] is not None:
        drifted = drift(store, catalog, window, chain_id, parse_api_window("7d", until))["chains"][
            0
        ]
    q = _query(since, until)
    # The environment filter travels to the reads that take it (API name: environment).
    qe = _query(since, until, environment=window.environment)
    api = f"{API_PREFIX}/{quote(chain_id)}"
    links = " ".join(
        f'<a class="json" href="{_e(href)}">{_e(text)}</a>'
        for text, href in (
            ("JSON", api + q),
            ("topology", f"{api}/topology{qe}"),
            (
                "mermaid",
                f"{api}/topology"
                f"{_query(since, until, format='mermaid', environment=window.environment)}",
            ),
            ("critical path", f"{api}/critical-path{qe}"),
            ("operations", f"{api}/operations{q}"),
        )
    )
    body = (
        f"<h1>{_e(definition['id'])} {_e(definition['name'])} {status_badge(detail['health']['status'])} {links}</h1>"
        f'<p class="muted">{_e(definition["category"])} · criticality {_e(definition["criticality"])}'
        f" · {_e(definition['description'])}</p>"
        f"<section><h2>Topology</h2>{graph_block(topo.to_json(), f'chain:{chain_id}', since)}"
        "</section>"
        + _trace_lists(chain_id, since, until, window.environment)
        + _health_block(detail["health"])
        + _operations_block(operations, since, until)
        + _critical_block(cp)
        + _drift_block(drifted)
    )
    return body, _window_text(detail["window"])


#: What a page with a graph loads (vendored graph library first).
GRAPH_SCRIPTS = ("vendor/cytoscape.min.js", "vendor/cytoscape-dagre.min.js", "topology.js")


def _alerts(request: Request) -> tuple[str, ...]:
    """The firing-alerts banner, on servers that run the monitor (a chain registry)."""
    return ("alerts.js",) if getattr(request.app.state, "operations", None) is not None else ()


def web_router() -> APIRouter:
    """The chain and topology pages; read ``app.state.store`` and ``app.state.catalog``."""
    router = APIRouter(include_in_schema=False, route_class=ReadRoute)

    def render(
        title: str,
        since: str | None,
        build: Callable[[], tuple[str, str]],
        scripts: Sequence[str] = (),
        env: str | None = None,
    ) -> HTMLResponse:
        try:
            with translated_errors():
                body, window_text = build()
        except HTTPException as exc:
            return error_page(exc)
        return page(title, body, since, window_text=window_text, scripts=scripts, env=env)

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request, since: str | None = None, until: str | None = None) -> HTMLResponse:
        def build() -> tuple[str, str]:
            data = chain_list(
                request.app.state.store, request.app.state.catalog, parse_api_window(since, until)
            )
            return index_body(data, since, until), _window_text(data["window"])

        return render("chains", since, build, _alerts(request))

    @router.get("/chains/{chain_id}", response_class=HTMLResponse)
    def chain_page(
        request: Request,
        chain_id: str,
        since: str | None = None,
        until: str | None = None,
        env: str | None = None,
    ) -> HTMLResponse:
        return render(
            chain_id,
            since,
            lambda: chain_body(
                request.app.state.store, request.app.state.catalog, chain_id, since, until, env
            ),
            (*GRAPH_SCRIPTS, "search.js", *_alerts(request)),
            env,
        )

    @router.get("/topology", response_class=HTMLResponse)
    def all_traffic(
        request: Request, since: str | None = None, until: str | None = None, env: str | None = None
    ) -> HTMLResponse:
        from chainmap_otel.analysis.topology import topology

        def build() -> tuple[str, str]:
            window = parse_api_window(since, until, env)
            topo = topology(request.app.state.store, request.app.state.catalog, window, None)
            api = f"{API_PREFIX}/topology{_query(since, until, environment=window.environment)}"
            body = f'<h1>All traffic <a class="json" href="{_e(api)}">JSON</a></h1>' + graph_block(
                topo.to_json(), "all", since
            )
            return body, _window_text(window.to_json())

        return render("all traffic", since, build, GRAPH_SCRIPTS, env)

    return router


def install_web(app: FastAPI) -> None:
    """Mount the pages, the trace pages, the offline API docs and ``static/``."""
    from chainmap_otel.server.web.alerts import install_alerts_page
    from chainmap_otel.server.web.coverage import install_coverage_page
    from chainmap_otel.server.web.traces import install_api_docs, trace_pages_router

    app.include_router(web_router())
    app.include_router(trace_pages_router())
    install_alerts_page(app)
    install_coverage_page(app)
    install_api_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
