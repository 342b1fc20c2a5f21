"""``chainmap registry`` as users run it: round trip through files, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.registry.test_registry_store import CHAINS

CHAINMAP = Path(sys.executable).parent / "chainmap"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINMAP_")}
    env["COLUMNS"] = "250"
    return subprocess.run(
        [str(CHAINMAP), *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_push_pull_and_errors_on_the_command_line(registry_url: str, tmp_path: Path) -> None:
    source = tmp_path / "chains.yaml"
    source.write_text(CHAINS)
    pushed = run("registry", "push", str(source), "-m", "first", "--registry", registry_url)
    assert pushed.returncode == 0, pushed.stderr
    assert "added: CK, PAY" in pushed.stdout

    pulled = tmp_path / "pulled.yaml"
    out = run("registry", "pull", "-o", str(pulled), "--registry", registry_url)
    assert out.returncode == 0, out.stderr
    assert "wrote 2 chains" in out.stdout
    valid = run("chains", "validate", str(pulled))
    assert valid.returncode == 0 and "2 chains" in valid.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text(CHAINS.replace("kind: server\n        route", "kind: serverr\n        route"))
    refused = run("registry", "push", str(broken), "--registry", registry_url)
    assert refused.returncode == 1
    assert "broken.yaml:10: chains[0].entry[0].kind: unknown value 'serverr'" in refused.stderr
    assert "Traceback" not in refused.stderr

    unknown = run("registry", "diff", "NOPE", "1", "2", "--registry", registry_url)
    assert unknown.returncode == 1 and "has no versions" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    unreachable = run("registry", "list", "--registry", "postgresql://nobody@127.0.0.1:1/x")
    assert unreachable.returncode == 1 and "cannot connect" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1, unreachable.stderr


def test_alerts_reads_through_serve_or_the_registry_with_one_line_errors(
    registry_url: str,
) -> None:
    both = run("alerts", "--server", "http://127.0.0.1:1", "--registry", registry_url)
    assert both.returncode == 1
    assert both.stderr.strip() == (
        "error: give --server (a chainmap serve) or --registry (its PostgreSQL), not both"
    )
    gone = run("alerts", "--server", "http://127.0.0.1:1")
    assert (
        gone.returncode == 1 and "cannot reach chainmap serve at http://127.0.0.1:1" in gone.stderr
    )
    assert len(gone.stderr.strip().splitlines()) == 1, gone.stderr
    not_a_url = run("alerts", "--server", "127.0.0.1:4318")
    assert not_a_url.returncode == 1 and "is not an http(s) URL" in not_a_url.stderr
    empty = run("alerts", "--registry", registry_url, "--format", "json")
    assert empty.returncode == 0 and empty.stdout.strip() == '{\n  "alerts": []\n}'
