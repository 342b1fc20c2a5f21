"""Counted entries on every surface: one service counts its chain entries before sampling and
keeps 10 % of its traces (OTEP 235 thresholds, every failed trace kept); the counts reach a
real serve through ``/v1/metrics``. For the same window the health API, ``chainmap health``,
``/metrics`` and Grafana's chains overview must give the same counted numbers, and the
error-rate burn rates must be the counts'. A chain whose counting began inside the window
must read its traces there, and its counts only over the burn window they cover."""

from __future__ import annotations

import importlib
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from chainmap_otel.analysis.entry_counts import EXPORT_SLACK_S
from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.grafana import queries
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from chainmap_otel.tagging.entry_counts import DURATION_BUCKETS_MS
from chainmap_otel.tagging.processor import ChainSpanProcessor
from tests.grafana.datasource import QueryContext, panel_sql
from tests.server import chain_traffic
from tests.support.sampled_fleet import keep_sampled
from tests.support.stores import fresh_store

NS = 1_000_000_000
CHAINS = """
version: 1
chains:
  - id: B1
    name: api
    category: api
    criticality: high
    entry: {service: api-gateway, kind: server, route: "/api/v1/orders"}
    slo: {error_rate: 0.05, latency_ms: {p95: 500}, window: 1d}
  - id: B3
    name: trade
    category: trading
    criticality: critical
    entry: {service: api-gateway, kind: server, route: "/api/v1/trading"}
    slo: {error_rate: 0.05, window: 1d}
"""
REQUESTS = 600
FAILED_EVERY = 8  # 75 of 600: 12.5 % against a 5 % budget
LATE_TRACES = 120
runner = CliRunner()


def catalog() -> ChainCatalog:
    return parse_catalog(CHAINS, "counted.yaml")


@dataclass
class Site:
    client: httpx.Client
    url: str
    store: TraceStore
    until: str
    #: B3's counts as inserted: (entries, errors) in the minutes counting covered.
    late: tuple[int, int]


def b1_traffic(end_ns: int) -> tuple[list[ReadableSpan], MetricsData]:
    """B1's requests in the 50 s before ``end_ns``, every one counted by the service's
    processor, and the service's metrics collected right after."""
    rng = random.Random(235)
    random.seed(235)  # the SDK's trace ids
    reader = InMemoryMetricReader()
    resource = Resource.create({"service.name": "api-gateway"})
    meters = MeterProvider(metric_readers=[reader], resource=resource)
    exporter = InMemorySpanExporter()
    tracers = TracerProvider(resource=resource)
    tracers.add_span_processor(ChainSpanProcessor(catalog(), meter_provider=meters))
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracers.get_tracer("counted")
    for i in range(REQUESTS):
        start = end_ns - rng.randrange(50 * NS)
        span = tracer.start_span(
            "GET /api/v1/orders",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/api/v1/orders", "http.method": "GET"},
            start_time=start,
        )
        if i % FAILED_EVERY == 0:
            span.set_status(Status(StatusCode.ERROR, "failed"))
        span.end(end_time=start + int(80e6 * math.exp(rng.gauss(0, 0.6))))
    spans = list(exporter.get_finished_spans())
    tracers.shutdown()
    metrics = reader.get_metrics_data()
    assert metrics is not None
    meters.shutdown()
    return spans, metrics


def b3_traffic(end_ns: int) -> list[ReadableSpan]:
    """B3's traces over the 40 minutes before ``end_ns``, one in four failed."""
    exporter = InMemorySpanExporter()
    tracers = TracerProvider(resource=Resource.create({"service.name": "api-gateway"}))
    tracers.add_span_processor(ChainSpanProcessor(catalog()))
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracers.get_tracer("late")
    for i in range(LATE_TRACES):
        start = end_ns - (40 * 60 - i * 20) * NS
        span = tracer.start_span(
            "POST /api/v1/trading",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/api/v1/trading", "http.method": "POST"},
            start_time=start,
        )
        if i % 4 == 0:
            span.set_status(Status(StatusCode.ERROR, "failed"))
        span.end(end_time=start + 50_000_000)
    spans = list(exporter.get_finished_spans())
    tracers.shutdown()
    return spans


@pytest.fixture(scope="module")
def site(chdb_store: TraceStore, chdb_path: Path) -> Iterator[Site]:

    store = fresh_store(chdb_path)
    end_ns = time.time_ns()
    try:
        spans, metrics = b1_traffic(end_ns)
        # The window ends after the points' collection time, so the counts are inside it,
        # and never on a minute's start: B3's last counted minute (its end minute) must be
        # inside it too, whatever second the clock reads.
        until_s = time.time_ns() // NS + 1
        if until_s % 60 == 0:
            until_s += 1
        until = datetime.fromtimestamp(until_s, UTC).isoformat().replace("+00:00", "Z")
        stored = keep_sampled(spans_to_arrow([*spans, *b3_traffic(end_ns)]), 0.1)
        store.insert_arrow(stored)
        # B3 was counted only from three minutes before the window's end minute on (less the
        # export slack, counting began just as the 5m burn window did): 10 entries a minute,
        # one failed.
        end_minute = until_s // 60 * 60
        minutes = [end_minute - 60 * k for k in range(3, -1, -1)]
        for minute in minutes:
            store.command(
                f"INSERT INTO {store.database}.chainmap_entry_counts (Minute, ChainId, "
                "ServiceName, Environment, Entries, Errors) VALUES "
                f"(toDateTime({minute}), 'B3', 'api-gateway', '', 10, 1)"
            )
        assert (end_minute - 300) // 60 * 60 == minutes[0] - EXPORT_SLACK_S
        with pytest.MonkeyPatch.context() as env:
            env.setenv("CHAINMAP_METRICS_FRESH_WAIT", "10s")
            with chain_traffic.serving(create_app(store, chains=catalog())) as client:
                sent = client.post(
                    "/v1/metrics",
                    content=encode_metrics(metrics).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                assert sent.status_code == 200, sent.text
                yield Site(
                    client,
                    str(client.base_url).rstrip("/"),
                    store,
                    until,
                    (10 * len(minutes), len(minutes)),
                )
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def api_health(site: Site) -> dict[str, dict[str, Any]]:
    response = site.client.get("/api/v1/chains/health", params={"since": "1h", "until": site.until})
    assert response.status_code == 200, response.text
    body = response.json()
    return {"window": body["window"], **{e["chain_id"]: e for e in body["chains"]}}


def cli_health(site: Site) -> dict[str, dict[str, Any]]:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    args = ["health", "--server", site.url, "--since", "1h", "--until", site.until, "-f", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    return {e["chain_id"]: e for e in body["chains"]}


def grafana_rows(site: Site, window: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def seconds(text: str) -> int:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())

    sql = queries.chains_overview_sql(catalog(), site.store.database)
    ctx = QueryContext(seconds(window["since"]), seconds(window["until"]))
    result = site.store.query(panel_sql(sql, {"environment": ""}, ctx))
    rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    return {r["chain"]: r for r in rows}


def scraped(site: Site) -> dict[str, dict[str, float]]:
    text = site.client.get("/metrics").text
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("environment") == "" and "chain_id" in sample.labels:
                key = sample.name + "".join(
                    f"{{le={sample.labels['le']}}}" for _ in [0] if "le" in sample.labels
                )
                out.setdefault(sample.labels["chain_id"], {})[key] = sample.value
    return out


def test_health_api_cli_metrics_and_grafana_agree_on_the_counted_numbers(site: Site) -> None:
    api = api_health(site)
    b1 = api["B1"]
    failed = len(range(0, REQUESTS, FAILED_EVERY))
    counted = b1["counted"]
    assert (counted["entries"], counted["errors"]) == (REQUESTS, failed)
    assert counted["window"] is True
    assert counted["burn"] == {"5m": True, "30m": True, "1h": True, "6h": True, "3d": True}
    assert (b1["traces"], b1["errors"]) == (REQUESTS, failed)
    assert b1["error_ratio"] == pytest.approx(failed / REQUESTS, abs=1e-6)
    assert b1["rate_per_s"] == pytest.approx(REQUESTS / b1["rate_seconds"], abs=1e-6)
    # About 10 % stored (every failed trace kept): the sampled count is not the count.
    assert b1["sampling"]["sampled"] is True
    assert b1["sampling"]["stored"] < REQUESTS / 2
    assert counted["trace_coverage"] == pytest.approx(b1["sampling"]["stored"] / REQUESTS, abs=1e-6)
    # The error-rate burn is the counts': exactly 12.5 % / 5 % over every window, not the
    # weighted traces' estimate.
    error_rate = next(o for o in b1["slo"]["objectives"] if o["objective"] == "error_rate")
    burn = round(failed / REQUESTS / 0.05, 6)
    assert error_rate["burn_rates"] == dict.fromkeys(("5m", "30m", "1h", "6h", "3d"), burn)
    estimate = b1["sampling"]["estimated"]
    assert round(failed / estimate / 0.05, 6) != burn
    assert b1["status"] == "degraded"  # 2.5x over 3d and 6h, below 6x

    cli = cli_health(site)
    for chain in ("B1", "B3"):
        for key in ("traces", "errors", "rate_per_s", "error_ratio", "burn_rates", "status"):
            assert cli[chain][key] == api[chain][key], (chain, key)
        assert cli[chain]["counted"] == api[chain]["counted"]

    grafana = grafana_rows(site, api["window"])
    for chain in ("B1", "B3"):
        want, got = api[chain], grafana[chain]
        assert bool(got["counted"]) is want["counted"]["window"], chain
        assert (got["traces"], got["errors"], got["status"]) == (
            want["traces"],
            want["errors"],
            want["status"],
        )
        assert got["rate_per_s"] == pytest.approx(want["rate_per_s"], abs=1e-6)
        assert got["error_pct"] == pytest.approx(100 * want["error_ratio"], abs=1e-3)
        for label, value in want["burn_rates"].items():
            assert got[f"burn_{label}"] == pytest.approx(value, abs=1e-5), (chain, label)

    # Every stored minute (here: everything, all inside the window) per chain and environment.
    series = scraped(site)
    assert series["B1"]["chainmap_chain_entries_counted_total"] == REQUESTS
    assert series["B1"]["chainmap_chain_entry_errors_counted_total"] == failed
    assert series["B1"]["chainmap_chain_entry_counted_duration_seconds_count"] == REQUESTS
    assert series["B1"]["chainmap_chain_entry_counted_duration_seconds_bucket{le=+Inf}"] == (
        REQUESTS
    )
    # The distro's bounds in seconds, cumulative, each series with all of them.
    ladder = [
        series["B1"][f"chainmap_chain_entry_counted_duration_seconds_bucket{{le={b / 1000:g}}}"]
        for b in DURATION_BUCKETS_MS
    ]
    assert ladder == sorted(ladder) and 0 < ladder[-1] <= REQUESTS
    assert series["B1"]["chainmap_chain_stored_requests_total"] == b1["sampling"]["stored"]
    assert series["B3"]["chainmap_chain_entries_counted_total"] == site.late[0]


def test_counts_that_began_inside_a_window_stand_only_for_the_windows_they_cover(
    site: Site,
) -> None:
    b3 = api_health(site)["B3"]
    counted = b3["counted"]
    # Counting began 5 minutes before the end; B3's traces go back 40 minutes.
    assert counted["window"] is False
    assert counted["burn"] == {"5m": True, "30m": False, "1h": False, "6h": False, "3d": False}
    assert (counted["entries"], counted["errors"]) == site.late
    # The window reads the traces (weighted; every failed one kept), never the counts.
    assert b3["traces"] == round(b3["sampling"]["estimated"]) != counted["entries"]
    assert b3["errors"] == LATE_TRACES // 4
    rates = b3["slo"]["objectives"][0]["burn_rates"]
    entries, errors = site.late
    assert rates["5m"] == pytest.approx(errors / entries / 0.05, abs=1e-6)
    for label in ("30m", "1h", "6h", "3d"):
        assert rates[label] != rates["5m"]
    assert rates["1h"] == pytest.approx(b3["error_ratio"] / 0.05, abs=1e-5)
    assert b3["status"] in ("degraded", "critical")  # over 3d and 6h, the traces'
