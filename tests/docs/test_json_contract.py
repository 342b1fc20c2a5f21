"""docs/json-contract.md against the real JSON: every documented shape is what the command prints.

Each row of the page's table is run as written (``--format json``) on fixture traces in a
real chDB store (and a real PostgreSQL registry for the registry and alert rows); every key
of every object must be documented and every documented key present, documented values
(``"healthy|degraded"``) must be the only ones seen, and every object shape of the page must
have met at least one real object, so no part of the page goes unchecked.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.monitor.alerts import RULES, Alert, AlertStore, advance
from chainmap_otel.registry import ChainRegistry, open_registry_database
from chainmap_otel.server.api.chains import chain_list
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import CATALOG_YAML, catalog, hex_id, load, now_ns, store
from tests.docs.contract import Coverage, Shape, check, object_shapes, parse_shape
from tests.docs.pages import DOCS

__all__ = ["catalog", "load", "now_ns", "store"]  # the analysis fixtures, used here

PAGE = DOCS / "json-contract.md"
FIXTURES = (
    "nested_chains",
    "trace_search",
    "producer_consumer",
    "database_client",
    "compare_added_span",
    "compare_typical",
    "coverage_stale_tag",
    "queue_hop",
)
runner = CliRunner()


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _code(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def table() -> dict[str, list[list[Shape]]]:
    """The documented command of each table row -> the shapes its shape cell writes."""
    rows: dict[str, list[list[Shape]]] = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `chainmap"):
            continue
        command, _call, shape = _cells(line)
        rows[_code(command)[0]] = [parse_shape(s) for s in _code(shape) if s.startswith("{")]
    return rows


def prose_shape(label: str) -> list[Shape]:
    """The first shape written after ``label`` in the page's prose (it may span lines)."""
    text = PAGE.read_text(encoding="utf-8")
    after = text[text.index(label) + len(label) :]
    return parse_shape(next(s for s in _code(after) if s.startswith("{")).replace("\n", " "))


@pytest.fixture(autouse=True)
def _commands() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module)


@pytest.fixture
def registry_url_with_alerts(registry_url: str) -> Iterator[str]:
    """A registry holding the test catalog and one firing alert with its transitions."""
    database = open_registry_database(registry_url)
    try:
        definitions = yaml.safe_load(CATALOG_YAML)["chains"]
        ChainRegistry(database).push(definitions, author="docs", comment="contract")
        rule = RULES[0]
        now = datetime.now(UTC)
        pending = advance(Alert("B1", "error_rate", rule.name, rule.severity), True, now, 60)
        firing = advance(pending, True, now + timedelta(minutes=2), 60)
        labels = {"objective": "error_rate", "window": rule.long, "severity": rule.severity}
        firing = replace(firing, labels=labels, annotations={"summary": "B1 burns its budget"})
        alerts = AlertStore(database)
        alerts.save([firing], [pending, firing])
        alerts.record_delivery("http://127.0.0.1:9/hook", "{}:{}", "firing", "failed", 3, 503, "")
    finally:
        database.close()
    yield registry_url


def test_every_documented_shape_is_the_real_json(
    load: Callable[[str], dict[str, Any]],
    store: TraceStore,
    catalog: ChainCatalog,
    tmp_path: Path,
    registry_url_with_alerts: str,
) -> None:
    for name in FIXTURES:
        load(name)
    chains = tmp_path / "chains.yaml"
    chains.write_text(CATALOG_YAML, encoding="utf-8")
    reads = ("--store", f"chdb://{store.location.path}?database={store.database}")
    reads += ("--chains", str(chains))
    registry = ("--registry", registry_url_with_alerts)
    trace = hex_id("t1", 32)
    # The documented command -> each command line that prints it, with the shape (by index
    # into the row's shapes) the whole output or each item under a key must have.
    runs: dict[str, list[tuple[tuple[str, ...], int, str | None]]] = {
        "chainmap topology [--chain ID]": [
            (("topology", *reads), 0, None),
            (("topology", "--chain", "B1", *reads), 0, None),
        ],
        "chainmap topology --format grafana": [(("topology", *reads), 0, None)],
        "chainmap critical-path TRACE_ID": [
            (("critical-path", trace, *reads), 0, None),
            (("critical-path", hex_id("q1", 32), *reads), 0, None),
        ],
        "chainmap critical-path --chain ID": [
            (("critical-path", "--chain", "B3", *reads), 0, None)
        ],
        "chainmap health [--chain ID]": [
            (("health", *reads), 0, None),
            (("health", "--chain", "B1", *reads), 0, None),
        ],
        "chainmap impact NODE": [(("impact", "trading-engine", *reads), 0, None)],
        "chainmap operations CHAIN": [(("operations", "B3", *reads), 0, None)],
        "chainmap drift [--chain ID]": [(("drift", *reads), 0, None)],
        "chainmap traces [--chain ID]": [
            (("traces", *reads), 0, None),
            (("traces", "--chain", "B3", "--order", "duration", *reads), 0, None),
        ],
        "chainmap traces compare TRACE_A TRACE_B": [
            (("traces", "compare", hex_id("added-a", 32), hex_id("added-b", 32), *reads), 0, None),
            (("traces", "compare", hex_id("typ-5", 32), "--chain", "B1", *reads), 0, None),
        ],
        "chainmap coverage": [(("coverage", *reads), 0, None)],
        "chainmap discover": [(("discover", "--min-traces", "1", *reads), 0, None)],
        "chainmap registry list": [
            (("registry", "list", *registry), 0, None),
            (("registry", "list", *registry), 2, "chains"),
            (("registry", "history", "B1", *registry), 1, None),
            (("registry", "history", "B1", *registry), 2, "versions"),
        ],
        "chainmap registry push FILE": [(("registry", "push", str(chains), *registry), 0, None)],
        "chainmap alerts": [(("alerts", *registry), 0, None)],
        "chainmap alerts --history 24h": [(("alerts", "--history", "24h", *registry), 0, None)],
        "chainmap alerts --deliveries": [(("alerts", "--deliveries", *registry), 0, None)],
    }
    documented = table()
    assert set(documented) == set(runs), "a row of docs/json-contract.md has no run here"
    window_shape = prose_shape("`window` is")
    seen = Coverage()
    problems: list[str] = []
    for command, lines in runs.items():
        for args, index, items in lines:
            format_ = ("--format", "grafana") if "grafana" in command else ("--format", "json")
            result = runner.invoke(app, [*args, *format_])
            assert result.exit_code == 0, f"{args}: {result.output}"
            output = json.loads(result.stdout)
            values = output[items] if items else [output]
            assert values, f"{args} printed no {items}: the check would be hollow"
            for value in values:
                problems += check(value, documented[command][index], f"{command}", seen)
            if "window" in output:
                problems += check(output["window"], window_shape, command, seen)
    window = parse_window("1h")
    chain_list_shape = prose_shape("**Chain list**")
    problems += check(chain_list(store, catalog, window), chain_list_shape, "chain list", seen)
    assert not problems, "\n".join(problems)
    every = [*(s for row in documented.values() for sh in row for s in object_shapes(sh))]
    every += object_shapes(chain_list_shape) + object_shapes(window_shape)
    unmet = [sorted(s.keys) for s in every if id(s) not in seen.matched]
    assert not unmet, f"documented objects no real JSON met (the fixtures lack them): {unmet}"


def test_the_shape_notation_is_read_as_written() -> None:
    (shape,) = parse_shape('{"a", "b": [{"c"}], "s": "x\\|y", "o": null\\|{...}, "e": ""|"m"}')
    assert set(shape.keys) == {"a", "b", "s", "o", "e"}
    seen = Coverage()
    good = {"a": 1, "b": [{"c": 2}], "s": "y", "o": None, "e": ""}
    assert check(good, [shape], "x", seen) == []
    assert check({**good, "s": "z"}, [shape], "x", seen) == ["x.s: 'z' is not one of ['x', 'y']"]
    assert check({**good, "o": {"any": 1}}, [shape], "x", seen) == []
    assert check({**good, "b": [{"c": 1, "d": 2}]}, [shape], "x", seen) == [
        "x.b[0]: keys not documented ['d'], documented but absent []"
    ]
    missing = {k: v for k, v in good.items() if k != "a"}
    assert check(missing, [shape], "x", seen) == [
        "x: keys not documented [], documented but absent ['a']"
    ]
