"""What the chains loader reads: a regular file up to CHAINMAP_CHAINS_MAX_BYTES, refused
otherwise with one line naming the file and the fix (never read until memory runs out,
never blocked on a FIFO); a file near the limit still loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chainmap_otel.errors import ChainDefinitionError
from chainmap_otel.tagging.chainsfile import max_chains_file_bytes
from chainmap_otel.tagging.definitions import load_catalog

CHAINMAP = str(Path(sys.executable).parent / "chainmap")
CHAIN = """  - id: C{i}
    name: Chain number {i}
    category: api
    criticality: high
    description: A description long enough to make the file about as large as real ones.
    entry:
      - service: svc-{i}
        kind: server
        route: /api/v{i}/*
        method: [GET, POST]
    slo:
      latency_ms: {{p95: 300, p99: 800}}
      error_rate: 0.01
      window: 30d
"""


def chains_text(count: int) -> str:
    return "version: 1\nchains:\n" + "".join(CHAIN.format(i=i) for i in range(count))


def refusal(path: Path) -> str:
    with pytest.raises(ChainDefinitionError) as caught:
        load_catalog(path)
    (problem,) = caught.value.problems
    return problem


def test_a_device_is_refused_without_being_read() -> None:
    problem = refusal(Path("/dev/zero"))
    assert problem == (
        "/dev/zero: not a regular file (a character device); point it at a chains YAML file"
    )


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "chains.fifo"
    os.mkfifo(fifo)
    assert "not a regular file (a FIFO)" in refusal(fifo)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path).endswith(
        "not a regular file (a directory); point it at a chains YAML file"
    )


def test_a_file_over_the_limit_is_refused_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chains.yaml"
    path.write_text(chains_text(40))
    monkeypatch.setenv("CHAINMAP_CHAINS_MAX_BYTES", "4096")
    problem = refusal(path)
    assert problem.startswith(f"{path}: too large (")
    assert "the limit is 4,096 bytes" in problem and "raise CHAINMAP_CHAINS_MAX_BYTES" in problem
    monkeypatch.setenv("CHAINMAP_CHAINS_MAX_BYTES", str(path.stat().st_size))
    assert len(load_catalog(path)) == 40


def test_a_file_near_the_default_limit_loads(tmp_path: Path) -> None:
    count = int(max_chains_file_bytes() * 0.95) // len(CHAIN.format(i=99_999))
    text = chains_text(count)
    assert len(text.encode()) <= max_chains_file_bytes()
    path = tmp_path / "large.yaml"
    path.write_text(text)
    assert len(load_catalog(path)) == count


def test_chains_validate_and_registry_push_refuse_on_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "chains.fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_text(chains_text(40))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAINMAP_", "OTEL_"))}
    env["CHAINMAP_CHAINS_MAX_BYTES"] = "4096"
    cases = [
        (["chains", "validate", "/dev/zero"], "/dev/zero: not a regular file"),
        (["chains", "validate", str(fifo)], f"{fifo}: not a regular file (a FIFO)"),
        (["chains", "validate", str(big)], f"{big}: too large"),
        (["registry", "push", str(fifo), "--registry", "off"], "not a regular file (a FIFO)"),
    ]
    for args, expected in cases:
        # A FIFO read would block forever and /dev/zero fill the memory: the timeout is a
        # guard, far above what a refusal takes.
        done = subprocess.run(
            [CHAINMAP, *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode != 0, (args, done.stdout)
        assert "Traceback" not in done.stderr, done.stderr
        assert expected in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
