"""A two-environment fleet of real SDK spans, stored whole and sampled the OTEP 235 way.

Two services, each its own ``TracerProvider`` with chainmap's ``ChainSpanProcessor``: the
``api-gateway`` (B1 entries) says ``deployment.environment.name: prod``, the
``trading-engine`` (B3 entries) the old ``deployment.environment: staging``. Ids, start
times, durations and failures come from one seeded ``random.Random``, so every run builds
the same traces. Failed requests are three times slower than the others, so a sample that
keeps every error is biased unless its numbers are weighted.

Sampling as a Collector's tail sampler with a keep-errors policy does it
(:func:`tail_sample`, each trace kept whole or dropped by
:func:`tests.support.sdk_fleet.tail_keeps`). :func:`head_sampled` uses the SDK's own composable trace-id-ratio sampler instead.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from chainmap_otel.tagging.definitions import ChainCatalog
from tests.support.sdk_fleet import recording_provider, tail_keeps

NS = 1_000_000_000
MS = 1_000_000
#: (service, resource attributes, span name, route, method): one entry operation each.
SERVICES = (
    (
        "api-gateway",
        {"deployment.environment.name": "prod"},
        "GET /api/v1/quotes",
        "/api/v1/quotes",
        "GET",
    ),
    (
        "trading-engine",
        {"deployment.environment": "staging"},
        "POST /orders",
        "/orders",
        "POST",
    ),
)


class SeededIds(IdGenerator):
    """Trace and span ids from a seeded generator: the same traces every run."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


@dataclass(frozen=True)
class Request:
    """One request's truth: which service, when, how long, whether it failed."""

    service: str
    start_ns: int
    duration_ns: int
    failed: bool


def requests(
    counts: dict[str, int], start_ns: int, spread_s: int, error_ratio: float, seed: int
) -> list[Request]:
    """``counts[service]`` requests per service, spread over ``spread_s`` seconds."""
    rng = random.Random(seed)
    out = []
    for service, count in counts.items():
        for _ in range(count):
            failed = rng.random() < error_ratio
            duration_ms = rng.lognormvariate(3.5, 0.6) * (3 if failed else 1)
            out.append(
                Request(
                    service,
                    start_ns + int(rng.random() * spread_s * NS),
                    max(int(duration_ms * MS), 5 * MS),
                    failed,
                )
            )
    return out


def record(
    catalog: ChainCatalog,
    traffic: Sequence[Request],
    seed: int,
    sampler: Sampler | None = None,
) -> list[ReadableSpan]:
    """Each request as an entry span with a client child, through chainmap's processor."""
    rng = random.Random(seed)
    spans: list[ReadableSpan] = []
    tracers = {}
    providers = []
    for service, resource, *_ in SERVICES:
        memory = InMemorySpanExporter()
        provider = recording_provider(
            service,
            memory,
            resource=resource,
            catalog=catalog,
            sampler=sampler,
            id_generator=SeededIds(rng),
        )
        tracers[service] = provider.get_tracer("sampled-fleet", "1")
        providers.append((provider, memory))
    operations = {service: (name, route, method) for service, _, name, route, method in SERVICES}
    for request in traffic:
        name, route, method = operations[request.service]
        tracer = tracers[request.service]
        end = request.start_ns + request.duration_ns
        entry = tracer.start_span(
            name,
            kind=SpanKind.SERVER,
            attributes={"http.route": route, "http.request.method": method},
            start_time=request.start_ns,
        )
        child = tracer.start_span(
            "SELECT",
            kind=SpanKind.CLIENT,
            attributes={"db.system": "postgresql"},
            start_time=request.start_ns + MS,
            context=trace.set_span_in_context(entry),
        )
        child.end(end_time=end - MS)
        if request.failed:
            entry.set_status(Status(StatusCode.ERROR, "failed"))
        entry.end(end_time=end)
    for provider, memory in providers:
        provider.shutdown()
        spans.extend(memory.get_finished_spans())
    return spans


def _with_trace_state(span: ReadableSpan, state: str) -> ReadableSpan:
    """``span`` as a sampler that wrote ``state`` into its tracestate would have exported it."""
    context = span.context
    assert context is not None
    return ReadableSpan(
        name=span.name,
        context=SpanContext(
            context.trace_id,
            context.span_id,
            context.is_remote,
            context.trace_flags,
            TraceState.from_header([state]),
        ),
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def tail_sample(spans: Sequence[ReadableSpan], probability: float) -> list[ReadableSpan]:
    """Keep-errors tail sampling: error traces whole with ``th:0``, the others by trace-id
    randomness at ``probability`` with its threshold."""
    traces: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        assert span.context is not None
        traces[span.context.trace_id].append(span)
    kept = []
    for trace_id, members in traces.items():
        failed = any(s.status.status_code is StatusCode.ERROR for s in members)
        state = tail_keeps(trace_id, failed, probability)
        if state is not None:
            kept += [_with_trace_state(s, state) for s in members]
    return kept


class _KeepSpanAttributes(Sampler):
    """The SDK gives a span only the attributes its sampler's result holds; the experimental
    composite sampler (SDK 1.45) returns only its own, which would drop ``http.route`` before
    chainmap's processor reads it. This merges the span's own back in."""

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        merged = {**(attributes or {}), **(result.attributes or {})}
        return SamplingResult(result.decision, merged, result.trace_state)

    def get_description(self) -> str:
        return self._delegate.get_description()


def head_sampler(probability: float) -> Sampler:
    """The SDK's composable trace-id-ratio sampler (OTEP 235 thresholds in tracestate)."""
    from opentelemetry.sdk.trace._sampling_experimental import (
        composable_traceid_ratio_based,
        composite_sampler,
    )

    return _KeepSpanAttributes(composite_sampler(composable_traceid_ratio_based(probability)))
