"""Chain entries counted before sampling: the distro's metrics, through a real serve, read back.

A service (the real SDK: a TracerProvider with a 10 % ParentBased ratio sampler and the
chainmap processor, a MeterProvider exporting OTLP/HTTP) answers a known number of requests;
serve stores its traces and its counts; :func:`entry_counts` must give the exact numbers and
the traces' coverage.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from chainmap_otel.analysis.entry_counts import EntryCount, entry_counts
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from chainmap_otel.tagging.launcher import count_unsampled_entries
from chainmap_otel.tagging.processor import ChainSpanProcessor
from tests.server.conftest import ServeFactory, Serving
from tests.support.serve_process import ServeProcess, query

CATALOG = parse_catalog(
    """\
chains:
  - {id: B1, name: api, category: api,
     entry: [{service: api-gateway, kind: server, route: "/api/v1/*"}]}
  - {id: B3, name: trade, category: trading,
     entry: [{service: api-gateway, kind: server, route: "/api/v1/trading*"}]}
"""
)
DELTA = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
CUMULATIVE = {
    Counter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.CUMULATIVE,
}


class SeededIds(IdGenerator):
    """Random ids from a seed, so the ratio sampler keeps the same traces in every run."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1


@dataclass
class Service:
    """One api-gateway process: its tracer and meter providers, exporting to serve."""

    tracers: TracerProvider
    meters: MeterProvider

    def requests(self, count: int, error_every: int, routes: tuple[str, ...]) -> None:
        tracer = self.tracers.get_tracer("test")
        for i in range(count):
            route = routes[i % len(routes)]
            with tracer.start_as_current_span(
                f"GET {route}",
                kind=SpanKind.SERVER,
                attributes={"http.route": route, "http.method": "GET"},
            ) as span:
                with tracer.start_as_current_span("db query", kind=SpanKind.CLIENT):
                    pass
                if i % error_every == 0:
                    span.set_status(Status(StatusCode.ERROR))

    def flush(self) -> None:
        assert self.tracers.force_flush(30_000)
        assert self.meters.force_flush(30_000)

    def shutdown(self) -> None:
        self.tracers.shutdown()
        self.meters.shutdown()


def service(
    base_url: str,
    temporality: dict[type, AggregationTemporality],
    seed: int = 7,
    catalog: ChainCatalog = CATALOG,
    exporter: MetricExporter | None = None,
) -> Service:
    resource = Resource.create(
        {"service.name": "api-gateway", "deployment.environment.name": "prod"}
    )
    metric_exporter = exporter or OTLPMetricExporter(
        endpoint=f"{base_url}/v1/metrics", preferred_temporality=temporality
    )
    # Exports only on force_flush: the test decides when a point is sent.
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meters = MeterProvider(metric_readers=[reader], resource=resource)
    meters.get_meter("app").create_counter("app.requests").add(1)  # not kept by serve
    tracers = TracerProvider(
        resource=resource,
        sampler=ParentBased(TraceIdRatioBased(0.1)),
        id_generator=SeededIds(seed),
    )
    processor = ChainSpanProcessor(catalog, meter_provider=meters)
    tracers.add_span_processor(processor)
    count_unsampled_entries(tracers, processor)
    tracers.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base_url}/v1/traces"))
    )
    return Service(tracers, meters)


@pytest.fixture
def services() -> Iterator[list[Service]]:
    made: list[Service] = []
    yield made
    for s in made:
        s.shutdown()


def counts_of(serving: Serving) -> dict[str, EntryCount]:
    serving.stored()  # every accepted span written (the stored entries are counted from them)
    return entry_counts(serving.store, TimeWindow.last(3600))


def test_counted_entries_are_exact_and_coverage_is_the_sampling_rate(
    serve: ServeFactory, services: list[Service]
) -> None:
    serving = serve()
    gateway = service(serving.url, DELTA)
    services.append(gateway)
    for _ in range(3):
        gateway.requests(400, error_every=8, routes=("/api/v1/orders", "/api/v1/trading/x"))
        gateway.flush()
    counts = counts_of(serving)
    assert set(counts) == {"B1", "B3"}
    # Every request enters B1; every second one also B3 (one span pushes both).
    assert counts["B1"].entries == 1200
    assert counts["B3"].entries == 600
    assert counts["B1"].errors == 150  # i % 8 == 0
    assert counts["B3"].errors == 0  # those i are even: the orders route, B1 only
    stored = serving.stored("SpanAttributes['chain.entry_ids'] LIKE '%B1%'")
    assert counts["B1"].stored == stored
    assert 0.07 < counts["B1"].coverage < 0.13  # type: ignore[operator]
    assert counts["B1"].p50_ms is not None and counts["B1"].p95_ms is not None
    assert 0 <= counts["B1"].p50_ms <= counts["B1"].p95_ms
    assert counts["B1"].to_json()["coverage"] == counts["B1"].coverage
    # Per environment: the service's deployment.environment.name.
    prod = entry_counts(serving.store, TimeWindow.last(3600, environment="prod"))
    assert prod["B1"].entries == 1200 and prod["B1"].stored == stored
    assert entry_counts(serving.store, TimeWindow.last(3600, environment="staging")) == {}


def test_cumulative_and_delta_exports_store_the_same_counts(
    serve: ServeFactory, services: list[Service]
) -> None:
    found = []
    for temporality in (DELTA, CUMULATIVE):
        serving = serve()
        gateway = service(serving.url, temporality)
        services.append(gateway)
        for batch in (100, 250, 30):
            gateway.requests(batch, error_every=5, routes=("/api/v1/trading/y",))
            gateway.flush()
        gateway.flush()  # a cumulative export with nothing new adds nothing
        counts = counts_of(serving)
        timed = serving.store.query(
            "SELECT ChainId, sum(DurationCount), sum(arraySum(mapValues(DurationBuckets))) "
            "FROM chainmap_entry_counts GROUP BY ChainId ORDER BY ChainId"
        ).result_rows
        # The seeded ids make both runs sample the same traces; durations are measured.
        found.append(({c: (n.entries, n.errors, n.stored) for c, n in counts.items()}, timed))
    delta, cumulative = found
    assert delta == cumulative
    assert delta[0]["B1"] == (380, 20 + 50 + 6, delta[0]["B1"][2])
    assert delta[1] == [("B1", 380, 380), ("B3", 380, 380)]


def test_unknown_instruments_are_dropped_and_counted(
    serve: ServeFactory, services: list[Service]
) -> None:
    serving = serve()
    gateway = service(serving.url, DELTA)
    services.append(gateway)
    gateway.requests(10, error_every=100, routes=("/api/v1/orders",))
    gateway.flush()
    assert counts_of(serving)["B1"].entries == 10
    text = httpx.get(f"{serving.url}/metrics", timeout=30).text
    dropped = re.search(r"^chainmap_metric_points_dropped_total (\S+)$", text, re.MULTILINE)
    assert dropped is not None and float(dropped.group(1)) >= 1
    stored = re.search(r"^chainmap_entry_count_points_stored_total (\S+)$", text, re.MULTILINE)
    assert stored is not None and float(stored.group(1)) >= 2
    names = serving.store.query("SELECT DISTINCT ChainId FROM chainmap_entry_counts").result_rows
    assert names == [("B1",)]


def test_grpc_metrics_service_stores_the_counts(
    serve: ServeFactory, services: list[Service]
) -> None:
    serving = serve()
    exporter = GrpcMetricExporter(
        endpoint=serving.grpc_address, insecure=True, preferred_temporality=CUMULATIVE
    )
    gateway = service(serving.url, CUMULATIVE, exporter=exporter)
    services.append(gateway)
    for batch in (40, 60):
        gateway.requests(batch, error_every=10, routes=("/api/v1/orders",))
        gateway.flush()
    counts = counts_of(serving)
    assert (counts["B1"].entries, counts["B1"].errors) == (100, 4 + 6)
    with grpc.insecure_channel(serving.grpc_address) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        )
        with pytest.raises(grpc.RpcError) as refused:
            export(b"\x0a\xff\xff\xff", timeout=10)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "does not parse" in (refused.value.details() or "")


def _post(serving: Serving, body: bytes, media: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{serving.url}/v1/metrics",
        content=body,
        headers={"Content-Type": media, **headers},
        timeout=30,
    )


def test_malformed_bodies_get_400_and_bad_points_partial_success(serve: ServeFactory) -> None:
    serving = serve()
    bad = _post(serving, b"\x0a\xff\xff\xff", "application/x-protobuf")
    assert bad.status_code == 400
    bad_json = _post(serving, b"{not json", "application/json")
    assert bad_json.status_code == 400 and "does not parse" in bad_json.json()["message"]
    # A kept instrument with the wrong data type and a point without chain.id: each rejected
    # on its own, the good point stored.
    now = 1_700_000_000_000_000_000
    document = {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "chainmap.chain.entries",
                                "gauge": {"dataPoints": [{"asInt": "3", "timeUnixNano": str(now)}]},
                            },
                            {
                                "name": "chainmap.chain.entries",
                                "sum": {
                                    "aggregationTemporality": 1,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {"asInt": "2", "timeUnixNano": str(now)},
                                        {
                                            "asInt": "5",
                                            "timeUnixNano": str(now),
                                            "attributes": [
                                                {"key": "chain.id", "value": {"stringValue": "B1"}},
                                                {"key": "error", "value": {"boolValue": False}},
                                            ],
                                        },
                                    ],
                                },
                            },
                        ]
                    }
                ],
            }
        ]
    }
    body = gzip.compress(json.dumps(document).encode())
    answer = _post(serving, body, "application/json", **{"Content-Encoding": "gzip"})
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "2"
    assert "must be a sum, not gauge" in partial["errorMessage"]
    assert "no valid chain.id" in partial["errorMessage"]
    rows = serving.store.query("SELECT ChainId, Entries FROM chainmap_entry_counts").result_rows
    assert rows == [("B1", 5)]
    too_big = _post(serving, b"\x00" * (2 * 1024 * 1024), "application/x-protobuf")
    assert too_big.status_code == 413


@pytest.mark.slow
def test_a_serve_restart_between_cumulative_exports_does_not_count_twice(
    tmp_path: Path, services: list[Service]
) -> None:
    """Serve keeps no state across the restart but the table: the second cumulative point
    (first batch + second batch) must add only the second batch."""
    store_url = f"chdb://{tmp_path / 'store'}"
    first = ServeProcess(store_url, tmp_path / "first.log")
    base = f"http://127.0.0.1:{first.http_port}"
    gateway = service(base, CUMULATIVE)
    services.append(gateway)
    try:
        first.wait_ready()
        gateway.requests(70, error_every=7, routes=("/api/v1/orders",))
        gateway.flush()
    finally:
        assert first.terminate() == 0, first.log()
    second = ServeProcess(store_url, tmp_path / "second.log", http_port=first.http_port)
    try:
        second.wait_ready()
        gateway.requests(30, error_every=7, routes=("/api/v1/orders",))
        gateway.flush()
    finally:
        assert second.terminate() == 0, second.log()
    rows = query(
        store_url,
        "SELECT ChainId, sum(Entries), sum(Errors), sum(DurationCount), count() "
        "FROM chainmap_entry_counts GROUP BY ChainId",
    )
    # Two cumulative points per series (entries, errors, durations): six rows.
    assert rows == [["B1", 100, 10 + 5, 100, 6]]


def test_health_reads_the_counted_entries_where_a_service_counted(
    serve: ServeFactory, services: list[Service]
) -> None:
    """The window's traces, errors and rate are the services' exact counts, not the ~10 %
    of traces stored; ``counted`` gives the coverage, and the chain list agrees."""
    from chainmap_otel.analysis.health import health
    from chainmap_otel.server.api.chains import chain_list

    serving = serve()
    gateway = service(serving.url, DELTA)
    services.append(gateway)
    gateway.requests(800, error_every=8, routes=("/api/v1/orders", "/api/v1/trading/x"))
    gateway.flush()
    counts = counts_of(serving)
    window = TimeWindow.last(3600)
    found = {e["chain_id"]: e for e in health(serving.store, CATALOG, window)}
    b1 = found["B1"]
    assert (b1["traces"], b1["errors"]) == (800, 100)
    assert b1["error_ratio"] == 0.125
    assert b1["counted"]["trace_coverage"] == pytest.approx(counts["B1"].coverage, abs=1e-6)
    assert b1["sampling"]["stored"] == counts["B1"].stored < 800
    assert b1["rate_per_s"] == pytest.approx(800 / b1["rate_seconds"], rel=1e-5)
    listed = {c["id"]: c["health"] for c in chain_list(serving.store, CATALOG, window)["chains"]}
    assert {k: listed["B1"][k] for k in ("traces", "errors", "rate_per_s")} == {
        k: b1[k] for k in ("traces", "errors", "rate_per_s")
    }
    # A chain no service counted keeps its traces' numbers.
    assert all(e["counted"] is None for c, e in found.items() if c not in counts)
