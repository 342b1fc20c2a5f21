"""Export throughput: ReadableSpan batches -> committed rows in chDB, vs OTLP protobuf encoding.

Both sides get the same batches of real SDK spans (a server span with ~16
attributes and an event, a client span with ~11 attributes and an event):

* chainmap: ``ClickHouseSpanExporter.export(batch)`` into an embedded chDB
  store, schema with its three materialized views applied, then
  ``force_flush()`` (exports are coalesced; the clock stops when every span is
  committed); rows are counted afterwards to check every span was committed.
  ``store/CPU-s`` divides the spans by the process CPU time (all threads,
  chDB's included): the one-core rate.
* baseline: ``encode_spans(batch).SerializeToString()`` - what the SDK's OTLP
  exporter spends preparing the same batch for the wire, before any I/O.
* the store's own ceiling: the same spans turned into Arrow tables untimed and inserted in
  the exporter's largest inserts (``CHAINMAP_EXPORT_BATCH_SPANS``) with the schema's views:
  the spans per CPU-second an exporter with no Python work at all would reach.

Run: ``python benchmarks/export_throughput.py [--spans N] [--batch SIZE ...]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from chainmap_otel import config
from chainmap_otel.ingest.exporter import ClickHouseSpanExporter
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import open_store

ROUTES = ("/orders/{id}", "/quotes", "/positions", "/fills/{id}")


def make_spans(count: int, seed: int = 7) -> list[ReadableSpan]:
    rng = random.Random(seed)
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "orders",
                "service.version": "1.2.3",
                "deployment.environment": "prod",
                "host.name": "node-7",
            }
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("chainmap.bench", "0.1")
    made = 0
    while made < count:
        route = rng.choice(ROUTES)
        with tracer.start_as_current_span(
            f"GET {route}",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.route": route,
                "url.path": route.replace("{id}", str(rng.randrange(10_000))),
                "url.scheme": "http",
                "server.address": "orders",
                "server.port": 8080,
                "network.protocol.version": "1.1",
                "user_agent.original": "python-httpx/0.27.0",
                "client.address": "10.0.0.3",
                "http.response.status_code": 200,
                "chain.id": "B1",
                "chain.ids": "B1",
                "chain.name": "order-flow",
                "chain.category": "trading",
                "chain.entry": True,
                "chain.entry_ids": "B1",
            },
        ) as server:
            with tracer.start_as_current_span(
                "SELECT orders",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system": "postgresql",
                    "db.namespace": "orders",
                    "db.query.text": "SELECT * FROM orders WHERE id = $1",
                    "server.address": "pg",
                    "server.port": 5432,
                    "chain.id": "B1",
                    "chain.ids": "B1",
                    "db.response.returned_rows": rng.randrange(20),
                    "retry": False,
                    "ratio": 0.25,
                    "tags": ["hot", "primary"],
                },
            ) as client:
                client.add_event("query.start", {"attempt": 1})
            server.add_event("validated", {"ok": True, "items": 3})
            if rng.random() < 0.05:
                server.set_status(Status(StatusCode.ERROR, "rejected"))
        made += 2
    provider.shutdown()
    return list(memory.get_finished_spans())[:count]


def batches(spans: Sequence[ReadableSpan], size: int) -> list[Sequence[ReadableSpan]]:
    return [spans[i : i + size] for i in range(0, len(spans), size)]


def time_encoder(parts: list[Sequence[ReadableSpan]]) -> float:
    start = time.perf_counter()
    for part in parts:
        encode_spans(part).SerializeToString()
    return time.perf_counter() - start


def time_exporter(url: str, parts: list[Sequence[ReadableSpan]]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds incl. chDB's threads) until every span is committed."""
    exporter = ClickHouseSpanExporter(url, timeout=60)
    exporter.export(parts[0][:1])
    exporter.force_flush(60_000)  # the worker opens the store and applies the schema untimed
    start, cpu = time.perf_counter(), time.process_time()
    for part in parts:
        if exporter.export(part) is not SpanExportResult.SUCCESS:
            raise SystemExit(f"export failed: {exporter.dropped_spans} spans dropped")
    # export() only queues; the worker commits: the clock stops once every span is stored.
    if not exporter.force_flush(60_000):
        raise SystemExit("force_flush failed")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    exporter.shutdown()
    return elapsed, cpu


def time_store_alone(url: str, spans: Sequence[ReadableSpan]) -> float:
    """Process CPU seconds of inserting ``spans``, as Arrow tables built beforehand, in inserts
    of ``CHAINMAP_EXPORT_BATCH_SPANS`` into the full schema."""
    size = config.env_int(config.CHAINMAP_EXPORT_BATCH_SPANS)
    tables = [spans_to_arrow(part) for part in batches(spans, size)]
    with open_store(url) as store:
        apply_schema(store, progress=lambda line: None)
        cpu = time.process_time()
        for table in tables:
            store.insert_arrow(table)
        return time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=40_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[512, 4096, 20_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the median counts")
    args = parser.parse_args()
    spans = make_spans(args.spans)
    directory = tempfile.mkdtemp(prefix="chainmap-bench-")
    print(f"{len(spans)} spans, chDB at {directory}, median of {args.repeat} runs")
    print(
        f"{'batch':>7} {'OTLP encode/s':>14} {'chainmap store/s':>17} {'ratio':>6} "
        f"{'store/CPU-s':>12}"
    )
    for size in args.batch:
        parts = batches(spans, size)
        encode_times, export_times, export_cpu = [], [], []
        for run in range(args.repeat):
            encode_times.append(time_encoder(parts))
            url = f"chdb://{directory}?database=bench_{size}_{run}"
            wall, cpu = time_exporter(url, parts)
            export_times.append(wall)
            export_cpu.append(cpu)
            with open_store(url) as store:
                stored = store.query("SELECT count() FROM otel_traces").result_rows[0][0]
            if stored != len(spans) + 1:
                raise SystemExit(f"{stored} rows committed, expected {len(spans) + 1}")
        encode_rate = len(spans) / statistics.median(encode_times)
        export_rate = len(spans) / statistics.median(export_times)
        cpu_rate = len(spans) / statistics.median(export_cpu)
        print(
            f"{size:>7} {encode_rate:>14,.0f} {export_rate:>17,.0f} "
            f"{export_rate / encode_rate:>5.2f}x {cpu_rate:>12,.0f}"
        )
    alone = [
        time_store_alone(f"chdb://{directory}?database=bench_alone_{run}", spans)
        for run in range(args.repeat)
    ]
    print(
        f"the store alone (Arrow tables built untimed, inserts of "
        f"{config.env_int(config.CHAINMAP_EXPORT_BATCH_SPANS):,} spans, the schema's views): "
        f"{len(spans) / statistics.median(alone):,.0f} spans/CPU-s, the exporter's ceiling"
    )


if __name__ == "__main__":
    main()
