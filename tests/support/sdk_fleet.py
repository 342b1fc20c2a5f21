"""What the test fleets of real SDK spans share: a service's provider and OTEP 235 sampling.

:func:`recording_provider` is one service of a fleet: a ``TracerProvider`` named after it
(plus resource attributes such as its environment), chainmap's span processor when the fleet
tags, every finished span into a shared in-memory exporter.

:func:`tail_keeps` is the decision of a keep-errors tail sampler in front of a consistent
head decision (OTEP 235): a trace with an Error span is kept with ``ot=th:0`` (it stands
for itself); any other is kept when its randomness, the trace id's low 56 bits, is at or
above the threshold of probability ``p``, and carries ``ot=th:<threshold_for(p)>``
(it stands for ``1/p``).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Sampler

from chainmap_otel.tagging.definitions import ChainCatalog
from chainmap_otel.tagging.processor import ChainSpanProcessor
from chainmap_otel.tagging.sampling import MAX_THRESHOLD, threshold_for

#: What a trace kept because it failed says: kept with probability 1.
KEEP_ALL_STATE = "ot=th:0"


def recording_provider(
    service: str,
    exporter: InMemorySpanExporter,
    *,
    resource: Mapping[str, str] | None = None,
    catalog: ChainCatalog | None = None,
    sampler: Sampler | None = None,
    id_generator: IdGenerator | None = None,
) -> TracerProvider:
    """One service of a fleet (module docstring); tagged when ``catalog`` is given."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, **(resource or {})}),
        sampler=sampler,
        id_generator=id_generator,
    )
    if catalog is not None:
        provider.add_span_processor(ChainSpanProcessor(catalog))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def head_state(probability: float) -> str:
    """The ``tracestate`` a consistent head sampler at ``probability`` writes."""
    return f"ot=th:{threshold_for(probability)}"


def tail_keeps(trace_id: int, failed: bool, probability: float) -> str | None:
    """The ``tracestate`` a kept trace carries, None when the sampler drops it."""
    if failed:
        return KEEP_ALL_STATE
    threshold = round((1 - probability) * MAX_THRESHOLD)
    return head_state(probability) if trace_id % MAX_THRESHOLD >= threshold else None
