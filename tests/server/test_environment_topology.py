"""One environment on every surface of a real serve (uvicorn, chDB) over the fleet of
tests/support/environment_fleet.py (prod sampled at 1/4 with ``deployment.environment.name``,
staging unsampled with the old ``deployment.environment``): topology on the API, the CLI
through ``--server``, the web page and the Grafana panel SQL shows the same weighted numbers
for the same window and environment; trace search, a chain's critical path and rule
coverage keep that environment's traces; a bad environment is a 400 naming it."""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from chainmap_otel.analysis.rollups import protocol
from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.grafana import dashboards
from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.grafana.datasource import QueryContext, panel_sql
from tests.server import chain_traffic
from tests.support.environment_fleet import PROD_WEIGHT, orders_catalog, sampled_fleet
from tests.support.stores import fresh_store

runner = CliRunner()
PROD, STAGING = 3, 2
MINUTE_S = 60


@dataclass
class Site:
    client: httpx.Client
    url: str
    store: TraceStore
    catalog: ChainCatalog
    since: str
    until: str
    from_s: int
    to_s: int


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def site(chdb_store: TraceStore, chdb_path: Path) -> Iterator[Site]:

    store = fresh_store(chdb_path)
    catalog = orders_catalog()
    try:
        sampled_fleet(store, PROD, STAGING)
        now_s = time.time_ns() // 1_000_000_000
        from_s = protocol.floor_minute(now_s * 1_000_000_000) // 1_000_000_000 - 5 * MINUTE_S
        to_s = (now_s // MINUTE_S + 2) * MINUTE_S
        with chain_traffic.serving(create_app(store, chains=catalog)) as client:
            yield Site(
                client,
                str(client.base_url).rstrip("/"),
                store,
                catalog,
                iso(from_s),
                iso(to_s),
                from_s,
                to_s,
            )
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def window(site: Site, environment: str) -> dict[str, str]:
    params = {"since": site.since, "until": site.until}
    return {**params, "environment": environment} if environment else params


def api(site: Site, path: str, environment: str, **params: Any) -> Any:
    response = site.client.get(path, params={**window(site, environment), **params})
    assert response.status_code == 200, response.text
    return response.json()


def cli(site: Site, *args: str) -> Any:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    result = runner.invoke(app, [*args, "--server", site.url, "-f", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def edge_numbers(topology: dict[str, Any]) -> dict[tuple[str, str, str], tuple[int, ...]]:
    return {
        (e["source"], e["target"], e["connection_type"]): (
            e["calls"],
            e["errors"],
            e["stored_calls"],
            e["stored_errors"],
        )
        for e in topology["edges"]
    }


def page_topology(html: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" class="topology-data">(.*?)</script>', html, re.S
    )
    assert found, "no topology in the page"
    data: dict[str, Any] = json.loads(unescape(found.group(1)))
    return data


def grafana_edges(site: Site, chain: str, environment: str) -> dict[str, Any]:
    board = dashboards.chain_topology(site.catalog, site.store.database)
    assert "environment" in {v["name"] for v in board["templating"]["list"]}
    edges_sql = board["panels"][0]["targets"][1]["rawSql"]
    sql = panel_sql(
        edges_sql,
        {"chain": chain, "environment": environment},
        QueryContext(site.from_s, site.to_s),
    )
    result = site.store.query(sql)
    return {
        row["id"]: row
        for row in (dict(zip(result.column_names, r, strict=True)) for r in result.result_rows)
    }


@pytest.mark.parametrize("environment", ["", "prod", "staging"])
def test_topology_agrees_on_api_cli_web_and_grafana(site: Site, environment: str) -> None:
    shown = api(site, "/api/v1/chains/ORD/topology", environment)
    numbers = edge_numbers(shown)
    weight = {"": None, "prod": PROD_WEIGHT, "staging": 1}[environment]
    gateway = numbers[("gateway", "orders", "")]
    if weight is None:
        assert gateway == (PROD * PROD_WEIGHT + STAGING, PROD_WEIGHT, PROD + STAGING, 1)
    else:
        traces = PROD if environment == "prod" else STAGING
        assert gateway[0] == traces * weight and gateway[2] == traces
    assert shown["sampled"] is (environment != "staging")
    assert shown["window"].get("environment", "") == environment

    args = ["topology", "--chain", "ORD", "--since", site.since, "--until", site.until]
    via_cli = cli(site, *args, *(["--env", environment] if environment else []))
    assert edge_numbers(via_cli) == numbers

    page = site.client.get(
        "/chains/ORD",
        params=window(site, environment) | ({"env": environment} if environment else {}),
    )
    assert page.status_code == 200
    assert edge_numbers(page_topology(page.text)) == numbers
    if environment:
        # The window picker's links keep the environment.
        assert f"env={environment}" in page.text

    grafana = grafana_edges(site, "ORD", environment)
    assert {row["id"]: row["mainstat"] for row in grafana.values()} == {
        f"{s}->{t}:{c or 'request'}": calls for (s, t, c), (calls, *_rest) in numbers.items()
    }


@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_the_all_traffic_page_and_the_search_form_take_env(site: Site, environment: str) -> None:
    shown = api(site, "/api/v1/chains/topology", environment)
    page = site.client.get("/topology", params={**window(site, ""), "env": environment})
    assert page.status_code == 200
    assert edge_numbers(page_topology(page.text)) == edge_numbers(shown)
    assert f"environment {environment}" in page.text
    search = site.client.get("/search", params={"env": environment})
    assert f'name="environment" value="{environment}"' in search.text


def test_trace_search_keeps_the_environment_of_the_root_span(site: Site) -> None:
    everything = api(site, "/api/v1/traces", "", limit=100)["traces"]
    assert len(everything) == 2 * (PROD + STAGING)  # each order and its settlement
    for environment, orders in (("prod", PROD), ("staging", STAGING)):
        found = api(site, "/api/v1/traces", environment, limit=100)["traces"]
        assert len(found) == 2 * orders, environment
        chain = api(site, "/api/v1/traces", environment, chain="ORD", limit=100)["traces"]
        assert len(chain) == orders, environment
        args = ["traces", "--chain", "ORD", "--since", site.since, "--until", site.until]
        assert len(cli(site, *args, "--env", environment)["traces"]) == orders


def test_critical_path_and_coverage_keep_the_environment(site: Site) -> None:
    for environment, orders in (("", PROD + STAGING), ("prod", PROD), ("staging", STAGING)):
        path = api(site, "/api/v1/chains/ORD/critical-path", environment)
        assert path["all"]["traces"] == orders, environment
        args = ["critical-path", "--chain", "ORD", "--since", site.since, "--until", site.until]
        env = ["--env", environment] if environment else []
        assert cli(site, *args, *env)["all"]["traces"] == orders
        covered = api(site, "/api/v1/coverage", environment)
        assert covered["totals"]["instances"] == orders, environment
    assert api(site, "/api/v1/coverage", "qa")["totals"]["instances"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/chains/topology",
        "/api/v1/chains/ORD/topology",
        "/api/v1/chains/ORD/critical-path",
        "/api/v1/traces",
        "/api/v1/coverage",
    ],
)
def test_a_bad_environment_is_a_400_naming_it(site: Site, path: str) -> None:
    response = site.client.get(path, params={"environment": "x" * 200})
    assert response.status_code == 400, response.text
    assert "environment" in response.json()["detail"]
