"""A service under ``opentelemetry-instrument`` reloads its chains file when it changes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.otlp_receiver import Receiver
from tests.support.processes import Service
from tests.tagging.test_launcher_e2e import APPS, launcher_env, spans_of

pytestmark = pytest.mark.slow

CHAINS = """
version: 1
chains:
  - id: {chain_id}
    name: Orders
    category: trading
    entry:
      - service: trading-engine
        kind: server
        route: /orders
"""


def write_atomically(path: Path, text: str) -> None:
    """How `chainmap registry pull -o` writes: a temporary file renamed over the old one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Receiver, Path]]:
    logs = tmp_path_factory.mktemp("reload")
    chains = logs / "chains.yaml"
    chains.write_text(CHAINS.format(chain_id="OLD"))
    receiver = Receiver()
    env = {**launcher_env(receiver, chains), "CHAINMAP_CHAINS_RELOAD_INTERVAL": "0.2s"}
    service = Service("trading-engine", "fleet:app", env, APPS, logs)
    try:
        service.wait_ready()
        yield service, receiver, chains
    finally:
        service.stop()
        receiver.close()


def order_chain(service: Service, receiver: Receiver) -> Any:
    response = httpx.post(service.url + "/orders", json={}, timeout=10)
    assert response.status_code == 200
    # The server span ends after its response, so it may be exported after the others.
    spans = spans_of(receiver, response.headers["X-Trace-ID"], 1, servers=("trading-engine",))
    server = next(s for s in spans if s["kind"] == "server")
    return server["attributes"].get("chain.id")


def wait_for_chain(service: Service, receiver: Receiver, wanted: str) -> None:
    deadline = time.monotonic() + 60
    seen = None
    while time.monotonic() < deadline:
        seen = order_chain(service, receiver)
        if seen == wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"spans still tagged {seen!r}, not {wanted!r}:\n{service.log()}")


def test_a_changed_chains_file_is_picked_up_without_restart(
    engine: tuple[Service, Receiver, Path],
) -> None:
    service, receiver, chains = engine
    assert order_chain(service, receiver) == "OLD"
    pid = service.process.pid
    write_atomically(chains, CHAINS.format(chain_id="NEW"))
    wait_for_chain(service, receiver, "NEW")
    assert service.process.pid == pid and service.process.poll() is None


def test_a_broken_new_file_keeps_the_previous_chains_with_one_warning(
    engine: tuple[Service, Receiver, Path],
) -> None:
    service, receiver, chains = engine
    wait_for_chain(service, receiver, "NEW")
    write_atomically(chains, CHAINS.format(chain_id="NEW").replace("kind: server", "kind: serverr"))
    deadline = time.monotonic() + 60
    while "is unusable, still tagging with the previous chains" not in service.log():
        assert time.monotonic() < deadline, service.log()
        time.sleep(0.1)
    for _ in range(3):
        assert order_chain(service, receiver) == "NEW"
    time.sleep(1)  # several more polls of the unchanged broken file: still one warning
    assert service.log().count("is unusable, still tagging with the previous chains") == 1
