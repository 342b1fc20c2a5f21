"""Per-span and per-request cost of ChainSpanProcessor, against baselines in the same run.

    python benchmarks/processor_overhead.py [--spans 20000] [--requests 1000] [--rounds 21]

(i)   a child span inheriting a chain from its parent, and
(ii)  an entry span classified against a generated catalog of 200 chains over 50 services,
each versus two references: a processor that sets the same constant attributes, and the
contrib ``BaggageSpanProcessor`` (opentelemetry-processor-baggage) copying the same
attributes from the baggage of the same span's context (how a fleet without chainmap would
carry a flow's name);
(iii) one FastAPI endpoint under the OTel FastAPI instrumentation with versus without
the chain processor (in-process ASGI calls: the instrumented app's CPU cost alone), and
(iv) the same endpoint served by uvicorn under ``opentelemetry-instrument`` as deployed,
chainmap's distro and configurator versus the stock ones (server CPU time per request).
Times are process CPU time, so other work on the machine disturbs them less.
Rounds alternate between the two sides; ratios are medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import baggage
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


def with_baggage(attributes: dict[str, Any], context: Context | None = None) -> Context:
    """``context`` carrying ``attributes`` as baggage entries (what BaggageSpanProcessor copies)."""
    for key, value in attributes.items():
        context = baggage.set_baggage(key, str(value).lower(), context)
    return context if context is not None else Context()


BAGGAGE_ROOT = with_baggage(ENTRY_ATTRS)


def time_children(tp: TracerProvider, n: int) -> float:
    tracer = tp.get_tracer("bench")
    parent = tracer.start_span("parent", kind=SpanKind.SERVER, attributes=ENTRY_SPAN_ATTRS)
    # Both sides see the same context: the chain processor reads the parent, the baggage
    # processor the four entries.
    ctx = with_baggage(CHILD_ATTRS, set_span_in_context(parent))
    start = time.process_time()
    for _ in range(n):
        tracer.start_span("child", context=ctx).end()
    elapsed = time.process_time() - start
    parent.end()
    return elapsed / n


def time_entries(tp: TracerProvider, n: int, root: Context | None = None) -> float:
    tracer = tp.get_tracer("bench")
    root = root if root is not None else Context()
    start = time.process_time()
    for _ in range(n):
        tracer.start_span(
            "GET /api/v1/r042/{id}", context=root, kind=SpanKind.SERVER, attributes=ENTRY_SPAN_ATTRS
        ).end()
    return (time.process_time() - start) / n


def paired(chain: list[float], reference: list[float]) -> tuple[float, float, float]:
    """Medians in microseconds and the median of the per-round ratios.

    Each round measures both sides back to back, so a ratio per round cancels the
    machine's slow drifts (other load, frequency changes) that medians alone keep.
    """
    ratios = [c / r for c, r in zip(chain, reference, strict=True)]
    return (
        statistics.median(chain) * 1e6,
        statistics.median(reference) * 1e6,
        statistics.median(ratios),
    )


def compare(
    label: str,
    measure: Callable[[TracerProvider, int], float],
    reference: SpanProcessor,
    n: int,
    rounds: int,
    reference_measure: Callable[[TracerProvider, int], float] | None = None,
) -> tuple[float, float]:
    """``measure`` on both sides (``reference_measure`` on the reference's, when given)."""
    chain_tp, ref_tp = provider(ChainSpanProcessor(CATALOG)), provider(reference)
    ref_measure = reference_measure or measure
    chain_times, ref_times = [], []
    measure(chain_tp, n // 10)  # warm caches on both sides
    ref_measure(ref_tp, n // 10)
    for _ in range(rounds):
        ref_times.append(ref_measure(ref_tp, n))
        chain_times.append(measure(chain_tp, n))
    chain_us, ref_us, ratio = paired(chain_times, ref_times)
    print(
        f"{label:<46} chain {chain_us:7.2f} us/span   reference {ref_us:7.2f} us/span   ratio {ratio:5.3f}"
    )
    return chain_us, ref_us


class NoProcessor(SpanProcessor):
    """No work at all: the span's own cost, against which the chain processor's is added."""


def own_cost(n: int, rounds: int) -> tuple[float, float]:
    """What the chain processor adds to a child span and to an entry span, in microseconds
    (paired medians against a provider whose one processor does nothing)."""
    added = []
    for measure in (time_children, time_entries):
        chain_tp, bare_tp = provider(ChainSpanProcessor(CATALOG)), provider(NoProcessor())
        measure(chain_tp, n // 10)
        measure(bare_tp, n // 10)
        deltas = []
        for _ in range(rounds):
            bare = measure(bare_tp, n)
            deltas.append(measure(chain_tp, n) - bare)
        added.append(statistics.median(deltas) * 1e6)
    return added[0], added[1]


class TimedChainProcessor(ChainSpanProcessor):
    """The chain processor timing each of its own ``on_start`` calls (wall clock, ns)."""

    def __init__(self, catalog: Any) -> None:
        super().__init__(catalog)
        self.timings: dict[str, list[int]] = {"entry": [], "child": []}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        started = time.perf_counter_ns()
        super().on_start(span, parent_context)
        elapsed = time.perf_counter_ns() - started
        self.timings["entry" if span.parent is None else "child"].append(elapsed)


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
    timed = TimedChainProcessor(CATALOG)
    inside = app_with(provider(timed))

    async def drive(app: FastAPI, n: int) -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            start = time.process_time()
            for _ in range(n):
                response = await client.get("/api/v1/r042/items")
                assert response.status_code == 200
            return (time.process_time() - start) / n

    async def run() -> tuple[float, float, float]:
        await drive(plain, requests // 10)
        await drive(chained, requests // 10)
        plain_t, chain_t = [], []
        for _ in range(rounds):
            plain_t.append(await drive(plain, requests))
            chain_t.append(await drive(chained, requests))
        await drive(inside, requests)
        return paired(chain_t, plain_t)

    chain_us, plain_us, ratio = asyncio.run(run())
    print(
        f"{'(iii) FastAPI request, OTel instrumented':<46} chain {chain_us:7.1f} us/req    without "
        f"{plain_us:7.1f} us/req    overhead {100 * (ratio - 1):+.2f} %"
    )
    # The same overhead from its parts, steadier under load than a difference of two
    # request times: one entry span (the server span) and two children (ASGI send spans).
    child_us, entry_us = own_cost(requests * 5, rounds)
    parts = entry_us + 2 * child_us
    print(
        f"{'(iii) the same, from the processor own cost':<46} entry {entry_us:5.2f} + 2 x child "
        f"{child_us:5.2f} = {parts:5.2f} us/req of {plain_us:7.1f}: {100 * parts / plain_us:+.2f} %"
    )
    # And timed inside the request (median on_start), where the request's other work shares
    # the caches: what a service really pays.
    entry_in, child_in = (statistics.median(timed.timings[k]) / 1000 for k in ("entry", "child"))
    spans = len(timed.timings["child"]) / max(1, len(timed.timings["entry"]))
    inside_us = entry_in + spans * child_in
    print(
        f"{'(iii) the same, timed inside the request':<46} entry {entry_in:5.2f} + {spans:.0f} x "
        f"child {child_in:5.2f} = {inside_us:5.2f} us/req of {plain_us:7.1f}: "
        f"{100 * inside_us / plain_us:+.2f} %"
    )
    return chain_us, plain_us


SERVICE_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/api/v1/r042/items")
async def items() -> dict[str, int]:
    return {"items": 3}
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served_overhead(requests: int, rounds: int) -> tuple[float, float]:
    """The same endpoint served by uvicorn under ``opentelemetry-instrument``, as deployed:
    chainmap's distro and configurator with the 200-chain catalog versus the stock ones.
    Measures the server process's CPU time per request (keep-alive client on loopback)."""
    import httpx

    bin_dir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="chainmap-bench-"))
    (work / "bench_app.py").write_text(SERVICE_APP)
    (work / "chains.yaml").write_text(generated_catalog())
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CHAINMAP_"))}
    base_env.update(
        OTEL_SERVICE_NAME="svc-42",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    variants = {
        "chain": {
            "OTEL_PYTHON_DISTRO": "chainmap",
            "OTEL_PYTHON_CONFIGURATOR": "chainmap",
            "CHAINMAP_CHAINS_FILE": str(work / "chains.yaml"),
        },
        "without": {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"},
    }
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for name, extra in variants.items():
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            command = [
                str(bin_dir / "opentelemetry-instrument"),
                str(bin_dir / "uvicorn"),
                "bench_app:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ]
            process = subprocess.Popen(command, cwd=work, env={**base_env, **extra})
            servers[name] = (process, f"http://127.0.0.1:{port}")
        clients = {name: httpx.Client(base_url=url) for name, (_, url) in servers.items()}
        for name, client in clients.items():
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/api/v1/r042/items").raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the {name} server did not start") from None
                    time.sleep(0.2)

        def drive(name: str, n: int) -> float:
            process, _ = servers[name]
            client = clients[name]
            before = _cpu_seconds(process.pid)
            for _ in range(n):
                client.get("/api/v1/r042/items")
            return (_cpu_seconds(process.pid) - before) / n

        drive("chain", requests // 5)
        drive("without", requests // 5)
        chain_t, plain_t = [], []
        for _ in range(rounds):
            plain_t.append(drive("without", requests))
            chain_t.append(drive("chain", requests))
        for client in clients.values():
            client.close()
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    chain_us, plain_us, ratio = paired(chain_t, plain_t)
    print(
        f"{'(iv) same endpoint served by uvicorn':<46} chain {chain_us:7.1f} us/req    without "
        f"{plain_us:7.1f} us/req    overhead {100 * (ratio - 1):+.2f} %"
    )
    return chain_us, plain_us


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=20_000, help="spans per side and round")
    parser.add_argument("--requests", type=int, default=1_000, help="requests per side and round")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument(
        "--spans-only", action="store_true", help="only (i) and (ii), not the request measures"
    )
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
    from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor

    compare(
        "(i)  child span, vs BaggageSpanProcessor",
        time_children,
        BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS),
        args.spans,
        args.rounds,
    )
    # The chain processor classifies a span without context; the baggage processor finds
    # the same six attributes in the baggage it is handed.
    compare(
        "(ii) entry span, vs BaggageSpanProcessor",
        time_entries,
        BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS),
        args.spans,
        args.rounds,
        reference_measure=lambda tp, n: time_entries(tp, n, BAGGAGE_ROOT),
    )
    if args.spans_only:
        return
    request_overhead(args.requests, args.rounds)
    served_overhead(args.requests, args.rounds)


if __name__ == "__main__":
    main()
