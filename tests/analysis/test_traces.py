"""Trace search over the summary: each filter, the order, the window and bad input."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from chainmap_otel.analysis.rollups import traces as trace_rollup
from chainmap_otel.analysis.timewindow import TimeWindow, parse_window
from chainmap_otel.analysis.traces import (
    MAX_LIMIT,
    TraceQuery,
    newest_first_parts,
    pick_list,
    search_traces,
)
from chainmap_otel.errors import NotFoundError, ParameterError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import hex_id

SLOW, ORDER, REPORT, OLD = (hex_id(name, 32) for name in ("slow", "order", "report", "old"))
HOUR_NS = 3600 * 10**9


#: Where the searched traces come from: merged live from the summary, all from the
#: merged-trace rollup, or split between the two (OLD, an hour before the others, rolled up).
MODES = ("live", "merged", "split")


def roll_up(store: TraceStore, mode: str, now_ns: int) -> None:
    if mode == "merged":
        trace_rollup.refresh_traces(store, until_ns=now_ns + 2 * HOUR_NS)
    elif mode == "split":
        trace_rollup.refresh_traces(store, until_ns=now_ns - 5 * 60 * 10**9)
    watermark = trace_rollup.analysis_watermark(store)
    assert (watermark or 0) > 0 if mode != "live" else not watermark


@pytest.fixture(params=MODES)
def search(
    request: pytest.FixtureRequest,
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    catalog: ChainCatalog,
    now_ns: int,
) -> Callable[..., list[str]]:
    load("trace_search")
    roll_up(store, request.param, now_ns)

    def run(since: str = "1h", **filters: Any) -> list[str]:
        query = TraceQuery.parse(**filters)
        found = search_traces(store, catalog, parse_window(since), query).to_json()
        return [t["trace_id"] for t in found["traces"]]

    return run


def test_newest_first_in_the_window(search: Callable[..., list[str]]) -> None:
    assert search() == [REPORT, ORDER, SLOW]
    # OLD is in the second part of a two-hour window: the parts join in order.
    assert search(since="2h") == [REPORT, ORDER, SLOW, OLD]
    assert search(since="2h", limit=2) == [REPORT, ORDER]
    assert search(since="2h", order="duration") == [SLOW, REPORT, OLD, ORDER]


def test_parts_cover_the_window_newest_first() -> None:
    window = TimeWindow(0, 7 * 86400 * 10**9)
    parts = list(newest_first_parts(window))
    assert parts[0].end_ns == window.end_ns and parts[-1].start_ns == window.start_ns
    assert all(a.start_ns == b.end_ns for a, b in itertools.pairwise(parts))
    assert [p.seconds / 3600 for p in parts] == [1, 4, 16, 64, 83]
    assert list(newest_first_parts(TimeWindow(5, 10))) == [TimeWindow(5, 10)]


@pytest.mark.parametrize("mode", MODES)
def test_contract_fields(
    mode: str,
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    catalog: ChainCatalog,
    now_ns: int,
) -> None:
    load("trace_search")
    roll_up(store, mode, now_ns)
    body = search_traces(store, catalog, parse_window("1h"), TraceQuery()).to_json()
    assert set(body) == {"traces", "limit", "order", "since", "until"}
    slow = next(t for t in body["traces"] if t["trace_id"] == SLOW)
    assert slow == {
        "trace_id": SLOW,
        "start": slow["start"],
        "duration_ms": 900.0,
        "root_service": "api-gateway",
        "root_operation": "POST /api/v1/trading/decision",
        "status": "error",
        "chain_ids": ["A2", "B1", "B3"],
        "services": ["ai-orchestration", "api-gateway", "trading-engine"],
        "span_count": 5,
        "error_count": 1,
        "chain": None,
        "error_source": {
            "first": {
                "span_id": hex_id("slow/te", 16),
                "service": "trading-engine",
                "operation": "POST /orders",
                "message": "",
            },
            "deepest": slow["error_source"]["first"],
        },
        "linked_traces": [],
    }
    assert slow["start"].endswith("Z")


def test_chain_tagged_and_untagged(search: Callable[..., list[str]]) -> None:
    # ORDER carries no chain tags: its root span matches B3's entry rule.
    assert search(chain="B3") == [ORDER, SLOW]
    assert search(chain="A2") == [SLOW]
    assert search(chain="C9") == []


def test_service_operation_and_their_pairing(search: Callable[..., list[str]]) -> None:
    assert search(service="trading-engine") == [ORDER, SLOW]
    assert search(operation="render") == [REPORT]
    assert search(operation="/orders") == [ORDER, SLOW]  # http.route
    assert search(service="trading-engine", operation="render") == []
    assert search(service="reporting", operation="render") == [REPORT]


def test_status_duration_and_order(search: Callable[..., list[str]]) -> None:
    assert search(status="error") == [REPORT, SLOW]
    assert search(status="ok") == [ORDER]
    assert search(min_duration_ms=100) == [REPORT, SLOW]
    assert search(max_duration_ms=300) == [REPORT, ORDER]
    assert search(min_duration_ms=100, max_duration_ms=500) == [REPORT]
    assert search(order="duration") == [SLOW, REPORT, ORDER]
    assert search(order="duration", limit=1) == [SLOW]


def test_attributes_of_spans_and_resources(search: Callable[..., list[str]]) -> None:
    assert search(attr=["tenant=acme"]) == [SLOW]
    assert search(attr=["tenant=globex"]) == [REPORT]
    assert search(attr=["service.name=reporting"]) == [REPORT]  # a resource attribute
    assert search(attr=["tenant=acme", "http.route=/reports"]) == []


@pytest.mark.parametrize(
    ("filters", "named", "value"),
    [
        ({"status": "failed"}, "status", "failed"),
        ({"order": "name"}, "order", "name"),
        ({"limit": MAX_LIMIT + 1}, "limit", MAX_LIMIT + 1),
        ({"limit": "ten"}, "limit", "ten"),
        ({"min_duration_ms": "-1"}, "min_duration_ms", "-1"),
        ({"min_duration_ms": 5, "max_duration_ms": 1}, "min_duration_ms", 5),
        ({"attr": ["=acme"]}, "attr", "=acme"),
        ({"attr": ["tenant=~("]}, "attr", "tenant=~("),
        ({"attr": ["tenant=~(?=a)"]}, "attr", "tenant=~(?=a)"),
        ({"attr": ["k"] * 17}, "attr", 17),
        ({"attr": ["k=" + "v" * 513]}, "attr", "k=" + "v" * 78),
        ({"chain_status": "error"}, "chain_status", "error"),
        ({"chain": "B3", "chain_status": "down"}, "chain_status", "down"),
        ({"service": ""}, "service", ""),
    ],
)
def test_bad_filters_name_the_parameter(filters: dict[str, Any], named: str, value: Any) -> None:
    with pytest.raises(ParameterError) as refused:
        TraceQuery.parse(**filters)
    assert (refused.value.parameter, refused.value.value) == (named, value)
    assert refused.value.allowed


def test_inverted_durations_name_both() -> None:
    with pytest.raises(ParameterError) as refused:
        TraceQuery.parse(min_duration_ms=5, max_duration_ms=1)
    assert refused.value.related == {"max_duration_ms": 1}


def test_unknown_chain(search: Callable[..., list[str]]) -> None:
    with pytest.raises(NotFoundError, match="unknown chain id 'ZZ'") as unknown:
        search(chain="ZZ")
    assert (unknown.value.kind, unknown.value.id, unknown.value.parameter) == (
        "chain",
        "ZZ",
        "chain",
    )


NEST, DIRECT, QUICK = (hex_id(name, 32) for name in ("nest", "direct", "quick"))


@pytest.fixture(params=("live", "merged"))
def span_search(
    request: pytest.FixtureRequest,
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    catalog: ChainCatalog,
    now_ns: int,
) -> Callable[..., list[dict[str, Any]]]:
    load("span_search")
    roll_up(store, request.param, now_ns)

    def run(**filters: Any) -> list[dict[str, Any]]:
        query = TraceQuery.parse(**filters)
        traces: list[dict[str, Any]] = search_traces(
            store, catalog, parse_window("1h"), query
        ).to_json()["traces"]
        return traces

    return run


def ids(traces: list[dict[str, Any]]) -> list[str]:
    return [t["trace_id"] for t in traces]


def test_duration_applies_to_the_span_matching_service_operation_attributes(
    span_search: Callable[..., list[dict[str, Any]]],
) -> None:
    risk = {"service": "ai-risk-model", "operation": "inference risk-var"}
    # NEST lasts 600 ms but its inference span 50 ms: Jaeger's semantics leave it out.
    assert ids(span_search(**risk, min_duration_ms=300)) == [DIRECT]
    assert ids(span_search(**risk, max_duration_ms=60)) == [QUICK, NEST]
    assert ids(span_search(service="ai-risk-model", min_duration_ms=300)) == [DIRECT]
    assert ids(span_search(attr=["tenant=acme"], min_duration_ms=40)) == [NEST]
    assert ids(span_search(attr=["tenant=acme"], min_duration_ms=60)) == []
    # Without a span-level filter the duration is the trace's extent.
    assert ids(span_search(min_duration_ms=300)) == [DIRECT, NEST]


def test_a_chain_ranks_and_filters_by_its_own_entry_span(
    span_search: Callable[..., list[dict[str, Any]]],
) -> None:
    # Whole traces: NEST 600, DIRECT 400, QUICK 150; B3's entry spans: 100, 400, 150.
    assert ids(span_search(order="duration")) == [NEST, DIRECT, QUICK]
    slowest = span_search(chain="B3", order="duration")
    assert ids(slowest) == [DIRECT, QUICK, NEST]
    assert [t["chain"] for t in slowest] == [
        {"chain_id": "B3", "duration_ms": 400.0, "status": "ok"},
        {"chain_id": "B3", "duration_ms": 150.0, "status": "error"},
        {"chain_id": "B3", "duration_ms": 100.0, "status": "error"},
    ]
    assert ids(span_search(chain="B3", order="duration", limit=1)) == [DIRECT]
    assert ids(span_search(chain="B3", min_duration_ms=120)) == [QUICK, DIRECT]
    assert ids(span_search(chain="B3", max_duration_ms=120)) == [NEST]
    assert span_search(chain="B1")[0]["chain"] == {
        "chain_id": "B1",
        "duration_ms": 600.0,
        "status": "ok",
    }


def test_chain_failed_is_apart_from_a_span_failed(
    span_search: Callable[..., list[dict[str, Any]]],
) -> None:
    assert ids(span_search(chain="B3", status="error")) == [QUICK, DIRECT, NEST]
    assert ids(span_search(chain="B3", chain_status="error")) == [QUICK, NEST]
    assert ids(span_search(chain="B3", status="error", chain_status="ok")) == [DIRECT]
    # B1's entry (the gateway) did not fail in NEST: a span failed, the chain did not.
    assert ids(span_search(chain="B1", chain_status="error")) == []
    assert ids(span_search(chain="B1", status="error", chain_status="ok")) == [NEST]


@pytest.mark.parametrize(
    ("attr", "found"),
    [
        ("tenant=acme", ["nest"]),
        ("tenant!=acme", ["direct"]),
        ("tenant", ["direct", "nest"]),
        ("tenant=~^glo", ["direct"]),
        ("model=~^var$", ["nest"]),
        ("service.name=~risk", ["quick", "direct", "nest"]),  # a resource attribute
        ("service.name!=ai-risk-model", ["quick", "direct", "nest"]),  # other spans
        ("absent", []),
    ],
)
def test_attribute_operators(
    span_search: Callable[..., list[dict[str, Any]]], attr: str, found: list[str]
) -> None:
    assert ids(span_search(attr=[attr])) == [hex_id(name, 32) for name in found]


def test_error_source_first_by_time_and_deepest(
    span_search: Callable[..., list[dict[str, Any]]],
) -> None:
    traces = {t["trace_id"]: t for t in span_search()}
    nest = traces[NEST]["error_source"]
    assert nest["first"] == {
        "span_id": hex_id("nest/te", 16),
        "service": "trading-engine",
        "operation": "POST /orders",
        "message": "order rejected",
    }
    assert nest["deepest"] == {
        "span_id": hex_id("nest/inf", 16),
        "service": "ai-risk-model",
        "operation": "inference risk-var",
        "message": "model timeout",
    }
    direct = traces[DIRECT]["error_source"]
    assert direct["first"] == direct["deepest"]
    assert direct["first"]["message"] == "model timeout"
    assert traces[QUICK]["error_source"]["first"]["message"] == "insufficient funds"


def test_pick_lists(load: Callable[[str], dict[str, Any]], store: TraceStore) -> None:
    load("span_search")
    window = parse_window("1h")
    assert pick_list(store, window) == ["ai-risk-model", "api-gateway", "trading-engine"]
    assert pick_list(store, window, "trading-engine") == ["POST /orders"]
    assert pick_list(store, window, "ai-risk-model") == ["inference risk-var"]
    assert pick_list(store, TimeWindow(0, 10**9)) == []
    with pytest.raises(ParameterError) as refused:
        pick_list(store, window, "x" * 513)
    assert refused.value.parameter == "service"
