"""Committed OTLP/HTTP ingest rate of ``chainmap serve`` next to its two ceilings, in one run.

Pre-encoded protobuf requests (512 spans each, like the SDK's BatchSpanProcessor)
from 4 keep-alive clients:

* ``chainmap serve``: spans/s from the first request until every span is
  committed in chDB (``/health/detailed`` reports them written), with the
  write-ahead log on (``--fsync`` picks its mode);
* (a) the same clients against a do-nothing OTLP/HTTP endpoint on the same
  server stack (uvicorn + FastAPI, reads the body, answers an empty response):
  the transport's ceiling;
* (b) the engine alone: ``INSERT INTO otel_traces SELECT * FROM`` a copy of the
  same rows, into the same schema and materialized views: the store's ceiling.

Ratios are printed; the target is chainmap serve >= 0.4x (b) in every round, also counted
until serve has exited with everything committed. ``--decode`` picks serve's protobuf
decode: by the engine in batches (``engine``), per request in Python (``python``), or both
in the same run.

``--soak SECONDS`` then runs a fresh server at ``--soak-load`` (default 80 %) of
the committed rate just measured, samples its RSS every 5 s and checks that
every acknowledged span was stored.

Usage: python benchmarks/ingest_throughput.py [--spans 200000] [--rounds 3] [--fsync fsync|none]
       [--decode engine|python|both]
       python benchmarks/ingest_throughput.py --rounds 1 --fsync none --soak 600
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

SERVE = """
import logging, sys
from chainmap_otel.server import run_server
logging.basicConfig(level=logging.WARNING)
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
@app.get("/health/detailed")
async def health() -> dict:
    return {}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

CLIENTS = 4
HEADERS = {"Content-Type": "application/x-protobuf"}


def free_port() -> int:
    import socket

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


class Server:
    """A server subprocess on a free port (``chainmap serve`` or the do-nothing endpoint)."""

    def __init__(self, code: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, *args[:1], str(self.port), *args[1:]]
            if args
            else [sys.executable, "-c", code, str(self.port)],
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited early with {self.process.returncode}")
            try:
                if self.post(b"") == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("server did not answer within 120s")

    def post(self, body: bytes) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("POST", "/v1/traces", body, HEADERS)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def written(self) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", "/health/detailed")
            document = json.loads(connection.getresponse().read() or b"{}")
        finally:
            connection.close()
        writer = document.get("span_writer") or {}
        return int(writer.get("written", 0)) + int(writer.get("dropped", 0))

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def blast(
    port: int, payload: bytes | Callable[[], bytes], requests: int, interval: float = 0.0
) -> tuple[int, int]:
    """``requests`` posts spread over CLIENTS keep-alive connections; (accepted, refused).

    With ``interval`` each client paces itself to one request per interval. ``payload``
    is the body, or makes a new one for each request (resent as is when refused).
    """
    accepted = [0] * CLIENTS
    refused = [0] * CLIENTS

    def client(index: int, count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        next_at = time.perf_counter()
        done = 0
        body = payload() if callable(payload) else payload
        while done < count:
            if interval:
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                next_at += interval
            connection.request("POST", "/v1/traces", body, HEADERS)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                accepted[index] += 1
                done += 1
                if callable(payload):
                    body = payload()
            elif response.status in (429, 503):
                refused[index] += 1
                time.sleep(0.01)
            else:
                raise SystemExit(f"unexpected HTTP {response.status}")
        connection.close()

    share = [requests // CLIENTS + (1 if i < requests % CLIENTS else 0) for i in range(CLIENTS)]
    threads = [threading.Thread(target=client, args=(i, n)) for i, n in enumerate(share)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(accepted), sum(refused)


def wait_written(server: Server, spans: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while server.written() < spans:
        if time.monotonic() > deadline:
            raise SystemExit(f"chainmap serve did not commit {spans} spans within {timeout}s")
        time.sleep(0.05)


def run_serve(
    store: Path, payload: bytes, per_request: int, requests: int, fsync: str, decode: str
) -> tuple[float, float]:
    """Committed spans/s, and spans/s until serve has exited with everything committed."""
    env = {
        "CHAINMAP_SERVE_WAL_FSYNC": fsync,
        "CHAINMAP_SERVE_ENGINE_DECODE": "true" if decode == "engine" else "false",
    }
    server = Server(SERVE, [f"chdb://{store}"], env)
    try:
        start = time.perf_counter()
        accepted, refused = blast(server.port, payload, requests)
        acknowledged = time.perf_counter() - start
        wait_written(server, accepted * per_request)
        elapsed = time.perf_counter() - start
    finally:
        server.stop()
    exited = time.perf_counter() - start
    print(
        f"  chainmap serve ({fsync}, {decode} decode): {accepted} requests acknowledged after "
        f"{acknowledged:.2f}s ({refused} refused with 429 and retried), all committed after "
        f"{elapsed:.2f}s, exited after {exited:.2f}s"
    )
    return accepted * per_request / elapsed, accepted * per_request / exited


def run_null(payload: bytes, per_request: int, requests: int) -> float:
    server = Server(NULL_ENDPOINT, [])
    try:
        start = time.perf_counter()
        accepted, _ = blast(server.port, payload, requests)
        elapsed = time.perf_counter() - start
    finally:
        server.stop()
    return accepted * per_request / elapsed


ENGINE = """
import sys, time
from chainmap_otel.ingest.decode import decode_protobuf
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import open_store
payload, copies = open(sys.argv[2], "rb").read(), int(sys.argv[3])
with open_store(f"chdb://{sys.argv[1]}") as store:
    apply_schema(store, progress=lambda line: None)
    store.command("CREATE TABLE source AS otel_traces")
    table = decode_protobuf(payload).to_arrow()
    for _ in range(copies):
        store.insert_arrow(table, table="source")
    start = time.perf_counter()
    store.command("INSERT INTO otel_traces SELECT * FROM source")
    elapsed = time.perf_counter() - start
    count = store.query("SELECT count() FROM otel_traces").result_rows[0][0]
assert count == len(table) * copies, (count, len(table) * copies)
print(count / elapsed)
"""


def run_engine(workdir: Path, payload: bytes, copies: int) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "payload.pb"
    path.write_bytes(payload)
    out = subprocess.run(
        [sys.executable, "-c", ENGINE, str(workdir / "engine"), str(path), str(copies)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def soak(store: Path, payload: bytes, per_request: int, rate: float, seconds: float) -> None:
    """Serve at ``rate`` spans/s for ``seconds``; RSS every 5 s; every span must be stored."""
    server = Server(SERVE, [f"chdb://{store}"])
    interval = CLIENTS * per_request / rate
    requests = int(seconds / interval) * CLIENTS
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            samples.append(server.rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        start_rss = server.rss_bytes()
        sampler.start()
        start = time.perf_counter()
        accepted, refused = blast(server.port, payload, requests, interval)
        wait_written(server, accepted * per_request)
        elapsed = time.perf_counter() - start
        done.set()
    finally:
        server.stop()
    mib = 1024 * 1024
    print(
        f"soak: {accepted * per_request} spans at {accepted * per_request / elapsed:,.0f} "
        f"spans/s for {elapsed:.0f}s ({refused} requests refused and retried), all committed"
    )
    if samples:
        print(
            f"soak RSS: start {start_rss / mib:.0f} MiB, median {statistics.median(samples) / mib:.0f}"
            f" MiB, max {max(samples) / mib:.0f} MiB, last {samples[-1] / mib:.0f} MiB "
            f"({len(samples)} samples)"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=200_000, help="spans per measurement")
    parser.add_argument("--batch", type=int, default=512, help="spans per request")
    parser.add_argument("--fsync", choices=("fsync", "none", "both"), default="both")
    parser.add_argument(
        "--decode",
        choices=("engine", "python", "both"),
        default="both",
        help="serve's protobuf decode: by the engine in batches, or in Python per request",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds")
    parser.add_argument("--soak", type=float, default=0.0, help="soak seconds (0: no soak)")
    parser.add_argument("--soak-load", type=float, default=0.8, help="fraction of capacity")
    args = parser.parse_args(argv)
    batch = make_batch(args.batch)
    payload = encode_spans(batch).SerializeToString()
    requests = max(CLIENTS, args.spans // args.batch)
    total = requests * args.batch
    print(
        f"{total} spans in {requests} pre-encoded requests of {args.batch} spans "
        f"({len(payload)} bytes each), {CLIENTS} keep-alive clients"
    )
    fsyncs = ("fsync", "none") if args.fsync == "both" else (args.fsync,)
    decodes = ("engine", "python") if args.decode == "both" else (args.decode,)
    modes = [(fsync, decode) for fsync in fsyncs for decode in decodes]
    serve: dict[tuple[str, str], list[float]] = {mode: [] for mode in modes}
    until_exit: dict[tuple[str, str], list[float]] = {mode: [] for mode in modes}
    null: list[float] = []
    engine: list[float] = []
    with tempfile.TemporaryDirectory(prefix="chainmap-ingest-bench-") as tmp:
        workdir = Path(tmp)
        # Interleaved rounds: on a shared, noisy machine each ratio compares neighbours.
        for round_ in range(args.rounds):
            for mode in modes:
                store = workdir / f"store-{'-'.join(mode)}-{round_}"
                committed, exited = run_serve(store, payload, args.batch, requests, *mode)
                serve[mode].append(committed)
                until_exit[mode].append(exited)
            null.append(run_null(payload, args.batch, requests))
            engine.append(run_engine(workdir / f"engine-{round_}", payload, requests))
        median = statistics.median
        print(f"medians of {args.rounds} interleaved rounds:")
        for (fsync, decode), rates in serve.items():
            print(
                f"chainmap serve, WAL {fsync:5}, {decode:6} decode (committed): "
                f"{median(rates):12,.0f} spans/s"
            )
        print(f"(a) do-nothing endpoint, same clients:     {median(null):12,.0f} spans/s")
        print(f"(b) engine alone, INSERT ... SELECT:       {median(engine):12,.0f} spans/s")
        for mode, rates in serve.items():
            to_engine = [rate / base for rate, base in zip(rates, engine, strict=True)]
            exit_ratio = [rate / base for rate, base in zip(until_exit[mode], engine, strict=True)]
            print(
                f"ratio chainmap serve ({', '.join(mode)}) / (a): "
                f"{median(rates) / median(null):.2f}   / (b): {median(to_engine):.2f} "
                "(per round: "
                + ", ".join(f"{r:.2f}" for r in to_engine)
                + "; until exit: "
                + ", ".join(f"{r:.2f}" for r in exit_ratio)
                + ")   target >= 0.4"
            )
        if args.soak:
            best = max(median(rates) for rates in serve.values())
            soak(workdir / "store-soak", payload, args.batch, args.soak_load * best, args.soak)


if __name__ == "__main__":
    main()
