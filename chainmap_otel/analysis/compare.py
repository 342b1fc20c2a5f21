"""Trace comparison: where two traces of the same request differ, span by span.

Two traces, ``a`` (the baseline) and ``b``, are laid over each other as trees. Every
difference is ``b`` minus ``a``: a span only in ``b`` is *added*, a span only in ``a`` is
*missing*, a positive ``duration_diff_ms`` means ``b`` was slower there.

* **Matching.** A span is known by its service and operation (span name) and by the path of
  service+operation pairs from its root down to it, as Jaeger's trace diff keys its nodes.
  Roots are matched with roots and, below two matched spans, children with children: spans
  with the same service+operation under the same matched parent are taken in start order
  and paired first with first, second with second; what is left over on one side is added
  or missing, with its whole subtree. Jaeger's diff merges such repeated siblings into one
  node with a count; pairing them keeps one row per span, so a retry that became slow shows
  as that retry, not as an average.
* **Self time** of a span is its duration minus the union of its children's intervals
  (clipped to the span), so overlapping parallel children are not subtracted twice and a
  child outliving its parent takes only the overlapping part.
* **ASGI internal spans** (``http send``/``http receive`` of opentelemetry-instrumentation-asgi,
  :func:`~chainmap_otel.analysis.trace_spans.is_asgi_internal`) are folded: left out of the
  matching, their time is the server span's own, their children (none in practice) move up.
  Their number and their errors differ between a streamed and a plain answer and would bury
  the real differences.
* **Errors** per matched pair: ``none``, ``both``, ``only_a``, ``only_b``; an added or missing
  span that failed counts as ``only_b`` or ``only_a``.
* **The typical trace of a chain** (:func:`typical_trace`), for "compare with a normal
  trace": among the chain's traces in the window that have no Error span, the one whose chain
  latency is nearest the median chain latency of all the chain's traces in the window (ties:
  the lowest trace id). Chain latency is the duration of the chain's entry span, else the
  trace's extent: what the chain's critical path ranks traces by. A real trace, not a
  synthetic average, so every span it shows happened; error-free, so differences in status
  point at the trace under study; near the median, so its timings are the usual ones.

JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chainmap_otel.analysis.membership import classify_expression, require_chain, tagged_chains_sql
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.trace_spans import DEFAULT_MAX_SPANS, check_trace_id, whole_trace
from chainmap_otel.errors import NotFoundError, QueryError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = [
    "TypicalTrace",
    "check_comparison",
    "compare_trace_json",
    "compare_traces",
    "self_time",
    "typical_trace",
]

_MS = 1e6


@dataclass
class _Span:
    span_id: str
    parent_id: str
    service: str
    operation: str
    kind: str
    start: int
    end: int
    status: str
    status_message: str
    children: list[_Span]
    self_ns: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.service, self.operation)


@dataclass(frozen=True)
class TypicalTrace:
    """The chain's typical trace of a window (see the module docstring) and how it was chosen."""

    trace_id: str
    chain_id: str
    window: TimeWindow
    traces: int
    median_ms: float
    latency_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "window": self.window.to_json(),
            "traces": self.traces,
            "median_ms": round(self.median_ms, 3),
            "latency_ms": round(self.latency_ms, 3),
        }


def typical_trace(
    store: TraceStore,
    catalog: ChainCatalog,
    chain_id: str,
    window: TimeWindow,
    exclude: str | None = None,
) -> TypicalTrace:
    """The typical trace of ``chain_id`` in ``window``, never ``exclude`` (the trace it is
    compared with). QueryError when the chain is unknown or has no error-free trace there."""
    require_chain(catalog, chain_id)
    classify, params = classify_expression(catalog)
    sql = load_sql("typical_trace", store.database, classify=classify, tagged=tagged_chains_sql())
    bound = {**params, **window.params(), "chain_id": chain_id, "exclude": exclude or ""}
    traces, clean, median, nearest = store.query(sql, bound).result_rows[0]
    latency, trace_id = nearest
    if not trace_id:
        span = window.to_json()
        found = (
            f"it has {int(traces)} traces there, none of them without an error"
            + (" besides the one compared" if exclude and int(clean) else "")
            if traces
            else "it has no traces there"
        )
        raise NotFoundError(
            "typical trace",
            chain_id,
            f"chain {chain_id} has no typical trace from {span['since']} to {span['until']}: "
            f"{found}; widen the window (since/until) or pick the trace to compare with",
        )
    return TypicalTrace(
        str(trace_id), chain_id, window, int(traces), float(median) / _MS, float(latency) / _MS
    )


def _tree(trace: dict[str, Any]) -> list[_Span]:
    """The trace's spans as a tree, ASGI internal spans folded, children in start order."""
    spans = {s["span_id"]: s for s in trace["spans"]}

    def visible_parent(span_id: str) -> str:
        # Climb past folded ASGI spans; a parent not in the trace (or itself) makes a root.
        parent, climbed = spans[span_id]["parent_span_id"], 0
        while parent in spans and spans[parent]["asgi_internal"] and climbed < len(spans):
            parent, climbed = spans[parent]["parent_span_id"], climbed + 1
        usable = parent in spans and parent != span_id and not spans[parent]["asgi_internal"]
        return parent if usable else ""

    nodes = {
        sid: _Span(
            sid,
            visible_parent(sid),
            s["service"],
            s["name"],
            s["kind"],
            s["start_unix_nano"],
            s["start_unix_nano"] + s["duration_ns"],
            s["status"],
            s["status_message"],
            [],
        )
        for sid, s in spans.items()
        if not s["asgi_internal"]
    }
    roots: list[_Span] = []
    for node in nodes.values():
        parent = nodes.get(node.parent_id)
        (parent.children if parent is not None else roots).append(node)
    roots.sort(key=_start_order)
    for node in nodes.values():
        node.children.sort(key=_start_order)
        node.self_ns = self_time(node.start, node.end, [(c.start, c.end) for c in node.children])
    return roots


def _start_order(span: _Span) -> tuple[int, str]:
    return (span.start, span.span_id)


def self_time(start: int, end: int, children: list[tuple[int, int]]) -> int:
    """``end - start`` minus the union of the ``children`` intervals clipped to it."""
    covered, reach = 0, start
    for c_start, c_end in sorted((max(s, start), min(e, end)) for s, e in children):
        if c_end <= reach:
            continue
        covered += c_end - max(c_start, reach)
        reach = c_end
    return max(end - start - covered, 0)


def _side(span: _Span, t0: int) -> dict[str, Any]:
    return {
        "span_id": span.span_id,
        "kind": span.kind,
        "start_ms": round((span.start - t0) / _MS, 3),
        "duration_ms": round((span.end - span.start) / _MS, 3),
        "self_ms": round(span.self_ns / _MS, 3),
        "status": span.status,
        "status_message": span.status_message,
    }


def _errors(a: _Span | None, b: _Span | None) -> str:
    failed_a = a is not None and a.status == "error"
    failed_b = b is not None and b.status == "error"
    return (
        "both"
        if failed_a and failed_b
        else "only_a"
        if failed_a
        else "only_b"
        if failed_b
        else "none"
    )


def _pairs(
    a: list[_Span], b: list[_Span], a0: int, b0: int
) -> list[tuple[_Span | None, _Span | None, int]]:
    """Siblings paired by service+operation in start order; each with its occurrence."""
    by_key: dict[tuple[str, str], list[_Span]] = defaultdict(list)
    for span in a:
        by_key[span.key].append(span)
    taken: dict[tuple[str, str], int] = defaultdict(int)
    pairs: list[tuple[_Span | None, _Span | None, int]] = []
    for span in b:
        index = taken[span.key]
        taken[span.key] += 1
        other = by_key[span.key][index] if index < len(by_key[span.key]) else None
        pairs.append((other, span, index + 1))
    for key, spans in by_key.items():
        for index in range(taken[key], len(spans)):
            pairs.append((spans[index], None, index + 1))

    def where(pair: tuple[_Span | None, _Span | None, int]) -> tuple[int, int]:
        # Matched and added spans in b's order; missing ones at their offset in a.
        a_span, b_span, _ = pair
        if b_span is not None:
            return (b_span.start - b0, 0)
        assert a_span is not None
        return (a_span.start - a0, 1)

    return sorted(pairs, key=where)


def _summary(trace: dict[str, Any], roots: list[_Span], compared: int) -> dict[str, Any]:
    root = roots[0] if roots else None
    start = datetime.fromtimestamp(trace["start_unix_nano"] / 1e9, UTC)
    return {
        "trace_id": trace["trace_id"],
        "start": start.isoformat().replace("+00:00", "Z"),
        "duration_ms": round(trace["duration_ms"], 3),
        "root_service": root.service if root else "",
        "root_operation": root.operation if root else "",
        "span_count": trace["span_count"],
        "compared_spans": compared,
        "folded_asgi_spans": trace["asgi_internal_count"],
        "error_count": trace["error_count"],
        "chain_ids": trace["chain_ids"],
        "truncated": trace["truncated"],
    }


def compare_trace_json(trace_a: dict[str, Any], trace_b: dict[str, Any]) -> dict[str, Any]:
    """The comparison of two :func:`~chainmap_otel.analysis.trace_spans.whole_trace` results."""
    roots_a, roots_b = _tree(trace_a), _tree(trace_b)
    a0, b0 = trace_a["start_unix_nano"], trace_b["start_unix_nano"]
    nodes: list[dict[str, Any]] = []
    counts = {"matched": 0, "added": 0, "missing": 0}
    errors = {"both": 0, "only_a": 0, "only_b": 0}
    # Pre-order over the merged tree; the stack holds (pair, parent id, depth), reversed.
    stack: list[tuple[tuple[_Span | None, _Span | None, int], str | None, int]] = [
        (p, None, 0) for p in reversed(_pairs(roots_a, roots_b, a0, b0))
    ]
    while stack:
        (a, b, occurrence), parent, depth = stack.pop()
        state = "matched" if a and b else "added" if b else "missing"
        counts[state] += 1
        failed = _errors(a, b)
        if failed != "none":
            errors[failed] += 1
        either = b or a
        assert either is not None
        node_id = f"n{len(nodes)}"
        nodes.append(
            {
                "id": node_id,
                "parent_id": parent,
                "depth": depth,
                "service": either.service,
                "operation": either.operation,
                "occurrence": occurrence,
                "state": state,
                "errors": failed,
                "a": _side(a, a0) if a else None,
                "b": _side(b, b0) if b else None,
                "duration_diff_ms": round((b.end - b.start - a.end + a.start) / _MS, 3)
                if a and b
                else None,
                "self_diff_ms": round((b.self_ns - a.self_ns) / _MS, 3) if a and b else None,
            }
        )
        children = _pairs(a.children if a else [], b.children if b else [], a0, b0)
        stack.extend((p, node_id, depth + 1) for p in reversed(children))
    truncated = trace_a["truncated"] or trace_b["truncated"]
    return {
        "a": _summary(trace_a, roots_a, sum(1 for n in nodes if n["a"])),
        "b": _summary(trace_b, roots_b, sum(1 for n in nodes if n["b"])),
        "typical": None,
        "duration_diff_ms": round(trace_b["duration_ms"] - trace_a["duration_ms"], 3),
        **counts,
        "errors": errors,
        "note": (
            "a trace has more spans than were read (max_spans); spans after the cap are "
            "left out of the comparison"
            if truncated
            else None
        ),
        "nodes": nodes,
    }


def check_comparison(
    a: str | None,
    b: str | None,
    chain: str | None,
    names: tuple[str, str, str] = ("a", "b", "chain"),
) -> tuple[str | None, str]:
    """The two trace ids, checked (``a`` None: the chain's typical trace is the baseline);
    QueryError naming the input through ``names`` (how the caller's surface spells a, b,
    chain) unless ``b`` and exactly one of ``a`` and ``chain`` are given, ids well formed."""
    if not b:
        raise QueryError(f"give the trace to compare ({names[1]}), a trace id")
    if (a is None) == (chain is None):
        raise QueryError(
            f"give the baseline trace ({names[0]}) or a chain ({names[2]}) whose typical "
            f"trace of the window is the baseline{', not both' if a is not None else ''}"
        )
    checked_a = check_trace_id(a, names[0]) if a is not None else None
    return checked_a, check_trace_id(b, names[1])


def compare_traces(
    store: TraceStore,
    a: str | None,
    b: str,
    *,
    catalog: ChainCatalog | None = None,
    chain: str | None = None,
    window: TimeWindow | None = None,
    max_spans: int = DEFAULT_MAX_SPANS,
) -> dict[str, Any]:
    """Compare trace ``b`` with trace ``a``, or, with ``a`` None, with the typical trace of
    ``chain`` in ``window`` (``catalog`` then required). QueryError on a bad or unknown id."""
    checked_a, wanted_b = check_comparison(a, b, chain)
    typical: TypicalTrace | None = None
    if checked_a is None:
        if chain is None or catalog is None or window is None:
            raise ValueError("comparing with a typical trace needs catalog, chain and window")
        typical = typical_trace(store, catalog, chain, window, exclude=wanted_b)
        wanted_a = typical.trace_id
    else:
        wanted_a = checked_a
    result = compare_trace_json(
        whole_trace(store, wanted_a, max_spans), whole_trace(store, wanted_b, max_spans)
    )
    result["typical"] = typical.to_json() if typical is not None else None
    return result
