"""Real FastAPI services under ``opentelemetry-instrument`` with the chainmap distro.

Three services call each other over HTTP (httpx and requests) and export OTLP/HTTP
to a receiver inside the test; no service contains chainmap code.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.otlp_receiver import Receiver
from tests.support.processes import Service

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parent / "apps"

pytestmark = pytest.mark.slow


def launcher_env(receiver: Receiver, chains_file: Path) -> dict[str, str]:
    for name in [k for k in os.environ if k.startswith(("OTEL_", "CHAINMAP_"))]:
        os.environ.pop(name)
    return {
        "OTEL_PYTHON_DISTRO": "chainmap",
        "OTEL_PYTHON_CONFIGURATOR": "chainmap",
        "CHAINMAP_CHAINS_FILE": str(chains_file),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fleet(
    receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Service]]:
    logs = tmp_path_factory.mktemp("fleet-logs")
    env = launcher_env(receiver, ROOT / "chains.example.yaml")
    engine = Service("trading-engine", "fleet:app", env, APPS, logs)
    orchestrator = Service(
        "ai-orchestration", "fleet:app", {**env, "ORCHESTRATOR_PEER": engine.url}, APPS, logs
    )
    gateway = Service(
        "api-gateway", "fleet:app", {**env, "GATEWAY_PEER": orchestrator.url}, APPS, logs
    )
    broken_file = logs / "broken.yaml"
    broken_file.write_text("chains:\n  - id: A1\n    name: [oops\n")
    broken = Service(
        "api-gateway-broken",
        "fleet:app",
        {**env, "CHAINMAP_CHAINS_FILE": str(broken_file)},
        APPS,
        logs,
    )
    services = {s.name: s for s in (engine, orchestrator, gateway, broken)}
    try:
        for service in services.values():
            service.wait_ready()
        yield services
    finally:
        for service in services.values():
            service.stop()


def spans_of(
    receiver: Receiver, trace_id: str, count: int, servers: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The trace's spans once ``count`` of them and the server span of each of ``servers``
    arrived (a server span ends after its response, so it may come after the others)."""

    def arrived(spans: list[dict[str, Any]]) -> bool:
        mine = [s for s in spans if s["trace_id"] == trace_id]
        present = {s["service"] for s in mine if s["kind"] == "server"}
        return len(mine) >= count and set(servers) <= present

    receiver.wait_for(arrived)
    return receiver.trace(trace_id)


def test_stock_distro_is_installed_alongside() -> None:
    # The fleet below runs with the stock opentelemetry-distro importable too: chainmap's
    # distro and configurator must win through OTEL_PYTHON_DISTRO/CONFIGURATOR.
    assert importlib.metadata.version("opentelemetry-distro")


def test_nested_chain_across_three_services(fleet: dict[str, Service], receiver: Receiver) -> None:
    response = httpx.get(fleet["api-gateway"].url + "/api/v1/trading/decision", timeout=20)
    assert response.status_code == 200
    trace_id = response.headers["X-Trace-ID"]
    assert len(trace_id) == 32 and int(trace_id, 16)
    assert response.headers["X-Chain-ID"] == "B1"
    # gateway server + client (+ asgi send/receive), orchestrator server + client, engine server.
    spans = spans_of(receiver, trace_id, 7, ("api-gateway", "ai-orchestration", "trading-engine"))
    services = {s["service"] for s in spans}
    assert services == {"api-gateway", "ai-orchestration", "trading-engine"}
    expected = {"api-gateway": "B1", "ai-orchestration": "B1,A2", "trading-engine": "B1,A2,B3"}
    for span in spans:
        attrs = span["attributes"]
        assert attrs.get("chain.ids") == expected[span["service"]], span
        assert attrs["chain.id"] == expected[span["service"]].split(",")[-1]
    entries = {
        s["service"]: s["attributes"]["chain.entry_ids"]
        for s in spans
        if s["attributes"].get("chain.entry")
    }
    assert entries == {"api-gateway": "B1", "ai-orchestration": "A2", "trading-engine": "B3"}
    engine_server = next(
        s for s in spans if s["service"] == "trading-engine" and s["kind"] == "server"
    )
    assert engine_server["attributes"]["chain.name"] == "Trade execution"
    assert engine_server["attributes"]["chain.category"] == "trading"


def test_request_in_no_chain_is_untagged(fleet: dict[str, Service], receiver: Receiver) -> None:
    response = httpx.get(fleet["api-gateway"].url + "/internal/metrics", timeout=10)
    assert response.status_code == 200
    assert "X-Chain-ID" not in response.headers
    spans = spans_of(receiver, response.headers["X-Trace-ID"], 1, ("api-gateway",))
    assert all(not any(k.startswith("chain.") for k in s["attributes"]) for s in spans)


@pytest.mark.parametrize(
    "baggage",
    [
        "chain.ids=EVIL%2CB3",
        "chain.ids=" + "X" * 100_000,
        "chain.ids=%ff%fe",
        "garbage;;;===,,,",
    ],
    ids=["unknown-ids", "100KB", "invalid-encoding", "garbage"],
)
def test_hostile_baggage_is_ignored_and_the_request_succeeds(
    fleet: dict[str, Service], receiver: Receiver, baggage: str
) -> None:
    response = httpx.post(
        fleet["trading-engine"].url + "/orders", json={}, headers={"baggage": baggage}, timeout=10
    )
    assert response.status_code == 200
    spans = spans_of(receiver, response.headers["X-Trace-ID"], 1, ("trading-engine",))
    server = next(s for s in spans if s["kind"] == "server")
    # Only the engine's own entry rule applies: nothing from the hostile header.
    assert server["attributes"]["chain.ids"] == "B3"


def test_service_with_a_broken_chains_file_still_serves(
    fleet: dict[str, Service], receiver: Receiver
) -> None:
    broken = fleet["api-gateway-broken"]
    response = httpx.get(broken.url + "/api/v1/ping", timeout=10)
    assert response.status_code == 200 and response.json() == {"pong": "api-gateway-broken"}
    assert "X-Chain-ID" not in response.headers
    log = broken.log()
    assert log.count("chains file") == 1, log
    assert "broken.yaml" in log and "not valid YAML" in log
    spans = spans_of(receiver, response.headers["X-Trace-ID"], 1, ("api-gateway-broken",))
    assert all("chain.id" not in s["attributes"] for s in spans)
