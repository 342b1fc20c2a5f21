"""Read commands while a real ``chainmap serve`` holds the embedded store: through its API."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from typer.testing import CliRunner

from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.storage.advert import SERVE_FILE_NAME, advertised_server
from chainmap_otel.tagging.active import example_catalog_path
from tests.support.otlp_payloads import sdk_spans
from tests.support.processes import free_port

CHAINMAP = Path(sys.executable).parent / "chainmap"
#: A fixed window around the test run (the same for the CLI and the API, and short:
#: discovery walks its window in slices).
_NOW = datetime.now(tz=UTC).replace(microsecond=0)
SINCE = (_NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
UNTIL = (_NOW + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
runner = CliRunner()


def wait_for(condition: Any, what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def serve(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    base = tmp_path_factory.mktemp("serve-store")
    store_dir = base / "clickhouse"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAINMAP_", "OTEL_"))}
    log = open(base / "serve.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(CHAINMAP),
            "serve",
            "--store",
            f"chdb://{store_dir}",
            "--http-port",
            str(port),
            "--grpc-port",
            "0",
            "--chains",  # the example's chains, stored in serve's new registry
            str(example_catalog_path()),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**env, "CHAINMAP_DATA_DIR": str(base)},
    )
    try:
        advert = wait_for(lambda: advertised_server(store_dir), "serve's advert")
        assert advert.url == f"http://127.0.0.1:{port}"
        exporter = OTLPSpanExporter(endpoint=f"{advert.url}/v1/traces")
        assert exporter.export(sdk_spans("trading-engine", 3)) is SpanExportResult.SUCCESS
        wait_for(
            lambda: (
                len(
                    httpx.get(f"{advert.url}/api/v1/traces", params={"since": SINCE}).json()[
                        "traces"
                    ]
                )
                == 3
            ),
            "the spans to be stored",
        )
        yield advert.url, store_dir, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        log.close()


def cli(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_reads_go_through_the_serve_holding_the_store(
    serve: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    url, store_dir, _ = serve
    store = f"chdb://{store_dir}"
    window = ("--since", SINCE, "--until", UNTIL)
    found = json.loads(cli("traces", "--store", store, *window, "-f", "json").stdout)
    assert len(found["traces"]) == 3
    assert {t["root_service"] for t in found["traces"]} == {"trading-engine"}
    api = httpx.get(f"{url}/api/v1/traces", params={"since": SINCE, "until": UNTIL}).json()
    assert found == api
    errors = json.loads(
        cli("traces", "--server", url, "--status", "error", *window, "-f", "json").stdout
    )
    assert len(errors["traces"]) == 3  # every fixture trace has a failed client span
    health = json.loads(cli("health", "--store", store, *window, "-f", "json").stdout)
    assert (
        health
        == httpx.get(f"{url}/api/v1/chains/health", params={"since": SINCE, "until": UNTIL}).json()
    )
    trace_id = found["traces"][0]["trace_id"]
    path = json.loads(cli("critical-path", trace_id, "--store", store, "-f", "json").stdout)
    assert path["trace_id"] == trace_id
    params = {"since": SINCE, "until": UNTIL}
    for command, path, extra in [
        (("discover", "--min-traces", "1"), "/api/v1/chains/discover", {"min_traces": 1}),
        (("drift",), "/api/v1/chains/drift", {}),
        (("impact", "trading-engine"), "/api/v1/chains/impact/trading-engine", {}),
        (("topology",), "/api/v1/chains/topology", {}),
    ]:
        printed = json.loads(cli(*command, "--store", store, *window, "-f", "json").stdout)
        answer = httpx.get(f"{url}{path}", params={**params, **extra}).json()
        assert printed == answer, command
    assert printed["edges"]
    proposals = cli("discover", "--min-traces", "1", "--store", store, *window, "-f", "yaml")
    assert proposals.stdout.startswith("# Chains proposed by `chainmap discover`")
    assert "version: 1" in proposals.stdout
    tree = cli("topology", "--store", store, *window, "-f", "text")
    assert "trading-engine" in tree.stdout
    bad = runner.invoke(app, ["traces", "--server", url, "--chain", "ZZ"])
    assert bad.exit_code == 1
    assert "unknown chain id 'ZZ'" in bad.output
    other = runner.invoke(app, ["health", "--store", f"{store}?database=other"])
    assert other.exit_code == 1
    assert "which analyses database 'default', not 'other'" in other.output


def test_tables_in_a_pipe_at_80_columns(
    serve: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    _, store_dir, _ = serve
    env = {**os.environ, "COLUMNS": "80"}
    printed = {}
    for command in ("health", "traces", "topology"):
        piped = subprocess.run(
            [str(CHAINMAP), command, "--store", f"chdb://{store_dir}", "--since", SINCE],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=120,
        )
        lines = piped.stdout.splitlines()
        assert lines and max(len(line) for line in lines) <= 80, piped.stdout
        # Only free text (health's reason, the last column) is ever cut, at the line's end.
        assert all(line.rstrip().endswith("…") for line in lines if "…" in line), piped.stdout
        printed[command] = [line.split() for line in lines if line.strip()]
    # Every chain of the example catalog has a row with its whole status word.
    rows = {row[0]: row[1] for row in printed["health"] if row[0] in {"A1", "A2", "B1", "B3"}}
    assert set(rows) == {"A1", "A2", "B1", "B3"}
    assert all(status.isalpha() or "_" in status for status in rows.values()), rows
    assert sum(len(row[0]) == 32 for row in printed["traces"]) == 3


def test_after_serve_stops_the_library_reads_the_same(
    serve: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    url, store_dir, process = serve
    window = ["--since", SINCE, "--until", UNTIL]
    through_api = httpx.get(f"{url}/api/v1/traces", params={"since": SINCE, "until": UNTIL}).json()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not (store_dir / SERVE_FILE_NAME).exists()
    direct = subprocess.run(
        [str(CHAINMAP), "traces", "--store", f"chdb://{store_dir}", *window, "-f", "json"],
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert json.loads(direct.stdout) == through_api


def test_a_stale_advert_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / SERVE_FILE_NAME).write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": dead.pid, "database": "otel"}),
        encoding="utf-8",
    )
    assert advertised_server(tmp_path) is None
    (tmp_path / SERVE_FILE_NAME).write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid(), "database": "otel"}),
        encoding="utf-8",
    )
    assert advertised_server(tmp_path) is not None
