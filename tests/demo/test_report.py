"""The demo report's chain trees: a node several callers reach says which part of its calls
came through this branch, so the counts below it are not read as this branch's."""

from __future__ import annotations

from rich.console import Console

from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.analysis.topology import Edge, Node, Topology
from chainmap_otel.demo.report import topology_tree
from tests.support.catalog import chains_catalog


def edge(source: str, target: str, calls: int) -> Edge:
    return Edge(source, target, "", calls, 0, 1.0, 2.0, 3.0)


def test_a_shared_node_shows_this_branchs_calls_of_all_its_calls() -> None:
    chain = chains_catalog(("B1",)).by_id["B1"]
    edges = [
        edge("api-gateway", "trading-engine", 100),
        edge("api-gateway", "ai-orchestration", 50),
        edge("ai-orchestration", "trading-engine", 50),
        edge("trading-engine", "database-service", 88),
        edge("database-service", "postgresql", 211),
    ]
    names = {e.source for e in edges} | {e.target for e in edges}
    kinds = {"postgresql": "database"}
    nodes = [Node(n, kinds.get(n, "service"), 0, 0) for n in sorted(names)]
    tree = topology_tree("B1", chain, Topology("B1", parse_window("1h"), edges, nodes))
    console = Console(width=120, record=True, color_system=None)
    console.print(tree)
    text = console.export_text()
    assert "trading-engine (100 of its 150 calls, p95 2 ms)" in text
    assert "trading-engine (50 of its 150 calls, p95 2 ms) ↺" in text
    assert "database-service (88 calls, p95 2 ms)" in text  # one caller: its calls
    assert "postgresql (211 calls, p95 2 ms)" in text
