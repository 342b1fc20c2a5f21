"""Per-span and per-request cost of ChainSpanProcessor, against baselines in the same run.

    python benchmarks/processor_overhead.py [--spans 50000] [--requests 3000] [--rounds 7]

(i)   a child span inheriting a chain from its parent, and
(ii)  an entry span classified against a generated catalog of 200 chains over 50 services,
each versus a reference processor that sets the same number of constant attributes;
(iii) one FastAPI endpoint under the OTel FastAPI instrumentation with versus without
the chain processor (in-process ASGI calls, so only CPU cost is compared).
Times are process CPU time, so other work on the machine disturbs them less.
Rounds alternate between the two sides and the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, set_span_in_context

from chainmap_otel.tagging.definitions import parse_catalog
from chainmap_otel.tagging.processor import ChainSpanProcessor


class ConstantAttributesProcessor(SpanProcessor):
    """The reference: sets a fixed set of attributes on every span, no lookups."""

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span.set_attributes(self.attributes)


def generated_catalog(chains: int = 200, services: int = 50) -> str:
    lines = ["chains:"]
    for i in range(chains):
        service = f"svc-{i % services:02d}"
        lines += [
            f"  - id: C{i:03d}",
            f"    name: chain {i}",
            "    category: api",
            "    entry:",
            f"      - service: {service}",
            "        kind: server",
            f"        route: /api/v1/r{i:03d}/*",
            "        method: [GET, POST]",
        ]
    return "\n".join(lines) + "\n"


CATALOG = parse_catalog(generated_catalog())
CHILD_ATTRS = {
    "chain.id": "C042",
    "chain.ids": "C042",
    "chain.name": "chain 42",
    "chain.category": "api",
}
ENTRY_ATTRS = {**CHILD_ATTRS, "chain.entry": True, "chain.entry_ids": "C042"}
# svc-42 owns chains 42, 92, 142, 192: the span matches the first; the others are checked.
ENTRY_SPAN_ATTRS = {
    "http.route": "/api/v1/r042/items",
    "http.request.method": "GET",
    "url.path": "/api/v1/r042/items",
}


def provider(processor: SpanProcessor) -> TracerProvider:
    tp = TracerProvider(resource=Resource.create({"service.name": "svc-42"}))
    tp.add_span_processor(processor)
    return tp


def time_children(tp: TracerProvider, n: int) -> float:
    tracer = tp.get_tracer("bench")
    parent = tracer.start_span("parent", kind=SpanKind.SERVER, attributes=ENTRY_SPAN_ATTRS)
    ctx = set_span_in_context(parent)
    start = time.process_time()
    for _ in range(n):
        tracer.start_span("child", context=ctx).end()
    elapsed = time.process_time() - start
    parent.end()
    return elapsed / n


def time_entries(tp: TracerProvider, n: int) -> float:
    tracer = tp.get_tracer("bench")
    root = Context()
    start = time.process_time()
    for _ in range(n):
        tracer.start_span(
            "GET /api/v1/r042/{id}", context=root, kind=SpanKind.SERVER, attributes=ENTRY_SPAN_ATTRS
        ).end()
    return (time.process_time() - start) / n


def compare(
    label: str,
    measure: Callable[[TracerProvider, int], float],
    reference: SpanProcessor,
    n: int,
    rounds: int,
) -> tuple[float, float]:
    chain_tp, ref_tp = provider(ChainSpanProcessor(CATALOG)), provider(reference)
    chain_times, ref_times = [], []
    measure(chain_tp, n // 10)  # warm caches on both sides
    measure(ref_tp, n // 10)
    for _ in range(rounds):
        ref_times.append(measure(ref_tp, n))
        chain_times.append(measure(chain_tp, n))
    chain_us, ref_us = statistics.median(chain_times) * 1e6, statistics.median(ref_times) * 1e6
    print(
        f"{label:<46} chain {chain_us:7.2f} us/span   reference {ref_us:7.2f} us/span   ratio {chain_us / ref_us:5.3f}"
    )
    return chain_us, ref_us


def request_overhead(requests: int, rounds: int) -> tuple[float, float]:
    import httpx
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    def app_with(tp: TracerProvider) -> FastAPI:
        app = FastAPI()

        @app.get("/api/v1/r042/items")
        async def items() -> dict[str, int]:
            return {"items": 3}

        FastAPIInstrumentor.instrument_app(app, tracer_provider=tp)
        return app

    plain = app_with(TracerProvider(resource=Resource.create({"service.name": "svc-42"})))
    chained = app_with(provider(ChainSpanProcessor(CATALOG)))

    async def drive(app: FastAPI, n: int) -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            start = time.process_time()
            for _ in range(n):
                response = await client.get("/api/v1/r042/items")
                assert response.status_code == 200
            return (time.process_time() - start) / n

    async def run() -> tuple[float, float]:
        await drive(plain, requests // 10)
        await drive(chained, requests // 10)
        plain_t, chain_t = [], []
        for _ in range(rounds):
            plain_t.append(await drive(plain, requests))
            chain_t.append(await drive(chained, requests))
        return statistics.median(chain_t) * 1e6, statistics.median(plain_t) * 1e6

    chain_us, plain_us = asyncio.run(run())
    print(
        f"{'(iii) FastAPI request, OTel instrumented':<46} chain {chain_us:7.1f} us/req    without "
        f"{plain_us:7.1f} us/req    overhead {100 * (chain_us / plain_us - 1):+.2f} %"
    )
    return chain_us, plain_us


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(
        f"catalog: {len(CATALOG)} chains over 50 services; {args.spans} spans x {args.rounds} rounds"
    )
    compare(
        "(i)  child span inheriting a chain",
        time_children,
        ConstantAttributesProcessor(CHILD_ATTRS),
        args.spans,
        args.rounds,
    )
    compare(
        "(ii) entry span, 200-chain catalog",
        time_entries,
        ConstantAttributesProcessor(ENTRY_ATTRS),
        args.spans,
        args.rounds,
    )
    request_overhead(args.requests, args.rounds)


if __name__ == "__main__":
    main()
