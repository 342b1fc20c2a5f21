"""The critical-path rollup: the per-chain aggregate from ``chainmap_critical_path`` equals
the live computation over the same traces (nested chains, a trace classified at query time,
an untagged span entering a chain below a tagged root, a slice boundary), and a rewind
(``chainmap ingest`` of older spans) walks the traces stored below the watermark."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chainmap_otel.analysis.critical_path import chain_critical_path
from chainmap_otel.analysis.path_sections import SpanTiming, compute_sections, trace_parts
from chainmap_otel.analysis.rollups import critical_paths
from chainmap_otel.analysis.rollups.refresh import rewind_rollups
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import MS, insert_spans

S = 10**9
CHAINS = ("B1", "A2", "B3")


def tags(ids: str, entry: str = "") -> dict[str, str]:
    out = {"chain.ids": ids, "chain.id": ids.split(",")[-1]}
    if entry:
        out |= {"chain.entry": "true", "chain.entry_ids": entry}
    return out


def nested(trace: str, start_ms: float, slow: float = 1.0) -> list[dict[str, Any]]:
    """B1 > A2 > B3, every entry marked (as the chainmap processor tags them)."""
    route = {"http.route": "/api/v1/trading", "http.request.method": "POST"}
    return [
        {
            "trace": trace,
            "span": "gw",
            "service": "api-gateway",
            "kind": "Server",
            "name": "POST /api/v1/trading",
            "start_ms": start_ms,
            "duration_ms": 300 * slow,
            "attributes": {**route, **tags("B1", "B1")},
        },
        {
            "trace": trace,
            "span": "gwc",
            "parent": "gw",
            "service": "api-gateway",
            "kind": "Client",
            "name": "POST",
            "start_ms": start_ms + 5,
            "duration_ms": 280 * slow,
            "attributes": tags("B1"),
        },
        {
            "trace": trace,
            "span": "ai",
            "parent": "gwc",
            "service": "ai-orchestration",
            "kind": "Server",
            "name": "POST /decisions",
            "start_ms": start_ms + 10,
            "duration_ms": 260 * slow,
            "attributes": {"http.route": "/decisions", **tags("B1,A2", "A2")},
        },
        {
            "trace": trace,
            "span": "te",
            "parent": "ai",
            "service": "trading-engine",
            "kind": "Server",
            "name": "POST /orders",
            "start_ms": start_ms + 100,
            "duration_ms": 140 * slow,
            "attributes": {
                "http.route": "/orders",
                "http.request.method": "POST",
                **tags("B1,A2,B3", "B3"),
            },
        },
        {
            "trace": trace,
            "span": "db",
            "parent": "te",
            "service": "trading-engine",
            "kind": "Client",
            "name": "INSERT orders",
            "start_ms": start_ms + 150,
            "duration_ms": 60 * slow,
            "attributes": {"db.system": "postgresql", **tags("B1,A2,B3")},
        },
    ]


def untagged(trace: str, start_ms: float) -> list[dict[str, Any]]:
    """No chain tags at all: B1 by the rules on its root, B3 by the rules on a child."""
    return [
        {
            "trace": trace,
            "span": "gw",
            "service": "api-gateway",
            "kind": "Server",
            "name": "GET /api/v1/portfolio",
            "start_ms": start_ms,
            "duration_ms": 90,
            "attributes": {"http.route": "/api/v1/portfolio", "http.method": "GET"},
        },
        {
            "trace": trace,
            "span": "te",
            "parent": "gw",
            "service": "trading-engine",
            "kind": "Server",
            "name": "POST /orders",
            "start_ms": start_ms + 20,
            "duration_ms": 50,
            "attributes": {"http.route": "/orders", "http.method": "POST"},
        },
    ]


def untagged_hop(trace: str, start_ms: float) -> list[dict[str, Any]]:
    """A tagged B1 root calling a service without chainmap whose span the B3 rule matches."""
    return [
        {
            "trace": trace,
            "span": "gw",
            "service": "api-gateway",
            "kind": "Server",
            "name": "POST /api/v1/orders",
            "start_ms": start_ms,
            "duration_ms": 120,
            "attributes": {"http.route": "/api/v1/orders", **tags("B1", "B1")},
        },
        {
            "trace": trace,
            "span": "te",
            "parent": "gw",
            "service": "trading-engine",
            "kind": "Server",
            "name": "POST /orders",
            "start_ms": start_ms + 30,
            "duration_ms": 70,
            "attributes": {"url.path": "/orders/7", "http.method": "POST"},
        },
    ]


def tagged_without_entry(trace: str, start_ms: float) -> list[dict[str, Any]]:
    """A baggage span processor's tags: chain.ids only, no entry marks."""
    return [
        {
            "trace": trace,
            "span": "ai",
            "service": "ai-orchestration",
            "kind": "Server",
            "name": "POST /decisions",
            "start_ms": start_ms,
            "duration_ms": 40,
            "attributes": tags("A2"),
        },
        {
            "trace": trace,
            "span": "m",
            "parent": "ai",
            "service": "ai-market-model",
            "kind": "Client",
            "name": "predict",
            "start_ms": start_ms + 5,
            "duration_ms": 30,
            "attributes": tags("A2"),
        },
    ]


def traffic(prefix: str, count: int) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    for i in range(count):
        at = i * 7000.0  # 7 s apart: the traces straddle minute slices
        spans += nested(f"{prefix}n{i}", at, slow=3.0 if i % 10 == 0 else 1.0)
        spans += untagged(f"{prefix}u{i}", at + 1000)
        spans += untagged_hop(f"{prefix}h{i}", at + 2000)
        spans += tagged_without_entry(f"{prefix}w{i}", at + 3000)
    return spans


def aggregates(
    store: TraceStore, catalog: ChainCatalog, window: TimeWindow, cap: int
) -> dict[str, dict[str, Any]]:
    return {
        c: chain_critical_path(store, catalog, c, window, sample_cap=cap).to_json() for c in CHAINS
    }


def stored_parts(store: TraceStore) -> int:
    return int(
        store.query(f"SELECT count() FROM {store.database}.chainmap_critical_path").result_rows[0][
            0
        ]
    )


@pytest.mark.parametrize("cap", [2000, 3])
def test_rolled_up_aggregate_equals_the_live_one(
    store: TraceStore, catalog: ChainCatalog, cap: int
) -> None:
    base = (time.time_ns() // (60 * S) - 30) * 60 * S  # 30 minutes ago, on a minute
    insert_spans(store, traffic("t", 20), base)
    window = TimeWindow(base - 60 * S, time.time_ns())
    live = aggregates(store, catalog, window, cap)
    assert live["B3"]["traces"] == 60  # nested, untagged (child), untagged hop
    assert live["B1"]["traces"] == 60  # nested, untagged (root), untagged hop
    assert live["A2"]["traces"] == 40  # nested, tagged without entry marks

    mark = critical_paths.refresh_critical_paths(store)
    assert mark > base + 20 * 7000 * MS
    # A row per marked chain (nested: 3, hop: 1) and a whole-trace row where a chain can
    # own the whole trace (untagged spans, or tags without entry marks; not nested).
    assert stored_parts(store) == 20 * (3 + 1 + 2 + 1)
    assert aggregates(store, catalog, window, cap) == live

    # The rolled-up part needs no span: the answer comes from chainmap_critical_path alone.
    store.command(f"TRUNCATE TABLE {store.database}.otel_traces")
    assert aggregates(store, catalog, window, cap) == live


def test_split_between_rollup_and_live_tail(store: TraceStore, catalog: ChainCatalog) -> None:
    base = (time.time_ns() // (60 * S) - 30) * 60 * S
    insert_spans(store, traffic("s", 20), base)
    window = TimeWindow(base, time.time_ns())
    live = aggregates(store, catalog, window, 2000)
    # Roll up only the first minute and a half: the rest is the live tail.
    critical_paths.refresh_critical_paths(store, until_ns=base + 90 * S)
    assert critical_paths.read_state(store).watermark_ns == base + 60 * S
    assert 0 < stored_parts(store) < 20 * 7
    assert aggregates(store, catalog, window, 2000) == live


def test_rewind_walks_traces_stored_below_the_watermark(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    now = time.time_ns()
    base = (now // (60 * S) - 20) * 60 * S
    insert_spans(store, traffic("r", 5), base)
    critical_paths.refresh_critical_paths(store)
    before = stored_parts(store)
    # Older spans arrive (chainmap ingest of files): below the watermark, not yet walked.
    older = base - 10 * 60 * S
    insert_spans(store, traffic("o", 5), older)
    window = TimeWindow(older - 60 * S, time.time_ns())
    assert "critical_paths" in rewind_rollups(store, older)
    assert critical_paths.read_state(store).watermark_ns <= older
    live = aggregates(store, catalog, window, 2000)  # the rewound part is read live
    assert live["B3"]["traces"] == 30
    critical_paths.refresh_critical_paths(store)
    assert stored_parts(store) == 2 * before
    assert aggregates(store, catalog, window, 2000) == live


def test_trace_parts_are_the_walk_of_each_subtree() -> None:
    def timing(sid: str, parent: str, start: int, end: int, entry: str = "") -> SpanTiming:
        return SpanTiming(sid, parent, f"svc-{sid}", f"op-{sid}", "server", start, end, entry)

    spans = [
        timing("root", "", 0, 100, "B1"),
        timing("a", "root", 10, 60, "A2"),
        timing("b", "a", 20, 50),
        timing("c", "root", 70, 90),
    ]
    parts = {p.entry_chain: p for p in trace_parts(spans)}
    assert sorted(parts) == ["", "A2", "B1"]
    assert parts[""].latency_ns == 100 and parts["A2"].latency_ns == 50
    whole = {(s.service, s.name): 0 for s in compute_sections(spans)}
    for section in compute_sections(spans):
        whole[(section.service, section.name)] += section.end_unix_nano - section.start_unix_nano
    assert {(svc, name): ns for svc, name, ns in parts[""].operations()} == whole
    assert parts["A2"].operations() == [("svc-a", "op-a", 20), ("svc-b", "op-b", 30)]
