"""``run_server`` as its own process (its own chDB directory): both receivers, clean shutdown."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.support.otlp_payloads import sdk_spans
from tests.support.serve_process import ServeProcess, query


def stored(store_url: str) -> dict[str, int]:
    rows = query(
        store_url,
        "SELECT ServiceName, count() FROM otel_traces GROUP BY ServiceName ORDER BY ServiceName",
    )
    return {str(name): int(str(count)) for name, count in rows}


@pytest.mark.slow
def test_serve_receives_http_and_grpc_and_flushes_on_sigterm(tmp_path: Path) -> None:
    store_url = f"chdb://{tmp_path / 'store'}"
    serve = ServeProcess(store_url, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        http = OTLPSpanExporter(endpoint=serve.url)
        assert http.export(sdk_spans("via-http", count=5)) == SpanExportResult.SUCCESS
        grpc_exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{serve.grpc_port}", insecure=True)
        assert grpc_exporter.export(sdk_spans("via-grpc", count=4)) == SpanExportResult.SUCCESS
        grpc_exporter.shutdown()

        second = ServeProcess(store_url, tmp_path / "second.log")
        assert second.process.wait(timeout=60) != 0
        assert "is in use by pid" in second.log()
    finally:
        code = serve.terminate()
    assert code == 0, serve.log()
    assert "18 spans stored, 0 dropped" in serve.log(), serve.log()
    assert stored(store_url) == {"via-grpc": 8, "via-http": 10}
