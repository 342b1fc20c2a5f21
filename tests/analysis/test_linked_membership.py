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
import yaml
from opentelemetry.trace import SpanKind

from chainmap_otel.analysis.coverage import coverage
from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups.protocol import floor_minute
from chainmap_otel.analysis.timewindow import TimeWindow, parse_window
from chainmap_otel.analysis.topology import edge_rows, topologies
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from tests.analysis.conftest import insert_spans, load_fixture
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
from tests.support.sampled_fleet import CHAINS_FILE

MINUTE = 60 * 1_000_000_000


@pytest.fixture
def fleet(catalog: ChainCatalog) -> Iterator[Fleet]:
    yield from fleet_of(catalog, plain=("settlement", "ledger"))


def edges(topology: Any) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.connection_type) for e in topology.edges}


def link_edge(topology: Any, source: str, target: str) -> Any:
    """The messaging_system edge ``source`` -> ``target`` of ``topology``."""
    return next(
        e
        for e in topology.edges
        if (e.source, e.target, e.connection_type) == (source, target, "messaging_system")
    )


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
    assert ("trading-engine", "settlement", "messaging_system") in found, found
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
    b3_topology = topologies(store, catalog, window, chain_ids=["B3"])["B3"]
    found = edges(b3_topology)
    assert ("settlement-service", "postgresql", "database") in found, found
    # The link edge counts for B3 too: its producer is in B3 by the rule its root matches.
    link = link_edge(b3_topology, "trading-engine", "settlement-service")
    assert link.calls == 1 and link.p50_ms == pytest.approx(23.0, abs=0.5), link
    assert_rollup_equals_live(store, catalog, window)
    found_coverage = coverage(store, catalog, parse_window()).to_json()
    assert found_coverage["unmatched"]["traces"] == 0
    b3 = next(c for c in found_coverage["chains"] if c["chain_id"] == "B3")
    assert b3["instances"] == 1 and b3["tagged_by"]["query_time"] == 1, b3


def test_an_untagged_producer_under_a_rule_matched_entry_draws_the_link_edge_in_its_chain(
    catalog: ChainCatalog, store: TraceStore
) -> None:
    """Neither trading-engine nor settlement runs chainmap: the producer span is in B3 only
    because its root matches B3's entry rule at query time, and the link edge producer ->
    consumer counts for B3 with its queue wait, live and rolled up alike; all traffic counts
    it once, as before."""
    for plain_fleet in fleet_of(catalog, plain=("trading-engine", "settlement")):
        headers: dict[str, str] = {}
        place_order(plain_fleet, headers)
        time.sleep(0.02)
        settle_plain(plain_fleet, headers)
        spans = plain_fleet.spans()
        assert not any(k.startswith("chain.") for s in spans for k in s.attributes or {})
        producer = next(s for s in spans if s.kind is SpanKind.PRODUCER)
        consumer = next(s for s in spans if s.kind is SpanKind.CONSUMER)
        assert producer.end_time is not None and consumer.start_time is not None
        wait_ms = (consumer.start_time - producer.end_time) / 1e6
        store_spans(store, plain_fleet)
    window = around_now()

    per_chain = topologies(store, catalog, window, chain_ids=["B3"])
    link = link_edge(per_chain["B3"], "trading-engine", "settlement")
    assert link.calls == 1 and link.p50_ms == pytest.approx(wait_ms, abs=0.5), (link, wait_ms)
    assert ("settlement", "postgresql", "database") in edges(per_chain["B3"])
    everything = link_edge(per_chain[None], "trading-engine", "settlement")
    assert everything.calls == 1 and everything.p50_ms == link.p50_ms
    assert_rollup_equals_live(store, catalog, window)
    rolled = topologies(store, catalog, window, chain_ids=["B3"])
    assert edge_rollup.read_state(store, catalog).covers
    assert edges(rolled["B3"]) == edges(per_chain["B3"])
    assert link_edge(rolled["B3"], "trading-engine", "settlement").calls == 1


def test_a_consumer_entering_its_own_chain_also_continues_an_untagged_producers(
    catalog: ChainCatalog, store: TraceStore
) -> None:
    """trading-engine tags nothing (B3 is matched at its root at query time, so no baggage
    carries B3); settlement runs chainmap and its consumer span enters a chain of its own,
    ST. The consumer marks that entry, so its link is looked up too: its subtree is in B3's
    instance as well as ST's."""
    document = yaml.safe_load(CHAINS_FILE.read_text(encoding="utf-8"))
    document["chains"].append(
        {
            "id": "ST",
            "name": "Settlement",
            "category": "trading",
            "entry": [{"service": "settlement", "kind": "consumer"}],
        }
    )
    with_settlement = parse_catalog(yaml.safe_dump(document), source="settlement.yaml")
    for fleet in fleet_of(with_settlement, plain=("trading-engine",)):
        headers: dict[str, str] = {}
        place_order(fleet, headers)
        settle(fleet, headers)
        consumer = next(s for s in fleet.spans() if s.kind is SpanKind.CONSUMER)
        assert (consumer.attributes or {}).get("chain.entry_ids") == "ST"
        store_spans(store, fleet)
    window = around_now()
    per_chain = topologies(store, with_settlement, window, chain_ids=["B3", "ST"])
    assert {
        ("trading-engine", "settlement", "messaging_system"),
        ("settlement", "postgresql", "database"),
    } <= edges(per_chain["B3"]), per_chain["B3"]
    assert ("settlement", "postgresql", "database") in edges(per_chain["ST"])
    assert_rollup_equals_live(store, with_settlement, window)
    found = coverage(store, with_settlement, parse_window()).to_json()
    counted = {c["chain_id"]: c["instances"] for c in found["chains"] if c["instances"]}
    assert counted == {"B3": 1, "ST": 1}, found["chains"]
    assert found["unmatched"] == {"traces": 0, "endpoints": []}, found["unmatched"]


def test_only_the_slices_holding_linked_spans_plan_the_link_lookups(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each slice of the edge rollup checks its own spans: the one of plain tagged traffic is
    rolled up without the lookups through span links, the one holding the untagged consumer
    with them, and the rollup still equals live pairing over both."""
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    settle_plain(fleet, headers, ledger=True)
    store_spans(store, fleet)
    window = around_now()
    earlier = window.start_ns - 30 * MINUTE
    insert_spans(store, load_fixture("nested_chains")["spans"], earlier)
    kinds: list[tuple[bool, bool]] = []
    slice_sql = edge_rollup.slice_sql

    def recording(*args: Any, linked: bool, members: bool, **kwargs: Any) -> Any:
        kinds.append((linked, members))
        return slice_sql(*args, linked=linked, members=members, **kwargs)

    monkeypatch.setattr(edge_rollup, "slice_sql", recording)
    edge_rollup.refresh_edges(store, catalog, until_ns=earlier + 10 * MINUTE)
    assert kinds == [(False, False)]
    assert_rollup_equals_live(store, catalog, TimeWindow(earlier - MINUTE, window.end_ns))
    assert kinds == [(False, False), (True, True)]
