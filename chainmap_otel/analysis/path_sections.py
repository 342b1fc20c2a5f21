"""Jaeger's critical path of one trace, and the parts of a trace each chain owns.

:func:`compute_sections` is the jaeger-ui CriticalPath algorithm, iterative:

1. a span whose parent is not in the trace is a root; several roots hang under a
   virtual root spanning them all (its own gaps are not reported);
2. CONSUMER children of PRODUCER spans are dropped (asynchronous: the producer does not
   wait for them), with their subtrees;
3. top-down, each child is clipped to its (already clipped) parent's interval; a child
   entirely before or after its parent is dropped with its subtree;
4. from the root's end walk backwards: take the last-finishing child that ends before
   the current point (any child on the first visit), emit the parent's section after it
   and descend; with no such child emit the span's own section from its start and
   return to the parent with the current point set to the span's start.

Sections come back in chronological order. A chain owns the subtree of the span where it
begins in the trace (:func:`chain_subtree`: the first span, by start, whose
``chain.entry_ids`` names it), or the whole trace when no span marks its entry (a trace
classified at query time, or tagged without entry marks). :func:`trace_parts` computes, once
per trace, every part a chain can own -- the whole trace and each marked entry's subtree --
with its latency and the self time of each operation on its critical path: what the
critical-path rollup stores and what the per-chain aggregate reads, live or rolled up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "PartPath",
    "Section",
    "SpanTiming",
    "chain_subtree",
    "compute_sections",
    "entry_chains",
    "operation_times",
    "part_latency",
    "part_path",
    "span_timing",
    "trace_parts",
]


class SpanTiming(NamedTuple):
    """The span fields the algorithm reads; times in Unix nanoseconds (a named tuple: the
    rollup builds one per stored span)."""

    span_id: str
    parent_id: str
    service: str
    name: str
    kind: str  # lower-case: server, client, producer, consumer, internal
    start: int
    end: int
    entry_ids: str = ""  # chain.entry_ids: the chains that begin at this span


def span_timing(row: Sequence[Any]) -> SpanTiming:
    """A span read as ``(span id, parent id, service, name, kind, start ns, duration ns,
    chain.entry_ids)``, the columns the critical-path queries select in that order."""
    span_id, parent, service, name, kind, start, duration, entry_ids = row[:8]
    return SpanTiming(
        str(span_id),
        str(parent),
        str(service),
        str(name),
        str(kind),
        int(start),
        int(start) + int(duration),
        str(entry_ids),
    )


@dataclass(frozen=True)
class Section:
    span_id: str
    service: str
    name: str
    start_unix_nano: int
    end_unix_nano: int

    def to_json(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "service": self.service,
            "name": self.name,
            "start_unix_nano": self.start_unix_nano,
            "end_unix_nano": self.end_unix_nano,
        }


def _walk(spans: Sequence[SpanTiming]) -> tuple[list[SpanTiming], list[tuple[int, int, int]]]:
    """The algorithm (module docstring) over span indices: the spans by index (the last one
    of each id) and the path's sections ``(index, start, end)``, latest first."""
    index: dict[str, int] = {}
    unique: list[SpanTiming] = []
    for span in spans:
        found = index.get(span.span_id)
        if found is None:
            index[span.span_id] = len(unique)
            unique.append(span)
        else:
            unique[found] = span
    root = len(unique)  # the virtual root
    children: list[list[int]] = [[] for _ in range(root + 1)]
    for span in spans:
        parent = index.get(span.parent_id) if span.parent_id != span.span_id else None
        if parent is None:
            children[root].append(index[span.span_id])
        elif not (span.kind == "consumer" and unique[parent].kind == "producer"):
            children[parent].append(index[span.span_id])
    roots = children[root]
    if not roots:  # a parent cycle: nothing to walk from
        return unique, []
    # Clip top-down; lo/hi hold the kept spans' clipped intervals (lo None: not kept).
    lo: list[int | None] = [None] * (root + 1)
    hi = [0] * (root + 1)
    lo[root] = min(unique[r].start for r in roots)
    hi[root] = max(unique[r].end for r in roots)
    kept: list[list[int]] = [[] for _ in range(root + 1)]
    parent_of = [root] * (root + 1)
    queue = [root]
    while queue:
        parent = queue.pop()
        p_start, p_end = lo[parent], hi[parent]
        assert p_start is not None
        for child in children[parent]:
            span = unique[child]
            if lo[child] is not None or span.start >= p_end or span.end <= p_start:
                continue
            lo[child] = max(span.start, p_start)
            hi[child] = min(span.end, p_end)
            kept[parent].append(child)
            parent_of[child] = parent
            queue.append(child)
    # Children by end time, latest first; a cursor per parent only moves forward because
    # the point a parent is revisited at (a child's start) only moves back in time.
    for kids in kept:
        if len(kids) > 1:
            kids.sort(key=lambda k: (-hi[k], lo[k]))
    cursor = [0] * (root + 1)
    out: list[tuple[int, int, int]] = []
    current, point, first_visit = root, hi[root], True
    while True:
        kids = kept[current]
        at = cursor[current]
        if not first_visit:
            while at < len(kids) and hi[kids[at]] >= point:
                at += 1
        if at < len(kids):
            cursor[current] = at + 1
            child = kids[at]
            end = hi[child]
            if current != root and point > end:
                out.append((current, end, point))
            current, point, first_visit = child, end, True
            continue
        cursor[current] = at
        start = lo[current]
        assert start is not None
        if current == root:
            break
        if point > start:
            out.append((current, start, point))
        current, point, first_visit = parent_of[current], start, False
    return unique, out


def compute_sections(spans: Sequence[SpanTiming]) -> list[Section]:
    """The critical path of one trace's spans, chronological (see the module docstring)."""
    unique, walked = _walk(spans)
    sections = []
    for i, start, end in reversed(walked):
        span = unique[i]
        sections.append(Section(span.span_id, span.service, span.name, start, end))
    return sections


def chain_subtree(spans: Sequence[SpanTiming], chain_id: str) -> list[SpanTiming]:
    """The part of a trace that is the chain: the subtree of the span where it begins.

    A nested chain (B3 inside B1) owns only its entry span and descendants, so its
    latency is not charged with the outer chains' time. Traces without a tagged entry
    span (classified from their root at query time) are the chain as a whole.
    """
    entries = [s for s in spans if s.entry_ids and chain_id in s.entry_ids.split(",")]
    if not entries:
        return list(spans)
    root = min(entries, key=_entry_order)
    children: dict[str, list[SpanTiming]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
    subtree, queue = [root], [root.span_id]
    while queue:
        for child in children.get(queue.pop(), ()):
            if child is not root:
                subtree.append(child)
                queue.append(child.span_id)
    return subtree


def _entry_order(span: SpanTiming) -> tuple[int, str]:
    """Which entry span a chain's part starts at when several name it: the first to start
    (then the least span id); the live aggregate's SQL picks the same one."""
    return span.start, span.span_id


def entry_chains(spans: Sequence[SpanTiming]) -> list[str]:
    """The chains some span of the trace marks the entry of (``chain.entry_ids``), sorted."""
    return sorted({c for s in spans if s.entry_ids for c in s.entry_ids.split(",") if c})


def part_latency(spans: Sequence[SpanTiming], chain_id: str) -> int:
    """The latency of ``chain_id``'s part of a trace, ns: its entry span's duration (the
    span :func:`chain_subtree` starts at) or, without an entry mark (``chain_id`` ''), the
    trace's extent."""
    entries = [s for s in spans if chain_id and s.entry_ids and chain_id in s.entry_ids.split(",")]
    if entries:
        root = min(entries, key=_entry_order)
        return root.end - root.start
    if not spans:
        return 0
    return max(s.end for s in spans) - min(s.start for s in spans)


@dataclass(frozen=True)
class PartPath:
    """One part of a trace a chain can own: ``entry_chain`` '' for the whole trace, else the
    chain whose marked entry span it starts at; its latency and, per operation on its
    critical path, the self time there (ns), operations sorted by (service, name)."""

    entry_chain: str
    latency_ns: int
    services: tuple[str, ...]
    names: tuple[str, ...]
    self_ns: tuple[int, ...]

    def operations(self) -> list[tuple[str, str, int]]:
        return list(zip(self.services, self.names, self.self_ns, strict=True))


def operation_times(spans: Sequence[SpanTiming]) -> dict[tuple[str, str], int]:
    """Self time on the critical path of ``spans`` per (service, operation), ns: the sums
    of :func:`compute_sections`' sections."""
    unique, walked = _walk(spans)
    out: dict[tuple[str, str], int] = {}
    for i, start, end in walked:
        span = unique[i]
        key = (span.service, span.name)
        out[key] = out.get(key, 0) + end - start
    return out


def part_path(spans: Sequence[SpanTiming], entry_chain: str) -> PartPath:
    """The part ``entry_chain`` owns ('' for the whole trace) and its critical path."""
    part = chain_subtree(spans, entry_chain) if entry_chain else list(spans)
    times = sorted(operation_times(part).items())
    return PartPath(
        entry_chain,
        part_latency(spans, entry_chain),
        tuple(service for (service, _), _ in times),
        tuple(name for (_, name), _ in times),
        tuple(ns for _, ns in times),
    )


def trace_parts(spans: Sequence[SpanTiming], whole: bool = True) -> list[PartPath]:
    """Every part of one trace a chain can own: the whole trace first (unless ``whole`` is
    false), then the subtree of each chain's marked entry span (by chain id)."""
    if not spans:
        return []
    chains = entry_chains(spans)
    return [part_path(spans, chain) for chain in (["", *chains] if whole else chains)]
