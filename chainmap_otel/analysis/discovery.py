"""Discovery: recurring trace shapes no chain covers, proposed as chain definitions.

Traces of the window that belong to no chain (see :mod:`~chainmap_otel.analysis.membership`)
are clustered by their entry (root service, span kind, ``http.route`` else URL path else
span name) and, inside an entry, by their edge set. Each entry seen at least
``min_traces`` times becomes a proposal: an entry rule for that service/kind/route, the
edges present in at least half of its traces as ``expected`` edges, SLO thresholds
suggested from the observed root-span latency (p95 and p99 rounded up with 20 %
headroom) and error ratio (twice the observed, at least 0.1 %), and its share of traffic.
:func:`proposals_yaml` renders them as a chains file ``parse_catalog`` accepts.

Long windows are processed in time slices (``slice_seconds``, default one hour) so a
``progress(done, total)`` callback can report; slices merge exactly (counts and latency
histograms). A trace cut by a slice boundary is seen as two partial traces. The work is
bounded whatever the window: slices cover only the stretch that holds spans (one query
finds it), and there are at most ``MAX_SLICES`` of them (wider slices for long stretches),
so ``since=3650d`` costs a few queries, not one per hour.

JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from chainmap_otel.analysis.rollups.edges import pairing_sql
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

#: Called after each time slice with (slices done, slices in total).
ProgressCallback = Callable[[int, int], None]
DEFAULT_SLICE_SECONDS = 3600
#: Most slice queries one discovery runs, however long its window.
MAX_SLICES = 24
_CATEGORY_BY_KIND = {"server": "api", "consumer": "data_flow"}


@dataclass
class _Entry:
    service: str
    kind: str
    entry: str
    traces: int = 0
    errors: int = 0
    buckets: dict[int, int] = field(default_factory=dict)
    variants: dict[tuple[str, ...], int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def bucket_quantile(buckets: dict[int, int], q: float) -> float:
    """Upper bound (ms) of the histogram bucket holding quantile ``q``."""
    total = sum(buckets.values())
    if not total:
        return 0.0
    rank, seen = q * total, 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return 1000 * 2 ** ((bucket + 1) / 4) / 1e6
    return 1000 * 2 ** ((max(buckets) + 1) / 4) / 1e6


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value - 1e-9:
            return float(step * power)
    return float(10 * power)


@dataclass
class Discovery:
    window: TimeWindow
    traces: int
    uncovered: int
    proposals: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window.to_json(),
            "traces": self.traces,
            "uncovered_traces": self.uncovered,
            "proposals": self.proposals,
        }


def _proposal(entry: _Entry, chain_id: str, total: int, uncovered: int) -> dict[str, Any]:
    half = entry.traces / 2
    edge_counts: dict[str, int] = {}
    for edges, count in entry.variants.items():
        for edge in edges:
            edge_counts[edge] = edge_counts.get(edge, 0) + count
    common = sorted(e for e, c in edge_counts.items() if c >= half and not e.startswith("user -> "))
    p50, p95, p99 = (bucket_quantile(entry.buckets, q) for q in (0.5, 0.95, 0.99))
    error_ratio = entry.errors / entry.traces if entry.traces else 0.0
    rule: dict[str, Any] = {"service": entry.service}
    if entry.kind in ("server", "client", "internal", "producer", "consumer"):
        rule["kind"] = entry.kind
    field_name = "route" if entry.entry.startswith("/") else "name"
    rule[field_name] = (
        {"equals": entry.entry} if any(c in entry.entry for c in "*?[") else entry.entry
    )
    definition: dict[str, Any] = {
        "id": chain_id,
        "name": f"{entry.service} {entry.entry}"[:120],
        "category": _CATEGORY_BY_KIND.get(entry.kind, "batch"),
        "criticality": "medium",
        "description": f"Discovered: {entry.traces} traces ({entry.traces / total:.1%} of traffic).",
        "entry": [rule],
        "slo": {
            "latency_ms": {"p95": nice_ceiling(p95 * 1.2), "p99": nice_ceiling(p99 * 1.2)},
            "error_rate": min(0.5, max(0.001, round(error_ratio * 2, 4))),
            "window": "7d",
        },
    }
    if common:
        definition["expected"] = {"edges": common}
    return {
        "id": chain_id,
        "name": definition["name"],
        "service": entry.service,
        "kind": entry.kind,
        "entry": entry.entry,
        "traces": entry.traces,
        "share_of_traffic": round(entry.traces / total, 6) if total else 0.0,
        "share_of_uncovered": round(entry.traces / uncovered, 6) if uncovered else 0.0,
        "error_ratio": round(error_ratio, 6),
        "p50_ms": round(p50, 3),
        "p95_ms": round(p95, 3),
        "p99_ms": round(p99, 3),
        "edges": common,
        "variants": [
            {"edges": list(k), "traces": v}
            for k, v in sorted(entry.variants.items(), key=lambda kv: -kv[1])
        ],
        "examples": entry.examples[:3],
        "definition": definition,
    }


def _extent(store: TraceStore, window: TimeWindow) -> tuple[int, int]:
    """``[first span start, last span start + 1ns)`` inside ``window``; empty when no spans."""
    sql = load_sql("discover_extent", store.database)
    count, first, last = store.query(sql, window.params()).result_rows[0]
    if not count:
        return window.start_ns, window.start_ns
    return int(first), min(window.end_ns, int(last) + 1)


def discover(
    store: TraceStore,
    catalog: ChainCatalog,
    window: TimeWindow,
    min_traces: int = 10,
    slice_seconds: int = DEFAULT_SLICE_SECONDS,
    progress: ProgressCallback | None = None,
) -> Discovery:
    """Cluster uncovered traces of ``window`` and propose chains (see the module docstring)."""
    if slice_seconds <= 0:
        raise ValueError("slice_seconds must be positive")
    inner, params = pairing_sql(store, catalog)
    sql = load_sql("discover", store.database, trace_edges=inner)
    first_ns, end_ns = _extent(store, window)
    span = end_ns - first_ns
    slices = min(MAX_SLICES, max(1, math.ceil(span / (slice_seconds * 1_000_000_000))))
    step = max(1, math.ceil(span / slices))
    entries: dict[tuple[str, str, str], _Entry] = {}
    total = uncovered = 0
    for index in range(slices if span > 0 else 0):
        start = first_ns + index * step
        bound = {**params, "start_ns": start, "end_ns": min(end_ns, start + step)}
        for service, kind, name, edge_key, is_uncovered, traces, errors, (
            keys,
            values,
        ), examples in store.query(sql, bound).result_rows:
            total += int(traces)
            if not is_uncovered:
                continue
            uncovered += int(traces)
            entry = entries.setdefault((service, kind, name), _Entry(service, kind, name))
            entry.traces += int(traces)
            entry.errors += int(errors)
            for key, value in zip(keys, values, strict=True):
                entry.buckets[int(key)] = entry.buckets.get(int(key), 0) + int(value)
            variant = tuple(edge_key)
            entry.variants[variant] = entry.variants.get(variant, 0) + int(traces)
            entry.examples.extend(str(e) for e in examples)
        if progress is not None:
            progress(index + 1, slices)
    ranked = sorted(
        (e for e in entries.values() if e.traces >= min_traces),
        key=lambda e: (-e.traces, e.service, e.entry),
    )
    taken = set(catalog.ids)
    proposals = []
    number = 0
    for entry in ranked:
        number += 1
        while f"D{number}" in taken:
            number += 1
        proposals.append(_proposal(entry, f"D{number}", total, uncovered))
    return Discovery(window, total, uncovered, proposals)


def proposals_yaml(discovery: Discovery) -> str:
    """The proposals as a chains YAML document (``version: 1``) ready to edit and load."""
    document = {"version": 1, "chains": [p["definition"] for p in discovery.proposals]}
    header = (
        f"# Chains proposed by `chainmap discover` from {discovery.uncovered} uncovered of "
        f"{discovery.traces} traces\n# ({discovery.window.to_json()['since']} .. "
        f"{discovery.window.to_json()['until']}). Review ids, names and SLOs before use.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
