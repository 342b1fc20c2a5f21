"""Chain rates stay right when the real Collector samples: its probabilistic sampler (OTEP 235
proportional mode) writes ``ot=th`` into each kept span's tracestate, and chainmap weighs by it.

``SDK fleet (tests/support/sampled_fleet.py) -> otlp -> probabilistic_sampler (10 %) ->
otlphttp -> chainmap serve``. The Collector keeps about a tenth of the traces; health read from
serve estimates every chain's entries and rate from the kept ones within a few standard errors
of the truth the test knows, where counting stored rows reads a tenth of it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from chainmap_otel.tagging.sampling import adjusted_count
from tests.support.collector import CollectorProcess
from tests.support.processes import free_port
from tests.support.sampled_fleet import CHAINS_FILE, FLEET, generate
from tests.support.serve_process import ServeProcess, query

pytestmark = pytest.mark.slow

TRACES = 2000  # per chain
PERCENT = 10.0


def test_rates_estimated_from_the_collectors_thresholds(otelcol: Path, tmp_path: Path) -> None:
    spans = generate(TRACES, seed=11, spread_s=600.0)
    truth = Counter((s.attributes or {}).get("chain.id") for s in spans if s.parent is None)
    assert truth == Counter(dict.fromkeys(FLEET, TRACES))
    store_url = f"chdb://{tmp_path / 'store'}"
    env = {"CHAINMAP_CHAINS_FILE": str(CHAINS_FILE)}
    serve = ServeProcess(store_url, tmp_path / "serve.log", env)
    port = free_port()
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": {
            "probabilistic_sampler": {"mode": "proportional", "sampling_percentage": PERCENT}
        },
        "exporters": {"otlphttp/serve": {"traces_endpoint": serve.url}},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["probabilistic_sampler"],
                    "exporters": ["otlphttp/serve"],
                }
            }
        },
    }
    collector = CollectorProcess(otelcol, config, tmp_path)
    try:
        serve.wait_ready()
        collector.wait_ready()
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")
        for at in range(0, len(spans), 500):
            assert exporter.export(spans[at : at + 500]) == SpanExportResult.SUCCESS
        exporter.shutdown()  # type: ignore[no-untyped-call]
        assert collector.stop() == 0, collector.log()
        assert serve.terminate() == 0, serve.log()
    finally:
        collector.kill()
        serve.terminate()

    rows = query(store_url, "SELECT DISTINCT TraceState FROM otel_traces")
    states = {str(row[0]) for row in rows}
    # Every kept span says it stands for about ten: the Collector wrote the threshold.
    assert states and all(adjusted_count(s) == pytest.approx(10, rel=0.01) for s in states), states

    reader = ServeProcess(store_url, tmp_path / "reader.log", env)
    try:
        reader.wait_ready()
        base = reader.url.removesuffix("/v1/traces")
        body = httpx.get(f"{base}/api/v1/chains/health", params={"since": "1h"}, timeout=60).json()
    finally:
        reader.terminate()
    for chain in body["chains"]:
        if chain["chain_id"] not in FLEET:
            continue
        sampling = chain["sampling"]
        assert sampling["sampled"] is True
        stored, estimated = sampling["stored"], sampling["estimated"]
        # About a tenth stored, and the estimate within four standard errors of the truth
        # (a 10 % sample of 2,000: sqrt(0.9 / (0.1 * 2000)) = 6.7 %).
        assert 0.05 * TRACES < stored < 0.2 * TRACES, chain
        assert estimated == pytest.approx(TRACES, rel=0.27), chain
        assert sampling["coverage"] == pytest.approx(stored / estimated, rel=1e-3)
