"""Which chains a real ``chainmap serve`` with a registry analyses: only a chains file the user
named seeds an empty registry; a registry that holds chains keeps them, and the log says how
the file differs and the command that replaces them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.registry.test_registry_text_serve import registry_ready
from tests.support.serve_process import ServeProcess

pytestmark = pytest.mark.slow

MINE = """version: 1
chains:
  - id: CK
    name: Checkout
    category: api
    entry:
      - service: checkout
        kind: server
  - id: PAY
    name: Payment
    category: trading
    entry:
      - service: payments
        kind: server
"""
OTHER = MINE.replace("name: Checkout", "name: Checkout v2").replace(
    "  - id: PAY\n    name: Payment", "  - id: NEW\n    name: New flow"
)


def serve_chains(tmp_path: Path, run: str, env: dict[str, str]) -> tuple[list[str], str]:
    """The chain ids serve analyses once its registry is ready, and its log."""
    serve = ServeProcess(f"chdb://{tmp_path / 'store'}", tmp_path / f"{run}.log", env)
    try:
        serve.wait_ready()
        base = serve.url.removesuffix("/v1/traces")
        registry_ready(base, serve)
        chains = httpx.get(base + "/api/v1/chains", timeout=60).json()["chains"]
        index = httpx.get(base + "/", timeout=60)
        assert index.status_code == 200, index.text[:500]
        assert ("No chains are defined yet" in index.text) == (not chains)
    finally:
        assert serve.terminate() == 0, serve.log()
    return [c["id"] for c in chains], serve.log()


def test_only_the_users_chains_seed_and_a_kept_registry_says_how_to_replace_it(
    tmp_path: Path, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAINMAP_CHAINS_FILE", raising=False)
    (tmp_path / "mine.yaml").write_text(MINE, encoding="utf-8")
    (tmp_path / "other.yaml").write_text(OTHER, encoding="utf-8")
    env = {"CHAINMAP_REGISTRY_URL": registry_url, "CHAINMAP_MONITOR_INTERVAL": "1h"}

    ids, log = serve_chains(tmp_path, "none", env)
    assert ids == []  # the bundled example is not stored in a user's registry
    assert "the chain registry holds no chains, so no chain is analysed: give serve " in log
    assert "--chains FILE (or CHAINMAP_CHAINS_FILE) to seed it" in log

    mine = {**env, "CHAINMAP_CHAINS_FILE": str(tmp_path / "mine.yaml")}
    ids, log = serve_chains(tmp_path, "mine", mine)
    assert ids == ["CK", "PAY"]
    assert f"chain registry seeded with 2 chains from {tmp_path / 'mine.yaml'}" in log

    other = {**env, "CHAINMAP_CHAINS_FILE": str(tmp_path / "other.yaml")}
    ids, log = serve_chains(tmp_path, "other", other)
    assert ids == ["CK", "PAY"]  # what the registry holds wins, and the log says so
    path = tmp_path / "other.yaml"
    assert (
        f"the chain registry already holds chains, so serve analyses those and not {path} "
        f"(only in the file: NEW; different: CK; only in the registry: PAY); to make the "
        f"registry equal to the file run `chainmap registry push {path} --prune`"
    ) in log

    ids, log = serve_chains(tmp_path, "same", mine)
    assert ids == ["CK", "PAY"]
    assert f"the chain registry holds the 2 chains of {tmp_path / 'mine.yaml'}" in log
