"""One trace and trace comparison: ``GET /api/v1/traces/{trace_id}`` and
``GET /api/v1/traces/compare``.

The trace view draws every span of a trace (tree, waterfall, details) from the first
(:func:`~chainmap_otel.analysis.trace_spans.whole_trace`); the comparison page and
``chainmap traces compare`` read the second
(:func:`~chainmap_otel.analysis.compare.compare_traces`): ``a`` and ``b`` name two
traces, or ``b`` and ``chain`` (with ``since``/``until``) compare ``b`` with the chain's
typical trace of the window. The span search (``GET /api/v1/traces``) lives elsewhere;
this router only adds the paths below it.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from chainmap_otel.analysis.compare import check_comparison, compare_traces
from chainmap_otel.analysis.trace_spans import (
    DEFAULT_MAX_SPANS,
    MAX_SPANS_LIMIT,
    check_trace_id,
    whole_trace,
)
from chainmap_otel.server.api.search import TRACES_PATH
from chainmap_otel.server.http.errors import parse_api_window, translated_errors
from chainmap_otel.server.http.pool import ReadRoute
from chainmap_otel.storage.store import TraceStore

__all__ = ["COMPARE_PATH", "install_trace_api", "trace_api_router"]

COMPARE_PATH = f"{TRACES_PATH}/compare"
_COMPARE_NAMES = ("query parameter a", "query parameter b", "query parameter chain")


def _span_cap(max_spans: str | None) -> int:
    """``max_spans`` read as text, so that a bad value gets the API's one-line 400, not a 422."""
    if max_spans is None:
        return DEFAULT_MAX_SPANS
    try:
        cap = int(max_spans)
    except ValueError:
        cap = 0
    if not 1 <= cap <= MAX_SPANS_LIMIT:
        raise HTTPException(
            400,
            f"query parameter max_spans={max_spans!r} must be a whole number "
            f"between 1 and {MAX_SPANS_LIMIT}",
        )
    return cap


def trace_api_router() -> APIRouter:
    """``GET /api/v1/traces/{trace_id}`` and ``/compare``; read ``app.state``."""
    router = APIRouter(prefix=TRACES_PATH, tags=["traces"], route_class=ReadRoute)

    # Declared before "/{trace_id}", which would take "compare" for an id.
    @router.get("/compare", summary="Two traces compared span by span (b minus a)")
    def compare(
        request: Request,
        b: str | None = Query(None, description="the trace under study"),
        a: str | None = Query(None, description="the baseline trace; or give chain"),
        chain: str | None = Query(
            None, description="baseline: this chain's typical trace of the window"
        ),
        since: str | None = None,
        until: str | None = None,
        max_spans: str | None = None,
    ) -> JSONResponse:
        cap = _span_cap(max_spans)
        # Checked even without chain (where it is unused), so a bad value is never ignored.
        window = parse_api_window(since, until)
        with translated_errors():
            _, b = check_comparison(a, b, chain, _COMPARE_NAMES)
        with translated_errors():
            result = compare_traces(
                request.app.state.store,
                a,
                b,
                catalog=request.app.state.catalog,
                chain=chain,
                window=window if chain is not None else None,
                max_spans=cap,
            )
        return JSONResponse(result)

    @router.get("/{trace_id}", summary="Every span of one trace and its critical path")
    def get_trace(request: Request, trace_id: str, max_spans: str | None = None) -> JSONResponse:
        cap = _span_cap(max_spans)
        with translated_errors():
            check_trace_id(trace_id, "trace_id")
        store: TraceStore = request.app.state.store
        with translated_errors():
            trace = whole_trace(store, trace_id, cap)
        # Plain JSON: FastAPI's encoder would walk every value of thousands of spans again.
        return JSONResponse(trace)

    return router


def install_trace_api(app: FastAPI) -> None:
    """Add the whole-trace and comparison routes (its one-line 400s come from the API's handler)."""
    app.include_router(trace_api_router())
