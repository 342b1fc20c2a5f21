"""Per-entry cost of counting chain entries before sampling, against baselines in the same run.

    python benchmarks/entry_count_overhead.py [--spans 20000] [--rounds 21]

One entry span (``GET /api/v1/r042/{id}``, SERVER, the 200-chain catalog of
``processor_overhead.py``) per iteration, on a TracerProvider with the chain processor and a
real MeterProvider (its reader collects but the loop never exports):

(a) a sampled entry (ALWAYS_ON): the processor counting (``chainmap.chain.entries`` +
    ``chainmap.chain.entry.duration``) versus the same processor with ``count_entries=False``;
(b) an unsampled entry (ALWAYS_OFF): the counting sampler, which records the dropped entry so
    it is counted, versus the plain sampler, whose dropped span is a NonRecordingSpan.

Times are process CPU time per span; rounds alternate the two sides and the ratio printed is
the median of the per-round ratios (the machine's drift cancels).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler
from opentelemetry.trace import SpanKind

sys.path.insert(0, str(Path(__file__).resolve().parent))

from processor_overhead import CATALOG, ENTRY_SPAN_ATTRS

from chainmap_otel.tagging.launcher import count_unsampled_entries
from chainmap_otel.tagging.processor import ChainSpanProcessor


def provider(sampler: Sampler, count: bool, wrap: bool) -> tuple[TracerProvider, MeterProvider]:
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracers = TracerProvider(resource=Resource.create({"service.name": "svc-42"}), sampler=sampler)
    processor = ChainSpanProcessor(CATALOG, count_entries=count, meter_provider=meters)
    tracers.add_span_processor(processor)
    if wrap:
        count_unsampled_entries(tracers, processor)
    return tracers, meters


def time_entries(tracers: TracerProvider, n: int) -> float:
    tracer = tracers.get_tracer("bench")
    root = Context()
    start = time.process_time()
    for _ in range(n):
        tracer.start_span(
            "GET /api/v1/r042/{id}", context=root, kind=SpanKind.SERVER, attributes=ENTRY_SPAN_ATTRS
        ).end()
    return (time.process_time() - start) / n


def compare(label: str, sides: tuple[tuple[Sampler, bool, bool], ...], n: int, rounds: int) -> None:
    made = [provider(*side) for side in sides]
    for tracers, _ in made:
        time_entries(tracers, n // 10)  # warm the caches and the instruments
    measured: list[list[float]] = [[], []]
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            measured[i].append(time_entries(made[i][0], n))
    counted, baseline = measured
    ratio = statistics.median(c / b for c, b in zip(counted, baseline, strict=True))
    added = statistics.median(c - b for c, b in zip(counted, baseline, strict=True))
    print(
        f"{label}: {statistics.median(counted) * 1e6:.2f} vs "
        f"{statistics.median(baseline) * 1e6:.2f} us/span, ratio {ratio:.3f}, "
        f"+{added * 1e6:.2f} us per entry"
    )
    for tracers, meters in made:
        tracers.shutdown()
        meters.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    print(f"{args.spans} entry spans per side and round, {args.rounds} rounds, CPU time")
    compare(
        "(a) sampled entry, counted vs not counted",
        ((ALWAYS_ON, True, True), (ALWAYS_ON, False, False)),
        args.spans,
        args.rounds,
    )
    compare(
        "(b) unsampled entry, recorded and counted vs dropped",
        ((ALWAYS_OFF, True, True), (ALWAYS_OFF, True, False)),
        args.spans,
        args.rounds,
    )


if __name__ == "__main__":
    main()
