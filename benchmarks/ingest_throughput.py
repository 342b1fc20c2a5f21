"""OTLP/HTTP ingest throughput of ``chainmap serve``, with the standard exporter as client.

Three numbers from the same run and the same span batches:

* ``chainmap serve``: spans/s from the first export until every span is
  committed in chDB (the clock stops when the server, sent SIGTERM after the
  last export, has flushed its queue and exited; the server's own log line
  must report every span stored).
* baseline: the same exporter posting the same batches to a do-nothing
  OTLP/HTTP endpoint on the same server stack (uvicorn, reads the body,
  answers an empty ExportTraceServiceResponse): the cost of the transport alone.
* decode: ``decode_protobuf`` alone, in this process (the receiver's CPU per span).

Usage: python benchmarks/ingest_throughput.py [--spans 100000] [--batch 512]
"""

from __future__ import annotations

import argparse
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel.storage.otlp import decode_protobuf

SERVE = """
import logging, sys
from chainmap_otel.server import run_server
logging.basicConfig(level=logging.INFO)
run_server(sys.argv[1], "127.0.0.1", int(sys.argv[2]), 0, log_level="warning")
"""

NULL_ENDPOINT = """
import sys, uvicorn
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
app = FastAPI()
EMPTY = ExportTraceServiceResponse().SerializeToString()
@app.post("/v1/traces")
async def traces(request: Request) -> Response:
    await request.body()
    return Response(EMPTY, media_type="application/x-protobuf")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_batch(size: int) -> Sequence[ReadableSpan]:
    """One batch like a FastAPI service's: SERVER roots with CLIENT and INTERNAL children."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "trading-engine", "service.version": "1.4.2", "host.name": "node-7"}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("opentelemetry.instrumentation.fastapi", "0.61b0")
    while len(memory.get_finished_spans()) < size:
        with tracer.start_as_current_span(
            "POST /api/v1/orders",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "POST",
                "http.route": "/api/v1/orders",
                "url.path": "/api/v1/orders",
                "http.response.status_code": 201,
                "chain.id": "B3",
                "chain.ids": "B1,B3",
                "chain.entry": True,
            },
        ):
            with tracer.start_as_current_span(
                "INSERT orders",
                kind=SpanKind.CLIENT,
                attributes={"db.system": "postgresql", "db.name": "trading", "chain.id": "B3"},
            ):
                pass
            with tracer.start_as_current_span("risk check", attributes={"chain.id": "B3"}) as s:
                s.add_event("limits evaluated", {"limit.count": 4})
    provider.shutdown()
    return memory.get_finished_spans()[:size]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early with {process.returncode}")
        try:
            response = httpx.post(
                url, content=b"", headers={"Content-Type": "application/x-protobuf"}
            )
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server at {url} did not answer within {timeout}s")


def send(url: str, batch: Sequence[ReadableSpan], batches: int) -> None:
    exporter = OTLPSpanExporter(endpoint=url, timeout=60)
    for _ in range(batches):
        if exporter.export(batch) is not SpanExportResult.SUCCESS:
            raise SystemExit(f"export to {url} failed")
    exporter.shutdown()


def run_chainmap_serve(batch: Sequence[ReadableSpan], batches: int, workdir: Path) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/traces"
    log = workdir / "serve.log"
    children_cpu_before = _children_cpu()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, f"chdb://{workdir / 'store'}", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(url, process)
        start = time.perf_counter()
        client_cpu = time.process_time()
        send(url, batch, batches)
        client_cpu = time.process_time() - client_cpu
        sent = time.perf_counter() - start
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=300)
        elapsed = time.perf_counter() - start
        server_cpu = _children_cpu() - children_cpu_before
        print(
            f"  chainmap serve: exports answered after {sent:.2f}s, server exited after "
            f"{elapsed:.2f}s; CPU: client {client_cpu:.2f}s, server {server_cpu:.2f}s "
            "(incl. start-up)"
        )
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text(errors="replace")
    match = re.search(r"(\d+) spans stored, (\d+) dropped", text)
    expected = len(batch) * batches
    if not match or int(match.group(1)) != expected or int(match.group(2)):
        raise SystemExit(f"chainmap serve did not store all {expected} spans:\n{text}")
    return expected / elapsed


def run_null_endpoint(batch: Sequence[ReadableSpan], batches: int) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/traces"
    process = subprocess.Popen(
        [sys.executable, "-c", NULL_ENDPOINT, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(url, process)
        start = time.perf_counter()
        send(url, batch, batches)
        elapsed = time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(timeout=30)
    return len(batch) * batches / elapsed


def run_decode(batch: Sequence[ReadableSpan], batches: int) -> float:
    payload = encode_spans(batch).SerializeToString()
    start = time.perf_counter()
    for _ in range(batches):
        decode_protobuf(payload)
    return len(batch) * batches / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=100_000, help="spans per measurement")
    parser.add_argument("--batch", type=int, default=512, help="spans per export (BSP default)")
    args = parser.parse_args(argv)
    batch = make_batch(args.batch)
    batches = max(1, args.spans // args.batch)
    total = batches * args.batch
    payload = encode_spans(batch).SerializeToString()
    print(f"{total} spans in {batches} exports of {args.batch} ({len(payload)} bytes each)")

    with tempfile.TemporaryDirectory(prefix="chainmap-ingest-bench-") as tmp:
        serve = run_chainmap_serve(batch, batches, Path(tmp))
    baseline = run_null_endpoint(batch, batches)
    decode = run_decode(batch, batches)

    print(f"chainmap serve (OTLP/HTTP -> chDB, committed): {serve:12,.0f} spans/s")
    print(f"baseline: same exporter -> do-nothing endpoint: {baseline:12,.0f} spans/s")
    print(f"decode_protobuf alone:                          {decode:12,.0f} spans/s")
    print(f"ratio chainmap serve / baseline: {serve / baseline:.2f}")


if __name__ == "__main__":
    main()
