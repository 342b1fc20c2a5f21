"""Scale-out as gateway.yaml and backend.yaml do it, with real Collectors.

A gateway Collector tags entry spans (generated ``transform/chains``) and routes with the
``loadbalancing`` exporter (``routing_key: traceID``, static resolver) to two backend
Collectors; each backend names itself in a resource attribute and forwards to one
``chainmap serve``. The same spans also go through one Collector (the same ``transform/chains``)
into a second serve. Every trace arrives whole at exactly one backend, chainmap's per-chain
requests and errors over both equal what was sent, and what serve answers about the two
backends' data (health, topology of all traffic and of each chain, the chain and
service-graph series of ``/metrics``) equals its answers about the single Collector's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.sdk.trace import ReadableSpan

from chainmap_otel.collector.pipeline import processor_config
from chainmap_otel.tagging.definitions import load_catalog
from tests.collector.test_connectors import CHAINS, WORKLOAD, scrape, total, wait_for, workload
from tests.collector.test_delivery import send
from tests.support.collector import CollectorProcess
from tests.support.processes import free_port
from tests.support.serve_process import ServeProcess, query

pytestmark = pytest.mark.slow

BACKENDS = ("backend-a", "backend-b")


def backend_config(name: str, port: int, serve_url: str) -> dict[str, Any]:
    naming = f'set(resource.attributes["collector.backend"], "{name}")'
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": {"transform/backend": {"trace_statements": [naming]}},
        "exporters": {"otlphttp": {"traces_endpoint": serve_url}},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["transform/backend"],
                    "exporters": ["otlphttp"],
                }
            }
        },
    }


def gateway_config(port: int, backend_ports: list[int]) -> dict[str, Any]:
    transform: dict[str, Any] = yaml.safe_load(processor_config(load_catalog(CHAINS)))[
        "processors"
    ]["transform/chains"]
    gateway: dict[str, Any] = yaml.safe_load(
        (CHAINS.parent / "collector-config" / "gateway.yaml").read_text(encoding="utf-8")
    )
    balancing = gateway["exporters"]["loadbalancing"]
    balancing["resolver"] = {"static": {"hostnames": [f"127.0.0.1:{p}" for p in backend_ports]}}
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": {"transform/chains": transform},
        "exporters": {"loadbalancing": balancing},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["transform/chains"],
                    "exporters": ["loadbalancing"],
                }
            }
        },
    }


def single_config(port: int, serve_url: str) -> dict[str, Any]:
    """One Collector: ``otlp -> transform/chains -> otlphttp -> serve``."""
    gateway = gateway_config(port, [])
    return {
        "receivers": gateway["receivers"],
        "processors": gateway["processors"],
        "exporters": {"otlphttp": {"traces_endpoint": serve_url}},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["transform/chains"],
                    "exporters": ["otlphttp"],
                }
            }
        },
    }


def instant(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


#: The series of /metrics that describe the stored traces (not serve's own counters).
STORED_SERIES = ("chainmap_chain_", "traces_service_graph_")


@dataclass(frozen=True)
class Answers:
    """What one serve answers about the workload, over one fixed window."""

    health: dict[str, Any]
    topology: dict[str | None, dict[str, Any]]  # chain id (None: all traffic) -> JSON
    series: list[tuple[str, dict[str, str], float]]

    @classmethod
    def ask(cls, serve: ServeProcess, since: str, until: str) -> Answers:
        api = f"http://127.0.0.1:{serve.http_port}"
        window = {"since": since, "until": until}

        def get(path: str) -> Callable[[], dict[str, Any]]:
            def answer() -> dict[str, Any]:
                response = httpx.get(api + path, params=window, timeout=300)
                assert response.status_code == 200, f"GET {path}: {response.text}"
                found: dict[str, Any] = response.json()
                return found

            return answer

        chains: list[str | None] = [None, *sorted({t.chain for t in WORKLOAD})]
        paths = {
            c: f"/api/v1/chains/{c}/topology" if c else "/api/v1/chains/topology" for c in chains
        }
        with ThreadPoolExecutor(max_workers=2) as pool:
            health = pool.submit(get("/api/v1/chains/health"))
            topologies = {c: pool.submit(get(path)) for c, path in paths.items()}
            series = [
                sample for sample in scrape(api + "/metrics") if sample[0].startswith(STORED_SERIES)
            ]
            return cls(health.result(), {c: f.result() for c, f in topologies.items()}, series)


@dataclass(frozen=True)
class Delivered:
    spans: list[ReadableSpan]
    by_trace: dict[str, list[str]]  # trace id -> the backends its spans came through
    scaled: Answers  # through the gateway and the two backends
    single: Answers  # through one Collector


def wait_stored(serve: ServeProcess, count: int, logs: Callable[[], list[str]]) -> None:
    url = f"http://127.0.0.1:{serve.http_port}/metrics"
    wait_for(
        f"chainmap serve ({serve.log_path.name}) did not store every span",
        lambda: total(scrape(url), "chainmap_spans_stored_total") == count,
        lambda: "\n".join([serve.log(), *logs()]),
    )


@pytest.fixture(scope="module")
def delivered(otelcol: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivered]:
    directory = tmp_path_factory.mktemp("scale-out")
    spans = workload()
    # /metrics is compared between the two: each scrape waits for fresh series.
    env = {"CHAINMAP_CHAINS_FILE": str(CHAINS), "CHAINMAP_METRICS_FRESH_WAIT": "10s"}
    store_url = f"chdb://{directory / 'store'}"
    serve = ServeProcess(store_url, directory / "serve.log", env=env)
    serve_single = ServeProcess(
        f"chdb://{directory / 'single-store'}", directory / "single-serve.log", env=env
    )
    backend_ports = [free_port() for _ in BACKENDS]
    backends = [
        CollectorProcess(otelcol, backend_config(name, port, serve.url), directory, name=name)
        for name, port in zip(BACKENDS, backend_ports, strict=True)
    ]
    gateway_port, single_port = free_port(), free_port()
    gateway = CollectorProcess(
        otelcol, gateway_config(gateway_port, backend_ports), directory, name="gateway"
    )
    single = CollectorProcess(
        otelcol, single_config(single_port, serve_single.url), directory, name="single"
    )
    collectors = (gateway, *backends, single)
    try:
        serve.wait_ready()
        serve_single.wait_ready()
        for collector in collectors:
            collector.wait_ready()
        send(gateway_port, spans)
        send(single_port, spans)
        for target in (serve, serve_single):
            wait_stored(target, len(spans), lambda: [c.log() for c in collectors])
        starts = [s.start_time or 0 for s in spans]
        ends = [s.end_time or 0 for s in spans]
        since = instant(min(starts) - 60 * 1_000_000_000)
        until = instant(max(ends) + 120 * 1_000_000_000)
        with ThreadPoolExecutor(max_workers=2) as pool:
            scaled_answers = pool.submit(Answers.ask, serve, since, until)
            single_answers = pool.submit(Answers.ask, serve_single, since, until)
            scaled, alone = scaled_answers.result(), single_answers.result()
        # Gateway first, so it drains into running backends; they drain into serve.
        for collector in collectors:
            assert collector.stop() == 0, collector.log()
        assert serve.terminate() == 0, serve.log()
    finally:
        for collector in collectors:
            collector.kill()
        serve.terminate()
        serve_single.terminate()

    rows = query(
        store_url,
        "SELECT TraceId, groupUniqArray(ResourceAttributes['collector.backend'])"
        " FROM otel_traces GROUP BY TraceId",
    )
    by_trace = {str(trace): list(backends_seen) for trace, backends_seen in rows}  # type: ignore[call-overload]
    yield Delivered(spans, by_trace, scaled, alone)


def test_every_trace_arrives_whole_at_exactly_one_backend(delivered: Delivered) -> None:
    by_trace = delivered.by_trace
    assert set(by_trace) == {
        format(s.context.trace_id, "032x") for s in delivered.spans if s.context
    }
    assert all(len(seen) == 1 and seen[0] in BACKENDS for seen in by_trace.values()), by_trace
    assert set(Counter(seen[0] for seen in by_trace.values())) == set(BACKENDS)
    for traffic in WORKLOAD:
        chain = {"chain_id": traffic.chain}
        # Sampled traffic counts its adjusted count (A2's th:8: each trace twice).
        requests = total(delivered.scaled.series, "chainmap_chain_requests_total", **chain)
        assert requests == traffic.traces * traffic.weight
        errors = total(delivered.scaled.series, "chainmap_chain_errors_total", **chain)
        assert errors == traffic.failed * traffic.weight


def test_health_over_the_two_backends_equals_health_through_one_collector(
    delivered: Delivered,
) -> None:
    scaled, single = delivered.scaled.health, delivered.single.health
    traces = {c["chain_id"]: c["traces"] for c in scaled["chains"]}
    assert all(traces[t.chain] == t.traces * t.weight for t in WORKLOAD), traces
    assert scaled == single


def test_topology_over_the_two_backends_equals_topology_through_one_collector(
    delivered: Delivered,
) -> None:
    scaled, single = delivered.scaled.topology, delivered.single.topology
    everything = {(e["source"], e["target"]) for e in scaled[None]["edges"]}
    services = {t.service for t in WORKLOAD}
    assert everything >= {("user", s) for s in services} | {
        (s, "database-service") for s in services
    }, everything
    for chain, answer in scaled.items():
        assert answer == single[chain], chain


def test_the_chain_and_service_graph_series_of_the_two_backends_equal_one_collectors(
    delivered: Delivered,
) -> None:
    assert any(name.startswith("traces_service_graph_") for name, _l, _v in delivered.scaled.series)
    assert sorted(delivered.scaled.series, key=repr) == sorted(delivered.single.series, key=repr)
