"""A fleet in two environments, its production traces sampled (OTEP 235), as real SDK spans.

``prod`` services name their environment with ``deployment.environment.name`` and keep a
quarter of their traces: the root sampler writes ``ot=th:<threshold_for(0.25)>`` into the
``tracestate``, children inherit it, so every stored span stands for 4. ``staging`` services
use the old ``deployment.environment`` and keep everything. Each trace is
``gateway`` (SERVER ``GET /api/orders``, CLIENT) -> ``orders`` (SERVER, PRODUCER to
``order-events``); ``settlement`` consumes the event in a trace of its own, linked to the
producer span.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer, TraceState
from opentelemetry.util.types import Attributes

from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from chainmap_otel.tagging.sampling import threshold_for
from tests.support.sdk_fleet import recording_provider

#: Production keeps this share of its traces; each stored call stands for 1 / it.
PROD_PROBABILITY = 0.25
PROD_WEIGHT = 4
#: The fleet's one chain: an order, entered at the gateway's server span.
ORDERS_CHAINS = """\
version: 1
chains:
  - id: ORD
    name: Orders
    category: api
    criticality: high
    entry:
      - service: gateway
        kind: server
        route: /api/orders
"""


def orders_catalog() -> ChainCatalog:
    return parse_catalog(ORDERS_CHAINS, source="orders.yaml")


class ThresholdSampler(Sampler):
    """Keeps every trace but says, as an OTEP 235 sampler would, that it kept ``p`` of them
    (the test needs the stored traces, not a random subset of them)."""

    def __init__(self, probability: float) -> None:
        self._state = TraceState([("ot", f"th:{threshold_for(probability)}")])

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, self._state)

    def get_description(self) -> str:
        return "ThresholdSampler"


class TwoEnvironmentFleet:
    """Tracer providers per (service, environment), one in-memory exporter."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.providers: dict[tuple[str, str], TracerProvider] = {}

    def tracer(self, service: str, environment: str) -> Tracer:
        provider = self.providers.get((service, environment))
        if provider is None:
            if environment == "prod":
                provider = recording_provider(
                    service,
                    self.exporter,
                    resource={"deployment.environment.name": "prod"},
                    sampler=ParentBased(ThresholdSampler(PROD_PROBABILITY)),
                )
            else:
                provider = recording_provider(
                    service, self.exporter, resource={"deployment.environment": environment}
                )
            self.providers[(service, environment)] = provider
        return provider.get_tracer("tests.sampled_fleet")

    def order(self, environment: str, *, fail: bool = False) -> None:
        """One order: gateway -> orders -> order-events, settled in a linked trace."""
        gateway = self.tracer("gateway", environment)
        orders = self.tracer("orders", environment)
        with gateway.start_as_current_span(
            "GET /api/orders",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/api/orders", "http.method": "GET"},
        ):
            with gateway.start_as_current_span("GET orders", kind=SpanKind.CLIENT):
                with orders.start_as_current_span("GET /orders", kind=SpanKind.SERVER) as server:
                    if fail:
                        server.set_status(Status(StatusCode.ERROR))
                    with orders.start_as_current_span(
                        "send order-events",
                        kind=SpanKind.PRODUCER,
                        attributes={
                            "messaging.system": "demo-queue",
                            "messaging.destination.name": "order-events",
                        },
                    ) as producer:
                        produced = producer.get_span_context()
        settlement = self.tracer("settlement", environment)
        with settlement.start_as_current_span(
            "process order-events",
            context=otel_context.Context(),
            kind=SpanKind.CONSUMER,
            links=[Link(produced)],
        ):
            pass

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def store(self, store: TraceStore) -> None:
        store.insert_arrow(spans_to_arrow(self.spans()))

    def close(self) -> None:
        for provider in self.providers.values():
            provider.shutdown()


def sampled_fleet(store: TraceStore, prod: int = 3, staging: int = 2) -> TwoEnvironmentFleet:
    """``prod`` orders in prod (the first one failing at ``orders``) and ``staging`` orders
    in staging, stored."""
    fleet = TwoEnvironmentFleet()
    try:
        for n in range(prod):
            fleet.order("prod", fail=n == 0)
        for _ in range(staging):
            fleet.order("staging")
        fleet.store(store)
    finally:
        fleet.close()
    return fleet
