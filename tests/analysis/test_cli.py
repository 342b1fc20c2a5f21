"""The analysis commands end to end: JSON output, and one-line errors with exit 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.storage.store import TraceStore
from tests.analysis.conftest import CATALOG_YAML, hex_id

runner = CliRunner()


@pytest.fixture(autouse=True)
def _commands() -> None:
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)


@pytest.fixture
def chains_file(tmp_path: Path) -> Path:
    path = tmp_path / "chains.yaml"
    path.write_text(CATALOG_YAML, encoding="utf-8")
    return path


def url(store: TraceStore) -> str:
    return f"chdb://{store.location.path}?database={store.database}"


def run(store: TraceStore, chains_file: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--store", url(store), "--chains", str(chains_file)])


def test_json_outputs(
    load: Callable[[str], dict[str, Any]], store: TraceStore, chains_file: Path
) -> None:
    load("nested_chains")
    topo = json.loads(run(store, chains_file, "topology", "--chain", "B3", "-f", "json").stdout)
    assert {
        "source",
        "target",
        "connection_type",
        "calls",
        "errors",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    } <= set(topo["edges"][0])
    grafana = json.loads(run(store, chains_file, "topology", "-f", "grafana").stdout)
    ids = {n["id"] for n in grafana["nodes"]}
    assert all(e["source"] in ids and e["target"] in ids for e in grafana["edges"])
    assert all(n["arc__success"] + n["arc__failed"] == pytest.approx(1) for n in grafana["nodes"])
    assert "flowchart LR" in run(store, chains_file, "topology", "-f", "mermaid").stdout
    assert "digraph" in run(store, chains_file, "topology", "-f", "dot").stdout
    health = json.loads(run(store, chains_file, "health", "-f", "json").stdout)
    assert {c["chain_id"] for c in health["chains"]} == {"B1", "A2", "B3", "C9"}
    path = json.loads(
        run(store, chains_file, "critical-path", hex_id("t1", 32), "-f", "json").stdout
    )
    assert path["sections"]
    impact = json.loads(run(store, chains_file, "impact", "postgresql", "-f", "json").stdout)
    assert impact["chains"]
    drift = json.loads(run(store, chains_file, "drift", "-f", "json").stdout)
    assert {c["chain_id"] for c in drift["chains"]} == {"A2", "B3"}
    found = run(store, chains_file, "discover", "--min-traces", "1", "-f", "yaml")
    assert found.exit_code == 0 and "version: 1" in found.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("health", "--chain", "ZZ"), "unknown chain id 'ZZ'"),
        (("topology", "--since", "yesterday"), "--since 'yesterday' is not a time"),
        (("critical-path", "0" * 32), "not found"),
        (("critical-path",), "give either a TRACE_ID or --chain"),
        (("impact", "nowhere"), "appears in no trace"),
    ],
)
def test_bad_input_is_one_line(
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    chains_file: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    load("client_server_pair")
    result = run(store, chains_file, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_empty_store(store: TraceStore, chains_file: Path) -> None:
    result = run(store, chains_file, "topology")
    assert result.exit_code == 1 and "holds no spans yet" in result.output


def test_bad_store_url(chains_file: Path, store: TraceStore) -> None:
    result = runner.invoke(app, ["health", "--store", "ftp://x", "--chains", str(chains_file)])
    assert result.exit_code == 1 and "unknown scheme" in result.output


def test_critical_path_table_and_json_count_the_same_traces(
    store: TraceStore, chains_file: Path, now_ns: int
) -> None:
    from tests.analysis.conftest import insert_spans, load_fixture

    # 40 copies of the nested trace: the slowest 5 % are 2 traces, all 40 are sampled.
    spans = load_fixture("nested_chains")["spans"]
    copies = [dict(span, trace=f"{span['trace']}-{i}") for i in range(40) for span in spans]
    insert_spans(store, copies, now_ns)
    data = json.loads(
        run(store, chains_file, "critical-path", "--chain", "B3", "-f", "json").stdout
    )
    assert data["traces"] == 40 and data["slow_traces"] == 2
    assert data["all"]["traces"] == data["sampled_traces"] == 40
    assert data["slowest_5pct"]["traces"] == 2
    # Titles wrap at 80 columns: compare the words.
    table = " ".join(run(store, chains_file, "critical-path", "--chain", "B3").stdout.split())
    assert "all traces (40 traces)" in table and "slowest 5 % (2 traces)" in table
