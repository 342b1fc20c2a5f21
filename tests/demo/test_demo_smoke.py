"""``chainmap demo`` end to end, as CI runs it: real services, PostgreSQL, chDB, analysis."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from chainmap_otel.demo.stack import serve_command
from chainmap_otel.tagging.active import example_catalog_path
from chainmap_otel.tagging.definitions import load_catalog
from tests.support.browser import chromium, needs_chromium, open_tab
from tests.support.processes import free_port
from tests.support.serve_process import wait_until_serving

BIN = Path(sys.executable).parent
SERVICES = {
    "api-gateway",
    "data-bridge",
    "ai-orchestration",
    "ai-market-model",
    "ai-risk-model",
    "ai-sentiment-model",
    "trading-engine",
    "database-service",
    "settlement-service",
}

pytestmark = pytest.mark.slow


def chainmap(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "chainmap"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def run() -> Iterator[tuple[dict[str, Any], str, Path]]:
    # Not under pytest's basetemp: a concurrent pytest session resets pytest-of-<user> to
    # 0700, which would lock the embedded PostgreSQL's own system user out of its data.
    root = Path(tempfile.mkdtemp(prefix="chainmap-demo-test-"))
    data_dir = root / "data"
    summary_file = root / "summary.json"
    result = chainmap(
        "demo",
        "--duration",
        "20",
        "--no-serve",
        "--data-dir",
        str(data_dir),
        "--summary-json",
        str(summary_file),
        timeout=240,
    )
    try:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        yield json.loads(summary_file.read_text()), result.stdout, data_dir
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_every_service_answered(run: tuple[dict[str, Any], str, Path]) -> None:
    summary, _, _ = run
    assert set(summary["services"]) == SERVICES
    assert all(entry["health"] == 200 for entry in summary["services"].values())
    assert summary["services_answered_after_load"] == dict.fromkeys(SERVICES, True)
    assert summary["load"]["failures"] == {}


def test_the_platforms_own_gateway_and_database_answer_the_chain_api_and_health(
    run: tuple[dict[str, Any], str, Path],
) -> None:
    """The spec's integrations: api-gateway relays the chain API from chainmap serve, and the
    gateway's and database-service's /health/detailed carry serve's chain_mapping block."""
    summary, _, _ = run
    found = summary["integration"]
    chains = found["gateway_chains"]
    assert chains["status"] == 200
    ids = [c["id"] for c in chains["body"]["chains"]]
    assert sorted(ids) == sorted(load_catalog(summary["chains_file"]).ids)
    for key in ("gateway_health", "database_health"):
        body = found[key]["body"]
        # serve's own block (the tests run serve without a registry: enabled is False there).
        assert found[key]["status"] == 200 and "error" not in body["chain_mapping"], body
        assert body["chain_mapping"]["monitoring_status"]["running"] is False
        assert body["overall_status"] in ("healthy", "degraded")
        assert body["chain_mapping"]["statistics"]["total_chains"] == len(ids)
        assert body["chain_mapping"]["source"] == summary["serve_url"].removesuffix("/v1/traces")
    assert found["database_health"]["body"]["database"] == {"status": "healthy"}


def test_chains_observed_with_their_expected_edges(run: tuple[dict[str, Any], str, Path]) -> None:
    summary, stdout, _ = run
    analysis = summary["analysis"]
    observed = analysis["chains_observed"]
    assert len(observed) >= 5, observed
    assert {"A1", "A2", "B1", "B3", "C1", "C2"} <= set(observed)
    for chain_id in ("A1", "A2", "B3"):
        chain = analysis["chains"][chain_id]
        assert chain["expected_edges"], chain_id
        assert chain["missing_expected_edges"] == [], (chain_id, chain["edges"])
    assert ["api-gateway", "ai-orchestration"] in analysis["chains"]["B1"]["edges"]
    assert "Chains observed: 6" in stdout


def test_websocket_chains_and_database_node(run: tuple[dict[str, Any], str, Path]) -> None:
    summary, _, _ = run
    chains = summary["analysis"]["chains"]
    assert ["user", "data-bridge"] in chains["C1"]["trace_edges"]
    assert ["data-bridge", "database-service"] in chains["C1"]["edges"]
    assert ["user", "trading-engine"] in chains["C2"]["trace_edges"]
    assert summary["load"]["websocket_messages"]["WebSocket /ws/market (C1)"] > 0
    nodes = {node["id"]: node for node in chains["A1"]["nodes"]}
    assert nodes["postgresql"]["type"] == "database"


def test_trade_execution_continues_through_the_order_events_queue(
    run: tuple[dict[str, Any], str, Path],
) -> None:
    """trading-engine publishes each filled order; settlement-service settles it in a trace of
    its own linked to the producer's: B3's topology pairs the two through the link and goes
    on to the consumer's services, and the report shows the hop with its queue wait."""
    summary, stdout, _ = run
    b3 = summary["analysis"]["chains"]["B3"]
    assert ["trading-engine", "settlement-service"] in b3["edges"], b3["trace_edges"]
    assert ["settlement-service", "database-service"] in b3["edges"], b3["trace_edges"]
    # The producer's own trace keeps its edge to the queue's node.
    assert ["trading-engine", "order-events"] in b3["trace_edges"]
    nodes = {node["id"]: node["type"] for node in b3["nodes"]}
    assert nodes["settlement-service"] == "service" and nodes["order-events"] == "messaging"
    [hop] = b3["queue_hops"]
    assert (hop["source"], hop["target"], hop["connection_type"]) == (
        "trading-engine",
        "settlement-service",
        "messaging_system",
    )
    assert hop["calls"] > 0
    assert 0 < hop["p50_ms"] < 10_000  # the consumer polls every 0.2 s
    assert "continues through a queue: trading-engine -> settlement-service" in stdout
    # B3's critical path runs through the queue into settlement: the wait is a section.
    path = summary["analysis"]["critical_paths"]["B3"]
    assert path["through_queues"]["instances"] > 0
    assert path["through_queues"]["p50_ms"] >= hop["p50_ms"] * 0.5
    operations = {(s["service"], s.get("name")) for s in path["all"]["operations"]}
    assert ("order-events (queue)", "queue wait") in operations, operations
    assert any(service == "settlement-service" for service, _ in operations), operations
    assert "end to end through the queue" in stdout
    # The consumer's traces are not counted as B3 instances of their own.
    health = {entry["chain_id"]: entry for entry in summary["analysis"]["health"]}
    assert health["B3"]["traces"] > 0


def test_injected_errors_are_attributed_to_trade_execution(
    run: tuple[dict[str, Any], str, Path],
) -> None:
    summary, _, _ = run
    health = {entry["chain_id"]: entry for entry in summary["analysis"]["health"]}
    assert health["B3"]["errors"] > 0
    for chain_id in ("A1", "A2", "C1", "C2"):
        assert health[chain_id]["errors"] == 0, health[chain_id]
    # The gateway relays rejected direct orders as 502: the caller's chain B1 sees them too.
    assert set(summary["load"]["server_errors"]) <= {"orders (B1>B3)"}


def test_slow_dependency_dominates_the_critical_path(run: tuple[dict[str, Any], str, Path]) -> None:
    summary, stdout, _ = run
    analysis = summary["analysis"]
    decision = analysis["critical_paths"]["A2"]["all"]["services"]
    assert decision[0]["service"] == "ai-risk-model", decision
    slowest = analysis["critical_path"]
    assert slowest["chain_id"] in ("B1", "A2")
    assert "ai-risk-model" in [s["service"] for s in slowest["all"]["services"][:3]]
    assert "Critical path of the slowest request chain by p95" in stdout


def test_impact_of_the_failing_service(run: tuple[dict[str, Any], str, Path]) -> None:
    summary, stdout, _ = run
    assert "chains that break when trading-engine fails" in stdout
    assert summary["analysis"]["impact"]


def test_no_process_left_behind(run: tuple[dict[str, Any], str, Path]) -> None:
    summary, _, data_dir = run
    pids = [*summary["started_pids"], summary["postgres_pid"]]
    assert len(pids) == len(SERVICES) + 2
    alive = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append((pid, process.cmdline()))
        except psutil.NoSuchProcess:
            pass
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if str(data_dir) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            alive.append((process.info["pid"], process.info["cmdline"]))
    assert alive == []


@needs_chromium
def test_a_newcomer_finds_a_slow_failing_trace_of_the_demo_in_two_clicks(
    run: tuple[dict[str, Any], str, Path], tmp_path: Path
) -> None:
    """What the demo leaves running (``chainmap serve`` on the run's store), in a browser:
    chain list -> the failing chain's page (click 1) -> its slowest failing trace (click 2),
    whose waterfall shows every span with the failed ones marked."""
    _, _, data_dir = run
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            serve_command(f"chdb://{data_dir / 'clickhouse'}", port, example_catalog_path()),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CHAINMAP_DATA_DIR": str(data_dir)},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(serve, f"{url}/v1/traces", log)
        slowest_failing = httpx.get(
            f"{url}/api/v1/traces",
            # The chain page's second list: traces where the chain itself failed (its entry
            # span), slowest first; a trace where only a deeper span failed is not in it.
            params={"chain": "B3", "chain_status": "error", "order": "duration", "since": "1h"},
            timeout=60,
        ).json()["traces"][0]
        with chromium() as browser, open_tab(browser, url, tmp_path) as tab:
            tab.open("/")
            tab.page.click('a[href="/chains/B3"]')  # click 1: the chain with failures
            tab.wait("[data-topology][data-drawn]")
            tab.lists_loaded()
            failing = tab.page.locator(".trace-list").nth(1)
            first = failing.locator("a.trace-link").first
            assert first.get_attribute("href") == f"/traces/{slowest_failing['trace_id']}"
            first.click()  # click 2: its slowest failing trace
            tab.wait("#trace-view[data-loaded] .wf-row")
            assert tab.page.url.endswith(f"/traces/{slowest_failing['trace_id']}")
            trace = httpx.get(
                f"{url}/api/v1/traces/{slowest_failing['trace_id']}", timeout=60
            ).json()
            assert len(trace["spans"]) == slowest_failing["span_count"]
            assert tab.page.locator(".wf-row.failed").count() >= 1
            tab.shot("demo-two-clicks.png")
            # The demo's FastAPI services record ASGI send/receive spans: folded at first,
            # every span once the toggle shows them.
            folded = [s["span_id"] for s in trace["spans"] if not s["asgi_internal"]]
            assert len(folded) < len(trace["spans"])
            assert sorted(tab.collect_rows()["ids"]) == sorted(folded)
            tab.page.check(".asgi-toggle input")
            drawn = tab.collect_rows()["ids"]
            assert sorted(drawn) == sorted(s["span_id"] for s in trace["spans"])
            assert not tab.problems, tab.problems
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=120)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = chainmap("demo", "--no-serve", "--port", str(port), timeout=60)
    assert result.returncode == 1
    assert f"port {port} is in use" in result.stderr
    assert "Traceback" not in result.stderr
