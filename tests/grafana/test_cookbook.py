"""Every ```sql block of docs/sql.md runs on chDB over the test traffic and returns rows."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups import traces as trace_rollup
from chainmap_otel.grafana.queries import membership_expression
from chainmap_otel.tagging.definitions import parse_catalog
from tests.grafana.conftest import Traffic

DOC = (Path(__file__).resolve().parents[2] / "docs" / "sql.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(sql|yaml)\n(.*?)```", DOC, flags=re.DOTALL)
RECIPES = [body for kind, body in BLOCKS if kind == "sql"]
_PARAMETER = re.compile(r"\{([a-z_]+):[A-Za-z0-9()]+\}")


def test_the_cookbook_has_its_recipes() -> None:
    assert len(RECIPES) >= 10


@pytest.fixture(scope="module")
def rolled_up(traffic: Traffic) -> Traffic:
    """The traffic with its edge rollup refreshed, as ``chainmap serve`` keeps it, and its
    traces merged as they are once their hour has closed."""
    edge_rollup.refresh_edges(traffic.store, traffic.catalog)
    trace_rollup.refresh_traces(traffic.store, until_ns=time.time_ns() + 2 * 3600 * 10**9)
    return traffic


@pytest.mark.parametrize("index", range(len(RECIPES)))
def test_recipe_runs_and_returns_rows(rolled_up: Traffic, index: int) -> None:
    traffic = rolled_up
    sql = RECIPES[index]
    values = {"chain": "B3", "trace_id": traffic.tagged[0]}
    used = {name: values[name] for name in _PARAMETER.findall(sql)}
    result = traffic.store.query(sql, used)
    assert result.result_rows, f"recipe {index} of docs/sql.md returned no rows:\n{sql}"


def test_the_membership_recipe_is_what_the_command_prints(traffic: Traffic) -> None:
    catalog_yaml = next(body for kind, body in BLOCKS if kind == "yaml")
    expression = membership_expression(parse_catalog(catalog_yaml, source="docs/sql.md"))
    recipe = RECIPES[0]
    assert expression in recipe
    rows = dict(traffic.store.query(recipe).result_rows)
    assert rows == {"B1": len(traffic.untagged)}
