"""``chainmap traces compare`` in-process on fixture traces: the library's JSON, the table at
80 columns, the chain's typical trace as baseline, one-line errors."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chainmap_otel.analysis.compare import compare_traces
from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.storage.store import TraceStore
from tests.analysis.conftest import CATALOG_YAML, hex_id

runner = CliRunner()
cli_app = importlib.import_module("chainmap_otel.cli.app")
A, B = hex_id("added-a", 32), hex_id("added-b", 32)


@pytest.fixture(autouse=True)
def _commands() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module)


@pytest.fixture
def chains_file(tmp_path: Path) -> Path:
    path = tmp_path / "chains.yaml"
    path.write_text(CATALOG_YAML, encoding="utf-8")
    return path


def run(store: TraceStore, chains_file: Path, *args: str) -> Any:
    url = f"chdb://{store.location.path}?database={store.database}"
    return runner.invoke(
        app, ["traces", "compare", *args, "--store", url, "--chains", str(chains_file)]
    )


def test_json_is_the_library_json(
    load: Callable[[str], dict[str, Any]], store: TraceStore, chains_file: Path
) -> None:
    load("compare_added_span")
    result = run(store, chains_file, A, B, "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == compare_traces(store, A, B)


def test_the_table_fits_80_columns_and_names_what_changed(
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    chains_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load("compare_added_span")
    monkeypatch.setattr(cli_app.console, "width", 80)
    result = run(store, chains_file, A, B)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[:3] == [f"A {A}", f"B {B}", "B - A: +30.0 ms (100.0 -> 130.0 ms)"]
    assert lines[3:5] == [
        "spans: 4 matched, 2 added, 0 missing",
        "errors: 0 only in B, 0 only in A, 0 in both",
    ]
    rows = [line.split() for line in lines if line.startswith(("matched", "added"))]
    added = [r for r in rows if r[0] == "added"]
    assert [" ".join(r[6:]) for r in added] == ["trading-engine: GET", "risk-service: GET /risk"]
    assert all(r[1] == "-" and r[3] == "-" for r in added)  # no A side, no diff
    engine = next(r for r in rows if r[6:] == ["trading-engine:", "POST", "/orders"])
    assert engine[:6] == ["matched", "76.0", "106.0", "+30.0", "-35.0", "-"]
    # Only what moved: the insert took 20 ms in both and is left out.
    changed = run(store, chains_file, A, B, "--min-diff-ms", "1").stdout
    assert "5 spans (1 moved less than 1 ms)" in changed and "INSERT orders" not in changed
    assert "INSERT orders" in result.stdout


def test_one_trace_against_the_chains_typical_trace(
    load: Callable[[str], dict[str, Any]], store: TraceStore, chains_file: Path
) -> None:
    load("compare_typical")
    slow = hex_id("typ-5", 32)
    result = run(store, chains_file, slow, "--chain", "B1", "--since", "1h")
    assert result.exit_code == 0, result.output
    typical = hex_id("typ-4", 32)
    assert result.stdout.splitlines()[:3] == [
        f"A {typical}",
        "  the typical B1 trace of the window: 310.0 ms; median 300.0 ms of 5 traces",
        f"B {slow}",
    ]
    assert "B - A: +590.0 ms" in result.stdout
    as_json = json.loads(run(store, chains_file, slow, "--chain", "B1", "-f", "json").stdout)
    assert as_json["a"]["trace_id"] == typical and as_json["typical"]["chain_id"] == "B1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((A,), "give the baseline trace (TRACE_A) or a chain (--chain)"),
        ((A, B, "--chain", "B1"), "not both"),
        (("xyz", B), "TRACE_A 'xyz' is not 32 hex characters"),
        ((A, "cd" * 16), f"trace {'cd' * 16} not found"),
        ((A, B, "--max-spans", "0"), "--max-spans 0 must be from 1 to 50000"),
        ((B, "--chain", "A2"), "chain A2 has no typical trace"),
    ],
)
def test_bad_input_is_one_line(
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    chains_file: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    load("compare_added_span")
    result = run(store, chains_file, *args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2
