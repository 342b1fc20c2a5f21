"""One stored trace, every span of it: what the trace view draws and trace comparison reads.

Every stored column of each span comes back, with the chain tags read out of the
attributes and the trace's critical path (Jaeger's algorithm,
:func:`~chainmap_otel.analysis.critical_path.compute_sections`) over the same spans. A
trace can be huge (a batch job, a retry storm), so at most ``max_spans`` spans (default
:data:`DEFAULT_MAX_SPANS`, at most :data:`MAX_SPANS_LIMIT`) come back, earliest first, with
``truncated`` and a ``note`` saying how many were left out and how to get them.

**ASGI internal spans.** opentelemetry-instrumentation-asgi wraps every ``receive`` and
``send`` of a request in a span of its own (``http send``, ``http receive``: kind INTERNAL,
attribute ``asgi.event.type``). They are flagged ``asgi_internal``, and the trace's
``error_count`` leaves them out: the instrumentation marks the ``http.response.start``
send of a 5xx answer as an error, which repeats the status of the server span it belongs
to. The trace view folds them by default; comparison hands their time to that server span.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chainmap_otel.analysis.critical_path import SpanTiming, compute_sections
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.errors import NotFoundError, QueryError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.processor import ATTR_CHAIN_ENTRY_IDS

__all__ = [
    "ASGI_EVENT_ATTRIBUTE",
    "DEFAULT_MAX_SPANS",
    "MAX_SPANS_LIMIT",
    "check_trace_id",
    "is_asgi_internal",
    "whole_trace",
]

DEFAULT_MAX_SPANS = 10_000
MAX_SPANS_LIMIT = 50_000
#: The attribute opentelemetry-instrumentation-asgi sets on its send/receive spans.
ASGI_EVENT_ATTRIBUTE = "asgi.event.type"
#: How far after a trace (consumers) and before it (producers) linked traces are looked for.
LINKED_REACH_NS = 3600 * 10**9
#: Most linked spans listed per direction.
MAX_LINKED = 50
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_LOOKUP_RANGE = (
    "Timestamp >= fromUnixTimestamp64Nano({first_ns:Int64}) "
    "AND Timestamp <= fromUnixTimestamp64Nano({last_ns:Int64})"
)


def check_trace_id(trace_id: str, what: str = "trace id") -> str:
    """``trace_id`` in lower case; QueryError naming ``what`` unless it is 32 hex characters."""
    wanted = trace_id.strip().lower()
    if not _TRACE_ID.match(wanted):
        raise QueryError(
            f"{what} {trace_id[:80]!r} is not 32 hex characters; copy it from the X-Trace-ID "
            "response header or the trace search"
        )
    return wanted


def is_asgi_internal(kind: str, attributes: Mapping[str, str]) -> bool:
    """A send/receive span of opentelemetry-instrumentation-asgi (see the module docstring)."""
    return kind == "internal" and ASGI_EVENT_ATTRIBUTE in attributes


def _chain_ids(attributes: Mapping[str, str]) -> list[str]:
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
    kind = str(kind) or "unspecified"
    return {
        "span_id": str(span_id),
        "parent_span_id": str(parent),
        "service": str(service),
        "name": str(name),
        "kind": kind,
        "start_unix_nano": int(start),
        "duration_ns": int(duration),
        "status": "error" if status == "error" else "ok" if status == "ok" else "unset",
        "status_message": str(status_message),
        "chain_ids": _chain_ids(attrs),
        "entry_ids": [c for c in entry.split(",") if c],
        "asgi_internal": is_asgi_internal(kind, attrs),
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

    Raises :class:`QueryError` for a malformed trace id, :class:`NotFoundError` for an
    unknown one.
    """
    wanted = check_trace_id(trace_id)
    lookup_range = "1"
    params: dict[str, Any] = {"trace_id": wanted}
    if store.table_exists("otel_traces_trace_id_ts"):
        sql = load_sql("trace_range", store.database)
        first, last, found = store.query(sql, params).result_rows[0]
        if found:
            # The lookup table has second precision: pad it on both sides.
            lookup_range = _LOOKUP_RANGE
            params.update(first_ns=(int(first) - 1) * 10**9, last_ns=(int(last) + 2) * 10**9)
    total, first_ns, end_ns = store.query(
        load_sql("trace_count", store.database, lookup_range=lookup_range), params
    ).result_rows[0]
    if not total:
        raise NotFoundError(
            "trace",
            wanted,
            f"trace {wanted} not found in {store.url_for_display}; check the id, the store "
            "URL, and that the trace is younger than the store's TTL",
        )
    rows = store.query(
        load_sql("trace_spans", store.database, lookup_range=lookup_range),
        {**params, "cap": max_spans},
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
    linked = linked_traces(store, wanted, spans, int(first_ns), int(end_ns))
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
        "error_count": sum(1 for s in spans if s["status"] == "error" and not s["asgi_internal"]),
        "asgi_internal_count": sum(1 for s in spans if s["asgi_internal"]),
        "spans": spans,
        "linked_traces": linked,
        "critical_path": [section.to_json() for section in compute_sections(timings)],
    }


def linked_traces(
    store: TraceStore, trace_id: str, spans: list[dict[str, Any]], first_ns: int, end_ns: int
) -> list[dict[str, Any]]:
    """The spans of other traces joined to this one by span links, earliest first:
    ``links_to`` the spans this trace's spans link to (a consumer's producer), ``linked_from``
    the spans linking to a span of this trace (its consumers); both within
    :data:`LINKED_REACH_NS` of the trace. ``span_id`` is the span of this trace the link joins; ``wait_ms`` the gap from
    the linked-to span's end to the linking span's start (a message's queue wait)."""
    outgoing = {
        (link["trace_id"], link["span_id"]): span
        for span in spans
        for link in span["links"]
        if link["trace_id"] != trace_id
    }
    rows = store.query(
        load_sql("trace_links", store.database),
        {
            "trace_id": trace_id,
            "linked_start": first_ns - LINKED_REACH_NS,
            "linked_end": end_ns + LINKED_REACH_NS,
            "link_traces": sorted({t for t, _ in outgoing}),
            "link_spans": sorted({s for _, s in outgoing}),
            "max_linked": MAX_LINKED,
        },
    ).result_rows
    by_id = {s["span_id"]: s for s in spans}
    found = []
    for direction, other, span_id, service, name, kind, start, duration, status, joined in rows:
        producer = direction == "links_to"
        mine = outgoing.get((str(other), str(span_id))) if producer else by_id.get(str(joined))
        if mine is None:
            continue
        if producer:
            wait = int(mine["start_unix_nano"]) - (int(start) + int(duration))
        else:
            wait = int(start) - (int(mine["start_unix_nano"]) + int(mine["duration_ns"]))
        found.append(
            {
                "direction": str(direction),
                "trace_id": str(other),
                "linked_span_id": str(span_id),
                "service": str(service),
                "name": str(name),
                "kind": str(kind) or "unspecified",
                "start_unix_nano": int(start),
                "duration_ns": int(duration),
                "status": "error" if status == "error" else "ok" if status == "ok" else "unset",
                "span_id": mine["span_id"],
                "wait_ms": round(max(wait, 0) / 1e6, 3),
            }
        )
    return found
