"""A chain named ``Checkout 🛒`` seeded from the chains YAML into the registry, on a real
``chainmap serve`` (its own chDB, the session's embedded PostgreSQL): every read endpoint
answers, the name comes back byte for byte, and so it stays after a restart."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.serve_process import ServeProcess

pytestmark = pytest.mark.slow

CART = "Checkout 🛒"
CHAINS = f"""version: 1
chains:
  - id: CK
    name: {CART}
    category: api
    description: "astral 𝄞 and a JSON-style pair \\ud83d\\uded2"
    entry:
      - service: checkout-🛒
        kind: server
"""
READS = (
    "/",
    "/topology",
    "/chains/CK",
    "/search",
    "/health/chains",
    "/health/detailed",
    "/metrics",
    "/api/v1/chains",
    "/api/v1/chains/CK",
    "/api/v1/chains/CK/history",
    "/api/v1/chains/health",
    "/api/v1/chains/drift",
)


def registry_ready(base: str, serve: ServeProcess, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = httpx.get(base + "/health/detailed", timeout=10).json()
            if body["chain_mapping"]["registry"]["status"] == "ready":
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"the registry never got ready:\n{serve.log()}")


def check(base: str) -> None:
    answers = {path: httpx.get(base + path, timeout=60) for path in READS}
    failed = {p: (r.status_code, r.text[:200]) for p, r in answers.items() if r.status_code != 200}
    assert not failed, failed
    chain = answers["/api/v1/chains/CK"].json()["chain"]
    assert chain["name"] == CART and chain["description"].endswith("pair 🛒")
    assert CART.encode() in answers["/api/v1/chains/CK"].content
    assert CART in answers["/"].text
    (version,) = answers["/api/v1/chains/CK/history"].json()["versions"]
    assert version["author"] == "seed" and version["definition"]["name"] == CART


def test_an_emoji_chain_seeded_from_yaml_reads_everywhere_across_a_restart(
    tmp_path: Path, registry_url: str
) -> None:
    chains = tmp_path / "chains.yaml"
    chains.write_text(CHAINS, encoding="utf-8")
    env = {
        "CHAINMAP_REGISTRY_URL": registry_url,
        "CHAINMAP_CHAINS_FILE": str(chains),
        "CHAINMAP_MONITOR_INTERVAL": "1h",
    }
    store = f"chdb://{tmp_path / 'store'}"
    for run in range(2):
        serve = ServeProcess(store, tmp_path / f"serve-{run}.log", env)
        try:
            serve.wait_ready()
            base = serve.url.removesuffix("/v1/traces")
            registry_ready(base, serve)
            check(base)
        finally:
            assert serve.terminate() == 0, serve.log()
