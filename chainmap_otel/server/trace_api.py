"""The whole-trace endpoint behind the trace view: ``GET /api/v1/traces/{trace_id}``.

The trace view draws every span of a trace (tree, waterfall, details), so this endpoint
returns every stored column of each span, the chain tags read out of the attributes, and
the trace's critical path (Jaeger's algorithm, :func:`compute_sections`) computed over
the same spans. A trace can be huge (a batch job, a retry storm), so at most
``max_spans`` spans (default :data:`DEFAULT_MAX_SPANS`, at most :data:`MAX_SPANS_LIMIT`)
come back, earliest first, with ``truncated`` and a ``note`` saying how many were left
out and how to get them. The span search (``GET /api/v1/traces``) lives elsewhere; this
router only adds the per-trace path below it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from chainmap_otel.analysis.critical_path import SpanTiming, compute_sections
from chainmap_otel.errors import QueryError
from chainmap_otel.server.api import translated_errors
from chainmap_otel.server.read_pool import ReadRoute
from chainmap_otel.server.traces_api import TRACES_PATH
from chainmap_otel.storage.store import TraceStore, validate_identifier
from chainmap_otel.tagging.processor import ATTR_CHAIN_ENTRY_IDS

__all__ = [
    "DEFAULT_MAX_SPANS",
    "MAX_SPANS_LIMIT",
    "install_trace_api",
    "trace_api_router",
    "whole_trace",
]

DEFAULT_MAX_SPANS = 10_000
MAX_SPANS_LIMIT = 50_000
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_WINDOW = (
    "AND Timestamp >= fromUnixTimestamp64Nano({first_ns:Int64}) "
    "AND Timestamp <= fromUnixTimestamp64Nano({last_ns:Int64})"
)


@cache
def _sql_text(name: str) -> str:
    package = resources.files("chainmap_otel.server").joinpath("sql")
    return package.joinpath(f"{name}.sql").read_text(encoding="utf-8")


def _sql(name: str, database: str, window: str = "") -> str:
    text = _sql_text(name).replace("{{db}}", validate_identifier(database, "database"))
    return text.replace("{{window}}", window)


def _chain_ids(attributes: dict[str, str]) -> list[str]:
    stack = attributes.get("chain.ids") or attributes.get("chain.id") or ""
    return [c for c in stack.split(",") if c]


def _span_json(row: tuple[Any, ...]) -> dict[str, Any]:
    (
        start,
        span_id,
        parent,
        service,
        name,
        kind,
        duration,
        status,
        status_message,
        attributes,
        resource,
        scope,
        scope_version,
        events,
        links,
    ) = row
    attrs: dict[str, str] = json.loads(attributes)
    entry = attrs.get(ATTR_CHAIN_ENTRY_IDS, "")
    return {
        "span_id": str(span_id),
        "parent_span_id": str(parent),
        "service": str(service),
        "name": str(name),
        "kind": str(kind) or "unspecified",
        "start_unix_nano": int(start),
        "duration_ns": int(duration),
        "status": "error" if status == "error" else "ok" if status == "ok" else "unset",
        "status_message": str(status_message),
        "chain_ids": _chain_ids(attrs),
        "entry_ids": [c for c in entry.split(",") if c],
        "attributes": attrs,
        "resource": json.loads(resource),
        "scope": {"name": str(scope), "version": str(scope_version)},
        "events": [
            {"time_unix_nano": int(t), "name": n, "attributes": a} for t, n, a in json.loads(events)
        ],
        "links": [
            {"trace_id": t, "span_id": s, "trace_state": ts, "attributes": a}
            for t, s, ts, a in json.loads(links)
        ],
    }


def whole_trace(
    store: TraceStore, trace_id: str, max_spans: int = DEFAULT_MAX_SPANS
) -> dict[str, Any]:
    """Every span of a stored trace (at most ``max_spans``) and its critical path.

    Raises :class:`QueryError` for a malformed or unknown trace id.
    """
    wanted = trace_id.strip().lower()
    if not _TRACE_ID.match(wanted):
        raise QueryError(
            f"trace id {trace_id!r} is not 32 hex characters; copy it from the X-Trace-ID "
            "response header or the trace search"
        )
    window = ""
    params: dict[str, Any] = {"trace_id": wanted}
    if store.table_exists("otel_traces_trace_id_ts"):
        first, last, found = store.query(_sql("trace_range", store.database), params).result_rows[0]
        if found:
            # The lookup table has second precision: pad it on both sides.
            window = _WINDOW
            params.update(first_ns=(int(first) - 1) * 10**9, last_ns=(int(last) + 2) * 10**9)
    total, first_ns, end_ns = store.query(
        _sql("trace_count", store.database, window), params
    ).result_rows[0]
    if not total:
        raise QueryError(
            f"trace {wanted} not found in {store.url_for_display}; check the id, the store "
            "URL, and that the trace is younger than the store's TTL"
        )
    rows = store.query(
        _sql("trace_spans", store.database, window), {**params, "cap": max_spans}
    ).result_rows
    spans = [_span_json(tuple(row)) for row in rows]
    timings = [
        SpanTiming(
            s["span_id"],
            s["parent_span_id"],
            s["service"],
            s["name"],
            s["kind"],
            s["start_unix_nano"],
            s["start_unix_nano"] + s["duration_ns"],
            ",".join(s["entry_ids"]),
        )
        for s in spans
    ]
    truncated = int(total) > len(spans)
    note = None
    if truncated:
        note = (
            f"showing the first {len(spans)} of {int(total)} spans (by start time); the "
            f"critical path covers only those; ask for more with max_spans (at most "
            f"{MAX_SPANS_LIMIT})"
        )
    services = sorted({s["service"] for s in spans})
    chains = sorted({c for s in spans for c in s["chain_ids"]})
    return {
        "trace_id": wanted,
        "start_unix_nano": int(first_ns),
        "end_unix_nano": int(end_ns),
        "duration_ms": (int(end_ns) - int(first_ns)) / 1e6,
        "span_count": int(total),
        "returned_spans": len(spans),
        "truncated": truncated,
        "note": note,
        "services": services,
        "chain_ids": chains,
        "error_count": sum(1 for s in spans if s["status"] == "error"),
        "spans": spans,
        "critical_path": [section.to_json() for section in compute_sections(timings)],
    }


def trace_api_router() -> APIRouter:
    """``GET /api/v1/traces/{trace_id}``; reads ``app.state.store``."""
    router = APIRouter(prefix=TRACES_PATH, tags=["traces"], route_class=ReadRoute)

    @router.get("/{trace_id}", summary="Every span of one trace and its critical path")
    def get_trace(request: Request, trace_id: str, max_spans: str | None = None) -> JSONResponse:
        # Read as text so that a bad value gets the API's one-line 400, not a 422.
        cap = DEFAULT_MAX_SPANS
        if max_spans is not None:
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
        if not _TRACE_ID.match(trace_id.lower()):
            raise HTTPException(
                400,
                f"trace_id {trace_id!r} is not 32 hex characters; copy it from the "
                "X-Trace-ID response header or the trace search",
            )
        store: TraceStore = request.app.state.store
        with translated_errors(not_found=True):
            trace = whole_trace(store, trace_id, cap)
        # Plain JSON: FastAPI's encoder would walk every value of thousands of spans again.
        return JSONResponse(trace)

    return router


def install_trace_api(app: FastAPI) -> None:
    """Add the whole-trace route (its one-line 400s come from the API's handler)."""
    app.include_router(trace_api_router())
