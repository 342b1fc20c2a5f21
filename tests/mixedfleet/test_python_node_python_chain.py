"""(a) A chain through a Node hop: py-gateway -> Node (JS SDK) -> py-trading -> postgresql.

py-gateway's server span enters P1.<tag>; the stack travels as W3C baggage through the Node
service (whose SDK propagates baggage but does not run chainmap) to py-trading, whose server
span enters T1.<tag> nested in it. With ``@opentelemetry/baggage-span-processor`` the Node
spans carry ``chain.ids`` too; without it they are an untagged hop. Either way every surface
counts one trace per request for both chains, and P1's topology reaches the database.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.mixedfleet.conftest import BY_TAG, VIA, MixedFleet, Surfaces, edges
from tests.support.processes import BIN

pytestmark = pytest.mark.slow

ONE_TRACE = {"health": 1, "search": 1, "topology": 1}


@pytest.fixture(scope="module")
def via_traces(mixed_fleet: MixedFleet) -> dict[str, list[dict[str, Any]]]:
    """One request per Node service through py-gateway, and the stored spans of each trace."""
    trace_ids = {}
    for tag in VIA:
        if tag in mixed_fleet.nodes:
            response = httpx.get(f"{mixed_fleet.gateway.url}/gw/{tag}/quotes/AAPL", timeout=30)
            assert response.status_code == 200, response.text
            assert response.headers["X-Chain-ID"] == f"P1.{tag}"
            trace_ids[tag] = response.headers["X-Trace-ID"]
    everyone = {
        ("py-gateway", "server"),
        ("py-gateway", "client"),
        ("py-trading", "server"),
        ("py-trading", "client"),
    }
    return {
        tag: mixed_fleet.wait_node_trace(
            tag, trace_id, frozenset(everyone | {(BY_TAG[tag].service, "client")})
        )
        for tag, trace_id in trace_ids.items()
    }


@pytest.fixture(scope="module")
def surfaces(mixed_fleet: MixedFleet, via_traces: dict[str, list[dict[str, Any]]]) -> Surfaces:
    return Surfaces(mixed_fleet).prefetch(
        [f"{c}.{tag}" for tag in via_traces for c in ("P1", "T1")]
    )


def cases(chain: str) -> Iterator[Any]:
    for tag in VIA:
        yield pytest.param(tag, id=f"{chain}-{tag}")


@pytest.mark.parametrize("tag", [pytest.param(t, id=t) for t in VIA])
def test_the_chain_stack_crosses_the_node_hop(
    mixed_fleet: MixedFleet, via_traces: dict[str, list[dict[str, Any]]], tag: str
) -> None:
    mixed_fleet.node(tag)
    config = BY_TAG[tag]
    stack = {
        "py-gateway": [f"P1.{tag}"],
        config.service: [f"P1.{tag}"] if config.baggage_span_processor else [],
        "py-trading": [f"P1.{tag}", f"T1.{tag}"],
    }
    spans = via_traces[tag]
    assert {s["service"] for s in spans} == set(stack)
    for span in spans:
        assert span["chain_ids"] == stack[span["service"]], span
    entries = {s["service"]: s["entry_ids"] for s in spans if s["entry_ids"]}
    assert entries == {"py-gateway": [f"P1.{tag}"], "py-trading": [f"T1.{tag}"]}
    # The hop is the Node service's server and client spans, between the Python ones.
    by_id = {s["span_id"]: s for s in spans}
    span = next(s for s in spans if s["service"] == "py-trading" and s["kind"] == "server")
    path = []
    while span["parent_span_id"]:
        span = by_id[span["parent_span_id"]]
        if span["kind"] != "internal":
            path.append((span["service"], span["kind"]))
    assert path == [
        (config.service, "client"),
        (config.service, "server"),
        ("py-gateway", "client"),
        ("py-gateway", "server"),
    ]


@pytest.mark.parametrize("tag", cases("P1"))
def test_the_outer_chain_counts_one_trace_per_request_on_every_surface(
    mixed_fleet: MixedFleet, surfaces: Surfaces, tag: str
) -> None:
    mixed_fleet.node(tag)
    chain = f"P1.{tag}"
    observed = surfaces.counts(chain)
    assert observed == ONE_TRACE, f"{chain}: {observed}"


@pytest.mark.parametrize("tag", cases("T1"))
def test_the_nested_chain_counts_one_trace_per_request_on_every_surface(
    mixed_fleet: MixedFleet, surfaces: Surfaces, tag: str
) -> None:
    mixed_fleet.node(tag)
    chain = f"T1.{tag}"
    observed = surfaces.counts(chain)
    assert observed == ONE_TRACE, f"{chain}: {observed}"


@pytest.mark.parametrize("tag", cases("P1"))
def test_the_outer_chain_topology_reaches_the_database(
    mixed_fleet: MixedFleet, surfaces: Surfaces, tag: str
) -> None:
    node = mixed_fleet.node(tag).config.service
    chain = f"P1.{tag}"
    found = edges(surfaces.topology(chain))
    assert found >= {
        ("user", "py-gateway"),
        ("py-gateway", node),
        (node, "py-trading"),
        ("py-trading", "postgresql"),
    }, f"{chain}: {sorted(found)}"


def test_the_cli_reads_what_the_api_serves(mixed_fleet: MixedFleet, surfaces: Surfaces) -> None:
    """``chainmap health|traces|topology --chain`` on the serve's store go through its API."""
    tag = VIA[0]
    mixed_fleet.node(tag)

    def cli(*args: str) -> Any:
        command = [str(BIN / "chainmap"), *args, "--store", mixed_fleet.store_url]
        result = subprocess.run(
            [*command, "--format", "json"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    chain = f"P1.{tag}"
    (health,) = cli("health", "--chain", chain)["chains"]
    assert health["traces"] == surfaces.health(chain)["traces"]
    found = cli("traces", "--chain", chain, "--limit", "1000")["traces"]
    assert [t["trace_id"] for t in found] == [t["trace_id"] for t in surfaces.search(chain)]
    topology = cli("topology", "--chain", chain)
    assert edges(topology) == edges(surfaces.topology(chain))
