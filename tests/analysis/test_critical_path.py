"""Critical path: Jaeger's cases on in-memory spans, a stored trace, and a chain aggregate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chainmap_otel.analysis.critical_path import (
    SpanTiming,
    chain_critical_path,
    compute_sections,
    critical_path,
)
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.errors import NotFoundError, ParameterError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import hex_id


def span(sid: str, parent: str, start: int, end: int, kind: str = "internal") -> SpanTiming:
    return SpanTiming(sid, parent, f"svc-{sid}", f"op-{sid}", kind, start, end)


def path(spans: list[SpanTiming]) -> list[tuple[str, int, int]]:
    return [(s.span_id, s.start_unix_nano, s.end_unix_nano) for s in compute_sections(spans)]


def test_sequential_and_overlapping_children() -> None:
    # root 0-100; b 10-40 and c 30-80 overlap: c finishes last; b does not end before c
    # starts, so (as in Jaeger) the root itself is on the path before c.
    spans = [span("root", "", 0, 100), span("b", "root", 10, 40), span("c", "root", 30, 80)]
    assert path(spans) == [("root", 0, 30), ("c", 30, 80), ("root", 80, 100)]
    sequential = [span("root", "", 0, 100), span("b", "root", 10, 30), span("c", "root", 40, 80)]
    assert path(sequential) == [
        ("root", 0, 10),
        ("b", 10, 30),
        ("root", 30, 40),
        ("c", 40, 80),
        ("root", 80, 100),
    ]


def test_child_outliving_parent_is_clipped() -> None:
    spans = [span("root", "", 0, 100), span("a", "root", 20, 60), span("late", "a", 30, 90)]
    assert path(spans) == [("root", 0, 20), ("a", 20, 30), ("late", 30, 60), ("root", 60, 100)]


def test_child_starting_before_parent_is_clipped() -> None:
    spans = [span("root", "", 0, 100), span("a", "root", 20, 60), span("early", "a", 5, 50)]
    assert path(spans) == [("root", 0, 20), ("early", 20, 50), ("a", 50, 60), ("root", 60, 100)]


@pytest.mark.parametrize(("start", "end"), [(-50, -10), (120, 150), (-10, 0), (100, 130)])
def test_child_entirely_outside_parent_is_dropped(start: int, end: int) -> None:
    spans = [
        span("root", "", 0, 100),
        span("out", "root", start, end),
        span("deep", "out", start, end),
    ]
    assert path(spans) == [("root", 0, 100)]


def test_consumer_of_producer_is_dropped() -> None:
    spans = [
        span("root", "", 0, 100, "server"),
        span("pub", "root", 10, 20, "producer"),
        span("sub", "pub", 15, 95, "consumer"),
    ]
    assert path(spans) == [("root", 0, 10), ("pub", 10, 20), ("root", 20, 100)]


def test_walk_skips_children_ending_after_the_current_point() -> None:
    # c ends last; b ends after c starts, so from c's start the walk takes a (ends at 25).
    spans = [
        span("root", "", 0, 100),
        span("a", "root", 5, 25),
        span("b", "root", 20, 60),
        span("c", "root", 50, 90),
    ]
    assert path(spans) == [
        ("root", 0, 5),
        ("a", 5, 25),
        ("root", 25, 50),
        ("c", 50, 90),
        ("root", 90, 100),
    ]


def test_two_roots_and_orphans() -> None:
    spans = [
        span("r1", "", 0, 40),
        span("r2", "", 50, 100),
        span("x", "r2", 60, 70),
        span("orphan", "missing", 42, 45),
    ]
    assert path(spans) == [
        ("r1", 0, 40),
        ("orphan", 42, 45),
        ("r2", 50, 60),
        ("x", 60, 70),
        ("r2", 70, 100),
    ]


def test_deep_trace_is_iterative() -> None:
    spans = [span("s0", "", 0, 100_000)] + [
        span(f"s{i}", f"s{i - 1}", i, 100_000 - i) for i in range(1, 5000)
    ]
    sections = compute_sections(spans)
    assert len(sections) == 2 * 5000 - 1
    assert sum(s.end_unix_nano - s.start_unix_nano for s in sections) == 100_000


def test_stored_trace(
    load: Callable[[str], dict[str, Any]], store: TraceStore, now_ns: int
) -> None:
    load("nested_chains")
    trace_id = hex_id("t1", 32)
    result = critical_path(store, trace_id)
    assert result["trace_id"] == trace_id
    sections = result["sections"]
    assert sections[0]["start_unix_nano"] == now_ns
    assert sections[-1]["end_unix_nano"] == now_ns + 300 * 1_000_000
    assert [s["start_unix_nano"] for s in sections] == sorted(
        s["start_unix_nano"] for s in sections
    )
    assert {s["service"] for s in sections} >= {"api-gateway", "database-service"}
    assert set(sections[0]) == {"span_id", "service", "name", "start_unix_nano", "end_unix_nano"}


def test_unknown_and_malformed_trace(store: TraceStore) -> None:
    with pytest.raises(NotFoundError) as unknown:
        critical_path(store, "0" * 32)
    assert (unknown.value.kind, unknown.value.id) == ("trace", "0" * 32)
    with pytest.raises(ParameterError) as malformed:
        critical_path(store, "xyz")
    assert (malformed.value.parameter, malformed.value.value) == ("trace_id", "xyz")


def test_chain_aggregate(store: TraceStore, catalog: ChainCatalog, now_ns: int) -> None:
    from tests.analysis.conftest import insert_spans

    spans = []
    for i in range(40):
        slow = i < 2  # the slowest 5 % spend their time in the database call
        db_ms = 400 if slow else 10
        spans += [
            {
                "trace": f"c{i}",
                "span": "te",
                "service": "trading-engine",
                "kind": "Server",
                "start_ms": i,
                "duration_ms": 50 + db_ms,
                "attributes": {"http.route": "/orders", "http.request.method": "POST"},
            },
            {
                "trace": f"c{i}",
                "span": "db",
                "parent": "te",
                "service": "trading-engine",
                "kind": "Client",
                "name": "SELECT",
                "start_ms": i + 20,
                "duration_ms": db_ms,
                "attributes": {"db.system": "postgresql"},
            },
        ]
    insert_spans(store, spans, now_ns)
    result = chain_critical_path(store, catalog, "B3", parse_window()).to_json()
    assert result["traces"] == 40 and result["slow_traces"] == 2
    assert sum(s["share"] for s in result["all"]["services"]) == pytest.approx(1)
    ops = {o["name"]: o["share"] for o in result["slowest_5pct"]["operations"]}
    assert ops["SELECT"] == pytest.approx(400 / 450)
    assert {o["name"]: o["share"] for o in result["all"]["operations"]}["SELECT"] < 0.5
    with pytest.raises(NotFoundError) as unknown:
        chain_critical_path(store, catalog, "nope", parse_window())
    assert (unknown.value.kind, unknown.value.id, unknown.value.parameter) == (
        "chain",
        "nope",
        "chain",
    )


def test_nested_chain_counts_only_its_own_subtree(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    from tests.analysis.conftest import insert_spans

    outer = {"chain.ids": "B1", "chain.id": "B1"}
    inner = {"chain.ids": "B1,B3", "chain.id": "B3"}
    spans = []
    for i in range(10):
        spans += [
            {
                "trace": f"n{i}",
                "span": "gw",
                "service": "api-gateway",
                "kind": "Server",
                "start_ms": i,
                "duration_ms": 300,
                "attributes": {**outer, "chain.entry": "true", "chain.entry_ids": "B1"},
            },
            {
                "trace": f"n{i}",
                "span": "gwc",
                "parent": "gw",
                "service": "api-gateway",
                "kind": "Client",
                "start_ms": i + 200,
                "duration_ms": 90,
                "attributes": outer,
            },
            {
                "trace": f"n{i}",
                "span": "te",
                "parent": "gwc",
                "service": "trading-engine",
                "kind": "Server",
                "start_ms": i + 210,
                "duration_ms": 70,
                "attributes": {**inner, "chain.entry": "true", "chain.entry_ids": "B3"},
            },
        ]
    insert_spans(store, spans, now_ns)
    result = chain_critical_path(store, catalog, "B3", parse_window()).to_json()
    assert result["traces"] == 10
    # B3 is the trading-engine subtree: the gateway's 300 ms belong to B1, not to B3.
    assert [s["service"] for s in result["all"]["services"]] == ["trading-engine"]
    assert result["all"]["services"][0]["mean_ms"] == pytest.approx(70)
    b1 = chain_critical_path(store, catalog, "B1", parse_window()).to_json()
    assert {s["service"] for s in b1["all"]["services"]} == {"api-gateway", "trading-engine"}
