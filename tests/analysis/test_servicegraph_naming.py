"""Node naming: chainmap's richer default next to the servicegraph connector's options
(``virtual_node_peer_attributes``, ``database_name_attributes``), live and rolled up alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chainmap_otel.analysis.naming import ServiceGraphNaming
from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups import protocol
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.topology import edge_rows
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import CATALOG_YAML, insert_spans

MINUTE = 60 * 1_000_000_000

CLIENTS = {
    "db-both": {"db.system": "postgresql", "db.name": "orders_db"},
    "db-system-only": {"db.system": "redis"},
    "address-only": {"server.address": "api.exchange.example"},
    "peer": {"peer.service": "ledger"},
}


def client_spans() -> list[dict[str, object]]:
    spans: list[dict[str, object]] = []
    for i, (trace, attributes) in enumerate(CLIENTS.items()):
        spans += [
            {"trace": trace, "span": "s", "service": "orders", "kind": "Server"},
            {
                "trace": trace,
                "span": "c",
                "parent": "s",
                "service": "orders",
                "kind": "Client",
                "start_ms": 1 + i,
                "attributes": attributes,
            },
        ]
    return spans


def targets(rows: list[tuple[object, ...]]) -> dict[str, str]:
    """Target node -> connection type of the all-traffic edges leaving ``orders``."""
    return {str(r[2]): str(r[3]) for r in rows if r[0] == "" and r[1] == "orders"}


CHAINMAP = {
    "postgresql": "database",
    "redis": "database",
    "api.exchange.example": "virtual_node",
    "ledger": "virtual_node",
}
CONNECTOR = {
    "orders_db": "database",  # database_name_attributes [db.name]: the attribute's value
    "redis": "virtual_node",  # no db.name: virtual, named by db.system (third in the list)
    "unknown": "virtual_node",  # server.address is not in virtual_node_peer_attributes
    "ledger": "virtual_node",
}


@pytest.mark.parametrize(
    ("naming", "expected"),
    [(ServiceGraphNaming(), CHAINMAP), (ServiceGraphNaming.connector(), CONNECTOR)],
    ids=["chainmap", "connector"],
)
def test_namings_live_and_rolled_up(
    naming: ServiceGraphNaming,
    expected: dict[str, str],
    store: TraceStore,
    catalog: ChainCatalog,
    now_ns: int,
) -> None:
    insert_spans(store, client_spans(), now_ns)
    window = TimeWindow(
        protocol.floor_minute(now_ns) - 5 * MINUTE,
        protocol.floor_minute(now_ns) + 5 * MINUTE,
    )
    live = edge_rows(store, catalog, window, [""], None, naming)
    assert targets(live) == expected
    state = edge_rollup.refresh_edges(store, catalog, naming=naming).state
    assert state.catalog == edge_rollup.catalog_fingerprint(catalog, naming)
    rolled = edge_rows(store, catalog, window, [""], state, naming)
    assert sorted(r[:7] for r in rolled) == sorted(r[:7] for r in live)


def test_each_naming_has_its_own_rollup(catalog: ChainCatalog) -> None:
    prints = {
        edge_rollup.catalog_fingerprint(catalog, naming)
        for naming in (
            ServiceGraphNaming(),
            ServiceGraphNaming.connector(),
            ServiceGraphNaming(("server.address",), None),
        )
    }
    assert len(prints) == 3


def test_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceGraphNaming.from_config() == ServiceGraphNaming()
    monkeypatch.setenv("CHAINMAP_SERVICEGRAPH_COMPAT", "true")
    assert ServiceGraphNaming.from_config() == ServiceGraphNaming.connector()
    monkeypatch.setenv("CHAINMAP_SERVICEGRAPH_VIRTUAL_NODE_PEER_ATTRIBUTES", "server.address, x")
    monkeypatch.setenv("CHAINMAP_SERVICEGRAPH_DATABASE_NAME_ATTRIBUTES", "db.namespace")
    assert ServiceGraphNaming.from_config() == ServiceGraphNaming(
        ("server.address", "x"), ("db.namespace",)
    )
    monkeypatch.setenv("CHAINMAP_SERVICEGRAPH_DATABASE_NAME_ATTRIBUTES", "a" * 300)
    assert ServiceGraphNaming.from_config().database_name_attributes == ("db.name",)
    with pytest.raises(ValueError, match="virtual_node_peer_attributes must list"):
        ServiceGraphNaming(("a,b",), None)


def test_cli_flag_selects_the_connector_naming(
    store: TraceStore, tmp_path: Path, now_ns: int
) -> None:
    import importlib

    from chainmap_otel.cli import COMMAND_MODULES, app

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    insert_spans(store, client_spans(), now_ns)
    chains = tmp_path / "chains.yaml"
    chains.write_text(CATALOG_YAML, encoding="utf-8")
    url = f"chdb://{store.location.path}?database={store.database}"
    base = ["topology", "--store", url, "--chains", str(chains), "-f", "json"]
    runner = CliRunner()
    default = json.loads(runner.invoke(app, base).stdout)
    compat = json.loads(runner.invoke(app, [*base, "--servicegraph-compat"]).stdout)
    assert "postgresql" in {n["id"] for n in default["nodes"]}
    assert {"orders_db", "unknown"} <= {n["id"] for n in compat["nodes"]}
