"""Chain instances across traces: the critical path through a queue, and end-to-end latency.

A chain instance that crosses a queue spans several traces (``docs/chains.md``, "Chains
across traces"): the trace holding its entry and the traces whose spans link to its spans
(a message's consumer starts a trace of its own, linked to the producer's span). Here the
instance is gathered by following those links, at most :data:`MAX_HOPS` deep and
:data:`MAX_TRACES` traces per instance, each trace once (a cycle stops where it returns).

**The critical path of an instance** extends Jaeger's per-trace algorithm
(:func:`~chainmap_otel.analysis.path_sections.compute_sections`) across each hop: when
the part of the instance that follows a link ends after the trace that sent the message,
the instance waited for it. Its path is then the sending trace's path up to the end of the
producer span (spans clipped there: what happened before the message left), the **queue
wait** (producer span end to the linking span's start) as a section of its own -- service
``<destination> (queue)``, operation ``queue wait`` -- and the path of the linking span's
subtree, itself extended the same way. The hop followed is the one whose part ends last;
a consumer that finishes before the sender does is off the path (the sender never waited
for it). Without such a hop the path is the trace's own.

**End-to-end latency** of an instance is from its entry's start to the end of the last
span on that path: what a customer of the flow waits for, queue included.

The per-chain aggregate (:func:`~chainmap_otel.analysis.critical_path.chain_critical_path`)
replaces the path of each sampled trace whose instance crosses a queue with this one, so
queue waits take their share of the chain's critical-path time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chainmap_otel.analysis.path_sections import (
    Section,
    SpanTiming,
    chain_subtree,
    compute_sections,
    span_timing,
)
from chainmap_otel.analysis.rollups.edges import has_links
from chainmap_otel.analysis.sql import DEFAULT_FRAGMENTS, load_sql
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.fields import DESTINATION, field_sql

#: Links followed from an instance's first trace (a consumer that publishes again is a hop).
MAX_HOPS = 8
#: Traces gathered per instance at most.
MAX_TRACES = 64
#: How long after a trace's start its consumers are looked for (a message may wait that long).
LINK_REACH_NS = 3600 * 10**9
#: Link rows and span rows read per gathering at most (every read is bounded).
MAX_LINK_ROWS = 100_000
MAX_SPAN_ROWS = 500_000
#: Linked traces listed per trace by :func:`linked_traces` at most.
MAX_LINKED_TRACES = 20
#: The operation name of a queue-wait section.
QUEUE_WAIT = "queue wait"


def queue_label(destination: str) -> str:
    """The service a queue-wait section is charged to: ``order_events (queue)``."""
    return f"{destination or 'messages'} (queue)"


@dataclass(frozen=True)
class Hop:
    """A span of ``consumer_trace`` linking to ``producer_span`` of ``producer_trace``."""

    producer_trace: str
    producer_span: str
    consumer_trace: str
    consumer_span: str


@dataclass(frozen=True)
class PathSection:
    """One section of an instance's critical path: a span's own time, or a queue wait."""

    trace_id: str
    section: Section
    queue: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, **self.section.to_json(), "queue": self.queue}


@dataclass
class Gathered:
    """Spans and hops of the traces reached from some first traces."""

    spans: dict[str, list[SpanTiming]] = field(default_factory=dict)
    destinations: dict[tuple[str, str], str] = field(default_factory=dict)
    hops: dict[str, list[Hop]] = field(default_factory=dict)
    truncated: bool = False


@dataclass(frozen=True)
class InstancePath:
    """The critical path of one instance, chronological, and the traces it went through."""

    sections: list[PathSection]
    start_ns: int
    end_ns: int
    traces: list[str]

    @property
    def crosses(self) -> bool:
        return any(s.queue for s in self.sections) or len(self.traces) > 1

    def operations(self) -> list[tuple[str, str, int]]:
        """Self time per (service, operation) on the path, sorted: what the aggregate sums."""
        times: dict[tuple[str, str], int] = {}
        for part in self.sections:
            key = (part.section.service, part.section.name)
            span = part.section.end_unix_nano - part.section.start_unix_nano
            times[key] = times.get(key, 0) + span
        return [(s, n, ns) for (s, n), ns in sorted(times.items())]

    def to_json(self) -> dict[str, Any]:
        return {
            "traces": self.traces,
            "end_to_end_ms": round((self.end_ns - self.start_ns) / 1e6, 3),
            "sections": [s.to_json() for s in self.sections],
        }


def gather(
    store: TraceStore,
    trace_ids: Iterable[str],
    from_ns: int,
    to_ns: int,
    first_links: Sequence[Sequence[Any]] | None = None,
) -> Gathered:
    """Read the traces ``trace_ids`` (spans starting in ``[from_ns, to_ns)``) and follow the
    links out of them: every trace linking to one of them, then to those, up to
    :data:`MAX_HOPS` levels and :data:`MAX_TRACES` traces per first trace. ``first_links``
    are the rows ``instance_links.sql`` already gave for ``trace_ids`` over the same range
    (the caller looked first), so the first level is not read twice."""
    found = Gathered()
    frontier = sorted(set(trace_ids))
    owner = {trace: trace for trace in frontier}  # each trace's first trace
    size = dict.fromkeys(frontier, 1)
    links_sql = load_sql("instance_links", store.database)
    spans_sql = load_sql("instance_spans", store.database, destination_sql=field_sql(DESTINATION))
    for depth in range(MAX_HOPS + 1):
        if not frontier:
            break
        _read_spans(store, spans_sql, frontier, from_ns, to_ns, found)
        if depth == MAX_HOPS:
            break
        if depth == 0 and first_links is not None:
            rows = first_links
        else:
            rows = _link_rows(store, links_sql, frontier, from_ns, to_ns)
        found.truncated |= len(rows) >= MAX_LINK_ROWS
        new: list[str] = []
        for producer_trace, producer_span, trace, span, _start in rows:
            hop = Hop(str(producer_trace), str(producer_span), str(trace), str(span))
            root = owner.get(hop.producer_trace)
            if root is None:
                continue
            if hop.consumer_trace not in owner:
                if size[root] >= MAX_TRACES:
                    found.truncated = True
                    continue
                owner[hop.consumer_trace] = root
                size[root] += 1
                new.append(hop.consumer_trace)
            found.hops.setdefault(hop.producer_trace, []).append(hop)
        frontier = sorted(set(new))
    return found


def linked_traces(
    store: TraceStore, trace_ids: Sequence[str], from_ns: int, to_ns: int
) -> dict[str, list[str]]:
    """The traces whose spans (starting in ``[from_ns, to_ns)``) link to a span of each of
    ``trace_ids``: the consumers of its messages, the rest of its instances. Earliest first,
    at most :data:`MAX_LINKED_TRACES` each, in one query for all (trace search's result
    page); one hop, where :func:`gather` follows every hop of one instance."""
    if not trace_ids:
        return {}
    rows = _link_rows(
        store, load_sql("instance_links", store.database), list(trace_ids), from_ns, to_ns
    )
    linked: dict[str, list[str]] = {}
    for producer_trace, _producer_span, consumer_trace, _span, _start in rows:
        consumers = linked.setdefault(str(producer_trace), [])
        if len(consumers) < MAX_LINKED_TRACES and str(consumer_trace) not in consumers:
            consumers.append(str(consumer_trace))
    return linked


def _link_rows(
    store: TraceStore, sql: str, trace_ids: list[str], from_ns: int, to_ns: int
) -> Sequence[Sequence[Any]]:
    """``instance_links.sql``'s rows for ``trace_ids``: (producer trace, producer span,
    consumer trace, consumer span, consumer start ns), at most :data:`MAX_LINK_ROWS`."""
    rows: Sequence[Sequence[Any]] = store.query(
        sql,
        {"trace_ids": trace_ids, "from_ns": from_ns, "to_ns": to_ns, "max_links": MAX_LINK_ROWS},
    ).result_rows
    return rows


def _read_spans(
    store: TraceStore, sql: str, trace_ids: list[str], from_ns: int, to_ns: int, found: Gathered
) -> None:
    rows = store.query(
        sql,
        {"trace_ids": trace_ids, "from_ns": from_ns, "to_ns": to_ns, "max_spans": MAX_SPAN_ROWS},
    ).result_rows
    found.truncated |= len(rows) >= MAX_SPAN_ROWS
    for row in rows:
        trace, span, kind, dest = str(row[0]), str(row[1]), row[5], row[9]
        found.spans.setdefault(trace, []).append(span_timing(row[1:9]))
        if kind == "producer":
            found.destinations[(trace, span)] = str(dest)


def _subtree(spans: Sequence[SpanTiming], span_id: str) -> list[SpanTiming]:
    children: dict[str, list[SpanTiming]] = {}
    top = None
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
        if span.span_id == span_id:
            top = span
    if top is None:
        return []
    out, queue = [top], [top.span_id]
    while queue:
        for child in children.get(queue.pop(), ()):
            if child is not top:
                out.append(child)
                queue.append(child.span_id)
    return out


def _sections(trace_id: str, spans: Sequence[SpanTiming]) -> list[PathSection]:
    return [PathSection(trace_id, s) for s in compute_sections(spans)]


def instance_path(
    found: Gathered, trace_id: str, part: Sequence[SpanTiming] | None = None
) -> InstancePath | None:
    """The critical path of the instance whose first part is ``part`` of ``trace_id`` (the
    whole trace when None), through the hops :func:`gather` found; None without spans."""
    spans = list(found.spans.get(trace_id, ())) if part is None else list(part)
    if not spans:
        return None
    sections, end, traces = _walk(found, trace_id, spans, {trace_id}, 0)
    return InstancePath(sections, min(s.start for s in spans), end, traces)


def _walk(
    found: Gathered, trace_id: str, spans: list[SpanTiming], seen: set[str], depth: int
) -> tuple[list[PathSection], int, list[str]]:
    """(sections, end, traces) of the instance part ``spans`` of ``trace_id``."""
    own_end = max(s.end for s in spans)
    best: tuple[int, Hop, list[PathSection], list[str]] | None = None
    if depth < MAX_HOPS:
        by_id = {s.span_id: s for s in spans}
        for hop in found.hops.get(trace_id, ()):
            if hop.producer_span not in by_id or hop.consumer_trace in seen:
                continue
            consumer = _subtree(found.spans.get(hop.consumer_trace, ()), hop.consumer_span)
            if not consumer:
                continue
            path, end, traces = _walk(
                found, hop.consumer_trace, consumer, seen | {hop.consumer_trace}, depth + 1
            )
            if end > own_end and (best is None or end > best[0]):
                best = (end, hop, path, traces)
    if best is None:
        return _sections(trace_id, spans), own_end, [trace_id]
    end, hop, after, traces = best
    producer = next(s for s in spans if s.span_id == hop.producer_span)
    sent = producer.end
    before = [s._replace(end=min(s.end, sent)) for s in spans if s.start < sent]
    consumer_start = min(
        s.start for s in _subtree(found.spans[hop.consumer_trace], hop.consumer_span)
    )
    wait: list[PathSection] = []
    if consumer_start > sent:
        label = queue_label(found.destinations.get((trace_id, producer.span_id), ""))
        wait = [
            PathSection(
                hop.consumer_trace,
                Section(hop.consumer_span, label, QUEUE_WAIT, sent, consumer_start),
                queue=True,
            )
        ]
    return _sections(trace_id, before) + wait + after, end, [trace_id, *traces]


def chain_part(spans: Sequence[SpanTiming], chain_id: str) -> list[SpanTiming]:
    """The part of a trace ``chain_id`` owns (its entry's subtree, else the whole trace)."""
    return chain_subtree(spans, chain_id) if chain_id else list(spans)


@dataclass(frozen=True)
class EndToEnd:
    """End-to-end latency of the sampled instances that crossed a queue."""

    instances: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "instances": self.instances,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "max_ms": self.max_ms,
            "truncated": self.truncated,
        }


def end_to_end_line(through: Mapping[str, Any]) -> str | None:
    """The line the chain's surfaces print for its ``through_queues``
    (:meth:`EndToEnd.to_json`): the sampled instances that crossed a queue and their
    latency from the chain's entry to the last consumer span; None when none did."""
    if not through.get("instances"):
        return None
    capped = " (truncated: an instance had more hops or traces than are followed)"
    return (
        f"end to end through queues: {through['instances']} sampled instances, "
        f"p50 {through['p50_ms']:.1f} ms, p95 {through['p95_ms']:.1f} ms, "
        f"max {through['max_ms']:.1f} ms{capped if through.get('truncated') else ''}"
    )


def _quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted ``values`` (0 for none)."""
    if not values:
        return 0.0
    rank = max(1, -(-len(values) * q // 1))
    return values[int(rank) - 1]


def extend_paths(
    store: TraceStore,
    chain_id: str,
    trace_ids: Iterable[str],
    from_ns: int,
    to_ns: int,
    paths: dict[str, list[tuple[str, str, int]]],
) -> EndToEnd:
    """Replace, in ``paths``, the path of each of ``trace_ids`` whose instance crosses a
    queue with the instance's path (module docstring), reading spans from ``from_ns`` to
    ``to_ns`` (plus :data:`LINK_REACH_NS` for consumers); the end-to-end latency of those."""
    wanted = sorted(set(trace_ids))
    reach_to = to_ns + LINK_REACH_NS
    rows: Sequence[Sequence[Any]] = ()
    # A fleet without queues has no span links: the lookup by trace ids (tens of ms, its id
    # list alone) is left out.
    if wanted and has_links(
        store, {"start_ns": from_ns, "end_ns": reach_to}, window=DEFAULT_FRAGMENTS["span_window"]
    ):
        rows = _link_rows(
            store, load_sql("instance_links", store.database), wanted, from_ns, reach_to
        )
    linked = sorted({str(row[0]) for row in rows})
    found = gather(store, linked, from_ns, reach_to, first_links=rows) if linked else Gathered()
    latencies: list[float] = []
    for trace_id in linked:
        spans = found.spans.get(trace_id)
        if not spans:
            continue
        part = chain_part(spans, chain_id if _marks(spans, chain_id) else "")
        path = instance_path(found, trace_id, part)
        if path is None or not path.crosses:
            continue
        paths[trace_id] = path.operations()
        latencies.append((path.end_ns - path.start_ns) / 1e6)
    latencies.sort()
    return EndToEnd(
        len(latencies),
        round(_quantile(latencies, 0.5), 3),
        round(_quantile(latencies, 0.95), 3),
        round(latencies[-1], 3) if latencies else 0.0,
        found.truncated,
    )


def _marks(spans: Sequence[SpanTiming], chain_id: str) -> bool:
    return any(s.entry_ids and chain_id in s.entry_ids.split(",") for s in spans)


def trace_instance(
    store: TraceStore, trace_id: str, from_ns: int, to_ns: int
) -> InstancePath | None:
    """The instance path starting at the whole trace ``trace_id`` (the per-trace view), or
    None when no hop of it is on the path."""
    found = gather(store, [trace_id], from_ns, to_ns + LINK_REACH_NS)
    if trace_id not in found.hops:
        return None
    path = instance_path(found, trace_id)
    return path if path is not None and path.crosses else None
