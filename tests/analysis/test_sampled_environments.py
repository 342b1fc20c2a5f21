"""Topology of a fleet in two environments, part of it sampled (real SDK spans, chDB):
calls weighted by the adjusted count of the span starting the edge, environments apart
(``deployment.environment.name`` and the old ``deployment.environment``), and the edge
rollup (span-link edges included) equal to live pairing per environment."""

from __future__ import annotations

import time
from typing import Any

from chainmap_otel.analysis.critical_path import chain_critical_path
from chainmap_otel.analysis.rollups import critical_paths, protocol
from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups import traces as trace_rollup
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.topology import Edge, edge_rows, topologies
from chainmap_otel.analysis.traces import TraceQuery, search_traces
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from chainmap_otel.tagging.sampling import threshold_for
from tests.analysis.conftest import insert_spans, load_fixture
from tests.analysis.test_edge_rollup import (
    HOUR,
    assert_same_edges,
    closed,
    comparable,
    hour_zero,
    pinned_now,
    wanted,
)
from tests.analysis.test_topology import CASES
from tests.support.environment_fleet import PROD_WEIGHT, orders_catalog, sampled_fleet

MINUTE = 60 * 1_000_000_000
PROD, STAGING = 3, 2


def window_around_now() -> TimeWindow:
    now = time.time_ns()
    return TimeWindow(protocol.floor_minute(now) - 5 * MINUTE, protocol.ceil_minute(now) + MINUTE)


def by_edge(edges: list[Edge]) -> dict[tuple[str, str, str], Edge]:
    return {(e.source, e.target, e.connection_type): e for e in edges}


def numbers(edge: Edge) -> tuple[int, int, Any, Any, bool]:
    return edge.calls, edge.errors, edge.stored_calls, edge.stored_errors, edge.sampled


def test_edges_count_by_the_sampling_weight_per_environment(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    sampled_fleet(store, PROD, STAGING)
    window = window_around_now()
    expected = {
        # (calls, errors, stored calls, stored errors, sampled) per environment
        "": {
            "user": (PROD * PROD_WEIGHT + STAGING, 0, PROD + STAGING, 0, True),
            "request": (PROD * PROD_WEIGHT + STAGING, PROD_WEIGHT, PROD + STAGING, 1, True),
            "link": (PROD * PROD_WEIGHT + STAGING, 0, PROD + STAGING, 0, True),
        },
        "prod": {
            "user": (PROD * PROD_WEIGHT, 0, PROD, 0, True),
            "request": (PROD * PROD_WEIGHT, PROD_WEIGHT, PROD, 1, True),
            "link": (PROD * PROD_WEIGHT, 0, PROD, 0, True),
        },
        "staging": {
            "user": (STAGING, 0, STAGING, 0, False),
            "request": (STAGING, 0, STAGING, 0, False),
            "link": (STAGING, 0, STAGING, 0, False),
        },
    }
    keys = {
        "user": ("user", "gateway", "virtual_node"),
        "request": ("gateway", "orders", ""),
        "link": ("orders", "settlement", "messaging_system"),
    }
    for environment, edges in expected.items():
        graph = topologies(store, catalog, window.within(environment), chain_ids=[])[None]
        found = by_edge(graph.edges)
        for name, want in edges.items():
            assert numbers(found[keys[name]]) == want, (environment, name)
        assert graph.sampled is (environment != "staging")
        assert graph.to_json()["sampled"] is graph.sampled
        # Nodes add up the weighted calls they receive.
        nodes = {n.id: n for n in graph.nodes}
        assert nodes["orders"].calls == edges["request"][0]
    assert topologies(store, catalog, window.within("qa"), chain_ids=[])[None].edges == []


def test_the_rollup_equals_live_pairing_in_every_environment(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    sampled_fleet(store, PROD, STAGING)
    window = window_around_now()
    live = {
        env: edge_rows(store, catalog, window.within(env), wanted(catalog), None)
        for env in ("", "prod", "staging")
    }
    report = edge_rollup.refresh_edges(store, catalog, until_ns=window.end_ns)
    assert report.state.covers and report.state.watermark_ns == window.end_ns
    for env, rows in live.items():
        rolled = edge_rows(store, catalog, window.within(env), wanted(catalog), report.state)
        assert comparable(rolled) == comparable(rows), env
        assert any(r[3] == "messaging_system" and r[2] == "settlement" for r in rolled), env
    # The rollup holds the link edges: none of them is paired live any more.
    stored = store.query(
        "SELECT Environment, sum(Calls), sum(EstimatedCalls) FROM chainmap_edge_minute "
        "WHERE Catalog = {c:UInt64} AND Target = 'settlement' GROUP BY Environment "
        "ORDER BY Environment",
        {"c": report.state.catalog},
    ).result_rows
    assert [tuple(r) for r in stored] == [
        ("prod", PROD, float(PROD * PROD_WEIGHT)),
        ("staging", STAGING, float(STAGING)),
    ]


def test_trace_search_and_critical_paths_rolled_up_keep_each_environment(
    store: TraceStore,
) -> None:
    catalog = orders_catalog()
    sampled_fleet(store, PROD, STAGING)
    window = window_around_now()
    query = TraceQuery.parse(limit=100)

    def found(env: str) -> list[str]:
        result = search_traces(store, catalog, window.within(env), query).to_json()
        return sorted(t["trace_id"] for t in result["traces"])

    def paths(env: str) -> Any:
        return chain_critical_path(store, catalog, "ORD", window.within(env)).to_json()["all"]

    live = {env: (found(env), paths(env)) for env in ("", "prod", "staging")}
    assert len(live["prod"][0]) == 2 * PROD and len(live["staging"][0]) == 2 * STAGING
    assert sorted(live["prod"][0] + live["staging"][0]) == live[""][0]
    assert live["prod"][1]["traces"] == PROD and live["staging"][1]["traces"] == STAGING
    # Rolled up (slices closing past every span): the same traces and paths per environment.
    trace_rollup.refresh_traces(store, until_ns=window.end_ns)
    critical_paths.refresh_critical_paths(store, until_ns=window.end_ns)
    assert trace_rollup.analysis_watermark(store) == window.end_ns
    for env, (traces, path) in live.items():
        assert found(env) == traces, env
        assert paths(env) == path, env


def test_hour_rows_keep_environments_and_sampling_weights_apart(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    now = pinned_now()
    h = hour_zero(now)
    # Every fixture case in both environments, prod's traces sampled at 1/4, over 3 hours.
    for copy, base in enumerate((h - 3 * HOUR + 10 * MINUTE, h - HOUR - 5 * MINUTE, h + MINUTE)):
        for env in ("prod", "staging"):
            resource = (
                {"deployment.environment.name": "prod"}
                if env == "prod"
                else {"deployment.environment": "staging"}
            )
            state = f"ot=th:{threshold_for(0.25)}" if env == "prod" else ""
            for case in CASES:
                spans = [
                    {
                        **span,
                        "trace": f"{span['trace']}-{case}-{copy}-{env}",
                        "resource": {**span.get("resource", {}), **resource},
                        "trace_state": state,
                    }
                    for span in load_fixture(case)["spans"]
                ]
                insert_spans(store, spans, base)
    window = TimeWindow(h - 3 * HOUR, h + 10 * MINUTE)
    live = {
        env: edge_rows(store, catalog, window.within(env), wanted(catalog), None)
        for env in ("", "prod", "staging")
    }
    report = edge_rollup.refresh_edges(store, catalog, closed(h))
    assert report.hour_slices >= 1 and report.state.hours.covers
    for env, rows in live.items():
        rolled = edge_rows(store, catalog, window.within(env), wanted(catalog), report.state)
        assert_same_edges(rolled, rows)
    # Estimated calls and errors: 4 per stored prod call, 1 per staging call.
    for env, weight in (("prod", PROD_WEIGHT), ("staging", 1)):
        assert live[env]
        for row in live[env]:
            assert (row[14], row[15]) == (weight * row[5], weight * row[6]), (env, row[:5])
