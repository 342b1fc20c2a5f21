from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chainmap_otel.tagging.active import set_active_catalog
from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog
from chainmap_otel.tagging.processor import ChainSpanProcessor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def example_catalog() -> ChainCatalog:
    return load_catalog(ROOT / "chains.example.yaml")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider_for(
    example_catalog: ChainCatalog, exporter: InMemorySpanExporter
) -> Iterator[Callable[[str], TracerProvider]]:
    """TracerProviders sharing one exporter, one per service name, like a fleet in one test."""
    providers: list[TracerProvider] = []
    set_active_catalog(example_catalog)  # what the propagator of each "process" accepts

    def make(service: str, catalog: ChainCatalog | None = None) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(
            ChainSpanProcessor(catalog if catalog is not None else example_catalog)
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.shutdown()
    set_active_catalog(ChainCatalog())
