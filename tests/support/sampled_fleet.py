"""A fleet of real SDK spans for sampling: two chains, known truth, deterministic ids.

A TracerProvider per service with chainmap's span processor tags A1 (data-bridge
``POST /market-data/ticks`` -> database-service) and B3 (trading-engine ``POST /orders`` ->
exchange), ``traces`` instances each over the ``spread_s`` before ``end_ns``, log-normal
latencies and 1 % (A1) / 3 % (B3) failed entries. ``random`` is seeded, so the SDK's trace
ids, and every consistent-probability decision made on them, are the same on every run.

:func:`keep_sampled` is a sampling pipeline over the stored rows: a consistent-probability
head decision plus a keep-errors tail stage (:func:`tests.support.sdk_fleet.tail_keeps`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog
from tests.support.sdk_fleet import recording_provider, tail_keeps

CHAINS_FILE = Path(__file__).resolve().parents[2] / "chains.example.yaml"
#: chain -> (entry service, route, downstream service, median ms, failed share)
FLEET = {
    "A1": ("data-bridge", "/market-data/ticks", "database-service", 40.0, 0.01),
    "B3": ("trading-engine", "/orders", "exchange", 120.0, 0.03),
}


def catalog() -> ChainCatalog:
    return load_catalog(CHAINS_FILE)


def generate(
    traces: int,
    seed: int,
    end_ns: int | None = None,
    spread_s: float = 1800.0,
    environments: Sequence[dict[str, str]] = ({},),
) -> list[ReadableSpan]:
    """Every span of the fleet (module docstring); each service once per resource of
    ``environments`` (extra resource attributes), traffic split evenly between them."""
    random.seed(seed)  # the SDK's trace and span ids come from `random`
    rng = random.Random(seed)
    chains = catalog()
    exporter = InMemorySpanExporter()
    providers: dict[tuple[str, int], TracerProvider] = {}

    def tracer(service: str, env: int) -> Any:
        provider = providers.get((service, env))
        if provider is None:
            provider = recording_provider(
                service, exporter, resource=environments[env], catalog=chains
            )
            providers[(service, env)] = provider
        return provider.get_tracer("sampled-fleet")

    end = end_ns if end_ns is not None else time.time_ns() - 60 * 10**9
    for service, route, downstream, median_ms, failed in FLEET.values():
        for n in range(traces):
            env = n % len(environments)
            start = end - rng.randrange(int(spread_s * 1e9))
            duration = int(median_ms * math.exp(rng.gauss(0, 0.5)) * 1e6)
            span = tracer(service, env).start_span(
                f"POST {route}",
                kind=SpanKind.SERVER,
                attributes={"http.route": route, "http.method": "POST"},
                start_time=start,
            )
            child = tracer(downstream, env).start_span(
                "handle",
                context=set_span_in_context(span),
                kind=SpanKind.SERVER,
                start_time=start + duration // 10,
            )
            child.end(end_time=start + duration // 10 + duration // 2)
            if rng.random() < failed:
                span.set_status(Status(StatusCode.ERROR, "failed"))
            span.end(end_time=start + duration)
    spans = list(exporter.get_finished_spans())
    for provider in providers.values():
        provider.shutdown()
    return spans


def keep_sampled(table: pa.Table, probability: float) -> pa.Table:
    """The rows a head decision at ``probability`` plus a keep-errors stage keep, with the
    ``TraceState`` each carries (:func:`tests.support.sdk_fleet.tail_keeps`)."""
    trace_ids = table.column("TraceId").to_pylist()
    failed = pc.is_in(table.column("StatusCode"), pa.array(["Error", "STATUS_CODE_ERROR"]))
    failed_traces = {t for t, f in zip(trace_ids, failed.to_pylist(), strict=True) if f}
    states = [tail_keeps(int(t, 16), t in failed_traces, probability) for t in trace_ids]
    column = table.schema.get_field_index("TraceState")
    table = table.set_column(column, "TraceState", pa.array([s or "" for s in states], pa.string()))
    return table.filter(pa.array([s is not None for s in states]))
