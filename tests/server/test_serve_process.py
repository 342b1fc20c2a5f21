"""``run_server`` as its own process (its own chDB directory): both receivers, clean shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.support.otlp_payloads import sdk_spans
from tests.support.processes import free_port

SERVE = """
import logging, sys
from chainmap_otel.server import run_server
logging.basicConfig(level=logging.INFO)
run_server(sys.argv[1], "127.0.0.1", int(sys.argv[2]), int(sys.argv[3]), log_level="info")
"""

COUNT = """
import json, sys
from chainmap_otel.storage.store import open_store
with open_store(sys.argv[1]) as store:
    rows = store.query(
        "SELECT ServiceName, count() FROM otel_traces GROUP BY ServiceName ORDER BY ServiceName"
    ).result_rows
print(json.dumps(dict(rows)))
"""


class ServeProcess:
    def __init__(self, store_url: str, log: Path) -> None:
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}/v1/traces"
        self.log_path = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, store_url, str(self.http_port), str(self.grpc_port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chainmap serve exited early:\n{self.log()}")
            try:
                response = httpx.post(
                    self.url, content=b"", headers={"Content-Type": "application/x-protobuf"}
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"chainmap serve did not answer within {timeout}s:\n{self.log()}")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"chainmap serve ignored SIGTERM:\n{self.log()}") from None


def stored(store_url: str) -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", COUNT, store_url], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    counts: dict[str, int] = json.loads(result.stdout)
    return counts


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
