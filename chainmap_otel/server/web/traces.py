"""The trace pages of the web view and its offline API docs.

``/search`` (and ``/traces`` without an id) is the trace search: a form whose fields are
the parameters of ``GET /api/v1/traces`` (chain, service and operation picked from the
window's names, status, chain status, attribute filters, min/max duration, window, order,
limit), results filled in by ``static/search.js``: a duration-over-time scatter plot whose
points open their trace, and the list, each row linking to the trace view. ``/traces/{trace_id}`` is the trace view: the page
checks the id and that the trace exists, ``static/trace.js`` fetches every span from
``GET /api/v1/traces/{trace_id}`` and draws the waterfall. ``/traces?trace_id=`` (the
old URL, and the header's lookup box) redirects there. ``/docs`` is Swagger UI served
from ``static/vendor/swagger-ui`` (npm's ``swagger-ui-dist`` 5, which reads the OpenAPI
3.1 FastAPI writes), so it renders without internet access. ``/compare`` is trace
comparison: a form picking trace B and its baseline (trace A, or a chain whose typical trace
of the window is the baseline), the tree of matched, added and missing spans with their
differences drawn by ``static/compare.js`` from ``GET /api/v1/traces/compare``.
"""

from __future__ import annotations

import re
from html import escape
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chainmap_otel.analysis.trace_spans import whole_trace
from chainmap_otel.server.api.search import TRACES_PATH
from chainmap_otel.server.api.trace import COMPARE_PATH
from chainmap_otel.server.http.errors import translated_errors
from chainmap_otel.server.http.pool import ReadRoute
from chainmap_otel.server.web.layout import WINDOWS, error_page, page
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = [
    "DOCS_ASSETS",
    "compare_body",
    "install_api_docs",
    "search_body",
    "trace_pages_router",
]

#: Where the vendored Swagger UI files are served (under the web view's ``/static``).
DOCS_ASSETS = "/static/vendor/swagger-ui"
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
SEARCH_ORDERS = ("duration", "start")
SEARCH_STATUSES = ("", "error", "ok")


def _e(value: object) -> str:
    return escape(str(value))


def _options(values: tuple[str, ...], chosen: str, labels: dict[str, str] | None = None) -> str:
    labels = labels or {}
    return "".join(
        f'<option value="{_e(v)}"{" selected" if v == chosen else ""}>{_e(labels.get(v, v))}</option>'
        for v in values
    )


def _picked(name: str, chosen: str, empty: str) -> str:
    """A pick list holding the chosen value; ``static/search.js`` adds the window's names."""
    values = ("", chosen) if chosen else ("",)
    return (
        f'<select name="{name}" data-pick="{name}">{_options(values, chosen, {"": empty})}</select>'
    )


def search_body(catalog: ChainCatalog, params: dict[str, str], attrs: list[str]) -> str:
    """The search form, pre-filled from the page's query string, and the results box."""

    def value(name: str) -> str:
        return _e(params.get(name, ""))

    attr_inputs = "".join(
        f'<input name="attr" value="{_e(a)}" size="18" '
        'placeholder="key=value, key!=v, key=~re, key">'
        for a in attrs or [""]
    )

    chains = ("", *catalog.ids)
    chain_labels = {"": "any chain"} | {c.id: f"{c.id} {c.name}" for c in catalog}
    fields = (
        f'<label>chain <select name="chain">{_options(chains, params.get("chain", ""), chain_labels)}'
        "</select></label>"
        f"<label>service {_picked('service', params.get('service', ''), 'any')}</label>"
        f"<label>operation {_picked('operation', params.get('operation', ''), 'any')}</label>"
        f'<label>status <select name="status">{_options(SEARCH_STATUSES, params.get("status", ""), {"": "any"})}'
        "</select></label>"
        '<label title="with a chain: the status of its own entry span (what health counts)">'
        f'chain status <select name="chain_status">{_options(SEARCH_STATUSES, params.get("chain_status", ""), {"": "any"})}'
        "</select></label>"
        f'<label class="attrs">attributes <span class="attr-row">{attr_inputs}'
        '<button type="button" id="add-attr" title="another attribute filter">+</button>'
        "</span></label>"
        f'<label>min ms <input name="min_duration_ms" value="{value("min_duration_ms")}" size="6" '
        'inputmode="decimal"></label>'
        f'<label>max ms <input name="max_duration_ms" value="{value("max_duration_ms")}" size="6" '
        'inputmode="decimal"></label>'
        f'<label>since <input name="since" value="{value("since")}" size="8" list="windows" '
        'placeholder="1h"></label>'
        f'<datalist id="windows">{_options(WINDOWS, "")}</datalist>'
        f'<label>until <input name="until" value="{value("until")}" size="10" placeholder="now"></label>'
        # The API's name, so search.js passes it on; a page link may say env= instead.
        f'<label>environment <input name="environment" '
        f'value="{_e(params.get("environment") or params.get("env", ""))}" size="10" '
        'placeholder="all"></label>'
        f'<label>order <select name="order">{_options(SEARCH_ORDERS, params.get("order", "duration"), {"duration": "slowest first", "start": "most recent first"})}'
        "</select></label>"
        f'<label>limit <input name="limit" value="{value("limit") or "50"}" size="4" '
        'inputmode="numeric"></label>'
        '<button type="submit">search</button>'
    )
    return (
        f'<h1>Traces <a class="json" href="{TRACES_PATH}">JSON</a></h1>'
        f'<form id="trace-search" class="search" action="/search" method="get">{fields}</form>'
        '<div id="search-scatter" class="scatter"></div>'
        '<div id="search-results" class="trace-list"></div>'
        '<p class="muted">Times are the trace\'s first span. Min/max ms apply to the span '
        "matching service, operation and attributes (as Jaeger's do), with a chain to the "
        "chain's own entry span, else to the whole trace; with a chain, duration and "
        "status are the entry span's. Click a point or a start time for the waterfall.</p>"
    )


def compare_body(catalog: ChainCatalog, params: dict[str, str]) -> str:
    """The comparison form, pre-filled from the page's query string, and the result box."""

    def value(name: str) -> str:
        return _e(params.get(name, ""))

    chains = ("", *catalog.ids)
    chain_labels = {"": "(a trace)"} | {c.id: f"typical {c.id} {c.name}" for c in catalog}
    fields = (
        f'<label>trace B (under study) <input name="b" value="{value("b")}" size="34" '
        'placeholder="trace id" required></label>'
        f'<label>baseline A: a trace <input name="a" value="{value("a")}" size="34" '
        'placeholder="trace id"></label>'
        f'<label>or a chain\'s typical trace <select name="chain">'
        f"{_options(chains, params.get('chain', ''), chain_labels)}</select></label>"
        f'<label>since <input name="since" value="{value("since")}" size="8" list="windows" '
        'placeholder="1h"></label>'
        f'<datalist id="windows">{_options(WINDOWS, "")}</datalist>'
        f'<label>until <input name="until" value="{value("until")}" size="24" placeholder="now"></label>'
        '<button type="submit">compare</button>'
    )
    return (
        f'<h1>Compare traces <a class="json" href="{COMPARE_PATH}">JSON</a></h1>'
        f'<form id="trace-compare" class="search" action="/compare" method="get">{fields}</form>'
        '<div id="compare-view"></div>'
        '<p class="muted">Differences are B minus A. Spans are matched by service, operation '
        "and their path from the root; repeated siblings in start order. Self time is a span's "
        "duration minus what its children cover. A chain's typical trace is its error-free "
        "trace nearest the chain's median latency in the window.</p>"
    )


def _trace_body(trace: dict[str, object]) -> str:
    trace_id = str(trace["trace_id"])
    api = f"{TRACES_PATH}/{trace_id}"
    cp = f"/api/v1/chains/traces/{trace_id}/critical-path"
    return (
        f'<h1>Trace <code>{_e(trace_id)}</code> <a class="json" href="{_e(api)}">JSON</a>'
        f' <a class="json" href="{_e(cp)}">critical path</a></h1>'
        f'<div id="trace-view" data-trace-id="{_e(trace_id)}"></div>'
    )


def trace_pages_router() -> APIRouter:
    """``/search``, ``/compare``, ``/traces`` and ``/traces/{trace_id}``; read ``app.state``."""
    router = APIRouter(include_in_schema=False, route_class=ReadRoute)

    def search(request: Request) -> HTMLResponse:
        params = {k: v for k, v in request.query_params.items() if k != "trace_id"}
        attrs = request.query_params.getlist("attr")[:16]
        body = search_body(request.app.state.catalog, params, attrs)
        return page("traces", body, scripts=("search.js",))

    @router.get("/search", response_class=HTMLResponse)
    def search_page(request: Request) -> HTMLResponse:
        return search(request)

    @router.get("/compare", response_class=HTMLResponse)
    def compare_page(request: Request) -> HTMLResponse:
        params = dict(request.query_params.items())
        body = compare_body(request.app.state.catalog, params)
        return page("compare traces", body, scripts=("compare.js",))

    @router.get("/traces", response_model=None)
    def traces_page(request: Request, trace_id: str = "") -> Response:
        wanted = trace_id.strip()
        if not wanted:
            return search(request)
        if not _TRACE_ID.match(wanted):
            return error_page(
                HTTPException(
                    400,
                    f"trace id {wanted!r} is not 32 hex characters; copy it from the "
                    "X-Trace-ID response header or the trace search",
                )
            )
        return RedirectResponse(f"/traces/{quote(wanted.lower())}", status_code=307)

    @router.get("/traces/{trace_id}", response_class=HTMLResponse)
    def trace_view(request: Request, trace_id: str) -> HTMLResponse:
        if not _TRACE_ID.match(trace_id):
            return error_page(
                HTTPException(
                    400,
                    f"trace id {trace_id!r} is not 32 hex characters; copy it from the "
                    "X-Trace-ID response header or the trace search",
                )
            )
        try:
            with translated_errors():
                # One span is enough to know the trace exists; trace.js fetches the rest.
                found = whole_trace(request.app.state.store, trace_id, max_spans=1)
        except HTTPException as exc:
            return error_page(exc)
        return page(f"trace {found['trace_id']}", _trace_body(found), scripts=("trace.js",))

    return router


def install_api_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI with its JavaScript and CSS served by this process."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )
