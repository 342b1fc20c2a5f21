"""Analysis under hostile input: stored names that look like markup, windows and limits
out of range, and a decade-long discovery window that must stay a handful of queries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chainmap_otel.analysis.discovery import MAX_SLICES, discover
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import CATALOG_YAML, insert_spans

runner = CliRunner()
EVIL = "[/]evil"
DAY_NS = 86_400 * 1_000_000_000


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


def evil_traces(count: int) -> list[dict[str, Any]]:
    """Traces whose services are named like rich markup, calling each other."""
    spans: list[dict[str, Any]] = []
    for i in range(count):
        trace = f"evil{i}"
        spans += [
            {"trace": trace, "span": "root", "service": EVIL, "kind": "Server",
             "name": "GET /[bold]x", "start_ms": i, "duration_ms": 20,
             "attributes": {"http.route": "/[bold]x"}},
            {"trace": trace, "span": "call", "parent": "root", "service": EVIL,
             "kind": "Client", "name": "call", "start_ms": i + 1, "duration_ms": 10},
            {"trace": trace, "span": "srv", "parent": "call", "service": "[red]peer",
             "kind": "Server", "name": "srv", "start_ms": i + 2, "duration_ms": 5},
        ]  # fmt: skip
    return spans


def invoke(store: TraceStore, chains_file: Path, *args: str) -> Any:
    url = f"chdb://{store.location.path}?database={store.database}"
    return runner.invoke(app, [*args, "--store", url, "--chains", str(chains_file)])


def test_markup_like_service_names_print_as_written(
    store: TraceStore, now_ns: int, chains_file: Path
) -> None:
    insert_spans(store, evil_traces(3), now_ns)
    for args in (
        ("topology",),
        ("discover", "--min-traces", "1"),
        ("impact", EVIL),
        ("health",),
    ):
        result = invoke(store, chains_file, *args)
        assert result.exit_code == 0, (args, result.output, result.exception)
        if args[0] != "health":
            assert EVIL in result.stdout, (args, result.stdout)
    assert "[red]peer" in invoke(store, chains_file, "topology").stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("topology", "--since", "1000000d"), ["--since '1000000d'", "at most 3660d"]),
        (("health", "--until", "9999-01-01"), ["--until", "1970-01-01 and 2262-04-11"]),
        (("drift", "--history", "1000000d"), ["--history '1000000d'", "at most 3660d"]),
        (
            ("critical-path", "--chain", "B3", "--sample-cap", str(2**31)),
            ["--sample-cap=2147483648", "use 1 to 100000"],
        ),
        (("discover", "--min-traces", "0"), ["--min-traces=0", "use 1 to"]),
    ],
)
def test_out_of_range_options_are_one_line_errors(
    store: TraceStore, now_ns: int, chains_file: Path, args: tuple[str, ...], words: list[str]
) -> None:
    insert_spans(store, evil_traces(1), now_ns)
    result = invoke(store, chains_file, *args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert all(word in lines[0] for word in words), lines[0]


def test_discovery_over_a_decade_runs_a_bounded_number_of_slices(
    store: TraceStore, now_ns: int, catalog: ChainCatalog
) -> None:
    # Spans nine years apart: one query per hour would be ~79,000 queries.
    insert_spans(store, evil_traces(2), now_ns - 9 * 365 * DAY_NS)
    insert_spans(store, [{**s, "trace": s["trace"] + "n"} for s in evil_traces(2)], now_ns)
    seen: list[tuple[int, int]] = []
    found = discover(
        store,
        catalog,
        parse_window("3650d"),
        min_traces=1,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen and seen[-1][0] == seen[-1][1] <= MAX_SLICES
    (proposal,) = [p for p in found.proposals if p["service"] == EVIL]
    assert proposal["traces"] == 4


def test_discovery_of_an_empty_window_runs_no_slice(
    store: TraceStore, catalog: ChainCatalog
) -> None:
    seen: list[tuple[int, int]] = []
    found = discover(
        store, catalog, parse_window("3650d"), progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [] and found.traces == 0


def test_limits_are_checked_before_any_query(
    load: Callable[[str], dict[str, Any]], store: TraceStore, chains_file: Path
) -> None:
    load("nested_chains")
    ok = invoke(store, chains_file, "critical-path", "--chain", "B3", "--sample-cap", "100000")
    assert ok.exit_code == 0, ok.output
