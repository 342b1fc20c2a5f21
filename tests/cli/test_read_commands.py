"""Read commands in-process: ``chainmap traces``, inverted windows, missing stores, 80 columns."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.analysis.traces import TraceQuery, search_traces
from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import CATALOG_YAML

runner = CliRunner()
#: The module (``chainmap_otel.cli.app`` the attribute is the Typer app it defines).
cli_app = importlib.import_module("chainmap_otel.cli.app")


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
    return runner.invoke(app, [*args, "--store", url, "--chains", str(chains_file)])


def test_traces_json_is_the_library_json(
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    catalog: ChainCatalog,
    chains_file: Path,
) -> None:
    load("trace_search")
    since, until = "2h", "2099-01-01T00:00:00Z"
    window = parse_window(since, until)
    for args, query in [
        ((), TraceQuery()),
        (("--chain", "B3", "--order", "duration"), TraceQuery(chain="B3", order="duration")),
        (("--status", "error", "--limit", "1"), TraceQuery(status="error", limit=1)),
        (("--attr", "tenant=acme"), TraceQuery.parse(attr=["tenant=acme"])),
        (
            ("--attr", "tenant", "--attr", "tenant!=x"),
            TraceQuery.parse(attr=["tenant", "tenant!=x"]),
        ),
        (("--attr", "http.route=~^/ord"), TraceQuery.parse(attr=["http.route=~^/ord"])),
        (
            ("--chain", "B3", "--chain-status", "error", "--max-duration-ms", "800"),
            TraceQuery(chain="B3", chain_status="error", max_duration_ms=800),
        ),
        (
            ("--service", "reporting", "--min-duration-ms", "100", "--max-duration-ms", "400"),
            TraceQuery(service="reporting", min_duration_ms=100, max_duration_ms=400),
        ),
        (("--operation", "/orders"), TraceQuery(operation="/orders")),
    ]:
        result = run(
            store, chains_file, "traces", *args, "--since", since, "--until", until, "-f", "json"
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == search_traces(store, catalog, window, query).to_json()


def test_traces_bad_option_is_one_line(
    load: Callable[[str], dict[str, Any]], store: TraceStore, chains_file: Path
) -> None:
    load("trace_search")
    result = run(store, chains_file, "traces", "--attr", "tenant=~(")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: --attr 'tenant=~(' is not a valid regex: missing ), unterminated subpattern "
        "at position 0 (use key=value, key!=value, key=~regex or key, up to 512 characters "
        "each, e.g. http.route=/orders)"
    ]
    many = run(store, chains_file, "traces", *["--attr=k"] * 17)
    assert many.output.strip().splitlines() == ["error: --attr is given 17 times; at most 16"]
    lonely = run(store, chains_file, "traces", "--chain-status", "error")
    assert lonely.output.strip().splitlines() == [
        "error: --chain-status 'error' needs a chain: it is the status of the chain's entry span"
    ]


def test_inverted_window_is_rejected(
    load: Callable[[str], dict[str, Any]], store: TraceStore, chains_file: Path
) -> None:
    load("trace_search")
    for command in (("health",), ("traces",), ("topology",)):
        result = run(store, chains_file, *command, "--since", "2h", "--until", "3h")
        assert result.exit_code == 1
        assert "is not before --until '3h'" in result.output
        assert "Traceback" not in result.output
    ok = run(store, chains_file, "traces", "--since", "3h", "--until", "2h", "-f", "json")
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["traces"] == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("health", "--since", "bogus"), "--since 'bogus' is not a time"),
        (("topology", "--until", "later"), "--until 'later' is not a time"),
        (("health", "--since", "2h", "--until", "3h"), "--since '2h' is not before --until '3h'"),
        (("drift", "--history", "ages"), "--history 'ages' is not a time"),
        (("drift", "--until", "soon"), "--until 'soon' is not a time"),
        (("critical-path", "--chain", "B3", "--sample-cap", "0"), "--sample-cap=0 is out of range"),
        (("discover", "--min-traces", "0"), "--min-traces=0 is out of range"),
        (("critical-path", "xyz"), "TRACE_ID 'xyz' is not 32 hex characters"),
        (("traces", "--limit", "0"), "--limit 0 must be a whole number"),
        (("traces", "--min-duration-ms", "-1"), "--min-duration-ms -1.0 must be a number"),
        (("traces", "--status", "fine"), "--status 'fine' is not supported"),
        (("health", "--chain", "ZZ"), "--chain: unknown chain id 'ZZ'"),
        (("traces", "--chain", "ZZ"), "--chain: unknown chain id 'ZZ'"),
        (("critical-path", "0" * 32), f"trace {'0' * 32} not found"),
        (("impact", "nowhere"), "node 'nowhere' appears in no trace"),
    ],
)
def test_library_errors_name_the_flag(
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    chains_file: Path,
    args: tuple[str, ...],
    named: str,
) -> None:
    load("trace_search")
    result = run(store, chains_file, *args)
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {named}"), line


def test_a_read_never_creates_the_store(tmp_path: Path, chains_file: Path) -> None:
    missing = tmp_path / "no-such-store"
    for command in (("health",), ("traces",), ("discover",), ("critical-path", "0" * 32)):
        result = runner.invoke(
            app, [*command, "--store", f"chdb://{missing}", "--chains", str(chains_file)]
        )
        assert result.exit_code == 1, result.output
        assert f"the embedded store {missing} does not exist" in result.output
    assert not missing.exists()


def test_tables_fit_80_columns_with_whole_statuses(
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    chains_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load("trace_search")
    monkeypatch.setattr(cli_app.console, "width", 80)
    assert not cli_app.console.is_terminal
    health = run(store, chains_file, "health")
    assert health.exit_code == 0, health.output
    lines = health.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {line.split()[0]: line.split()[1] for line in lines if line[:2] in ("B1", "B3", "A2")}
    assert rows == {"B1": "critical", "B3": "critical", "A2": "healthy"}
    # One line per chain: only the free-text reason is cut, with an ellipsis, at the end.
    assert len([line for line in lines if line[:2] in ("B1", "B3", "A2", "C9")]) == len(lines) - 3
    assert all(line.rstrip().endswith("…") for line in lines if "…" in line)
    wide = run(store, chains_file, "health", "--wide")
    assert "…" not in wide.stdout and "both above 6x" in " ".join(wide.stdout.split())
    tsv = run(store, chains_file, "health", "-f", "tsv")
    table = [line.split("\t") for line in tsv.stdout.splitlines()]
    assert table[0] == [
        "chain",
        "status",
        "traces",
        "rate/s",
        "errors",
        "p95 ms",
        "p99 ms",
        "burn 1h",
        "reason",
    ]
    assert {row[0]: row[1] for row in table[1:]} == {**rows, "C9": "no_data"}
    assert all(len(row) == 9 for row in table) and "…" not in tsv.stdout
    traces = run(store, chains_file, "traces")
    assert max(len(line) for line in traces.stdout.splitlines()) <= 80
    found = [line.split()[:4] for line in traces.stdout.splitlines() if line[:1].isalnum()]
    assert [row[3] for row in found if len(row[0]) == 32] == ["error", "ok", "error"]


def test_operations_json_is_the_library_json_and_the_table_fits(
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    catalog: ChainCatalog,
    chains_file: Path,
) -> None:
    from chainmap_otel.analysis.operations import chain_operations

    load("nested_chains")
    # One fixed window for both sides: a minute passing between them would move the steps.
    now = datetime.now(UTC).replace(microsecond=0)
    since, until = ((now + timedelta(hours=h)).isoformat() for h in (-1, 1))
    window = ("--since", since, "--until", until)
    result = run(store, chains_file, "operations", "B3", *window, "-f", "json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    again = chain_operations(store, catalog, parse_window(since, until), "B3").to_json()
    assert printed == again
    assert printed["operations"][0]["operation"] == "client q"  # ties: by service name
    table = run(store, chains_file, "operations", "B3", "--since", "1h")
    assert table.exit_code == 0, table.output
    assert "operations of B3" in table.output
    assert "trading-engine: server te (server)" in " ".join(table.output.split())
    assert max(len(line) for line in table.output.splitlines()) <= 80
    refused = run(store, chains_file, "operations", "B3", "--limit", "0")
    assert refused.exit_code == 1
    assert refused.output.strip() == "error: --limit=0 is out of range: use 1 to 1000"


def test_critical_path_of_a_trace_prints_the_instance_through_the_queue(
    load: Callable[[str], dict[str, Any]], store: TraceStore, chains_file: Path
) -> None:
    from tests.analysis.conftest import hex_id

    load("queue_hop")
    producer = hex_id("q1", 32)
    table = run(store, chains_file, "critical-path", producer)
    assert table.exit_code == 0, table.output
    data = json.loads(run(store, chains_file, "critical-path", producer, "-f", "json").stdout)
    instance = data["instance"]
    assert f"end to end {instance['end_to_end_ms']:.3f} ms over 2 traces" in table.stdout
    assert "order_events" in table.stdout and "queue wait" in table.stdout
    assert hex_id("q2", 32) in table.stdout
    # The consumer's own trace starts no instance: its table alone.
    consumer = run(store, chains_file, "critical-path", hex_id("q2", 32))
    assert consumer.exit_code == 0 and "end to end" not in consumer.stdout


def test_the_chains_critical_path_prints_its_instances_end_to_end_through_the_queue(
    load: Callable[[str], dict[str, Any]], store: TraceStore, chains_file: Path
) -> None:
    load("queue_hop")
    data = json.loads(
        run(store, chains_file, "critical-path", "--chain", "B3", "-f", "json").stdout
    )
    through = data["through_queues"]
    assert through["instances"] == 1, through
    table = run(store, chains_file, "critical-path", "--chain", "B3")
    assert table.exit_code == 0, table.output
    assert (
        f"B3: end to end through queues: 1 sampled instances, p50 {through['p50_ms']:.1f} ms"
        in " ".join(table.stdout.split())
    )
