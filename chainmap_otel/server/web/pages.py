"""The built-in web view of ``chainmap serve``: server-rendered HTML, no external resources.

Pages render the same library results the JSON API returns (each page links to its
JSON): ``/`` the chains, worst status and highest criticality first, with status
badges, rate, error ratio and p95 against the SLO; ``/chains/{id}`` a chain's topology,
its slowest / failing / recent traces, health and burn rates, critical-path shares and
drift; ``/topology`` all traffic. Graphs are drawn in the browser by Cytoscape.js with
the dagre layout (vendored under ``static/vendor``, so the view works offline) from the
topology JSON embedded in the page. The trace pages (search, trace view) and the
offline API docs are in :mod:`chainmap_otel.server.web.traces`, the page chrome in
:mod:`chainmap_otel.server.web.layout`. ``static/app.js``
refreshes windowed pages every 10 s. Pages are ``def`` endpoints so their ClickHouse
queries run in the threadpool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from chainmap_otel.analysis.by_environment import environment_names
from chainmap_otel.analysis.instances import end_to_end_line
from chainmap_otel.server.api.chains import API_PREFIX, chain_detail, chain_list
from chainmap_otel.server.http.errors import parse_api_window, translated_errors
from chainmap_otel.server.http.pool import ReadRoute
from chainmap_otel.server.web.environments import environments_table
from chainmap_otel.server.web.layout import (
    error_page,
    html_table,
    json_for_html,
    page,
    sparkline,
    status_badge,
)
from chainmap_otel.server.web.layout import escape_html as _e
from chainmap_otel.server.web.layout import ms_text as _ms
from chainmap_otel.server.web.layout import pct_text as _pct
from chainmap_otel.server.web.layout import plural as _plural
from chainmap_otel.server.web.layout import query_string as _query
from chainmap_otel.server.web.layout import window_text as _window_text
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
#: Node fill per node type; keep in step with ``static/topology.js``.
NODE_COLOURS = {
    "service": "#2f6fb0",
    "database": "#c77d1a",
    "messaging": "#7b4fb3",
    "virtual": "#6b7280",
    "user": "#2e8b57",
}


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


def index_body(
    data: dict[str, Any], since: str | None, until: str | None, environment: str = ""
) -> str:
    rows = []
    for chain in data["chains"]:  # already worst status first, then most critical
        h = chain["health"]
        link = f"/chains/{quote(chain['id'])}{_query(since, until, env=environment)}"
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
    api = f"{API_PREFIX}{_query(since, until, environment=environment)}"
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
        f"{_e(data['catalog']['source'])}, worst status and most critical first"
        + (f" in {_e(environment)}" if environment else "")
        + "</p>"
        + environments_table(data, since, until)
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
    through = end_to_end_line(cp.get("through_queues", {}))
    if through:
        head += f'<p class="through-queues">{_e(through)}</p>'
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
    environment: str | None = None,
) -> tuple[str, str]:
    from chainmap_otel.analysis.critical_path import chain_critical_path
    from chainmap_otel.analysis.drift import drift
    from chainmap_otel.analysis.operations import chain_operations
    from chainmap_otel.analysis.topology import topology

    window = parse_api_window(since, until, environment)
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
    q = _query(since, until, environment=window.environment)
    api = f"{API_PREFIX}/{quote(chain_id)}"
    links = " ".join(
        f'<a class="json" href="{_e(href)}">{_e(text)}</a>'
        for text, href in (
            ("JSON", api + q),
            ("topology", f"{api}/topology{q}"),
            (
                "mermaid",
                f"{api}/topology"
                + _query(since, until, environment=window.environment, format="mermaid"),
            ),
            ("critical path", f"{api}/critical-path{q}"),
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
        selector: tuple[Request, str | None, str | None] | None = None,
    ) -> HTMLResponse:
        """``selector`` (request, until, env): the page takes an environment, kept in its
        links, and shows the environment selector."""
        try:
            with translated_errors():
                body, window_text = build()
                environment, choices, until = "", [], None
                if selector is not None:
                    request, until, env = selector
                    window = parse_api_window(since, until, env)
                    environment = window.environment
                    choices = environment_names(request.app.state.store, window)
        except HTTPException as exc:
            return error_page(exc)
        return page(
            title,
            body,
            since,
            window_text=window_text,
            scripts=scripts,
            environment=environment,
            environments=choices,
            until=until,
        )

    @router.get("/", response_class=HTMLResponse)
    def index(
        request: Request, since: str | None = None, until: str | None = None, env: str | None = None
    ) -> HTMLResponse:
        def build() -> tuple[str, str]:
            window = parse_api_window(since, until, env)
            data = chain_list(request.app.state.store, request.app.state.catalog, window)
            body = index_body(data, since, until, window.environment)
            return body, _window_text(data["window"])

        return render("chains", since, build, _alerts(request), (request, until, env))

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
            (request, until, env),
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

        return render("all traffic", since, build, GRAPH_SCRIPTS, (request, until, env))

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
