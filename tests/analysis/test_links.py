"""Chains across traces: a consumer linked to its producer, from real SDK spans in chDB
(the fleet of :mod:`tests.support.queue_fleet`). Topology pairs the two through the link;
health counts one B3 instance, not one per trace, and trace search lists it once.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from chainmap_otel import track
from chainmap_otel.analysis.coverage import coverage
from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.rollups import traces as trace_rollup
from chainmap_otel.analysis.timewindow import TimeWindow, parse_window
from chainmap_otel.analysis.topology import topologies
from chainmap_otel.analysis.trace_spans import whole_trace
from chainmap_otel.analysis.traces import TraceQuery, search_traces
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.support.queue_fleet import WAIT_S, Fleet, fleet_of, place_order, settle, store_spans


@pytest.fixture
def fleet(catalog: ChainCatalog) -> Iterator[Fleet]:
    yield from fleet_of(catalog)


def edges(topology: Any) -> list[tuple[str, str, str, int, int]]:
    return sorted(
        (e.source, e.target, e.connection_type, e.calls, e.errors) for e in topology.edges
    )


def test_consumer_is_paired_with_its_producer_through_the_link(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    for fail in (False, True):
        headers: dict[str, str] = {}
        place_order(fleet, headers)
        time.sleep(WAIT_S)
        settle(fleet, headers, fail=fail)
    store_spans(store, fleet)
    per_chain = topologies(store, catalog, parse_window(), chain_ids=["B3"])

    link = ("trading-engine", "settlement", "messaging_system", 2, 1)
    for key in ("B3", None):
        found = edges(per_chain[key])
        assert link in found, (key, found)
        # The consumer's own trace belongs to the chain: its database edge is in B3's topology.
        assert ("settlement", "postgresql", "database", 2, 1) in found, (key, found)
        # The producer's trace keeps its edge to the queue node.
        assert ("trading-engine", "demo-queue", "messaging_system", 2, 0) in found, (key, found)
    queue_hop = next(e for e in per_chain["B3"].edges if e.target == "settlement")
    # The edge latency is the queue wait: the consumer started WAIT_S after the producer ended.
    assert WAIT_S * 1000 <= queue_hop.p50_ms < 5000
    assert sum(queue_hop.client_buckets) == sum(queue_hop.server_buckets) == 2
    nodes = {n.id: n.type for n in per_chain["B3"].nodes}
    assert nodes["settlement"] == "service"


def test_a_link_to_a_producer_outside_the_window_lookback_is_not_paired(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    settle(fleet, headers)
    consumer = next(s for s in fleet.spans() if s.kind is SpanKind.CONSUMER)
    # A window starting just before the consumer, with no lookback: the producer is outside.
    start = consumer.start_time or 0
    window = TimeWindow(start - 1_000, start + 60 * 1_000_000_000)
    store_spans(store, fleet)
    monkeypatch.setattr(importlib.import_module(topologies.__module__), "LINK_LOOKBACK_SECONDS", 0)
    found = edges(topologies(store, catalog, window, chain_ids=[])[None])
    assert not any(target == "settlement" for _, target, *_ in found), found


def test_health_counts_one_instance_per_producer_entry_not_one_per_trace(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    settle(fleet, headers)
    store_spans(store, fleet)
    consumer = next(s for s in fleet.spans() if s.kind is SpanKind.CONSUMER)
    assert (consumer.attributes or {}).get("chain.ids") == "B3"
    [chain] = health(store, catalog, parse_window(), chain_ids=["B3"])
    assert chain["traces"] == 1, chain


def test_critical_path_counts_the_instances_health_counts(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    from chainmap_otel.analysis.critical_path import chain_critical_path
    from chainmap_otel.analysis.rollups.critical_paths import refresh_critical_paths

    for _ in range(2):
        headers: dict[str, str] = {}
        place_order(fleet, headers)
        settle(fleet, headers)
    store_spans(store, fleet)
    window = parse_window()
    [chain] = health(store, catalog, window, chain_ids=["B3"])
    live = chain_critical_path(store, catalog, "B3", window).to_json()
    # Rolled up (a closing time past every span): the same two traces, not four.
    refresh_critical_paths(store, until_ns=time.time_ns() + 3_600_000_000_000)
    rolled = chain_critical_path(store, catalog, "B3", window).to_json()
    assert chain["traces"] == live["all"]["traces"] == rolled["all"]["traces"] == 2


def test_the_trace_view_lists_the_traces_linked_both_ways(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    time.sleep(WAIT_S)
    settle(fleet, headers)
    store_spans(store, fleet)
    spans = {s.name: s for s in fleet.spans()}
    producer, consumer = spans["send order-events"], spans["process order-events"]
    producer_trace = f"{producer.context.trace_id:032x}"
    consumer_trace = f"{consumer.context.trace_id:032x}"

    [onward] = whole_trace(store, producer_trace)["linked_traces"]
    assert onward["direction"] == "linked_from" and onward["trace_id"] == consumer_trace
    assert onward["span_id"] == f"{producer.context.span_id:016x}"
    assert onward["linked_span_id"] == f"{consumer.context.span_id:016x}"
    assert (onward["service"], onward["name"]) == ("settlement", "process order-events")
    assert onward["wait_ms"] >= WAIT_S * 1000

    [back] = whole_trace(store, consumer_trace)["linked_traces"]
    assert back["direction"] == "links_to" and back["trace_id"] == producer_trace
    assert back["span_id"] == f"{consumer.context.span_id:016x}"
    assert (back["service"], back["name"]) == ("trading-engine", "send order-events")
    assert back["wait_ms"] == onward["wait_ms"]


def test_coverage_counts_the_consumer_as_part_of_the_producers_instance(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    """The consumer's root carries B3 from the message, not from a rule of its own: no
    second instance, and no disagreement between its tag and the rules."""
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    settle(fleet, headers)
    store_spans(store, fleet)
    found = coverage(store, catalog, parse_window()).to_json()
    b3 = next(c for c in found["chains"] if c["chain_id"] == "B3")
    assert b3["instances"] == 1 and b3["disagreements"] == 0, b3


def test_trace_search_of_the_chain_lists_the_instance_once_with_its_linked_trace(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    """One instance, two traces: searching the chain finds the producer's trace, holding the
    chain's entry, with the consumer's trace (whose spans carry the chain only through the
    message) in its linked traces; a consumer entering a chain of its own is found by that
    chain. The rolled-up traces are found as the live ones."""
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    tracer = fleet.use("settlement").get_tracer("test")
    with track.consume(headers, "order-events", system="demo-queue"):
        with track.chain("C9"):
            with tracer.start_as_current_span("reconcile", kind=SpanKind.INTERNAL):
                pass
    store_spans(store, fleet)
    spans = {s.name: s for s in fleet.spans()}
    producer, consumer = (
        f"{spans[name].context.trace_id:032x}"
        for name in ("send order-events", "process order-events")
    )

    def search(chain: str | None) -> list[tuple[str, list[str]]]:
        found = search_traces(store, catalog, parse_window(), TraceQuery(chain=chain)).to_json()
        return sorted((t["trace_id"], t["linked_traces"]) for t in found["traces"])

    live = {chain: search(chain) for chain in ("B3", "C9", None)}
    assert live["B3"] == [(producer, [consumer])]
    assert live["C9"] == [(consumer, [])]
    # Without a chain every trace is listed.
    assert live[None] == sorted([(producer, [consumer]), (consumer, [])])
    trace_rollup.refresh_traces(store, until_ns=time.time_ns() + 2 * 3600 * 10**9)
    assert store.query("SELECT count() FROM chainmap_trace_merged").result_rows == [(2,)]
    assert {chain: search(chain) for chain in live} == live
