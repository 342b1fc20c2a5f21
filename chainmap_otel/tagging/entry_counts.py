"""Chain entries counted in the service itself, before any sampler decides.

Stored traces undercount a chain once traces are sampled. The service sees every request,
so it counts them: for every span that begins a chain (``chain.entry_ids``), the processor
records, with the OpenTelemetry metrics API (meter ``chainmap_otel``):

* ``chainmap.chain.entries`` (an observable counter, a monotonic sum, ``{entry}``):
  attributes ``chain.id`` and ``error`` (``true``/``false``: the span's status is Error);
* ``chainmap.chain.entry.duration`` (histogram, ``ms``): attribute ``chain.id``.

They go wherever the service's MeterProvider exports (``opentelemetry-instrument`` sets it up
from ``OTEL_METRICS_EXPORTER=otlp``; ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` points it at
``chainmap serve``'s ``/v1/metrics`` or a Collector).

**Why a sampler wrapper.** The SDK gives a span its processors only when the sampler records
it: a dropped span is a ``NonRecordingSpan`` that no ``on_start`` or ``on_end`` ever sees, so
counting in the processor alone would count sampled entries only. :class:`EntryCountingSampler`
wraps the service's sampler and turns its DROP into RECORD_ONLY for the spans that could begin
a chain (the span kinds this service's rules match). Such a span is tagged and ended like any
other, so its entry is counted in ``on_end`` with its real duration and status; it stays
unsampled (trace flags ``00``): no exporter sends it and downstream services inherit the
decision as before. Spans of other kinds are dropped as the sampler said, so the extra cost
is one recorded span per unsampled request that can enter a chain (see benchmarks/RESULTS.md),
paid only where the counts are exported (:func:`chainmap_otel.tagging.launcher.metrics_exported`).
A chain pushed from code (``track.chain``) on a span of a kind no rule matches is counted
only when that span is sampled.

Nothing here raises into the application: the span path catches and logs once; attribute
sets are bounded by the chains file (an id not in the catalog is skipped).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

logger = logging.getLogger(__name__)

__all__ = [
    "ATTR_ERROR",
    "DURATION_BUCKETS_MS",
    "ENTRIES",
    "ENTRY_DURATION",
    "METER_NAME",
    "EntryCountingSampler",
    "EntryMetrics",
]

METER_NAME = "chainmap_otel"
ENTRIES = "chainmap.chain.entries"
ENTRY_DURATION = "chainmap.chain.entry.duration"
ATTR_CHAIN_ID = "chain.id"
ATTR_ERROR = "error"
#: Bucket bounds (ms) the histogram asks for (an SDK View may override them; serve reads
#: whatever bounds a point carries).
DURATION_BUCKETS_MS: Sequence[float] = (
    1,
    2.5,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
)


class EntryMetrics:
    """The two instruments. Entries are totalled here and reported by an observable counter
    at each collection (an exact count under a lock costs a fraction of a synchronous
    ``Counter.add``, which validates its attributes on every call); durations are recorded
    into the histogram as they end."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, bool], int] = {}
        self._counted: dict[tuple[str, bool], dict[str, Any]] = {}
        self._timed: dict[str, dict[str, Any]] = {}
        meter.create_observable_counter(
            ENTRIES,
            callbacks=[self._observe],
            unit="{entry}",
            description="Chain entries begun in this service, sampled or not",
        )
        self._duration = meter.create_histogram(
            ENTRY_DURATION,
            unit="ms",
            description="Duration of the spans that begin a chain in this service",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_MS,
        )

    def record(self, entry_ids: str, known: frozenset[str], span: ReadableSpan) -> None:
        """Count the span's entries (comma-separated ``entry_ids``; unknown ids skipped)."""
        failed = span.status.status_code is StatusCode.ERROR
        start, end = span.start_time, span.end_time
        duration_ms = (end - start) / 1e6 if start is not None and end is not None else None
        for chain_id in entry_ids.split(","):
            if chain_id not in known:
                continue
            key = (chain_id, failed)
            with self._lock:
                self._totals[key] = self._totals.get(key, 0) + 1
            if duration_ms is not None and duration_ms >= 0:
                timed = self._timed.get(chain_id)
                if timed is None:
                    timed = self._timed[chain_id] = {ATTR_CHAIN_ID: chain_id}
                self._duration.record(duration_ms, timed)

    def _observe(self, options: CallbackOptions) -> list[Observation]:
        with self._lock:
            totals = list(self._totals.items())
        observed = []
        for key, total in totals:
            attributes = self._counted.get(key)
            if attributes is None:
                attributes = self._counted[key] = {ATTR_CHAIN_ID: key[0], ATTR_ERROR: key[1]}
            observed.append(Observation(total, attributes))
        return observed


class EntryRules(Protocol):
    """What the sampler asks the processor (``ChainSpanProcessor.could_enter``)."""

    def could_enter(self, resource: Resource, kind: SpanKind) -> bool: ...


class ResourceHolder(Protocol):
    """The TracerProvider whose spans are sampled (its resource names the service)."""

    @property
    def resource(self) -> Resource: ...


class EntryCountingSampler(Sampler):
    """``inner``'s decisions, except that a span ``inner`` drops is recorded (not sampled)
    when ``processor``'s rules could make it a chain entry in ``provider``'s service."""

    def __init__(self, inner: Sampler, processor: EntryRules, provider: ResourceHolder) -> None:
        self.inner = inner
        self._processor = processor
        self._provider = provider
        self._failures = 0

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
        result = self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is not Decision.DROP:
            return result
        try:
            if self._processor.could_enter(self._provider.resource, kind or SpanKind.INTERNAL):
                # A dropping sampler leaves the span's attributes out of its result; a
                # recorded span takes them from the result, so they are passed on here.
                return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        except Exception:
            self._failures += 1
            if self._failures == 1:
                logger.exception("chainmap: deciding whether to count a dropped span failed")
        return result

    def get_description(self) -> str:
        return f"EntryCounting{{{self.inner.get_description()}}}"
