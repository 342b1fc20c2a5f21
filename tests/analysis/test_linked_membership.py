"""Chains across traces when the consumer's service tags nothing: a plain OpenTelemetry
consumer (no chainmap processor, no baggage span processor) linked to a producer span of B3
belongs to B3's instance through its link (the membership rule, analysis.membership), in
topology, live and rolled up, and in rule coverage. Real SDK spans in chDB
(:mod:`tests.support.queue_fleet`), and the all-untagged ``queue_hop`` fixture, whose
producer is in B3 only through the rule its root matches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from chainmap_otel.analysis.coverage import coverage
from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups.protocol import floor_minute
from chainmap_otel.analysis.timewindow import TimeWindow, parse_window
from chainmap_otel.analysis.topology import edge_rows, topologies
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.test_edge_rollup import comparable, rolled_window, wanted
from tests.support.queue_fleet import (
    Fleet,
    fleet_of,
    place_order,
    publish_unchained,
    settle,
    settle_plain,
    store_spans,
)

MINUTE = 60 * 1_000_000_000


@pytest.fixture
def fleet(catalog: ChainCatalog) -> Iterator[Fleet]:
    yield from fleet_of(catalog, plain=("settlement", "ledger"))


def edges(topology: Any) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.connection_type) for e in topology.edges}


def around_now() -> TimeWindow:
    """Whole minutes around the spans just made, so a rollup refreshed past them covers them."""
    now = floor_minute(time.time_ns())
    return TimeWindow(now - 10 * MINUTE, now + 2 * MINUTE)


def assert_rollup_equals_live(store: TraceStore, catalog: ChainCatalog, window: TimeWindow) -> None:
    live = edge_rows(store, catalog, window, wanted(catalog), None)
    report = edge_rollup.refresh_edges(store, catalog, until_ns=window.end_ns + MINUTE)
    assert report.state.covers
    rolled = edge_rows(store, catalog, window, wanted(catalog), report.state)
    assert comparable(rolled) == comparable(live)


def test_an_untagged_consumer_continues_the_producers_chain_in_topology(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    settle_plain(fleet, headers, ledger=True)
    consumer = next(s for s in fleet.spans() if s.kind is SpanKind.CONSUMER)
    assert not any(k.startswith("chain.") for k in consumer.attributes or {})
    store_spans(store, fleet)
    window = around_now()

    found = edges(topologies(store, catalog, window, chain_ids=["B3"])["B3"])
    # The link edge, the consumer's own database edge, and the second untagged service it
    # calls, with that service's own edge: the consumer's subtree is B3's.
    assert {
        ("trading-engine", "settlement", "messaging_system"),
        ("settlement", "postgresql", "database"),
        ("settlement", "ledger", ""),
        ("ledger", "postgresql", "database"),
    } <= found, found
    # Held above the consumer, not entered there: no caller node for B3 in its trace.
    assert not any(source == "caller:settlement" for source, _, _ in found), found
    assert_rollup_equals_live(store, catalog, window)
    state = edge_rollup.read_state(store, catalog)
    rolled = edges(topologies(store, catalog, window, chain_ids=["B3"])["B3"])
    assert state.covers and rolled == found


def test_an_untagged_consumer_of_an_unchained_producer_is_in_no_chain(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    headers: dict[str, str] = {}
    publish_unchained(fleet, headers)
    settle_plain(fleet, headers)
    store_spans(store, fleet)
    window = around_now()
    per_chain = topologies(store, catalog, window)
    assert all(not t.edges for key, t in per_chain.items() if key is not None), per_chain
    assert ("settlement", "postgresql", "database") in edges(per_chain[None])
    found = coverage(store, catalog, parse_window()).to_json()
    assert found["unmatched"]["traces"] == 2
    roots = {(e["service"], e["kind"]) for e in found["unmatched"]["endpoints"]}
    assert ("settlement", "Consumer") in roots, roots
    assert found["totals"]["instances"] == 0


def test_coverage_counts_an_untagged_consumer_in_the_producers_instance(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    settle_plain(fleet, headers, ledger=True)
    store_spans(store, fleet)
    found = coverage(store, catalog, parse_window()).to_json()
    assert found["unmatched"] == {"traces": 0, "endpoints": []}, found["unmatched"]
    b3 = next(c for c in found["chains"] if c["chain_id"] == "B3")
    # One instance, entered at the producer's root (tagged by its service): the consumer's
    # trace adds no entry of its own.
    assert b3["instances"] == 1 and b3["tagged_by"]["source"] == 1, b3
    assert found["totals"]["instances"] == 1 and b3["disagreements"] == 0


def test_a_tagged_consumer_is_counted_as_before(catalog: ChainCatalog, store: TraceStore) -> None:
    """The fleet with chainmap everywhere: the consumer carries B3 from the message."""
    for tagged_fleet in fleet_of(catalog):
        headers: dict[str, str] = {}
        place_order(tagged_fleet, headers)
        settle(tagged_fleet, headers)
        store_spans(store, tagged_fleet)
    window = around_now()
    found = edges(topologies(store, catalog, window, chain_ids=["B3"])["B3"])
    assert ("settlement", "postgresql", "database") in found
    assert_rollup_equals_live(store, catalog, window)
    b3 = next(
        c
        for c in coverage(store, catalog, parse_window()).to_json()["chains"]
        if c["chain_id"] == "B3"
    )
    assert b3["instances"] == 1 and b3["disagreements"] == 0, b3


def test_an_untagged_producer_in_a_chain_by_its_ancestors_rule_carries_it_over(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    """``queue_hop``: nothing is tagged; the producer's root matches B3's rule, so the
    producer span is in B3 and so is the consumer linked to it, rolled up as live."""
    load("queue_hop")
    window = rolled_window(now_ns)
    found = edges(topologies(store, catalog, window, chain_ids=["B3"])["B3"])
    assert ("settlement-service", "postgresql", "database") in found, found
    assert_rollup_equals_live(store, catalog, window)
    found_coverage = coverage(store, catalog, parse_window()).to_json()
    assert found_coverage["unmatched"]["traces"] == 0
    b3 = next(c for c in found_coverage["chains"] if c["chain_id"] == "B3")
    assert b3["instances"] == 1 and b3["tagged_by"]["query_time"] == 1, b3
