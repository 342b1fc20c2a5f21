"""Scale-out as gateway.yaml and backend.yaml do it, with real Collectors.

A gateway Collector tags entry spans (generated ``transform/chains``) and routes with the
``loadbalancing`` exporter (``routing_key: traceID``, static resolver) to two backend
Collectors; each backend names itself in a resource attribute and forwards to one
``chainmap serve``. Every trace arrives whole at exactly one backend, and chainmap's
per-chain requests and errors over both equal what was sent.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from chainmap_otel.collector.pipeline import processor_config
from chainmap_otel.tagging.definitions import load_catalog
from tests.collector.test_connectors import CHAINS, WORKLOAD, scrape, total, wait_for, workload
from tests.support.collector import CollectorProcess
from tests.support.processes import free_port
from tests.support.serve_process import ServeProcess, query

pytestmark = pytest.mark.slow

BACKENDS = ("backend-a", "backend-b")


def backend_config(name: str, port: int, serve_url: str) -> dict[str, Any]:
    naming = f'set(resource.attributes["collector.backend"], "{name}")'
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": {"transform/backend": {"trace_statements": [naming]}},
        "exporters": {"otlphttp": {"traces_endpoint": serve_url}},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["transform/backend"],
                    "exporters": ["otlphttp"],
                }
            }
        },
    }


def gateway_config(port: int, backend_ports: list[int]) -> dict[str, Any]:
    transform: dict[str, Any] = yaml.safe_load(processor_config(load_catalog(CHAINS)))[
        "processors"
    ]["transform/chains"]
    gateway: dict[str, Any] = yaml.safe_load(
        (CHAINS.parent / "collector-config" / "gateway.yaml").read_text(encoding="utf-8")
    )
    balancing = gateway["exporters"]["loadbalancing"]
    balancing["resolver"] = {"static": {"hostnames": [f"127.0.0.1:{p}" for p in backend_ports]}}
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": {"transform/chains": transform},
        "exporters": {"loadbalancing": balancing},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["transform/chains"],
                    "exporters": ["loadbalancing"],
                }
            }
        },
    }


def test_every_trace_arrives_whole_at_exactly_one_backend(otelcol: Path, tmp_path: Path) -> None:
    spans = workload()
    store_url = f"chdb://{tmp_path / 'store'}"
    serve = ServeProcess(
        store_url, tmp_path / "serve.log", env={"CHAINMAP_CHAINS_FILE": str(CHAINS)}
    )
    backend_ports = [free_port() for _ in BACKENDS]
    backends = [
        CollectorProcess(otelcol, backend_config(name, port, serve.url), tmp_path, name=name)
        for name, port in zip(BACKENDS, backend_ports, strict=True)
    ]
    gateway_port = free_port()
    gateway = CollectorProcess(
        otelcol, gateway_config(gateway_port, backend_ports), tmp_path, name="gateway"
    )
    try:
        serve.wait_ready()
        for collector in (*backends, gateway):
            collector.wait_ready()
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{gateway_port}/v1/traces")
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()  # type: ignore[no-untyped-call]
        chainmap_url = f"http://127.0.0.1:{serve.http_port}/metrics"
        wait_for(
            "chainmap serve did not store every span",
            lambda: total(scrape(chainmap_url), "chainmap_spans_stored_total") == len(spans),
            lambda: "\n".join([serve.log(), gateway.log(), *(b.log() for b in backends)]),
        )
        chainmap = scrape(chainmap_url)
        # Gateway first, so it drains into running backends; they drain into serve.
        for collector in (gateway, *backends):
            assert collector.stop() == 0, collector.log()
        assert serve.terminate() == 0, serve.log()
    finally:
        for collector in (gateway, *backends):
            collector.kill()
        serve.terminate()

    rows = query(
        store_url,
        "SELECT TraceId, groupUniqArray(ResourceAttributes['collector.backend'])"
        " FROM otel_traces GROUP BY TraceId",
    )
    by_trace = {str(trace): list(backends_seen) for trace, backends_seen in rows}  # type: ignore[call-overload]
    assert set(by_trace) == {format(s.context.trace_id, "032x") for s in spans if s.context}
    assert all(len(seen) == 1 and seen[0] in BACKENDS for seen in by_trace.values()), by_trace
    assert set(Counter(seen[0] for seen in by_trace.values())) == set(BACKENDS)
    for traffic in WORKLOAD:
        chain = {"chain_id": traffic.chain}
        assert total(chainmap, "chainmap_chain_requests_total", **chain) == traffic.traces
        assert total(chainmap, "chainmap_chain_errors_total", **chain) == traffic.failed
