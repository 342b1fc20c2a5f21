"""``chainmap chains|schema|ingest|serve`` run as a user runs them: the installed console script."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.analysis.test_mixed_fleet_membership import (
    CHAINS_YAML,
    Span,
    otlp_json,
    py_trading,
    tagged,
)

ROOT = Path(__file__).resolve().parents[2]
CHAINMAP = str(Path(sys.executable).parent / "chainmap")
FIXTURES = ROOT / "tests" / "ingest" / "fixtures"
#: Prints the merged-trace and inferred-entry rollups' states of a store (another embedded store than the test
#: process's own, so in a process of its own).
READ_TRACE_ROLLUP_STATE = """
import json, sys
from chainmap_otel.analysis.rollups import entries, traces as trace_rollup
from chainmap_otel.storage.store import open_store
with open_store(sys.argv[1]) as store:
    print(json.dumps([trace_rollup.read_state(store), entries.read_state(store)]))
"""


def run(*args: str, store: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAINMAP_", "OTEL_"))}
    env["COLUMNS"] = "200"
    if store is not None:
        env["CHAINMAP_CLICKHOUSE_URL"] = f"chdb://{store}"
    return subprocess.run([CHAINMAP, *args], capture_output=True, text=True, env=env, timeout=120)


def test_chains_validate_ok_and_every_error(tmp_path: Path) -> None:
    ok = run("chains", "validate", str(ROOT / "chains.example.yaml"))
    assert ok.returncode == 0, ok.stderr
    assert "6 chains, 6 entry rules, 6 with SLOs: ok" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "chains:\n  - id: A1\n    name: x\n    category: nope\n    entry: [{kind: serverr}]\n"
        "  - id: A1\n    name: y\n    category: api\n    entry: [{route: /x}]\n"
    )
    bad = run("chains", "validate", str(broken))
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 3, bad.stderr
    assert "broken.yaml:4: chains[0].category: unknown category 'nope'" in lines[0]
    assert "Traceback" not in bad.stderr


def test_chains_list_json_is_a_stable_contract() -> None:
    result = run("chains", "list", str(ROOT / "chains.example.yaml"), "--format", "json")
    assert result.returncode == 0, result.stderr
    chains = json.loads(result.stdout)["chains"]
    b3 = next(c for c in chains if c["id"] == "B3")
    assert set(b3) == {
        "id",
        "name",
        "category",
        "criticality",
        "description",
        "entry",
        "slo",
        "expected",
        "source",
    }
    assert b3["entry"] == [
        {"service": "trading-engine", "route": "/orders*", "kind": ["server"], "method": ["POST"]}
    ]
    assert b3["slo"] == {
        "latency_ms": {"p95": 500.0, "p99": 1000.0},
        "error_rate": 0.005,
        "window_seconds": 2592000,
    }


def test_schema_show_prints_the_collector_tables() -> None:
    result = run("schema", "show")
    assert result.returncode == 0, result.stderr
    assert 'CREATE TABLE IF NOT EXISTS "default"."otel_traces"' in result.stdout
    assert "chainmap_chain_minute" in result.stdout


def test_schema_apply_then_ingest_files(tmp_path: Path) -> None:
    store = tmp_path / "store"
    applied = run("schema", "apply", store=store)
    assert applied.returncode == 0, applied.stderr
    assert "is at version" in applied.stdout
    again = run("schema", "apply", store=store)
    assert "applying" not in again.stdout
    ingested = run("ingest", str(FIXTURES / "otlp_spec_example.json"), "--json", store=store)
    assert ingested.returncode == 0, ingested.stderr
    report = json.loads(ingested.stdout)
    assert report["files"][0]["spans_stored"] == 1
    # The file's span (2018) lies below the rollups `schema apply` ran: the merged-trace and
    # inferred-entry rollups are moved back to it, so search and health see it once refreshed.
    state = subprocess.run(
        [sys.executable, "-c", READ_TRACE_ROLLUP_STATE, f"chdb://{store}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert state.returncode == 0, state.stderr
    # (since, watermark, pending) of the merged-trace and inferred-entry rollups
    assert json.loads(state.stdout) == [[1544712660 * 10**9] * 3] * 2


def test_ingest_of_a_malformed_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run("ingest", str(bad), store=tmp_path / "store")
    assert result.returncode == 1
    assert "bad.json" in result.stderr and "Traceback" not in result.stderr


def test_serve_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run(
            "serve", "--http-port", str(port), "--grpc-port", "0", store=tmp_path / "store"
        )
    assert result.returncode == 1
    assert str(port) in result.stderr and "Traceback" not in result.stderr


#: Prints each rollup level's (since, watermark, pending) in ns, across classifications.
READ_ROLLUP_LEVELS = """
import json, sys
from chainmap_otel.storage.store import open_store
with open_store(sys.argv[1]) as store:
    rows = store.query(
        f"SELECT `Rollup`, min(Since), max(Watermark), max(Pending) "
        f"FROM {store.database}.chainmap_rollup_state GROUP BY `Rollup`"
    ).result_rows
    print(json.dumps({r[0]: [int(v) for v in r[1:]] for r in rows}))
"""


def rollup_levels(store: Path) -> dict[str, list[int]]:
    state = subprocess.run(
        [sys.executable, "-c", READ_ROLLUP_LEVELS, f"chdb://{store}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert state.returncode == 0, state.stderr
    return {name: levels for name, levels in json.loads(state.stdout).items()}


def order_trace(risk_check: bool) -> Span:
    """py-gateway (P1 entry) -> py-trading (T1 entry) -> postgresql, and with ``risk_check``
    py-trading -> py-risk as well."""
    trading = py_trading("P1,T1", "T1")
    if risk_check:
        risk = Span("py-risk", "server", "POST /check", {"http.route": "/check", **tagged("P1,T1")})
        call = Span("py-trading", "client", "POST", {"http.method": "POST", **tagged("P1,T1")})
        call.children.append(risk)
        trading.children.append(call)
    client = Span(
        "py-gateway", "client", "POST", {"http.method": "POST", **tagged("P1")}, [trading]
    )
    attributes = {"http.route": "/api/orders", "http.method": "GET", **tagged("P1", "P1")}
    return Span("py-gateway", "server", "GET /api/orders", attributes, [client])


def write_traces(path: Path, traces: list[tuple[Span, int]]) -> Path:
    """One OTLP/JSON request per line (the Collector file exporter's format)."""
    lines = [json.dumps(otlp_json(root, start_ns)) for root, start_ns in traces]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ingest_of_older_spans_moves_the_edge_rollup_back(tmp_path: Path) -> None:
    """Spans ingested into an hour the edge rollup has merged are in topology, all traffic
    and per chain, right after the ingest (paired live below the moved-back watermark) and
    once rolled up again, counted once."""
    store = tmp_path / "store"
    chains = tmp_path / "chains.yaml"
    chains.write_text(CHAINS_YAML, encoding="utf-8")
    now = time.time_ns()
    hour_ns = 3600 * 10**9
    older = now - 3 * hour_ns
    # Traces every hour or so around it, so both levels of the edge rollup have rows there.
    starts = [now - 5 * hour_ns, now - 4 * hour_ns, older + 5 * 60 * 10**9, now - 2 * hour_ns]
    first = [(order_trace(False), start) for start in [*starts, now - 30 * 60 * 10**9]]
    stored = run("ingest", str(write_traces(tmp_path / "first.jsonl", first)), store=store)
    assert stored.returncode == 0, stored.stderr
    refreshed = run("rollup", "refresh", "--chains", str(chains), store=store)
    assert refreshed.returncode == 0, refreshed.stderr
    # Three hours ago lies in an hour both levels of the edge rollup cover, whatever the
    # minute of the hour: the hours from 4 to 1 hour ago at least.
    levels = rollup_levels(store)
    assert levels["edges_hour"][0] <= older - hour_ns and levels["edges_hour"][1] > older + hour_ns

    def calls(*chain: str) -> dict[tuple[str, str], int]:
        read = run(
            "topology", *chain, "--since", "6h", "--format", "json", "--chains", str(chains),
            store=store,
        )  # fmt: skip
        assert read.returncode == 0, read.stderr
        return {(e["source"], e["target"]): e["calls"] for e in json.loads(read.stdout)["edges"]}

    before = {"all": calls(), "P1": calls("--chain", "P1")}
    assert before["all"][("py-gateway", "py-trading")] == 5
    assert ("py-trading", "py-risk") not in before["all"]
    second = [(order_trace(True), older), (order_trace(True), older + 10**9)]
    stored = run("ingest", str(write_traces(tmp_path / "older.jsonl", second)), store=store)
    assert stored.returncode == 0, stored.stderr
    # Every rollup is moved back to the older spans' minute.
    minute = older - older % (60 * 10**9)
    levels = rollup_levels(store)
    for rollup in ("edges", "entries", "traces"):
        assert levels[rollup][1:] == [minute, minute], rollup
    assert levels.get("edges_hour", [0, 0])[1] <= minute
    # Two more traces on every edge they share with the first ones, and their own edge.
    expected = {
        name: {
            **{edge: count + 2 for edge, count in edges.items()},
            ("py-trading", "py-risk"): 2,
        }
        for name, edges in before.items()
    }
    assert {"all": calls(), "P1": calls("--chain", "P1")} == expected
    refreshed = run("rollup", "refresh", "--chains", str(chains), store=store)
    assert refreshed.returncode == 0, refreshed.stderr
    levels = rollup_levels(store)
    assert levels["edges_hour"][1] > older + hour_ns
    assert {"all": calls(), "P1": calls("--chain", "P1")} == expected
