"""The chain API and chain health inside a service's own app, read from a real ``chainmap
serve`` app on chDB: serve's answers byte for byte, no span of its own, and a clear 503 or a
degraded block (never an exception) when serve is down."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.instrumentation.urllib import URLLibInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.integration import ChainMappingHealth, install_chain_api, serve_url
from tests.server import chain_traffic
from tests.support.stores import fresh_store


@pytest.fixture(scope="module")
def serve(chdb_store: TraceStore, chdb_path: Path) -> Iterator[str]:
    """A chainmap serve app (chain API, health) on chain traffic; its base URL."""

    store = fresh_store(chdb_path)
    chain_traffic.seed(store)
    try:
        with chain_traffic.serving(create_app(store, chains=chain_traffic.catalog())) as client:
            yield str(client.base_url).rstrip("/")
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def service(url: str) -> FastAPI:
    """A service's own app with the integration, as the demo's api-gateway has it."""
    app = FastAPI()
    install_chain_api(app, url)
    chain_mapping = ChainMappingHealth(url, ttl=0)

    @app.get("/health/detailed")
    def detailed() -> dict[str, object]:
        return {"status": "healthy", "chain_mapping": chain_mapping()}

    return app


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_services_chain_api_is_serves_byte_for_byte_and_makes_no_span(serve: str) -> None:
    provider = TracerProvider()
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = URLLibInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with chain_traffic.serving(service(serve)) as client:
            for path, params in [
                (
                    "/api/v1/chains",
                    {"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"},
                ),
                ("/api/v1/chains/B3/topology", {"since": "2h"}),
                ("/api/v1/chains/NOPE", {}),
                ("/api/v1/chains/B3/operations", {"limit": "0"}),
                ("/health/chains", {"chain": "B3", "since": "2026-01-01T00:00:00Z"}),
            ]:
                mine = client.get(path, params=params)
                theirs = httpx.get(serve + path, params=params, timeout=60)
                assert (mine.status_code, mine.headers["content-type"]) == (
                    theirs.status_code,
                    theirs.headers["content-type"],
                ), path
                if path.endswith("/topology") or path == "/health/chains":
                    continue  # their windows end at "now", read a moment apart
                assert mine.content == theirs.content, path
            assert client.get("/api/v1/chains/NOPE").status_code == 404
            detailed = client.get("/health/detailed").json()["chain_mapping"]
    finally:
        instrumentor.uninstrument()
    assert spans.get_finished_spans() == ()  # the relay's own HTTP calls are not traced
    theirs = httpx.get(serve + "/health/detailed", timeout=60).json()
    assert detailed == {
        **theirs["chain_mapping"],
        "overall_status": theirs["overall_status"],
        "source": serve,
    }


def test_serve_down_is_a_503_naming_it_and_a_degraded_block() -> None:
    gone = f"http://127.0.0.1:{closed_port()}"
    with chain_traffic.serving(service(gone)) as client:
        answer = client.get("/api/v1/chains")
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        detail = answer.json()["detail"]
        assert detail.startswith(f"chainmap serve at {gone} did not answer (")
        assert detail.endswith("start it, or set CHAINMAP_SERVE_URL to where it runs")
        block = client.get("/health/detailed").json()["chain_mapping"]
    assert block["enabled"] is False and block["overall_status"] == "degraded"
    assert block["error"] == detail and block["source"] == gone


def test_health_is_read_at_most_once_per_ttl(serve: str) -> None:
    cached = ChainMappingHealth(serve, ttl=3600)
    first = cached()
    cached.url = f"http://127.0.0.1:{closed_port()}"  # serve "gone": the cached block stays
    assert cached() == first and first["overall_status"] in ("healthy", "degraded")
    fresh = ChainMappingHealth(cached.url, ttl=0)
    assert fresh()["overall_status"] == "degraded"


def test_where_serve_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CHAINMAP_SERVE_URL",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    assert serve_url() == "http://127.0.0.1:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert serve_url() == "http://collector:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://serve:4318/v1/traces")
    assert serve_url() == "https://serve:4318"
    monkeypatch.setenv("CHAINMAP_SERVE_URL", "http://chainmap:8080")
    assert serve_url() == "http://chainmap:8080"
    assert serve_url("http://explicit:1") == "http://explicit:1"
    monkeypatch.setenv("CHAINMAP_SERVE_URL", "chainmap:8080")  # not a URL: the next source
    assert serve_url() == "https://serve:4318"
