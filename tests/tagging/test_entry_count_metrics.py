"""The distro counts chain entries in the service, sampled or not (real SDK providers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler
from opentelemetry.trace import SpanKind, Status, StatusCode

from chainmap_otel.tagging.definitions import ChainCatalog
from chainmap_otel.tagging.entry_counts import (
    ENTRIES,
    ENTRY_DURATION,
    METER_NAME,
    EntryCountingSampler,
)
from chainmap_otel.tagging.launcher import configure, count_unsampled_entries, metrics_exported
from chainmap_otel.tagging.processor import ATTR_CHAIN_ENTRY_IDS, ChainSpanProcessor

ORDERS = {"http.method": "POST", "http.route": "/orders", "http.target": "/orders"}


class Fleet:
    """One trading-engine service: its spans in ``exporter``, its metrics in ``reader``."""

    def __init__(self, catalog: ChainCatalog, sampler: Sampler) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider(
            resource=Resource.create({"service.name": "trading-engine"}), sampler=sampler
        )
        processor = ChainSpanProcessor(catalog, meter_provider=self.meters)
        self.tracers.add_span_processor(processor)
        count_unsampled_entries(self.tracers, processor)
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def points(self) -> dict[str, list[object]]:
        data = self.reader.get_metrics_data()
        found: dict[str, list[object]] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                if scope.scope.name != METER_NAME:
                    continue
                for metric in scope.metrics:
                    found[metric.name] = list(metric.data.data_points)
        return found


@pytest.fixture
def fleets(example_catalog: ChainCatalog) -> Iterator[list[Fleet]]:
    made: list[Fleet] = []
    yield made
    for fleet in made:
        fleet.tracers.shutdown()
        fleet.meters.shutdown()


def test_unsampled_entries_are_counted_and_not_exported(
    example_catalog: ChainCatalog, fleets: list[Fleet]
) -> None:
    fleet = Fleet(example_catalog, ParentBased(ALWAYS_OFF))
    fleets.append(fleet)
    tracer = fleet.tracers.get_tracer("t")
    for i in range(25):
        with tracer.start_as_current_span(
            "POST /orders", kind=SpanKind.SERVER, attributes=ORDERS
        ) as span:
            # Recorded, not sampled: it keeps its status; a kind no rule matches stays dropped.
            assert span.is_recording() and not span.get_span_context().trace_flags.sampled
            with tracer.start_as_current_span("risk check") as child:
                assert not child.is_recording()
            if i % 5 == 0:
                span.set_status(Status(StatusCode.ERROR))
    assert fleet.exporter.get_finished_spans() == ()
    points = fleet.points()
    counted = {
        (p.attributes["chain.id"], p.attributes["error"]): p.value  # type: ignore[attr-defined]
        for p in points[ENTRIES]
    }
    assert counted == {("B3", False): 20, ("B3", True): 5}
    (durations,) = points[ENTRY_DURATION]
    assert isinstance(durations, HistogramDataPoint)
    assert durations.count == 25 and durations.attributes == {"chain.id": "B3"}


def test_sampled_entries_are_counted_once(
    example_catalog: ChainCatalog, fleets: list[Fleet]
) -> None:
    fleet = Fleet(example_catalog, ALWAYS_ON)
    fleets.append(fleet)
    tracer = fleet.tracers.get_tracer("t")
    for _ in range(3):
        with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER, attributes=ORDERS):
            pass
    assert len(fleet.exporter.get_finished_spans()) == 3
    (point,) = fleet.points()[ENTRIES]
    assert point.value == 3  # type: ignore[attr-defined]


def test_ids_outside_the_catalog_are_not_counted(
    example_catalog: ChainCatalog, fleets: list[Fleet]
) -> None:
    fleet = Fleet(example_catalog, ALWAYS_ON)
    fleets.append(fleet)
    tracer = fleet.tracers.get_tracer("t")
    with tracer.start_as_current_span(
        "POST /orders", kind=SpanKind.SERVER, attributes=ORDERS
    ) as span:
        span.set_attribute(ATTR_CHAIN_ENTRY_IDS, "B3,not-a-chain,,B3x")
    (point,) = fleet.points()[ENTRIES]
    assert point.attributes == {"chain.id": "B3", "error": False}  # type: ignore[attr-defined]


def test_configure_wraps_the_providers_sampler_once(example_catalog: ChainCatalog) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    configure(
        example_catalog,
        tracer_provider=provider,
        set_propagators=False,
        set_global=False,
        count_entries=True,
    )
    assert isinstance(provider.sampler, EntryCountingSampler)
    assert provider.sampler.inner is ALWAYS_OFF
    wrapped = provider.sampler
    processor = ChainSpanProcessor(example_catalog)
    count_unsampled_entries(provider, processor)
    assert provider.sampler is wrapped
    assert "AlwaysOffSampler" in provider.sampler.get_description()
    provider.shutdown()


def test_without_a_meter_provider_dropped_spans_stay_dropped(
    example_catalog: ChainCatalog,
) -> None:
    """No SDK MeterProvider is the global one (the tests never set one): counts would go
    nowhere, so configure() leaves the sampler as it was and a dropped entry costs nothing."""
    provider = TracerProvider(sampler=ALWAYS_OFF)
    configure(example_catalog, tracer_provider=provider, set_propagators=False, set_global=False)
    assert provider.sampler is ALWAYS_OFF
    provider.shutdown()


@pytest.mark.parametrize(
    ("value", "exported"),
    [(None, False), ("none", False), ("", False), ("otlp", True), ("none, console", True)],
)
def test_the_launcher_counts_unsampled_entries_only_when_metrics_are_exported(
    monkeypatch: pytest.MonkeyPatch, value: str | None, exported: bool
) -> None:
    if value is None:
        monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    else:
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", value)
    assert metrics_exported() is exported


def test_a_downstream_entry_of_an_unsampled_trace_is_counted(
    example_catalog: ChainCatalog, fleets: list[Fleet]
) -> None:
    """The caller did not sample (flags 00) and sent its chain in baggage: the callee's
    ParentBased sampler drops, the entry it begins is still counted, nested under B1."""
    fleet = Fleet(example_catalog, ParentBased(ALWAYS_ON))
    fleets.append(fleet)
    carrier = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        "baggage": "chain.ids=B1",
    }
    incoming = propagate.extract(carrier)
    tracer = fleet.tracers.get_tracer("t")
    with tracer.start_as_current_span(
        "POST /orders", context=incoming, kind=SpanKind.SERVER, attributes=ORDERS
    ) as span:
        assert not span.get_span_context().trace_flags.sampled
    assert fleet.exporter.get_finished_spans() == ()
    (point,) = fleet.points()[ENTRIES]
    assert point.attributes == {"chain.id": "B3", "error": False}  # type: ignore[attr-defined]
    assert point.value == 1  # type: ignore[attr-defined]
