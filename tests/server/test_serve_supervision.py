"""``chainmap serve`` with the embedded PostgreSQL, as real processes, under the faults
of issue 18: ``kill -9`` of serve leaves no process behind (the next serve stops what
survived), and a killed PostgreSQL is restarted while registry calls fail fast."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainmap_otel.processes import ProcessIdentity, children_of
from chainmap_otel.registry.embedded import postmaster_of
from tests.support.serve_process import ServeProcess

TOKEN = "supervision-token"


@pytest.fixture
def root() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root the server runs as its own user, which must be
    # able to reach the directory.
    directory = Path(tempfile.mkdtemp(prefix="chainmap-supervise-test-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _serve(root: Path, name: str) -> ServeProcess:
    data = root / "data"
    return ServeProcess(
        f"chdb://{data / 'clickhouse'}",
        root / f"{name}.log",
        env={
            "CHAINMAP_REGISTRY_URL": "",
            "CHAINMAP_DATA_DIR": str(data),
            "CHAINMAP_API_TOKEN": TOKEN,
            "CHAINMAP_SERVE_DECODE_PROCESSES": "2",
        },
    )


def _base(serve: ServeProcess) -> str:
    return serve.url.removesuffix("/v1/traces")


def _detailed(serve: ServeProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(_base(serve) + "/health/detailed", timeout=60).json()
    return body


def _wait(serve: ServeProcess, what: str, condition: Any, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.process.poll() is None, f"serve exited:\n{serve.log()}"
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}:\n{serve.log()}")


def _registry_ready(serve: ServeProcess) -> bool:
    registry = _detailed(serve)["chain_mapping"]["registry"]
    server = registry.get("embedded_postgres") or {}
    return registry["status"] == "ready" and bool(server.get("running"))


def _descendants(pid: int) -> list[ProcessIdentity]:
    found = []
    for child in children_of(pid):
        found.append(child)
        found += _descendants(child.pid)
    return found


def test_kill_9_leaves_no_process_and_the_next_serve_stops_the_old_postgres(root: Path) -> None:
    pgdata = root / "data" / "postgres"
    first = _serve(root, "first")
    try:
        first.wait_ready()
        _wait(first, "the registry", lambda: _registry_ready(first))
        children = _descendants(first.pid)
        old_postgres = postmaster_of(pgdata)
        assert old_postgres is not None
        commands = [" ".join(child.cmdline) for child in children]
        assert sum("spawn_main" in c for c in commands) == 2, commands
        assert any("resource_tracker" in c for c in commands), commands
        first.kill()
    finally:
        if first.process.poll() is None:
            first.kill()
    deadline = time.monotonic() + 30
    while any(child.alive() for child in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [child.describe() for child in children if child.alive()]
    assert left == [], f"processes of the killed serve still run: {left}"

    second = _serve(root, "second")
    try:
        second.wait_ready()
        _wait(second, "the registry", lambda: _registry_ready(second))
        assert not old_postgres.alive(), "the killed serve's PostgreSQL still runs"
        new_postgres = postmaster_of(pgdata)
        assert new_postgres is not None and new_postgres != old_postgres
        assert f"stopped the embedded PostgreSQL {old_postgres.pid}" in second.log()
        assert [p.name for p in (root / "data" / "run").iterdir()] == [f"serve-{second.pid}.json"]
    finally:
        code = second.terminate()
    assert code == 0, second.log()
    # A clean stop stops the PostgreSQL it started: nothing of either serve is left.
    assert not new_postgres.alive(), "a cleanly stopped serve left its PostgreSQL running"
    assert list((root / "data" / "run").iterdir()) == []
