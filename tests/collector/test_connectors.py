"""chainmap's per-chain RED against the real spanmetrics connector, on the same spans.

One Collector tags entry spans with the generated ``transform/chains`` and fans the traces
out to ``chainmap serve`` (otlphttp) and to the ``spanmetrics`` connector (``chain.id`` and
``chain.entry`` as dimensions) exported through ``prometheus``. Per chain, the connector's
calls of entry spans and of failed entry spans equal serve's ``chainmap_chain_requests_total``
and ``chainmap_chain_errors_total``. (The distribution has no servicegraph connector: the
module proxy serves none, collector-config/README.md.)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from chainmap_otel.collector.pipeline import processor_config
from chainmap_otel.tagging.definitions import load_catalog
from tests.support.collector import CollectorProcess
from tests.support.processes import free_port
from tests.support.serve_process import ServeProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHAINS = ROOT / "chains.example.yaml"
# (chain, service, entry attributes, traces, failed traces); no trace enters two chains, so
# the innermost chain.id on an entry span is its only chain. Both HTTP conventions.
WORKLOAD = [
    ("B1", "api-gateway", {"http.route": "/api/v1/quotes", "http.request.method": "GET"}, 7, 2),
    ("A1", "data-bridge", {"http.target": "/market-data/ticks?s=1", "http.method": "POST"}, 5, 1),
    ("B3", "trading-engine", {"url.path": "/orders", "http.request.method": "POST"}, 4, 0),
    ("C1", "data-bridge", {"http.target": "/ws/market", "http.method": "GET"}, 3, 1),
]


def workload() -> list[ReadableSpan]:
    """Per trace: the entry SERVER span, its CLIENT call and database-service's SERVER span."""
    memory = InMemorySpanExporter()
    providers: dict[str, TracerProvider] = {}

    def tracer(service: str) -> trace.Tracer:
        if service not in providers:
            providers[service] = TracerProvider(resource=Resource({"service.name": service}))
            providers[service].add_span_processor(SimpleSpanProcessor(memory))
        return providers[service].get_tracer("plain.sdk")

    for _chain, service, attributes, traces, failed in WORKLOAD:
        for index in range(traces):
            entry = tracer(service).start_span("entry", kind=SpanKind.SERVER, attributes=attributes)
            if index < failed:
                entry.set_status(Status(StatusCode.ERROR))
            context = trace.set_span_in_context(entry)
            call = tracer(service).start_span("query", context=context, kind=SpanKind.CLIENT)
            server = tracer("database-service").start_span(
                "POST /query",
                context=trace.set_span_in_context(call),
                kind=SpanKind.SERVER,
                attributes={"http.route": "/query", "http.request.method": "POST"},
            )
            server.end()
            call.end()
            entry.end()
    for provider in providers.values():
        provider.shutdown()
    return list(memory.get_finished_spans())


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(url, timeout=10).text
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def wait_for(
    what: str, probe: Callable[[], bool], log: Callable[[], str], timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s:\n{log()}")


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(
        value
        for sample, found, value in samples
        if sample == name and all(found.get(k, "") == v for k, v in labels.items())
    )


def test_spanmetrics_per_chain_equals_chainmaps_chain_red(otelcol: Path, tmp_path: Path) -> None:
    spans = workload()
    transform: dict[str, Any] = yaml.safe_load(processor_config(load_catalog(CHAINS)))[
        "processors"
    ]["transform/chains"]
    receiver_port, prometheus_port = free_port(), free_port()
    serve = ServeProcess(
        f"chdb://{tmp_path / 'store'}",
        tmp_path / "serve.log",
        env={"CHAINMAP_CHAINS_FILE": str(CHAINS)},
    )
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{receiver_port}"}}}},
        "processors": {"transform/chains": transform},
        "connectors": {
            "spanmetrics": {
                "dimensions": [{"name": "chain.id"}, {"name": "chain.entry"}],
                "metrics_flush_interval": "1s",
            }
        },
        "exporters": {
            "otlphttp/serve": {"traces_endpoint": serve.url},
            "prometheus": {"endpoint": f"127.0.0.1:{prometheus_port}"},
        },
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["transform/chains"],
                    "exporters": ["otlphttp/serve", "spanmetrics"],
                },
                "metrics": {"receivers": ["spanmetrics"], "exporters": ["prometheus"]},
            }
        },
    }
    collector = CollectorProcess(otelcol, config, tmp_path)
    try:
        serve.wait_ready()
        collector.wait_ready()
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{receiver_port}/v1/traces")
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()  # type: ignore[no-untyped-call]
        connector_url = f"http://127.0.0.1:{prometheus_port}/metrics"
        chainmap_url = f"http://127.0.0.1:{serve.http_port}/metrics"
        calls = "traces_span_metrics_calls_total"
        wait_for(
            "the spanmetrics connector did not count every span",
            lambda: total(scrape(connector_url), calls) == len(spans),
            collector.log,
        )
        wait_for(
            "chainmap serve did not store every span",
            lambda: total(scrape(chainmap_url), "chainmap_spans_stored_total") == len(spans),
            serve.log,
        )
        connector, chainmap = scrape(connector_url), scrape(chainmap_url)
    finally:
        collector.stop()
        serve.terminate()

    requests: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for chain, _service, _attributes, traces, failed in WORKLOAD:
        requests[chain] += traces
        errors[chain] += failed
    for chain in requests:
        entry = {"chain_id": chain, "chain_entry": "true"}
        assert total(connector, calls, **entry) == requests[chain], chain
        failed = total(connector, calls, **entry, status_code="STATUS_CODE_ERROR")
        assert failed == errors[chain], chain
        assert total(chainmap, "chainmap_chain_requests_total", chain_id=chain) == requests[chain]
        assert total(chainmap, "chainmap_chain_errors_total", chain_id=chain) == errors[chain]
    # Only entry spans carry chain.id in the Collector: OTTL sees one span at a time.
    assert total(connector, calls, chain_id="") == len(spans) - sum(requests.values())
