"""The chain API on a real chDB store: JSON contracts, bad parameters, an unreachable store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainmap_otel.analysis.health import health_json
from chainmap_otel.analysis.operations import chain_operations
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.server import create_app
from chainmap_otel.server.api.chains import resolve_catalog
from chainmap_otel.storage.location import parse_store_url
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.active import default_catalog_path
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.server import chain_traffic
from tests.support.stores import fresh_store

API = "/api/v1/chains"


@pytest.fixture(scope="module")
def seeded(chdb_store: TraceStore, chdb_path: Path) -> Iterator[tuple[TraceStore, dict[str, Any]]]:
    """One database of chain traffic shared by the module's read-only tests."""

    store = fresh_store(chdb_path)
    inserted = chain_traffic.seed(store)
    yield store, inserted
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


@pytest.fixture(scope="module")
def catalog() -> ChainCatalog:
    return chain_traffic.catalog()


@pytest.fixture(scope="module")
def client(
    seeded: tuple[TraceStore, dict[str, Any]], catalog: ChainCatalog
) -> Iterator[httpx.Client]:
    with chain_traffic.serving(create_app(seeded[0], chains=catalog)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def traces(seeded: tuple[TraceStore, dict[str, Any]]) -> dict[str, Any]:
    return seeded[1]


def ok(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def refused(client: httpx.Client, path: str, status: int, **params: Any) -> str:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str)
    assert "Traceback" not in body["detail"]
    return str(body["detail"])


def test_chain_list_has_status_order_criticality_and_series(client: httpx.Client) -> None:
    body = ok(client, API)
    order = {"critical": 0, "degraded": 1, "healthy": 2, "no_data": 3, "no_slo": 4}
    ranks = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    keys = [(order[c["health"]["status"]], ranks[c["criticality"]]) for c in body["chains"]]
    assert keys == sorted(keys) and len(keys) == 4
    assert body["catalog"] == {"source": "test-chains.yaml", "chains": 4}
    by_id = {c["id"]: c for c in body["chains"]}
    b3 = by_id["B3"]
    assert (b3["category"], b3["criticality"]) == ("trading", "critical")
    assert b3["slo"]["latency_ms"] == {"p95": 500, "p99": 1000}
    assert b3["health"]["traces"] == chain_traffic.TRADES
    assert b3["health"]["errors"] == chain_traffic.FAILED_TRADES
    assert b3["health"]["status"] in ("healthy", "degraded", "critical")
    assert b3["health"]["rate_seconds"] > 0
    assert b3["health"]["reason"]
    c1 = by_id["C1"]
    assert c1["health"]["traces"] == 0 and c1["slo"] is None
    # No objectives and no traffic: "no data" says more than "no SLO".
    assert c1["health"]["status"] == "no_data" and body["chains"][-1]["id"] == "C1"
    series = b3["series"]
    assert set(series) == {"start", "step_seconds", "seconds", "rate_per_s", "errors", "p95_ms"}
    assert len(series["rate_per_s"]) == len(series["errors"]) == len(series["p95_ms"]) == 30
    assert sum(series["errors"]) == chain_traffic.FAILED_TRADES
    steps = zip(series["rate_per_s"], series["seconds"], strict=True)
    assert round(sum(rate * seconds for rate, seconds in steps)) == chain_traffic.TRADES
    assert set(body["window"]) == {"since", "until", "seconds"}


def test_chain_detail_has_definition_and_health(client: httpx.Client) -> None:
    body = ok(client, f"{API}/B3")
    chain = body["chain"]
    assert chain["id"] == "B3" and chain["name"] == "Trade execution"
    assert chain["entry"] == [
        {"service": "trading-engine", "route": "/orders*", "kind": ["server"], "method": ["POST"]}
    ]
    assert chain["expected"]["edges"] == [
        ["trading-engine", "database-service"],
        ["database-service", "postgresql"],
    ]
    assert body["health"]["chain_id"] == "B3"
    assert body["health"]["error_ratio"] == pytest.approx(0.15)
    assert set(body["health"]["burn_rates"]) == {"5m", "30m", "1h", "6h", "3d"}


def test_chain_topology_json_mermaid_grafana_dot(client: httpx.Client) -> None:
    topo = ok(client, f"{API}/B3/topology")
    edges = {(e["source"], e["target"]): e for e in topo["edges"]}
    assert edges["trading-engine", "database-service"]["calls"] == chain_traffic.TRADES
    assert edges["database-service", "postgresql"]["connection_type"] == "database"
    types = {n["id"]: n["type"] for n in topo["nodes"]}
    assert types["postgresql"] == "database" and "user" not in types
    # B3 enters at trading-engine: its caller is one node, nothing upstream of it.
    assert types["caller:ai-orchestration"] == "caller" and "api-gateway" not in types
    assert topo["chain_id"] == "B3"

    mermaid = client.get(f"{API}/B3/topology", params={"format": "mermaid"})
    assert mermaid.status_code == 200 and mermaid.headers["content-type"].startswith("text/plain")
    assert mermaid.text.startswith("flowchart LR") and '"trading-engine"' in mermaid.text

    grafana = ok(client, f"{API}/B3/topology", format="grafana")
    node_ids = {n["id"] for n in grafana["nodes"]}
    assert all(e["source"] in node_ids and e["target"] in node_ids for e in grafana["edges"])
    for node in grafana["nodes"]:
        assert node["arc__success"] + node["arc__failed"] == pytest.approx(1.0)

    dot = client.get(f"{API}/B3/topology", params={"format": "dot"})
    assert dot.status_code == 200 and dot.text.startswith('digraph "chain_B3"')


def test_all_traffic_topology_includes_uncovered_services(client: httpx.Client) -> None:
    topo = ok(client, f"{API}/topology")
    assert topo["chain_id"] is None
    pairs = {(e["source"], e["target"]) for e in topo["edges"]}
    assert ("user", "api-gateway") in pairs and ("user", "report-service") in pairs


def test_chain_critical_path_shares(client: httpx.Client) -> None:
    body = ok(client, f"{API}/B3/critical-path")
    assert body["chain_id"] == "B3" and body["traces"] == chain_traffic.TRADES
    shares = body["all"]["services"]
    assert sum(s["share"] for s in shares) == pytest.approx(1.0, abs=1e-4)
    assert {s["service"] for s in shares} >= {"trading-engine", "database-service"}
    assert body["slow_traces"] == 1


def test_chain_operations_are_the_library_and_the_entry_agrees_with_health(
    client: httpx.Client, seeded: tuple[TraceStore, dict[str, Any]], catalog: ChainCatalog
) -> None:
    # One fixed window around the seeded traffic, so both sides read the same steps.
    now = datetime.now(UTC).replace(microsecond=0)
    since, until = ((now + timedelta(hours=h)).isoformat() for h in (-1, 1))
    body = ok(client, f"{API}/B3/operations", since=since, until=until)
    window = parse_window(since, until)
    assert body == chain_operations(seeded[0], catalog, window, "B3").to_json()
    (b3,) = health_json(seeded[0], catalog, window, "B3")["chains"]
    entry = next(
        o for o in body["operations"] if (o["service"], o["kind"]) == ("trading-engine", "server")
    )
    assert (entry["calls"], entry["errors"], entry["rate_per_s"]) == (
        b3["traces"],
        b3["errors"],
        b3["rate_per_s"],
    )
    assert {o["service"] for o in body["operations"]} >= {"trading-engine", "database-service"}
    assert "api-gateway" not in {o["service"] for o in body["operations"]}  # above B3's entry
    two = ok(client, f"{API}/B3/operations", since=since, until=until, limit=2)
    assert two["operations"] == body["operations"][:2]
    assert two["operations_total"] == body["operations_total"] > 2


def test_trace_critical_path(client: httpx.Client, traces: dict[str, Any]) -> None:
    trace = traces["trades"][0]
    body = ok(client, f"{API}/traces/{trace}/critical-path")
    assert body["trace_id"] == trace
    sections = body["sections"]
    assert sections[0]["service"] == "api-gateway"
    starts = [s["start_unix_nano"] for s in sections]
    assert starts == sorted(starts)
    # Upper-case ids are the same trace.
    assert ok(client, f"{API}/traces/{trace.upper()}/critical-path")["trace_id"] == trace


def test_health_is_the_cli_contract(
    client: httpx.Client, seeded: tuple[TraceStore, dict[str, Any]], catalog: ChainCatalog
) -> None:
    since, until = "2h", "2099-01-01T00:00:00Z"
    body = ok(client, f"{API}/health", since=since, until=until)
    assert body == health_json(seeded[0], catalog, parse_window(since, until))
    one = ok(client, f"{API}/health", chain="A2")
    assert [c["chain_id"] for c in one["chains"]] == ["A2"]


def test_impact_drift_discover(client: httpx.Client) -> None:
    impact = ok(client, f"{API}/impact/postgresql")
    relations = {c["chain_id"]: c for c in impact["chains"]}
    assert relations["B3"]["path"] == ["trading-engine", "database-service", "postgresql"]
    assert relations["B3"]["relation"] == "transitive"
    assert relations["B3"]["status"] in ("healthy", "degraded", "critical")

    drift = ok(client, f"{API}/drift")
    by_chain = {c["chain_id"]: c for c in drift["chains"]}
    assert by_chain["B3"]["missing"] == [] and not by_chain["B3"]["drifted"]
    assert set(by_chain) == {"A2", "B3"}

    found = ok(client, f"{API}/discover", min_traces=5)
    assert [p["service"] for p in found["proposals"]] == ["report-service"]
    assert found["proposals"][0]["traces"] == chain_traffic.REPORTS
    text = client.get(f"{API}/discover", params={"min_traces": 5, "format": "yaml"})
    assert text.status_code == 200 and "report-service" in text.text and "chains:" in text.text


def test_iso_times_survive_an_unencoded_plus(client: httpx.Client) -> None:
    # A "+" typed into a URL arrives as a space.
    response = client.get(f"{API}/health?since=2020-01-01T00:00:00+00:00&until=now")
    assert response.status_code == 200, response.text
    assert response.json()["window"]["since"] == "2020-01-01T00:00:00Z"


def test_health_endpoints(client: httpx.Client) -> None:
    chains = ok(client, "/health/chains")
    assert set(chains["chains"]) == {"B1", "A2", "B3", "C1"}
    assert chains["status"] in ("healthy", "degraded", "critical")
    assert sum(chains["counts"].values()) == 4
    assert chains["chains"]["B3"]["traces"] == chain_traffic.TRADES

    detailed = ok(client, "/health/detailed")
    assert detailed["status"] == "ok"
    assert detailed["store"]["reachable"] is True and detailed["store"]["embedded"] is True
    assert detailed["store"]["schema_version"] == detailed["store"]["latest_schema_version"] >= 1
    assert set(detailed["span_writer"]) == {
        "queued",
        "accepted",
        "written",
        "dropped",
        "refused_requests",
        "oldest_unstored_age_s",
        "write_ahead_log",
        "problems",
    }
    assert detailed["span_writer"]["problems"] == detailed["problems"] == []
    assert detailed["catalog"] == {
        "source": "test-chains.yaml",
        "chains": 4,
        "ids": ["B1", "A2", "B3", "C1"],
    }


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        (
            f"{API}",
            {"since": "yesterday"},
            400,
            ["query parameter since 'yesterday'", "15m", "ISO-8601"],
        ),
        (
            f"{API}/B3",
            {"until": "not-a-time"},
            400,
            ["query parameter until 'not-a-time'", "ISO-8601"],
        ),
        (
            f"{API}/health",
            {"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"},
            400,
            [
                "query parameter since '2030-01-01T00:00:00Z' is not before query parameter until",
                "must start before it ends",
            ],
        ),
        (f"{API}/NOPE", {}, 404, ["unknown chain id 'NOPE'", "B1, A2, B3, C1", f"GET {API} lists"]),
        (f"{API}/NOPE/topology", {}, 404, ["unknown chain id"]),
        (f"{API}/NOPE/critical-path", {}, 404, ["unknown chain id"]),
        (f"{API}/health", {"chain": "ZZ"}, 404, ["query parameter chain: unknown chain id 'ZZ'"]),
        (f"{API}/drift", {"chain": "ZZ"}, 404, ["query parameter chain: unknown chain id 'ZZ'"]),
        (f"{API}/drift", {"history": "ages"}, 400, ["query parameter history 'ages'", "7d"]),
        (f"{API}/B3/topology", {"format": "png"}, 400, ["format='png'", "json, mermaid"]),
        (f"{API}/topology", {"format": "svg"}, 400, ["format"]),
        (f"{API}/discover", {"format": "xml"}, 400, ["format", "yaml"]),
        (f"{API}/discover", {"min_traces": "0"}, 400, ["query parameter min_traces=0", "use 1 to"]),
        (f"{API}/discover", {"min_traces": "many"}, 400, ["min_traces='many'", "integer"]),
        (f"{API}/B3/critical-path", {"sample_cap": "0"}, 400, ["query parameter sample_cap=0"]),
        (f"{API}/NOPE/operations", {}, 404, ["unknown chain id 'NOPE'"]),
        (f"{API}/B3/operations", {"limit": "0"}, 400, ["query parameter limit=0", "1 to 1000"]),
        (f"{API}/traces/xyz/critical-path", {}, 400, ["trace_id 'xyz'", "32 hex"]),
        (f"{API}/traces/{'ab' * 16}/critical-path", {}, 404, ["not found"]),
        (f"{API}/impact/no-such-service", {}, 404, ["no-such-service", "nodes seen"]),
        ("/health/chains", {"since": "soon"}, 400, ["query parameter since 'soon'"]),
    ],
)
def test_bad_parameters_are_4xx_with_the_fix(
    client: httpx.Client, path: str, params: dict[str, str], status: int, words: list[str]
) -> None:
    detail = refused(client, path, status, **params)
    for word in words:
        assert word in detail


def _analysis_routes(client: httpx.Client) -> list[tuple[str, set[str]]]:
    """Every GET endpoint of the served OpenAPI that takes query parameters, path filled in."""
    fill = {"chain_id": "B3", "node": "api-gateway", "trace_id": "ab" * 16}
    routes = []
    for path, item in client.get("/openapi.json").json()["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if names:
            routes.append((path.format(**fill), names))
    return routes


WINDOW_BOUNDS = [
    ("since", "1000000d", ["since", "at most 3660d"]),
    ("since", "99999-01-01", ["since", "ISO-8601"]),
    ("since", "0001-01-01T00:00:00Z", ["since", "1970-01-01 and 2262-04-11"]),
    ("until", "9999-12-31T00:00:00Z", ["until", "1970-01-01 and 2262-04-11"]),
    ("history", "1000000d", ["history", "at most 3660d"]),
]
LIMIT_BOUNDS = [
    ("sample_cap", str(2**31), ["sample_cap=2147483648", "use 1 to 100000"]),
    ("sample_cap", "0", ["sample_cap=0", "use 1 to 100000"]),
    ("min_traces", str(2**63), ["min_traces=9223372036854775808", "use 1 to"]),
    ("min_traces", "-1", ["min_traces=-1", "use 1 to"]),
]


def test_every_window_and_limit_parameter_is_range_checked(client: httpx.Client) -> None:
    """Out-of-range values on every endpoint that takes them: 400 naming the parameter."""
    routes = _analysis_routes(client)
    assert len(routes) >= 10
    checked: set[str] = set()
    for path, names in routes:
        for name, value, words in WINDOW_BOUNDS + LIMIT_BOUNDS:
            if name not in names:
                continue
            response = client.get(path, params={name: value})
            assert response.status_code == 400, (path, name, value, response.text)
            detail = response.json()["detail"]
            assert all(word in detail for word in words), (path, name, detail)
            checked.add(f"{path}?{name}")
    # Every parameterised analysis endpoint took part, so a new one cannot slip past.
    assert {p for p, n in routes if "since" in n} <= {c.split("?")[0] for c in checked}
    assert f"{API}/B3/critical-path?sample_cap" in checked
    assert f"{API}/discover?min_traces" in checked
    assert f"{API}/drift?history" in checked


def test_a_long_window_within_bounds_is_answered(client: httpx.Client) -> None:
    for path in (f"{API}/discover", f"{API}/topology", "/health/chains"):
        assert client.get(path, params={"since": "3650d"}).status_code == 200, path


def test_an_analysis_query_over_its_time_limit_is_504(
    seeded: tuple[TraceStore, dict[str, Any]], catalog: ChainCatalog
) -> None:
    # A microsecond: every query outlives it, so each endpoint reliably hits the limit.
    app = create_app(seeded[0], chains=catalog, query_timeout_s=0.000001)
    with chain_traffic.serving(app) as limited:
        for path in (API, f"{API}/topology", f"{API}/B3/critical-path", "/health/chains"):
            detail = refused(limited, path, 504)
            assert "CHAINMAP_QUERY_TIMEOUT_S" in detail and "narrow the time window" in detail


class UnreachableClient:
    """Failure injection: a ClickHouse client whose server is gone."""

    def query(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    command = query

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    def close(self) -> None:
        pass


def test_unreachable_store_is_503(catalog: ChainCatalog) -> None:
    store = TraceStore(UnreachableClient(), parse_store_url("http://127.0.0.1:9/otel"))
    with chain_traffic.serving(create_app(store, chains=catalog)) as down:
        for path in (
            API,
            f"{API}/B3",
            f"{API}/B3/topology",
            f"{API}/health",
            "/health/chains",
            f"{API}/traces/{'ab' * 16}/critical-path",
        ):
            detail = refused(down, path, 503)
            assert "cannot be queried" in detail and "127.0.0.1:9" in detail
        detailed = down.get("/health/detailed")
        assert detailed.status_code == 503
        assert detailed.json()["store"]["reachable"] is False
        assert detailed.json()["status"] == "unavailable"


def test_ingest_keeps_flowing_next_to_the_api(store_factory: Any, catalog: ChainCatalog) -> None:
    """Spans posted over OTLP/HTTP land in the store the API then analyses."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tests.support.otlp_payloads import sdk_spans

    store = store_factory()
    app = create_app(store, chains=catalog)
    with chain_traffic.serving(app) as app_client:
        payload = encode_spans(sdk_spans(count=3)).SerializeToString()
        posted = app_client.post(
            "/v1/traces", content=payload, headers={"content-type": "application/x-protobuf"}
        )
        assert posted.status_code == 200
        assert app.state.span_writer.flush(timeout=30)
        topo = ok(app_client, f"{API}/topology")
        assert topo["nodes"], topo


def test_catalog_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CHAINMAP_CHAINS_FILE", raising=False)
    assert default_catalog_path().name == "chains.example.yaml"
    assert "B3" in resolve_catalog(None).ids
    own = tmp_path / "chains.yaml"
    own.write_text(chain_traffic.CHAINS_YAML, encoding="utf-8")
    monkeypatch.setenv("CHAINMAP_CHAINS_FILE", str(own))
    assert resolve_catalog(None).ids == ("B1", "A2", "B3", "C1")
    assert resolve_catalog(str(own)).source == str(own)


def test_serve_refuses_a_bad_chains_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "chains.yaml"
    bad.write_text("chains:\n  - id: B3\n    name: x\n    category: nope\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from chainmap_otel.cli import main; main()",
            "serve",
            "--chains",
            str(bad),
            "--store",
            f"chdb://{tmp_path / 'store'}",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert str(bad) in result.stderr + result.stdout
