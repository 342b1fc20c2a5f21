"""Topology on one small trace fixture per servicegraph case, on the real engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chainmap_otel.analysis.membership import trace_chains
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.analysis.topology import topologies, topology
from chainmap_otel.errors import NotFoundError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

CASES = [
    "client_server_pair",
    "database_client",
    "producer_consumer",
    "root_server_user",
    "virtual_peer_service",
    "virtual_server_address",
    "virtual_unknown",
    "failed_edge_client",
    "failed_edge_server",
    "nested_chains",
    "nested_chains_untagged",
    "clock_skew",
    "two_roots",
]


def edge_rows(result: dict[str, Any]) -> list[list[Any]]:
    return sorted(
        [e["source"], e["target"], e["connection_type"], e["calls"], e["errors"]]
        for e in result["edges"]
    )


@pytest.mark.parametrize("case", CASES)
def test_fixture_edges(
    case: str, load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    fixture = load(case)
    result = topology(store, catalog, parse_window()).to_json()
    assert edge_rows(result) == sorted(fixture["expected_edges"])
    node_ids = {n["id"] for n in result["nodes"]}
    assert {e["source"] for e in result["edges"]} | {
        e["target"] for e in result["edges"]
    } == node_ids


def test_node_types(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("nested_chains")
    load("virtual_peer_service")
    load("producer_consumer")
    nodes = {n["id"]: n for n in topology(store, catalog, parse_window()).to_json()["nodes"]}
    assert nodes["user"]["type"] == "user"
    assert nodes["postgresql"]["type"] == "database"
    assert nodes["exchange-gateway"]["type"] == "virtual"
    assert nodes["trading-engine"]["type"] == "service"
    assert nodes["api-gateway"]["calls"] == 1


@pytest.mark.parametrize("case", ["nested_chains", "nested_chains_untagged"])
def test_nested_membership(
    case: str, load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    fixture = load(case)
    window = parse_window()
    members = trace_chains(store, catalog, window.params())
    assert [sorted(chains) for chains in members.values()] == [fixture["expected_chains"]]
    per_chain = topologies(store, catalog, window)
    assert edge_rows(per_chain[None].to_json()) == sorted(fixture["expected_edges"])
    for chain_id in fixture["expected_chains"]:
        expected = sorted(fixture["expected_chain_edges"][chain_id])
        assert edge_rows(per_chain[chain_id].to_json()) == expected, chain_id
    assert per_chain["C9"].edges == []


def test_chain_restriction_and_attribute_rules(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    from tests.analysis.conftest import insert_spans

    load("client_server_pair")
    insert_spans(
        store,
        [
            {
                "trace": "r",
                "span": "a",
                "service": "report-nightly",
                "kind": "Internal",
                "attributes": {"job.type": "nightly-pnl"},
            },
            {
                "trace": "r",
                "span": "b",
                "parent": "a",
                "service": "report-nightly",
                "kind": "Client",
                "attributes": {"peer.service": "warehouse"},
            },
            {
                "trace": "x",
                "span": "a",
                "service": "report-x1",
                "kind": "Internal",
                "attributes": {"job.type": "nightly"},
            },
            {"trace": "x", "span": "b", "parent": "a", "service": "report-x1", "kind": "Client"},
        ],
        now_ns,
    )
    c9 = topology(store, catalog, parse_window(), "C9")
    assert c9.edge_set() == {("report-nightly", "warehouse")}
    b1 = topology(store, catalog, parse_window(), "B1")
    assert b1.edge_set() == {("user", "api-gateway"), ("api-gateway", "ai-orchestration")}
    graph = b1.to_graph()
    assert graph.number_of_edges() == 2 and graph.nodes["user"]["type"] == "user"


def test_window_excludes_old_spans(
    load: Callable[[str], dict[str, Any]], store: TraceStore, catalog: ChainCatalog
) -> None:
    load("client_server_pair")
    assert topology(store, catalog, parse_window("5m")).edges == []


def test_unknown_chain(store: TraceStore, catalog: ChainCatalog) -> None:
    with pytest.raises(NotFoundError, match=r"unknown chain id 'ZZ'.*known ids: B1, A2, B3, C9"):
        topology(store, catalog, parse_window(), "ZZ")
