"""The critical path of a chain instance crosses the queue, from real SDK spans in chDB.

The fleet of :mod:`tests.support.queue_fleet`: trading-engine places an order (B3) and
publishes ``order-events``; settlement consumes it in a trace of its own, linked to the
producer span. The instance waited for settlement, so its path runs through the queue wait.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry.trace import SpanKind

from chainmap_otel import track
from chainmap_otel.analysis.critical_path import chain_critical_path, critical_path
from chainmap_otel.analysis.instances import QUEUE_WAIT, queue_label
from chainmap_otel.analysis.rollups.critical_paths import refresh_critical_paths
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.support.queue_fleet import WAIT_S, Fleet, fleet_of, place_order, settle, store_spans

QUEUE = queue_label("order-events")


@pytest.fixture
def fleet(catalog: ChainCatalog) -> Iterator[Fleet]:
    yield from fleet_of(catalog)


def _trace_of(fleet: Fleet, service: str, name_part: str) -> str:
    span = next(
        s
        for s in fleet.spans()
        if s.resource.attributes["service.name"] == service and name_part in s.name
    )
    return format(span.context.trace_id, "032x")


def test_the_instance_path_runs_through_the_queue_wait_into_the_consumer(
    fleet: Fleet, store: TraceStore
) -> None:
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    time.sleep(WAIT_S)
    settle(fleet, headers)
    store_spans(store, fleet)
    producer = _trace_of(fleet, "trading-engine", "POST /orders")
    consumer = _trace_of(fleet, "settlement", "INSERT")

    result = critical_path(store, producer)
    instance = result["instance"]
    assert instance is not None
    assert instance["traces"] == [producer, consumer]
    sections = instance["sections"]
    starts = [s["start_unix_nano"] for s in sections]
    assert starts == sorted(starts)
    [wait] = [s for s in sections if s["queue"]]
    assert (wait["service"], wait["name"], wait["trace_id"]) == (QUEUE, QUEUE_WAIT, consumer)
    assert wait["end_unix_nano"] - wait["start_unix_nano"] >= WAIT_S * 1e9
    # Before the wait: the producer's trace up to the message leaving; after: settlement.
    before = sections[: sections.index(wait)]
    after = sections[sections.index(wait) + 1 :]
    assert before and {s["trace_id"] for s in before} == {producer}
    assert max(s["end_unix_nano"] for s in before) <= wait["start_unix_nano"]
    assert after and {s["trace_id"] for s in after} == {consumer}
    assert {s["service"] for s in after} == {"settlement"}
    first = min(s["start_unix_nano"] for s in sections)
    last = max(s["end_unix_nano"] for s in sections)
    assert instance["end_to_end_ms"] == pytest.approx((last - first) / 1e6, abs=0.001)
    # The trace's own path is unchanged (Jaeger's, over its spans only).
    assert {s["service"] for s in result["sections"]} == {"trading-engine"}
    # From the consumer's side no hop leaves: its own path only.
    assert critical_path(store, consumer)["instance"] is None


def test_a_consumer_that_finishes_before_the_sender_is_off_the_path(
    fleet: Fleet, store: TraceStore
) -> None:
    tracer = fleet.use("trading-engine").get_tracer("test")
    headers: dict[str, str] = {}
    with tracer.start_as_current_span(
        "POST /orders",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/orders", "http.method": "POST"},
    ):
        with track.publish(headers, "order-events", system="demo-queue"):
            pass
        settle(fleet, headers)  # consumed while the request is still open
        fleet.use("trading-engine")
        time.sleep(WAIT_S)
    store_spans(store, fleet)
    producer = _trace_of(fleet, "trading-engine", "POST /orders")
    assert critical_path(store, producer)["instance"] is None


def test_a_consumer_that_publishes_again_is_a_second_hop(fleet: Fleet, store: TraceStore) -> None:
    headers: dict[str, str] = {}
    place_order(fleet, headers)
    fleet.use("settlement")
    onward: dict[str, str] = {}
    with track.consume(headers, "order-events", system="demo-queue"):
        with track.publish(onward, "settled", system="demo-queue"):
            pass
    fleet.use("ledger")
    with track.consume(onward, "settled", system="demo-queue"):
        time.sleep(WAIT_S)
    store_spans(store, fleet)
    producer = _trace_of(fleet, "trading-engine", "POST /orders")
    instance = critical_path(store, producer)["instance"]
    assert instance is not None and len(instance["traces"]) == 3
    waits = [s["service"] for s in instance["sections"] if s["queue"]]
    assert waits == [QUEUE, queue_label("settled")]
    assert instance["sections"][-1]["service"] == "ledger"


def test_the_chain_aggregate_charges_the_queue_and_the_consumer_live_and_rolled_up(
    fleet: Fleet, store: TraceStore, catalog: ChainCatalog
) -> None:
    for _ in range(3):
        headers: dict[str, str] = {}
        place_order(fleet, headers)
        time.sleep(WAIT_S)
        settle(fleet, headers)
    store_spans(store, fleet)
    window = parse_window()
    live = chain_critical_path(store, catalog, "B3", window).to_json()
    refresh_critical_paths(store, until_ns=time.time_ns() + 3_600_000_000_000)
    rolled = chain_critical_path(store, catalog, "B3", window).to_json()
    assert live == rolled
    services = {s["service"]: s["share"] for s in live["all"]["services"]}
    assert set(services) >= {"trading-engine", QUEUE, "settlement"}
    assert sum(services.values()) == pytest.approx(1.0, abs=1e-5)
    through = live["through_queues"]
    assert through["instances"] == 3 and not through["truncated"]
    assert WAIT_S * 1000 <= through["p50_ms"] <= through["p95_ms"] <= through["max_ms"]
