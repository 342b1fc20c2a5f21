"""Memory the chainmap distro adds to a service, against the stock ``opentelemetry-distro``.

    python benchmarks/distro_memory.py [--requests 5000] [--rounds 3]

Each round starts the same FastAPI service twice under ``opentelemetry-instrument`` with
uvicorn, as deployed: once with chainmap's distro and configurator (the packaged
``chains.example.yaml``, so every request enters chain B1 and is tagged), once with the
stock distro and configurator. Both export every span over OTLP/HTTP to the same sink in
this process, with the same batch settings, and take the same keep-alive load. After the
load and a flush, the resident set (VmRSS) and its peak (VmHWM) of each server are read
from ``/proc``. The result is the median over rounds of chainmap minus stock; the
original spec's budget is < 20 MB per service, the aim <= 5 MB. The service also reports
which heavy modules it imported, so a regression that drags the analysis stack (chDB,
clickhouse-connect, networkx, chainmap's analysis or server layers) into a tagged service
shows up by name.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "chdb",
    "clickhouse_connect",
    "networkx",
    "pyarrow",
    "psycopg",
    "chainmap_otel.analysis",
    "chainmap_otel.server",
    "chainmap_otel.storage",
)
SERVICE_APP = f"""
import sys
from fastapi import FastAPI

app = FastAPI()
HEAVY = {HEAVY!r}


@app.get("/api/v1/orders/{{order_id}}")
async def order(order_id: int) -> dict[str, int]:
    return {{"order": order_id}}


@app.get("/modules")
async def modules() -> list[str]:
    return sorted(m for m in HEAVY if m in sys.modules)
"""


class _Sink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and answers an empty success, like a Collector would."""

    received_bytes = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        _Sink.received_bytes += len(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def _serve(work: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    command = [
        str(bin_dir / "opentelemetry-instrument"),
        str(bin_dir / "uvicorn"),
        "bench_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=work, env=env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.get("/api/v1/orders/1").raise_for_status()
            return process, client
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the benchmark service did not start") from None
            time.sleep(0.2)


@dataclass(frozen=True)
class Sample:
    """One service after the load: resident set and its peak (MiB), heavy modules loaded."""

    rss_mb: float
    peak_mb: float
    heavy_modules: list[str]


def measure(work: Path, env: dict[str, str], requests: int) -> Sample:
    """RSS and peak RSS of one service after ``requests`` requests and a flush."""
    process, client = _serve(work, env)
    try:
        for i in range(requests):
            client.get(f"/api/v1/orders/{i}").raise_for_status()
        time.sleep(1.5)  # let the batch processor (200 ms delay) export the last spans
        modules = client.get("/modules").json()
        return Sample(_kib(process.pid, "VmRSS") / 1024, _kib(process.pid, "VmHWM") / 1024, modules)
    finally:
        client.close()
        process.terminate()
        process.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000, help="requests per service")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    work = Path(tempfile.mkdtemp(prefix="chainmap-distro-memory-"))
    (work / "bench_app.py").write_text(SERVICE_APP)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CHAINMAP_"))}
    base.update(
        OTEL_SERVICE_NAME="api-gateway",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{sink.server_port}/v1/traces",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    variants = {
        "chainmap": {
            **base,
            "OTEL_PYTHON_DISTRO": "chainmap",
            "OTEL_PYTHON_CONFIGURATOR": "chainmap",
            "CHAINMAP_CHAINS_FILE": str(ROOT / "chains.example.yaml"),
        },
        "stock": {
            **base,
            "OTEL_PYTHON_DISTRO": "distro",
            "OTEL_PYTHON_CONFIGURATOR": "configurator",
        },
    }
    results: dict[str, list[Sample]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name, env in variants.items():
                results[name].append(measure(work, env, args.requests))
    finally:
        sink.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    pairs = list(zip(results["chainmap"], results["stock"], strict=True))
    rss_added = statistics.median(c.rss_mb - s.rss_mb for c, s in pairs)
    peak_added = statistics.median(c.peak_mb - s.peak_mb for c, s in pairs)
    print(
        f"{args.requests} requests per service, {args.rounds} rounds, OTLP/HTTP to a local sink "
        f"({_Sink.received_bytes / 1e6:.1f} MB of spans received)"
    )
    for name, samples in results.items():
        rss = statistics.median(s.rss_mb for s in samples)
        peak = statistics.median(s.peak_mb for s in samples)
        print(
            f"  {name:<9} RSS {rss:7.1f} MB   peak {peak:7.1f} MB   "
            f"heavy modules: {json.dumps(samples[-1].heavy_modules)}"
        )
    ratio = statistics.median(c.rss_mb / s.rss_mb for c, s in pairs)
    print(
        f"  chainmap adds {rss_added:+.1f} MB RSS ({ratio:.3f}x stock), {peak_added:+.1f} MB "
        "peak; budget < 20 MB, aim <= 5 MB"
    )


if __name__ == "__main__":
    main()
