"""Impact, drift and discovery on the nested-chain fixture and generated uncovered traffic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chainmap_otel.analysis.discovery import discover, proposals_yaml
from chainmap_otel.analysis.drift import drift
from chainmap_otel.analysis.impact import impact
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.errors import NotFoundError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from tests.analysis.conftest import insert_spans


def test_impact_of_a_database(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("nested_chains")
    result = impact(store, catalog, parse_window(), "postgresql")
    by_id = {c["chain_id"]: c for c in result["chains"]}
    assert set(by_id) == {"A2", "B1", "B3"}
    assert by_id["B3"]["path"] == ["trading-engine", "database-service", "postgresql"]
    assert by_id["B3"]["relation"] == "transitive"
    assert by_id["B1"]["path"][0] == "api-gateway"
    assert result["chains"][0]["criticality"] == "critical"
    assert all(c["status"] in ("healthy", "degraded", "critical") for c in result["chains"])


def test_impact_of_an_entry_and_unknown_node(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("nested_chains")
    b3 = {
        c["chain_id"]: c for c in impact(store, catalog, parse_window(), "trading-engine")["chains"]
    }["B3"]
    assert b3["relation"] == "entry" and b3["path"] == ["trading-engine"]
    with pytest.raises(NotFoundError, match="appears in no trace") as unknown:
        impact(store, catalog, parse_window(), "no-such-service")
    assert (unknown.value.kind, unknown.value.id) == ("node", "no-such-service")


def test_drift(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("nested_chains")
    by_id = {c["chain_id"]: c for c in drift(store, catalog, parse_window())["chains"]}
    assert set(by_id) == {"A2", "B3"}
    assert by_id["B3"]["new"] == [] and by_id["B3"]["missing"] == [] and not by_id["B3"]["drifted"]
    a2 = by_id["A2"]
    assert [(e["source"], e["target"]) for e in a2["new"]] == [
        ("database-service", "postgresql"),
        ("trading-engine", "database-service"),
    ]
    assert a2["new"][0]["first_seen"] is not None
    assert a2["missing"] == [
        {"source": "ai-orchestration", "target": "ai-market-model", "last_seen": None}
    ]


def test_drift_missing_edge_last_seen(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("nested_chains")
    result = drift(store, catalog, parse_window("5m"), "B3", history=parse_window("2h"))
    missing = {(m["source"], m["target"]): m["last_seen"] for m in result["chains"][0]["missing"]}
    assert missing[("trading-engine", "database-service")] is not None


def test_discovery_proposes_loadable_chains(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    spans = []
    for i in range(30):
        spans += [
            {
                "trace": f"p{i}",
                "span": "r",
                "service": "portfolio",
                "kind": "Server",
                "start_ms": i,
                "duration_ms": 20 + i,
                "status": "Error" if i == 0 else "Unset",
                "attributes": {"http.route": "/portfolio/{id}"},
            },
            {
                "trace": f"p{i}",
                "span": "c",
                "parent": "r",
                "service": "portfolio",
                "kind": "Client",
                "start_ms": i + 1,
                "duration_ms": 5,
                "attributes": {"db.system": "redis"},
            },
        ]
    for i in range(3):  # too rare to propose
        spans.append(
            {
                "trace": f"rare{i}",
                "span": "r",
                "service": "admin",
                "kind": "Server",
                "attributes": {"http.route": "/admin"},
            }
        )
    spans.append(
        {
            "trace": "covered",
            "span": "r",
            "service": "api-gateway",
            "kind": "Server",
            "attributes": {"http.route": "/api/v1/x"},
        }
    )
    insert_spans(store, spans, now_ns)
    calls: list[tuple[int, int]] = []
    found = discover(
        store,
        catalog,
        parse_window("2h"),
        min_traces=5,
        slice_seconds=1800,
        progress=lambda done, total: calls.append((done, total)),
    )
    # The spans lie within a second, so only that stretch is sliced (one slice, not four).
    assert calls == [(1, 1)]
    assert found.traces == 34 and found.uncovered == 33
    [proposal] = found.proposals
    assert proposal["service"] == "portfolio" and proposal["entry"] == "/portfolio/{id}"
    assert proposal["edges"] == ["portfolio -> redis"]
    assert proposal["share_of_traffic"] == pytest.approx(30 / 34, abs=1e-4)
    assert proposal["p95_ms"] >= 45
    text = proposals_yaml(found)
    loaded = parse_catalog(text, source="proposed.yaml")
    chain = loaded.chains[0]
    assert (
        chain.id == "D1"
        and chain.slo is not None
        and chain.slo.latency_ms["p95"] >= proposal["p95_ms"]
    )
    assert chain.entry[0].route is not None and chain.entry[0].route.value == "/portfolio/{id}"
    # The proposed chain now covers those traces.
    again = discover(store, loaded, parse_window("2h"), min_traces=5)
    assert again.uncovered == 4 and again.proposals == []
