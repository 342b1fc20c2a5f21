"""A real ``chainmap serve`` with the registry on (embedded PostgreSQL), the monitor on short
intervals and two webhook receivers of the test's own: one that answers, one that hangs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from chainmap_otel.tagging.definitions import load_catalog
from chainmap_otel.tagging.processor import ChainSpanProcessor
from tests.support.processes import free_port

BIN = Path(sys.executable).parent
TOKEN = "test-token-123"
CHAINS = """
version: 1
chains:
  - id: CK
    name: Checkout
    category: api
    criticality: high
    entry:
      - service: checkout
        kind: server
        route: /checkout*
    slo:
      error_rate: 0.05
      window: 1d
  - id: PAY
    name: Payment
    category: trading
    criticality: critical
    entry:
      - service: payments
        kind: server
        route: /pay
    slo:
      error_rate: 0.05
      window: 1d
"""


class WebhookReceiver:
    """Records Alertmanager-format POSTs; ``hang`` makes every request wait (a dead receiver).
    ``port`` 0 takes a free one; another binds that port (a receiver coming back up)."""

    def __init__(self, hang: bool = False, port: int = 0) -> None:
        self.payloads: list[dict[str, Any]] = []
        #: (time.monotonic() on arrival, payload) of every POST.
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.release = threading.Event()
        received = self.payloads
        arrivals = self.arrivals
        release = self.release

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                payload = json.loads(body)
                arrivals.append((time.monotonic(), payload))
                received.append(payload)
                if hang:
                    release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_chain(self, chain_id: str, status: str) -> list[dict[str, Any]]:
        return [
            p
            for p in list(self.payloads)
            if p["groupLabels"].get("chain_id") == chain_id and p["status"] == status
        ]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class OpsServe:
    """``chainmap serve`` as a user runs it, restartable on the same data directory."""

    def __init__(self, root: Path, webhooks: list[str]) -> None:
        self.root = root
        self.chains_file = root / "chains.yaml"
        self.chains_file.write_text(CHAINS)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINMAP_")}
        self.env.update(
            {
                "CHAINMAP_DATA_DIR": str(root / "data"),
                "CHAINMAP_API_TOKEN": TOKEN,
                "CHAINMAP_MONITOR_INTERVAL": "0.5s",
                "CHAINMAP_ALERT_FOR": "1s",
                "CHAINMAP_ALERT_WEBHOOK_URLS": ",".join(webhooks),
                "CHAINMAP_ALERT_WEBHOOK_TIMEOUT": "1s",
                "CHAINMAP_SERVE_GRPC_PORT": "0",
                # /metrics is compared with the API: each scrape waits for fresh series.
                "CHAINMAP_METRICS_FRESH_WAIT": "10s",
            }
        )
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / f"serve-{self.starts}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self) -> None:
        self.starts += 1
        command = [
            str(BIN / "chainmap"),
            "serve",
            "--store",
            f"chdb://{self.root / 'data' / 'clickhouse'}",
            "--http-port",
            str(self.port),
            "--chains",
            str(self.chains_file),
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._ready, f"chainmap serve with its registry ready:\n{self.log()}", 120)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"chainmap serve exited early:\n{self.log()}")
        try:
            body = httpx.get(self.url + "/health/detailed", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        mapping = body.get("chain_mapping", {})
        return bool(
            mapping.get("registry", {}).get("status") == "ready"
            and mapping.get("monitoring_status", {}).get("running")
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"chainmap serve ignored SIGTERM:\n{self.log()}") from None
        assert code == 0, self.log()

    def restart(self) -> None:
        self.stop()
        self.start()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def detailed(self) -> dict[str, Any]:
        body: dict[str, Any] = self.get("/health/detailed").json()
        return body

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "chainmap"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


class Traffic:
    """checkout -> payments traces made by the real SDK and the chain processor, sent as OTLP."""

    def __init__(self, serve: OpsServe) -> None:
        catalog = load_catalog(serve.chains_file)
        self.memory = InMemorySpanExporter()
        self.providers = {}
        for service in ("checkout", "payments"):
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(ChainSpanProcessor(catalog))
            provider.add_span_processor(SimpleSpanProcessor(self.memory))
            self.providers[service] = provider
        self.exporter = OTLPSpanExporter(endpoint=serve.url + "/v1/traces", timeout=30)

    def traces(self, count: int, failing: bool) -> list[ReadableSpan]:
        checkout = self.providers["checkout"].get_tracer("test")
        payments = self.providers["payments"].get_tracer("test")
        for _ in range(count):
            with checkout.start_as_current_span(
                "POST /checkout", kind=SpanKind.SERVER, attributes={"http.route": "/checkout"}
            ) as entry:
                with checkout.start_as_current_span("POST", kind=SpanKind.CLIENT) as client:
                    with payments.start_as_current_span(
                        "POST /pay",
                        context=set_span_in_context(client),
                        kind=SpanKind.SERVER,
                        attributes={"http.route": "/pay"},
                    ) as server:
                        if failing:
                            server.set_status(Status(StatusCode.ERROR, "card declined"))
                    if failing:
                        client.set_status(Status(StatusCode.ERROR))
                if failing:
                    entry.set_status(Status(StatusCode.ERROR))
        spans = list(self.memory.get_finished_spans())
        self.memory.clear()
        return spans

    def send(self, count: int, failing: bool, per_export: int = 50) -> list[SpanExportResult]:
        spans = self.traces(count, failing)
        step = per_export * 3
        return [self.exporter.export(spans[i : i + step]) for i in range(0, len(spans), step)]


@pytest.fixture(scope="module")
def webhooks() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    fast, hanging = WebhookReceiver(), WebhookReceiver(hang=True)
    yield fast, hanging
    fast.close()
    hanging.close()


@pytest.fixture(scope="module")
def ops_serve(webhooks: tuple[WebhookReceiver, WebhookReceiver]) -> Iterator[OpsServe]:
    # Not under pytest's tmp_path: as root the embedded PostgreSQL runs as its own user,
    # which must be able to reach its directory (pytest's base temp dir is private).
    root = Path(tempfile.mkdtemp(prefix="chainmap-ops-test-"))
    serve = OpsServe(root, [w.url for w in webhooks])
    try:
        serve.start()
        yield serve
    finally:
        serve.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def traffic(ops_serve: OpsServe) -> Traffic:
    return Traffic(ops_serve)


def browser_dom(url: str, profile: Path) -> str | None:
    """The DOM of ``url`` after its scripts ran, in headless Chromium (None if not installed)."""
    browser = next(
        (
            shutil.which(n)
            for n in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(n)
        ),
        None,
    )
    if browser is None:
        return None
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
