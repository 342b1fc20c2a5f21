from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from chainmap_otel.tagging.launcher import chain_propagators
from chainmap_otel.tagging.rules import Classifier

OLD_HTTP = {"http.method": "POST", "http.target": "/orders?id=1", "http.route": "/orders"}
NEW_HTTP = {"http.request.method": "POST", "url.path": "/orders", "http.route": "/orders"}


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def chain_attrs(span: ReadableSpan) -> dict[str, object]:
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith("chain.")}


@pytest.mark.parametrize("http", [OLD_HTTP, NEW_HTTP], ids=["old-semconv", "stable-semconv"])
def test_entry_span_and_children_are_tagged(
    provider_for: Callable[[str], TracerProvider],
    exporter: InMemorySpanExporter,
    http: dict[str, str],
) -> None:
    tracer = provider_for("trading-engine").get_tracer("t")
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER, attributes=http):
        with tracer.start_as_current_span("risk check"):
            pass
    spans = by_name(exporter)
    assert chain_attrs(spans["POST /orders"]) == {
        "chain.id": "B3",
        "chain.ids": "B3",
        "chain.name": "Trade execution",
        "chain.category": "trading",
        "chain.entry": True,
        "chain.entry_ids": "B3",
    }
    assert chain_attrs(spans["risk check"]) == {
        "chain.id": "B3",
        "chain.ids": "B3",
        "chain.name": "Trade execution",
        "chain.category": "trading",
    }


def test_method_kind_and_service_must_all_match(
    provider_for: Callable[[str], TracerProvider], exporter: InMemorySpanExporter
) -> None:
    engine = provider_for("trading-engine").get_tracer("t")
    other = provider_for("api-gateway").get_tracer("t")
    with engine.start_as_current_span(
        "GET /orders", kind=SpanKind.SERVER, attributes={**NEW_HTTP, "http.request.method": "GET"}
    ):
        pass
    with engine.start_as_current_span(
        "POST /orders client", kind=SpanKind.CLIENT, attributes=NEW_HTTP
    ):
        pass
    with other.start_as_current_span(
        "POST /orders other", kind=SpanKind.SERVER, attributes=NEW_HTTP
    ):
        pass
    assert all(not chain_attrs(span) for span in exporter.get_finished_spans())


def test_nested_chains_stack_outermost_first_across_services(
    provider_for: Callable[[str], TracerProvider], exporter: InMemorySpanExporter
) -> None:
    gateway = provider_for("api-gateway").get_tracer("t")
    orchestrator = provider_for("ai-orchestration").get_tracer("t")
    engine = provider_for("trading-engine").get_tracer("t")
    propagate.set_global_textmap(chain_propagators())
    with (
        gateway.start_as_current_span(
            "POST /api/v1/trading/decision",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/api/v1/trading/decision"},
        ),
        gateway.start_as_current_span("POST", kind=SpanKind.CLIENT),
    ):
        headers: dict[str, str] = {}
        propagate.inject(headers)
    # Hop to another process: only the headers travel.
    remote = propagate.extract(headers, context=context.Context())
    with (
        orchestrator.start_as_current_span(
            "POST /decisions",
            kind=SpanKind.SERVER,
            context=remote,
            attributes={"http.route": "/decisions"},
        ),
        orchestrator.start_as_current_span("POST", kind=SpanKind.CLIENT),
    ):
        headers = {}
        propagate.inject(headers)
    remote = propagate.extract(headers, context=context.Context())
    with engine.start_as_current_span(
        "POST /orders", kind=SpanKind.SERVER, context=remote, attributes=NEW_HTTP
    ):
        pass
    spans = by_name(exporter)
    assert spans["POST /api/v1/trading/decision"].attributes["chain.ids"] == "B1"  # type: ignore[index]
    assert spans["POST /decisions"].attributes["chain.ids"] == "B1,A2"  # type: ignore[index]
    assert spans["POST /decisions"].attributes["chain.id"] == "A2"  # type: ignore[index]
    assert spans["POST /orders"].attributes["chain.ids"] == "B1,A2,B3"  # type: ignore[index]
    assert spans["POST /orders"].attributes["chain.entry_ids"] == "B3"  # type: ignore[index]
    assert "baggage" in headers and "chain.ids=B1%2CA2" in headers["baggage"]


def test_one_span_matching_several_chains_pushes_them_in_file_order(
    provider_for: Callable[[str], TracerProvider], exporter: InMemorySpanExporter
) -> None:
    catalog = parse_catalog(
        """\
chains:
  - {id: B1, name: api, category: api, entry: [{route: "/api/v1/*"}]}
  - {id: A2, name: ai, category: ai_decision, entry: [{route: {regex: "^/api/v1/trading"}}]}
  - {id: B3, name: trade, category: trading, entry: [{route: "/api/v1/trading*"}]}
"""
    )
    tracer = provider_for("api-gateway", catalog).get_tracer("t")  # type: ignore[call-arg]
    with tracer.start_as_current_span(
        "GET /api/v1/trading", kind=SpanKind.SERVER, attributes={"url.path": "/api/v1/trading"}
    ):
        pass
    span = exporter.get_finished_spans()[0]
    assert span.attributes["chain.ids"] == "B1,A2,B3"  # type: ignore[index]
    assert span.attributes["chain.entry_ids"] == "B1,A2,B3"  # type: ignore[index]


def test_span_in_no_chain_gets_no_attributes_and_none_parent_context_works(
    provider_for: Callable[[str], TracerProvider], exporter: InMemorySpanExporter
) -> None:
    provider = provider_for("api-gateway")
    processor = provider._active_span_processor._span_processors[0]  # type: ignore[attr-defined]
    tracer = provider.get_tracer("t")
    span = tracer.start_span(
        "GET /health", kind=SpanKind.SERVER, attributes={"http.route": "/health"}
    )
    processor.on_start(span, parent_context=None)
    span.end()
    assert not chain_attrs(exporter.get_finished_spans()[0])


def test_remote_baggage_only_accepts_known_ids(
    provider_for: Callable[[str], TracerProvider], exporter: InMemorySpanExporter
) -> None:
    tracer = provider_for("database-service").get_tracer("t")
    ctx = baggage.set_baggage("chain.ids", "EVIL,B1,,A1,B1", context.Context())
    with tracer.start_as_current_span("SELECT", kind=SpanKind.SERVER, context=ctx):
        pass
    span = exporter.get_finished_spans()[0]
    assert span.attributes["chain.ids"] == "B1,A1"  # type: ignore[index]
    assert "chain.entry" not in span.attributes  # type: ignore[operator]


def test_chain_push_attribute_forces_a_chain(
    provider_for: Callable[[str], TracerProvider], exporter: InMemorySpanExporter
) -> None:
    tracer = provider_for("worker").get_tracer("t")
    with tracer.start_as_current_span("nightly", attributes={"chain.push": "B3"}):
        with tracer.start_as_current_span("step"):
            pass
    spans = by_name(exporter)
    assert spans["nightly"].attributes["chain.entry_ids"] == "B3"  # type: ignore[index]
    assert spans["step"].attributes["chain.ids"] == "B3"  # type: ignore[index]


def test_processor_never_raises_into_the_application(
    example_catalog: ChainCatalog,
    exporter: InMemorySpanExporter,
    provider_for: Callable[[str], TracerProvider],
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = provider_for("trading-engine")
    processor = provider._active_span_processor._span_processors[0]  # type: ignore[attr-defined]

    class Broken:
        kind = SpanKind.SERVER

        @property
        def resource(self) -> object:
            raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            processor.on_start(Broken(), None)  # never raised into the application
    failures = [r for r in caplog.records if r.exc_info or "boom" in r.getMessage()]
    assert len(failures) == 1, caplog.records  # logged once, not per span
    # The processor still tags the spans that come after.
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("order", kind=SpanKind.SERVER, attributes=NEW_HTTP):
        pass
    assert by_name(exporter)["order"].attributes["chain.ids"] == "B3"  # type: ignore[index]


def test_classifier_indexes_by_service_and_kind(example_catalog: ChainCatalog) -> None:
    classifier = Classifier(example_catalog)
    assert [r.chain.id for r in classifier.candidates("trading-engine", SpanKind.SERVER)] == [
        "B3",
        "C2",
    ]
    assert classifier.candidates("trading-engine", SpanKind.CLIENT) == ()
    assert classifier.candidates("unknown-service", SpanKind.SERVER) == ()
    assert classifier.classify(
        "data-bridge", SpanKind.SERVER, "ws", {"http.route": "/ws/market"}
    ) == ["C1"]


def test_untagged_provider_without_chains_is_a_noop(
    provider_for: Callable[[str], TracerProvider], exporter: InMemorySpanExporter
) -> None:
    tracer = provider_for("trading-engine", ChainCatalog()).get_tracer("t")  # type: ignore[call-arg]
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER, attributes=NEW_HTTP):
        pass
    assert not chain_attrs(exporter.get_finished_spans()[0])
    assert trace.get_current_span() is trace.INVALID_SPAN


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"max_span_attribute_length": 10}, {"chain.id": "B3", "chain.name": "Trade exec"}),
        ({"max_span_attributes": 4}, {"chain.entry_ids": "B3"}),
    ],
    ids=["value-length-limit", "attribute-count-limit"],
)
def test_span_limits_are_honoured(
    example_catalog: ChainCatalog,
    exporter: InMemorySpanExporter,
    limits: dict[str, int],
    expected: dict[str, str],
) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from chainmap_otel.tagging.processor import ChainSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": "trading-engine"}),
        span_limits=SpanLimits(**limits),
    )
    provider.add_span_processor(ChainSpanProcessor(example_catalog))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span(
        "POST /orders", kind=SpanKind.SERVER, attributes=NEW_HTTP
    ):
        pass
    span = exporter.get_finished_spans()[0]
    attributes = dict(span.attributes or {})
    for key, value in expected.items():
        assert attributes[key] == value
    if "max_span_attributes" in limits:
        assert len(attributes) == limits["max_span_attributes"]
        assert span.dropped_attributes > 0
    provider.shutdown()


def test_rpc_messaging_and_attribute_matchers() -> None:
    catalog = parse_catalog(
        """\
chains:
  - id: R1
    name: rpc
    category: trading
    entry: [{kind: server, rpc_service: orders.OrderService, rpc_method: {regex: "^Place"}}]
  - id: M1
    name: consume
    category: data_flow
    entry: [{kind: consumer, messaging_destination: "ticks.*"}]
  - id: X1
    name: attr
    category: batch
    entry: [{attributes: {tenant: {glob: "acme-*"}, dry_run: false}}]
"""
    )
    classifier = Classifier(catalog)
    rpc = {"rpc.service": "orders.OrderService", "rpc.method": "PlaceOrder"}
    assert classifier.classify("svc", SpanKind.SERVER, "rpc", rpc) == ["R1"]
    assert classifier.classify("svc", SpanKind.SERVER, "rpc", {**rpc, "rpc.method": "Cancel"}) == []
    assert classifier.classify(
        "svc", SpanKind.CONSUMER, "recv", {"messaging.destination.name": "ticks.AAPL"}
    ) == ["M1"]
    assert classifier.classify(
        "svc", SpanKind.CONSUMER, "recv", {"messaging.destination": "ticks.MSFT"}
    ) == ["M1"]
    assert classifier.classify(
        "svc", SpanKind.INTERNAL, "job", {"tenant": "acme-eu", "dry_run": False}
    ) == ["X1"]
    assert classifier.classify("svc", SpanKind.INTERNAL, "job", {"tenant": "acme-eu"}) == []
