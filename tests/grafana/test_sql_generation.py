"""The generated SQL: literals escaped so they classify exactly like bound parameters, and
the ``chainmap sql`` commands."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chainmap_otel.analysis.membership import MINUTE_COLUMNS, classify_expression
from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.errors import QueryError
from chainmap_otel.grafana import dashboards
from chainmap_otel.grafana.queries import membership_expression, sql_literal
from chainmap_otel.tagging.definitions import parse_catalog
from tests.grafana.conftest import Traffic

runner = CliRunner()

AWKWARD_YAML = r"""
version: 1
chains:
  - id: Q1
    name: Quotes
    category: api
    entry:
      - service: "o'brien\\svc"
  - id: Q2
    name: Like wildcards
    category: api
    entry:
      - service: "100%_done*"
  - id: Q3
    name: Regex with backslashes
    category: api
    entry:
      - service: {regex: "^api\\.v[0-9]+'s$"}
        route: "/a/*"
  - id: Q4
    name: Glob class
    category: api
    entry:
      - service: "svc-[ab]?"
        method: [GET, POST]
"""
SERVICES = [
    "o'brien\\svc",
    "o'brien\\\\svc",
    "obrien",
    "100%_done-now",
    "100x_done",
    "100%Xdone",
    "api.v2's",
    "apixv2's",
    "svc-a1",
    "svc-c1",
    "it's",
    "\\",
]


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module)


def test_inlined_literals_classify_like_bound_parameters(traffic: Traffic) -> None:
    catalog = parse_catalog(AWKWARD_YAML, source="awkward.yaml")
    rows = ", ".join(
        f"({sql_literal(s)}, 'GET /a/b', '/a/b', {sql_literal(m)}, 'Server')"
        for s in SERVICES
        for m in ("GET", "DELETE")
    )
    source = (
        "(SELECT * FROM VALUES('ServiceName String, SpanName String, Route String, "
        f"Method String, SpanKind String', {rows}))"
    )
    bound, params = classify_expression(catalog, MINUTE_COLUMNS)
    expected = traffic.store.query(
        f"SELECT ServiceName, Method, {bound} FROM {source} ORDER BY ServiceName, Method", params
    ).result_rows
    inlined = membership_expression(catalog, "chainmap_chain_minute")
    got = traffic.store.query(
        f"SELECT ServiceName, Method, {inlined} FROM {source} ORDER BY ServiceName, Method"
    ).result_rows
    assert got == expected
    matched = {chain for row in got for chain in row[2]}
    assert matched == {"Q1", "Q2", "Q3", "Q4"}, "every awkward pattern matches something"


def test_patterns_grafana_would_rewrite_are_refused() -> None:
    catalog = parse_catalog(
        'version: 1\nchains:\n  - id: X1\n    name: x\n    category: api\n    entry:\n      - service: "a$chain"\n',
        source="dollar.yaml",
    )
    with pytest.raises(QueryError, match=r"Grafana interpolates"):
        membership_expression(catalog)
    assert sql_literal("ends with $") == "'ends with $'"


def test_membership_command_prints_the_expression(tmp_path: Path) -> None:
    chains = tmp_path / "chains.yaml"
    chains.write_text(AWKWARD_YAML)
    catalog = parse_catalog(AWKWARD_YAML, source=str(chains))
    for table in ("otel_traces", "chainmap_chain_minute", "chainmap_trace_summary"):
        result = runner.invoke(
            app, ["sql", "membership", "--chains", str(chains), "--table", table]
        )
        assert result.exit_code == 0, result.output
        assert result.output == membership_expression(catalog, table) + "\n"


def test_membership_command_rejects_a_bad_chains_file(tmp_path: Path) -> None:
    chains = tmp_path / "bad.yaml"
    chains.write_text("version: 1\nchains:\n  - id: A1\n    entry: []\n")
    result = runner.invoke(app, ["sql", "membership", "--chains", str(chains)])
    assert result.exit_code == 1
    assert "bad.yaml" in result.output and "Traceback" not in result.output


def test_dashboards_command_writes_what_render_returns(tmp_path: Path) -> None:
    chains = tmp_path / "chains.yaml"
    chains.write_text(AWKWARD_YAML)
    out = tmp_path / "boards"
    result = runner.invoke(
        app, ["sql", "dashboards", "--chains", str(chains), "--database", "tel", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    rendered = dashboards.render(parse_catalog(AWKWARD_YAML, source=str(chains)), "tel")
    for name, text in rendered.items():
        assert (out / name).read_text() == text
        assert json.loads(text)["panels"]
    assert "4 dashboards for 4 chains" in result.output


def test_dashboards_command_rejects_a_bad_database(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["sql", "dashboards", "--database", "x;DROP", "-o", str(tmp_path / "b")]
    )
    assert result.exit_code == 1
    assert "--database 'x;DROP' is not a plain identifier" in result.output
    assert not (tmp_path / "b").exists()
