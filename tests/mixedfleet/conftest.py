"""A mixed fleet of real processes sending to one real ``chainmap serve``.

py-gateway and py-trading are FastAPI services under ``opentelemetry-instrument`` with the
chainmap distro; between them, Express services instrumented with the official OpenTelemetry
JS SDK (lines 1.x, 2.x and 3.x; exporters otlp-proto, otlp-http JSON and otlp-grpc), each
dumping the spans its exporter is handed. Each Node service has a tag of its own, with route
templates and chains of its own, so the tests' numbers never mix.

The whole package shares the fleet (``chainmap serve`` alone takes ~20 s to start here).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.node_service import NodeConfig, NodeService, missing_node
from tests.support.processes import Service
from tests.support.serve_process import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parent / "apps"

# (c) every line x encoding; (a) VIA: Python -> Node -> Python; (b) ENTRY: chains entered at
# Node, under the old, stable and both HTTP conventions (2.x and 3.x emit the same, stable only).
CONFIGS = [
    NodeConfig("sdk1-old-proto", 1, "proto"),
    NodeConfig("sdk1-stable-json", 1, "json", semconv="http"),
    NodeConfig("sdk1-dup-grpc", 1, "grpc", semconv="http/dup"),
    NodeConfig("sdk2-proto", 2, "proto"),
    NodeConfig("sdk2-json", 2, "json"),
    NodeConfig("sdk2-grpc-bsp", 2, "grpc", baggage_span_processor=True),
    NodeConfig("sdk3-proto", 3, "proto"),
    NodeConfig("sdk3-json", 3, "json"),
    NodeConfig("sdk3-grpc-bsp", 3, "grpc", baggage_span_processor=True),
]
BY_TAG = {c.tag: c for c in CONFIGS}
VIA = ["sdk2-proto", "sdk2-grpc-bsp", "sdk3-proto", "sdk3-grpc-bsp"]
ENTRY = ["sdk1-old-proto", "sdk1-stable-json", "sdk1-dup-grpc", "sdk2-json"]


def _chain(chain_id: str, name: str, rule: dict[str, Any]) -> dict[str, Any]:
    return {"id": chain_id, "name": name, "category": "api", "entry": [rule]}


def chains_document() -> dict[str, Any]:
    """The fleet's chains: for a VIA tag P1.<tag> at py-gateway and T1.<tag> at py-trading; for
    an ENTRY tag chains entered at its Node service by route, path, method and route /ping,
    and T1.<tag> at py-trading below them."""
    chains = []
    for tag in VIA + ENTRY:
        node = {"service": BY_TAG[tag].service, "kind": "server"}
        if tag in VIA:
            chains.append(
                _chain(
                    f"P1.{tag}",
                    "Gateway quote",
                    {"service": "py-gateway", "kind": "server", "route": f"/gw/{tag}/*"},
                )
            )
        else:
            chains += [
                _chain(f"route.{tag}", "Quote by route", {**node, "route": "/quotes/:symbol"}),
                _chain(f"path.{tag}", "Quote by path", {**node, "path": "/quotes/AAPL"}),
                _chain(f"method.{tag}", "Cancel by method", {**node, "method": "DELETE"}),
                _chain(f"ping.{tag}", "Ping by route", {**node, "route": "/ping"}),
            ]
        chains.append(
            _chain(
                f"T1.{tag}",
                "Trade",
                {"service": "py-trading", "kind": "server", "route": f"/trade/{tag}/*"},
            )
        )
    return {"version": 1, "chains": chains}


class MixedFleet:
    """The running fleet and the serve API the tests read it through."""

    def __init__(
        self,
        serve: ServeProcess,
        store_url: str,
        gateway: Service,
        trading: Service,
        nodes: dict[str, NodeService],
    ) -> None:
        self.serve = serve
        self.store_url = store_url
        self.api = f"http://127.0.0.1:{serve.http_port}"
        self.gateway = gateway
        self.trading = trading
        self.nodes = nodes

    def node(self, tag: str) -> NodeService:
        if tag not in self.nodes:
            pytest.skip(
                missing_node(BY_TAG[tag].line)
                or f"the Node service {tag} did not start in this fleet: see its log above"
            )
        return self.nodes[tag]

    def stored(self, trace_id: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.api}/api/v1/traces/{trace_id}", timeout=60)
        if response.status_code != 200:
            return []
        spans: list[dict[str, Any]] = response.json()["spans"]
        return spans

    def wait_stored(
        self, trace_id: str, ready: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """The stored spans of ``trace_id`` once ``ready`` holds for them."""
        deadline = time.monotonic() + timeout
        spans: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            spans = self.stored(trace_id)
            if spans and ready(spans):
                return spans
            time.sleep(0.2)
        raise AssertionError(
            f"trace {trace_id} not complete in the store within {timeout}s; stored: "
            + json.dumps([(s["service"], s["kind"], s["name"]) for s in spans])
            + f"\nserve log:\n{self.serve.log()[-3000:]}"
        )

    def wait_node_trace(
        self,
        tag: str,
        trace_id: str,
        also: frozenset[tuple[str, str]] = frozenset(),
        timeout: float = 60.0,
    ) -> list[dict[str, Any]]:
        """Stored spans once every span the Node service exported (its server span included)
        and a span of each (service, kind) of ``also`` are stored."""
        node = self.nodes[tag]

        def ready(spans: list[dict[str, Any]]) -> bool:
            dumped = node.dumped(trace_id)
            has_server = any(s["kind"] == 1 for s in dumped)
            stored = {s["span_id"] for s in spans}
            present = {(s["service"], s["kind"]) for s in spans}
            return has_server and {s["spanId"] for s in dumped} <= stored and also <= present

        return self.wait_stored(trace_id, ready, timeout)

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.api + path, params=params, timeout=120)
        assert response.status_code == 200, f"GET {path} {params}: {response.text}"
        return response.json()


class Surfaces:
    """What the serve API answers about chains, each question asked once.

    Make one after a module's traffic is stored: the answers are kept, since each analysis
    query costs seconds on a loaded machine.
    """

    def __init__(self, fleet: MixedFleet) -> None:
        self.fleet = fleet
        self._health: dict[str, dict[str, Any]] = {}
        self._search: dict[str, list[dict[str, Any]]] = {}
        self._topology: dict[str, dict[str, Any]] = {}

    def health(self, chain: str) -> dict[str, Any]:
        if not self._health:
            every = self.fleet.get("/api/v1/chains/health")["chains"]
            self._health = {c["chain_id"]: c for c in every}
        return self._health[chain]

    def search(self, chain: str) -> list[dict[str, Any]]:
        if chain not in self._search:
            found = self.fleet.get("/api/v1/traces", chain=chain, limit=1000)
            self._search[chain] = found["traces"]
        return self._search[chain]

    def topology(self, chain: str) -> dict[str, Any]:
        if chain not in self._topology:
            self._topology[chain] = self.fleet.get(f"/api/v1/chains/{chain}/topology")
        return self._topology[chain]

    def prefetch(self, chains: list[str]) -> Surfaces:
        """Asks about ``chains`` four at a time (serve's default analysis pool)."""
        questions: list[Callable[[], object]] = [lambda: self.health(chains[0])] if chains else []
        for chain in chains:
            questions += [partial(self.search, chain), partial(self.topology, chain)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for answered in [pool.submit(question) for question in questions]:
                answered.result()
        return self

    def counts(self, chain: str) -> dict[str, int]:
        """A chain's trace count on each surface: health, trace search and topology."""
        return {
            "health": self.health(chain)["traces"],
            "search": len(self.search(chain)),
            "topology": entry_calls(self.topology(chain)),
        }


def entry_calls(topology: dict[str, Any]) -> int:
    """Traces in a chain's topology: the calls of its entry edges (from ``user`` or a caller)."""
    callers = {n["id"] for n in topology["nodes"] if n["type"] in ("user", "caller")}
    return sum(e["calls"] for e in topology["edges"] if e["source"] in callers)


def edges(topology: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["source"], e["target"]) for e in topology["edges"]}


@pytest.fixture(scope="package")
def mixed_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MixedFleet]:
    for line in (1, 2):
        reason = missing_node(line)
        if reason:
            pytest.skip(reason)
    logs = tmp_path_factory.mktemp("mixedfleet")
    chains_file = logs / "chains.yaml"
    chains_file.write_text(yaml.safe_dump(chains_document(), sort_keys=False))
    store_url = f"chdb://{logs / 'store'}"
    serve = ServeProcess(store_url, logs / "serve.log", {"CHAINMAP_CHAINS_FILE": str(chains_file)})
    started: list[Service | NodeService] = []
    try:
        python_env = {
            "OTEL_PYTHON_DISTRO": "chainmap",
            "OTEL_PYTHON_CONFIGURATOR": "chainmap",
            "CHAINMAP_CHAINS_FILE": str(chains_file),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{serve.http_port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "PYTHONPATH": str(ROOT),
        }
        tags = {tag: "" for tag in VIA + ENTRY}
        trading = Service(
            "py-trading", "pyfleet:app", {**python_env, "NODE_PEERS": json.dumps(tags)}, APPS, logs
        )
        started.append(trading)
        nodes: dict[str, NodeService] = {}
        for config in CONFIGS:
            if missing_node(config.line) is None:
                nodes[config.tag] = NodeService(
                    config,
                    f"http://127.0.0.1:{serve.http_port}",
                    f"http://{serve.grpc_address}",
                    trading.url,
                    logs,
                )
                started.append(nodes[config.tag])
        peers = {tag: node.url for tag, node in nodes.items()}
        gateway = Service(
            "py-gateway", "pyfleet:app", {**python_env, "NODE_PEERS": json.dumps(peers)}, APPS, logs
        )
        started.append(gateway)
        serve.wait_ready()
        for process in started:
            process.wait_ready()
        yield MixedFleet(serve, store_url, gateway, trading, nodes)
    finally:
        for process in started:
            process.stop()
        serve.terminate()
