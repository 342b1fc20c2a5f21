"""A chain's topology is the subtree below its entry spans, its entry's caller one node.

The nested fixture: api-gateway -> orders -> pricing -> postgresql, where chain P1 enters at
pricing's server span (B1 enters at the gateway), plus a second trace in which the gateway
calls pricing directly. P1's topology holds pricing and what it calls; each service calling
an entry span appears once as ``caller:<service>`` (type ``caller``), nothing upstream of it.
Tagged traces (``chain.ids``) and untagged ones (classified at query time) agree, and so do
live pairing and the edge rollup.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from chainmap_otel.analysis.render import to_grafana, to_mermaid
from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups import protocol
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.topology import edge_rows, topologies
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from tests.analysis.conftest import CATALOG_YAML, insert_spans

MINUTE = 60 * 1_000_000_000

P1_YAML = """
  - id: P1
    name: Pricing
    category: trading
    entry:
      - service: pricing
        kind: server
        route: /price*
"""


@pytest.fixture
def scoped_catalog() -> ChainCatalog:
    return parse_catalog(CATALOG_YAML + P1_YAML, source="scope-chains.yaml")


def tags(ids: str, entry: str = "") -> dict[str, str]:
    out = {"chain.ids": ids, "chain.id": ids.split(",")[-1]}
    if entry:
        out |= {"chain.entry": "true", "chain.entry_ids": entry}
    return out


def nested_spans(tagged: bool) -> list[dict[str, Any]]:
    """Trace q1: gateway -> orders -> pricing -> postgresql; q2: gateway -> pricing."""

    def attrs(base: dict[str, str], chain_tags: dict[str, str]) -> dict[str, str]:
        return base | (chain_tags if tagged else {})

    gw_route = {"http.route": "/api/v1/quote", "http.request.method": "GET"}
    price_route = {"http.route": "/price", "http.request.method": "GET"}
    db = {"db.system": "postgresql"}
    spans = [
        ("q1", "gw", "", "api-gateway", "Server", 0, 100, attrs(gw_route, tags("B1", "B1"))),
        ("q1", "gwc", "gw", "api-gateway", "Client", 5, 90, attrs({}, tags("B1"))),
        ("q1", "or", "gwc", "orders", "Server", 8, 80, attrs({}, tags("B1"))),
        ("q1", "orc", "or", "orders", "Client", 10, 60, attrs({}, tags("B1"))),
        ("q1", "pr", "orc", "pricing", "Server", 12, 50, attrs(price_route, tags("B1,P1", "P1"))),
        ("q1", "prc", "pr", "pricing", "Client", 15, 20, attrs(db, tags("B1,P1"))),
        ("q2", "gw", "", "api-gateway", "Server", 0, 60, attrs(gw_route, tags("B1", "B1"))),
        ("q2", "gwc", "gw", "api-gateway", "Client", 5, 50, attrs({}, tags("B1"))),
        ("q2", "pr", "gwc", "pricing", "Server", 8, 40, attrs(price_route, tags("B1,P1", "P1"))),
        ("q2", "prc", "pr", "pricing", "Client", 10, 20, attrs(db, tags("B1,P1"))),
    ]
    return [
        {
            "trace": trace,
            "span": span,
            "parent": parent,
            "service": service,
            "kind": kind,
            "start_ms": start,
            "duration_ms": duration,
            "attributes": attributes,
        }
        for trace, span, parent, service, kind, start, duration, attributes in spans
    ]


P1_EDGES = [
    ["caller:api-gateway", "pricing", 1],
    ["caller:orders", "pricing", 1],
    ["pricing", "postgresql", 2],
]
ALL_EDGES = [
    ["api-gateway", "orders", 1],
    ["api-gateway", "pricing", 1],
    ["orders", "pricing", 1],
    ["pricing", "postgresql", 2],
    ["user", "api-gateway", 2],
]


def window_around(now_ns: int) -> TimeWindow:
    return TimeWindow(
        protocol.floor_minute(now_ns) - 5 * MINUTE,
        protocol.floor_minute(time.time_ns() - protocol.LAG_SECONDS * 1_000_000_000),
    )


def simple(rows: list[tuple[Any, ...]], chain: str) -> list[list[Any]]:
    return sorted([str(r[1]), str(r[2]), int(r[5])] for r in rows if r[0] == chain)


@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
def test_chain_topology_is_the_subtree_below_its_entries(
    tagged: bool, store: TraceStore, scoped_catalog: ChainCatalog, now_ns: int
) -> None:
    insert_spans(store, nested_spans(tagged), now_ns)
    window = window_around(now_ns)
    wanted = ["P1", "B1", ""]
    live = edge_rows(store, scoped_catalog, window, wanted, None)
    assert simple(live, "P1") == P1_EDGES
    assert simple(live, "") == ALL_EDGES  # all traffic: no caller nodes
    assert simple(live, "B1") == ALL_EDGES
    state = edge_rollup.refresh_edges(store, scoped_catalog).state
    rolled = edge_rows(store, scoped_catalog, window, wanted, state)
    assert sorted(r[:7] for r in rolled) == sorted(r[:7] for r in live)

    per_chain = topologies(store, scoped_catalog, window, ["P1"])
    p1 = per_chain["P1"].to_json()
    nodes = {n["id"]: n for n in p1["nodes"]}
    assert set(nodes) == {"caller:api-gateway", "caller:orders", "pricing", "postgresql"}
    assert nodes["caller:orders"]["type"] == "caller"
    assert nodes["caller:orders"]["title"] == "orders"
    assert nodes["pricing"] == {
        "id": "pricing",
        "type": "service",
        "title": "pricing",
        "calls": 2,
        "errors": 0,
        "error_ratio": 0.0,
    }
    all_nodes = {n["id"]: n["type"] for n in per_chain[None].to_json()["nodes"]}
    assert "caller" not in all_nodes.values() and all_nodes["orders"] == "service"
    grafana = to_grafana(per_chain["P1"])
    titles = {n["id"]: n["title"] for n in grafana["nodes"]}
    assert titles["caller:api-gateway"] == "api-gateway"
    assert '"orders"' in to_mermaid(per_chain["P1"])
