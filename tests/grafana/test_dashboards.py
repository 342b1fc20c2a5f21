"""Every panel of the generated dashboards, run on chDB as Grafana would send it, and checked
against the library's numbers for the same window."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chainmap_otel.analysis.critical_path import chain_critical_path
from chainmap_otel.analysis.health import health_json
from chainmap_otel.analysis.render import to_grafana
from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.topology import topology
from chainmap_otel.config import ALL_ENV_VARS
from chainmap_otel.grafana import dashboards
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.active import example_catalog_path
from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog, parse_catalog
from tests.analysis.conftest import insert_spans
from tests.grafana.conftest import Traffic
from tests.grafana.datasource import QueryContext, panel_sql

ROOT = Path(__file__).resolve().parents[2]
TRACE_ALIASES = {
    "traceID",
    "spanID",
    "parentSpanID",
    "serviceName",
    "operationName",
    "startTime",
    "duration",
    "tags",
    "serviceTags",
    "statusCode",
}


def targets(board: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in board["panels"]:
        for target in panel["targets"]:
            yield panel, target


def run(traffic: Traffic, sql: str, **variables: str) -> list[dict[str, Any]]:
    # The environment variable's All value: every environment.
    return traffic.rows(panel_sql(sql, {"environment": "", **variables}, traffic.ctx))


def board(traffic: Traffic, name: str) -> dict[str, Any]:
    built: dict[str, Any] = dashboards.DASHBOARDS[name](traffic.catalog, traffic.store.database)
    return built


def panel_rows(traffic: Traffic, name: str, title: str, chain: str) -> dict[str, list[Any]]:
    """refId -> rows of the panel titled ``title`` (``$chain`` spelled out) for ``chain``."""
    for panel in board(traffic, name)["panels"]:
        if panel["title"].replace("$chain", chain) == title:
            return {t["refId"]: run(traffic, t["rawSql"], chain=chain) for t in panel["targets"]}
    raise AssertionError(f"no panel {title!r} in {name}")


def test_committed_dashboards_are_the_generated_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ALL_ENV_VARS:
        if var.name.startswith("CHAINMAP_SERVICEGRAPH_"):
            monkeypatch.delenv(var.name, raising=False)
    catalog = load_catalog(example_catalog_path())
    rendered = dashboards.render(catalog, "otel")
    directory = ROOT / "grafana" / "dashboards"
    assert sorted(p.name for p in directory.glob("*.json")) == sorted(rendered)
    for name, text in rendered.items():
        assert (directory / name).read_text(encoding="utf-8") == text, (
            f"grafana/dashboards/{name} is stale: run "
            "`chainmap sql dashboards --chains chains.example.yaml --database otel`"
        )


def test_every_panel_uses_the_provisioned_datasource() -> None:
    provisioned = (ROOT / "grafana/provisioning/datasources/chainmap.yaml").read_text()
    assert f"uid: {dashboards.DATASOURCE_UID}" in provisioned
    catalog = load_catalog(example_catalog_path())
    for name, build in dashboards.DASHBOARDS.items():
        for panel, target in targets(build(catalog, "otel")):
            assert panel["datasource"]["uid"] == dashboards.DATASOURCE_UID, name
            assert target["datasource"]["type"] == "grafana-clickhouse-datasource", name
            assert target["editorType"] == "sql"


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_every_target_runs_and_returns_its_panel_fields(traffic: Traffic, name: str) -> None:
    chain = "B3"
    built = board(traffic, name)
    variables = {"chain": chain, "trace_id": traffic.tagged[0], "environment": ""}
    for panel in built["panels"]:
        frames = {
            t["refId"]: traffic.rows(panel_sql(t["rawSql"], variables, traffic.ctx))
            for t in panel["targets"]
        }
        assert all(frames.values()), f"{name}: panel {panel['title']!r} returned no rows"
        if panel["type"] == "nodeGraph":
            nodes, edges = frames["nodes"], frames["edges"]
            ids = {n["id"] for n in nodes}
            assert len(ids) == len(nodes)
            for node in nodes:
                assert math.isclose(node["arc__success"] + node["arc__failed"], 1.0, abs_tol=1e-6)
            for edge in edges:
                assert {"id", "source", "target"} <= set(edge)
                assert edge["source"] in ids and edge["target"] in ids
        elif panel["type"] == "traces":
            assert set(frames["A"][0]) >= TRACE_ALIASES
            assert {r["traceID"] for r in frames["A"]} == {traffic.tagged[0]}
        elif panel["type"] == "timeseries":
            assert {"time", "chain", "calls"} <= set(frames["A"][0])


def test_trace_links_open_the_trace_view(traffic: Traffic) -> None:
    built = board(traffic, "traces.json")
    links = built["panels"][0]["fieldConfig"]["overrides"][0]["properties"][0]["value"]
    assert "var-trace_id=${__value.raw}" in links[0]["url"]
    query = links[1]["internal"]["query"]
    assert query["format"] == dashboards.FORMAT_TRACE
    trace = traffic.untagged[1]
    rows = traffic.rows(panel_sql(query["rawSql"], {"__value.raw": trace}, traffic.ctx))
    assert set(rows[0]) >= TRACE_ALIASES
    assert len(rows) == 10 and {r["traceID"] for r in rows} == {trace}
    roots = [r for r in rows if r["parentSpanID"] == ""]
    assert [r["serviceName"] for r in roots] == ["api-gateway"]


def test_chains_overview_agrees_with_chainmap_health(traffic: Traffic) -> None:
    sql = board(traffic, "chains-overview.json")["panels"][0]["targets"][0]["rawSql"]
    rows = {r["chain"]: r for r in run(traffic, sql)}
    expected = health_json(traffic.store, traffic.catalog, traffic.window)["chains"]
    assert list(rows) == [c["chain_id"] for c in expected]
    for chain in expected:
        got = rows[chain["chain_id"]]
        assert got["traces"] == chain["traces"], chain["chain_id"]
        assert got["errors"] == chain["errors"]
        assert got["rate_per_s"] == pytest.approx(chain["rate_per_s"], abs=1e-6)
        assert got["error_pct"] == pytest.approx(100 * chain["error_ratio"], abs=1e-3)
        for p in ("p50_ms", "p95_ms", "p99_ms"):
            assert got[p] == pytest.approx(chain[p], abs=1e-3), (chain["chain_id"], p)
        assert got["status"] == chain["status"]
        if chain["slo"] is None:
            assert got["burn_1h"] is None
            continue
        assert bool(got["slo_compliant"]) == chain["slo"]["compliant"]
        assert got["error_budget_remaining"] == pytest.approx(
            chain["slo"]["error_budget_remaining"], abs=1e-5
        )
        for label, burn in chain["burn_rates"].items():
            assert got[f"burn_{label}"] == pytest.approx(burn, abs=1e-5), (chain["chain_id"], label)
    # The untagged trades count for B1, A2 and B3 through the entry rules alone, matched at
    # the root and below it, exactly as the tagged ones; three tagged ones and one untagged
    # one failed.
    for chain in ("B1", "A2", "B3"):
        assert rows[chain]["traces"] == len(traffic.tagged) + len(traffic.untagged), chain
    assert rows["B3"]["errors"] == 4


def node_graph(traffic: Traffic, chain: str) -> dict[str, dict[str, dict[str, Any]]]:
    frames = panel_rows(traffic, "chain-topology.json", f"Topology of chain {chain}", chain)
    return {
        "nodes": {n["id"]: n for n in frames["nodes"]},
        "edges": {e["id"]: e for e in frames["edges"]},
    }


def library_graph(traffic: Traffic, chain: str) -> dict[str, dict[str, dict[str, Any]]]:
    # Reads never write the rollup: roll it up first, as serve's loop would.
    edge_rollup.refresh_edges(traffic.store, traffic.catalog)
    frames = to_grafana(topology(traffic.store, traffic.catalog, traffic.window, chain))
    return {key: {item["id"]: item for item in frames[key]} for key in ("nodes", "edges")}


def assert_same_graph(
    got: dict[str, dict[str, dict[str, Any]]], expected: dict[str, dict[str, dict[str, Any]]]
) -> None:
    assert set(got["nodes"]) == set(expected["nodes"])
    assert set(got["edges"]) == set(expected["edges"])
    for node_id, node in expected["nodes"].items():
        for key in ("title", "subtitle", "mainstat"):
            assert got["nodes"][node_id][key] == node[key], (node_id, key)
        for key in ("secondarystat", "arc__success", "arc__failed"):
            assert got["nodes"][node_id][key] == pytest.approx(node[key], abs=1e-6)
    for edge_id, edge in expected["edges"].items():
        assert got["edges"][edge_id]["source"] == edge["source"]
        assert got["edges"][edge_id]["target"] == edge["target"]
        assert got["edges"][edge_id]["mainstat"] == edge["mainstat"], edge_id
        assert got["edges"][edge_id]["secondarystat"] == pytest.approx(
            edge["secondarystat"], rel=0.02, abs=0.01
        ), edge_id


def test_topology_frames_agree_with_chainmap_topology_live_and_rolled_up(
    traffic: Traffic,
) -> None:
    # Without a rollup of this catalog the panel pairs the whole range live.
    edge_rollup.invalidate_edges(traffic.store, traffic.catalog)
    live = {chain: node_graph(traffic, chain) for chain in ("B1", "A2", "B3")}
    edge_rollup.refresh_edges(traffic.store, traffic.catalog)  # as chainmap serve keeps it
    for chain in ("B1", "A2", "B3"):
        expected = library_graph(traffic, chain)
        rolled = node_graph(traffic, chain)
        state = traffic.store.query(
            "SELECT max(Watermark) FROM chainmap_rollup_state WHERE Rollup = 'edges'"
        ).result_rows[0][0]
        assert state > traffic.ctx.from_s * 1_000_000_000, "the rollup did not run"
        assert_same_graph(live[chain], expected)
        assert_same_graph(rolled, expected)
    b3 = live["B3"]
    assert b3["edges"]["trading-engine->database-service:request"]["mainstat"] == (
        len(traffic.tagged) + len(traffic.untagged)
    )


def test_topology_frames_follow_the_servicegraph_naming_setting(
    traffic: Traffic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connector's naming: a database edge needs db.name; the fixture's postgres calls
    # carry db.system and db.namespace only, so they end at a virtual node named postgresql.
    monkeypatch.setenv("CHAINMAP_SERVICEGRAPH_COMPAT", "true")
    edge_rollup.refresh_edges(traffic.store, traffic.catalog)
    expected = library_graph(traffic, "B3")
    assert_same_graph(node_graph(traffic, "B3"), expected)
    assert expected["nodes"]["postgresql"]["subtitle"] == "virtual"
    monkeypatch.delenv("CHAINMAP_SERVICEGRAPH_COMPAT")
    assert node_graph(traffic, "B3")["nodes"]["postgresql"]["subtitle"] == "database"


def test_topology_of_a_long_range_reads_the_hour_level(hours_traffic: Traffic) -> None:
    traffic = hours_traffic
    edge_rollup.invalidate_edges(traffic.store, traffic.catalog)
    live = node_graph(traffic, "B3")
    edge_rollup.refresh_edges(traffic.store, traffic.catalog)  # minutes, then whole hours
    expected = library_graph(traffic, "B3")
    hours = traffic.store.query(
        "SELECT count() FROM chainmap_edge_hour WHERE Hour >= toDateTime({s:Int64})",
        {"s": traffic.ctx.from_s},
    ).result_rows[0][0]
    assert hours > 0, "the hour level was not written"
    assert_same_graph(live, expected)
    assert_same_graph(node_graph(traffic, "B3"), expected)
    # The panel's own window split: whole hours from the hour level, minutes around them.
    nodes_sql = board(traffic, "chain-topology.json")["panels"][0]["targets"][0]["rawSql"]
    preamble = nodes_sql.split("AS gf_wanted\n")[0] + "AS gf_wanted\n"
    split = run(
        traffic,
        preamble + "SELECT gf_hourly, gf_hour_start, gf_hour_end, gf_minute_head_start, "
        "gf_minute_tail_end, gf_tail_start",
        chain="B3",
    )[0]
    assert split["gf_hourly"] == 1
    assert split["gf_hour_end"] - split["gf_hour_start"] >= 3600
    assert split["gf_minute_head_start"] < split["gf_hour_start"] <= split["gf_hour_end"]
    assert split["gf_hour_end"] <= split["gf_minute_tail_end"]
    assert split["gf_minute_tail_end"] * 1_000_000_000 == split["gf_tail_start"]
    edge = expected["edges"]["trading-engine->database-service:request"]
    assert edge["mainstat"] == len(traffic.tagged) + len(traffic.untagged)


def test_where_the_time_goes_matches_the_critical_path_of_sequential_traces(
    traffic: Traffic,
) -> None:
    # Every span of the fixture's trades waits for its children one after the other, so
    # exclusive time and the critical path attribute the same time to the same spans.
    for chain in ("A2", "B3"):
        expected = chain_critical_path(traffic.store, traffic.catalog, chain, traffic.window)
        shares = expected.to_json()["all"]
        by_service = panel_rows(traffic, "where-the-time-goes.json", "By service", chain)["A"]
        by_operation = panel_rows(traffic, "where-the-time-goes.json", "By operation", chain)["A"]
        want = {s["service"]: s["share"] for s in shares["services"]}
        assert {r["service"]: r["share"] for r in by_service} == pytest.approx(want, abs=1e-4)
        want_ops = {(s["service"], s["name"]): s["share"] for s in shares["operations"]}
        got_ops = {(r["service"], r["operation"]): r["share"] for r in by_operation}
        assert got_ops == pytest.approx(want_ops, abs=1e-4)
        means = {s["service"]: s["mean_ms"] for s in shares["services"]}
        for row in by_service:
            assert row["mean_ms_per_trace"] == pytest.approx(means[row["service"]], rel=1e-3)


def test_trace_lists_of_a_chain(traffic: Traffic) -> None:
    lists = {
        title: panel_rows(traffic, "traces.json", f"{title} of chain B1", "B1")["A"]
        for title in ("Recent traces", "Slowest traces", "Failed traces")
    }
    everything = set(traffic.tagged) | set(traffic.untagged)
    recent = lists["Recent traces"]
    assert {r["trace_id"] for r in recent} == everything
    assert [r["start"] for r in recent] == sorted((r["start"] for r in recent), reverse=True)
    slowest = [r["duration_ms"] for r in lists["Slowest traces"]]
    assert slowest == sorted(slowest, reverse=True) and slowest[0] == pytest.approx(300.0)
    failed = {r["trace_id"] for r in lists["Failed traces"]}
    assert failed == set(traffic.tagged[:3]) | {traffic.untagged[0]}
    # Report traces belong to no chain; A2's list holds the trades, tagged or not (the
    # untagged ones by the A2 rules matching a span below their B1 root).
    a2 = panel_rows(traffic, "traces.json", "Recent traces of chain A2", "A2")["A"]
    assert {r["trace_id"] for r in a2} == everything


def test_generated_json_is_valid_grafana_dashboard_json() -> None:
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["uid"].startswith("chainmap-") and data["panels"], path.name
        ids = [p["id"] for p in data["panels"]]
        assert len(ids) == len(set(ids)), path.name


CONCURRENT_CHAINS = """
version: 1
chains:
  - id: X1
    name: Fan-out
    category: api
    entry:
      - service: svc-root
        kind: server
"""


def test_where_the_time_goes_with_concurrent_spans_is_exclusive_time(
    store_factory: Callable[[], TraceStore],
) -> None:
    # root 0-100 calls a (10-50) and b (20-90) at once, then publishes (92-96) to a consumer
    # (93-99) it does not wait for. Exclusive time: root 100 - 80 - 4 = 16 (+ 4 publishing),
    # a 40, b 70, c 6. Jaeger's critical path instead follows b and drops the consumer.
    store = store_factory()
    catalog = parse_catalog(CONCURRENT_CHAINS, source="concurrent.yaml")
    tags = {"chain.ids": "X1", "chain.id": "X1"}
    spans = [
        {"trace": "f", "span": "r", "service": "svc-root", "kind": "Server",
         "duration_ms": 100,
         "attributes": {**tags, "chain.entry": "true", "chain.entry_ids": "X1"}},
        {"trace": "f", "span": "a", "parent": "r", "service": "svc-a", "start_ms": 10,
         "duration_ms": 40, "attributes": tags},
        {"trace": "f", "span": "b", "parent": "r", "service": "svc-b", "start_ms": 20,
         "duration_ms": 70, "attributes": tags},
        {"trace": "f", "span": "p", "parent": "r", "service": "svc-root", "kind": "Producer",
         "start_ms": 92, "duration_ms": 4, "attributes": tags},
        {"trace": "f", "span": "c", "parent": "p", "service": "svc-c", "kind": "Consumer",
         "start_ms": 93, "duration_ms": 6, "attributes": tags},
    ]  # fmt: skip
    now_s = int(time.time())
    insert_spans(store, spans, (now_s - 600) * 1_000_000_000)
    traffic = Traffic(store, catalog, QueryContext(now_s - 3600, now_s + 1), [], [])
    rows = panel_rows(traffic, "where-the-time-goes.json", "By service", "X1")["A"]
    total = 136
    assert {r["service"]: r["share"] for r in rows} == pytest.approx(
        {"svc-root": 20 / total, "svc-a": 40 / total, "svc-b": 70 / total, "svc-c": 6 / total},
        abs=1e-6,
    )
    path = chain_critical_path(store, catalog, "X1", traffic.window).to_json()["all"]
    assert {s["service"]: s["share"] for s in path["services"]} == pytest.approx(
        {"svc-root": 0.3, "svc-b": 0.7}, abs=1e-6
    )


def test_topology_frames_pair_a_consumer_with_its_producer_through_the_link(
    chdb_store: TraceStore, chdb_path: Path
) -> None:
    """The Node Graph draws the queue hop as chainmap's topology does: trading-engine ->
    settlement, paired through the consumer's span link, with the same calls."""
    from chainmap_otel.tagging.active import set_active_catalog
    from tests.analysis.test_links import Fleet, place_order, settle, store_spans
    from tests.grafana.conftest import open_database
    from tests.server import chain_traffic

    catalog = chain_traffic.catalog()
    store = open_database(chdb_path, "gl")
    fleet = Fleet(catalog)
    set_active_catalog(catalog)
    try:
        for _ in range(2):
            headers: dict[str, str] = {}
            place_order(fleet, headers)
            settle(fleet, headers)
        store_spans(store, fleet)
        now_s = int(time.time())
        ctx = QueryContext(from_s=now_s - 3600, to_s=now_s + 1, interval_s=60)
        linked = Traffic(store, catalog, ctx, [], [])
        drawn = node_graph(linked, "B3")
        assert_same_graph(drawn, library_graph(linked, "B3"))
        hop = next(
            e
            for e in drawn["edges"].values()
            if (e["source"], e["target"]) == ("trading-engine", "settlement")
        )
        assert hop["mainstat"] == 2
    finally:
        set_active_catalog(ChainCatalog())
        fleet.close()
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()
