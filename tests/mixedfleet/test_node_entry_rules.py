"""(b) Chains entered at an untagged Node service, matched at query time by their rules.

Each Node service (SDK 1.x under the old, the stable and both HTTP conventions; 2.x, stable
only, as 3.x) gets one ``GET /quotes/AAPL`` (Express route ``/quotes/:symbol``, which calls
py-trading, chain T1.<tag>, and its database), one ``DELETE /orders/42`` and one
``GET /ping?src=x`` (answered before Express: no ``http.route``). Chains entered there by
``route``, ``path``, ``method`` and ``route: /ping`` each count one trace on every surface,
and a chain's topology is the whole subtree below its entry, down to postgresql.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.mixedfleet.conftest import ENTRY, MixedFleet, Surfaces, edges

pytestmark = pytest.mark.slow

ONE_TRACE = {"health": 1, "search": 1, "topology": 1}


@pytest.fixture(scope="module")
def entry_traces(mixed_fleet: MixedFleet) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The stored spans of each request, by (tag, path requested)."""
    sent = {}
    for tag in ENTRY:
        node = mixed_fleet.nodes.get(tag)
        if node is None:
            continue
        for method, path in (
            ("GET", "/quotes/AAPL"),
            ("DELETE", "/orders/42"),
            ("GET", "/ping?src=x"),
        ):
            response = httpx.request(method, node.url + path, timeout=30)
            assert response.status_code == 200, response.text
            sent[tag, path] = response.json()["trace_id"]
    downstream = frozenset({("py-trading", "server"), ("py-trading", "client")})
    return {
        (tag, path): mixed_fleet.wait_node_trace(
            tag, trace_id, downstream if path.startswith("/quotes") else frozenset()
        )
        for (tag, path), trace_id in sent.items()
    }


@pytest.fixture(scope="module")
def surfaces(
    mixed_fleet: MixedFleet, entry_traces: dict[tuple[str, str], list[dict[str, Any]]]
) -> Surfaces:
    rules = ("route", "path", "method", "ping", "T1")
    return Surfaces(mixed_fleet).prefetch(
        [f"{rule}.{tag}" for tag, _ in entry_traces for rule in rules if _ == "/quotes/AAPL"]
    )


def root(spans: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [s for s in spans if not s["parent_span_id"]]
    return found


@pytest.mark.parametrize("tag", ENTRY)
def test_each_service_emits_the_http_conventions_of_its_configuration(
    mixed_fleet: MixedFleet, entry_traces: dict[tuple[str, str], list[dict[str, Any]]], tag: str
) -> None:
    """The premise of the rules below: which attributes each Node server span carries."""
    config = mixed_fleet.node(tag).config
    old = config.line == 1 and config.semconv != "http"
    stable = config.line > 1 or config.semconv is not None
    quote = root(entry_traces[tag, "/quotes/AAPL"])["attributes"]
    ping = root(entry_traces[tag, "/ping?src=x"])["attributes"]
    cancel = root(entry_traces[tag, "/orders/42"])["attributes"]
    assert quote["http.route"] == "/quotes/:symbol"
    assert "http.route" not in ping
    assert (ping.get("http.target"), cancel.get("http.method")) == (
        ("/ping?src=x", "DELETE") if old else (None, None)
    )
    assert (ping.get("url.path"), cancel.get("http.request.method")) == (
        ("/ping", "DELETE") if stable else (None, None)
    )
    # 1.x under the stable conventions drops the query string (no url.query).
    assert ping.get("url.query") == ("src=x" if config.line > 1 else None)
    assert quote.get("url.path") == ("/quotes/AAPL" if stable else None)
    assert quote.get("http.target") == ("/quotes/AAPL" if old else None)


def rule_cases() -> Iterator[Any]:
    for rule in ("route", "path", "method", "ping"):
        for tag in ENTRY:
            yield pytest.param(tag, rule, id=f"{rule}-{tag}")


@pytest.mark.parametrize(("tag", "rule"), rule_cases())
def test_a_chain_entered_at_the_node_service_counts_one_trace_on_every_surface(
    mixed_fleet: MixedFleet, surfaces: Surfaces, tag: str, rule: str
) -> None:
    mixed_fleet.node(tag)
    chain = f"{rule}.{tag}"
    observed = surfaces.counts(chain)
    assert observed == ONE_TRACE, f"{chain}: {observed}"


@pytest.mark.parametrize("tag", ENTRY)
def test_the_chain_below_the_node_entry_counts_one_trace_on_every_surface(
    mixed_fleet: MixedFleet, surfaces: Surfaces, tag: str
) -> None:
    mixed_fleet.node(tag)
    chain = f"T1.{tag}"
    observed = surfaces.counts(chain)
    assert observed == ONE_TRACE, f"{chain}: {observed}"


@pytest.mark.parametrize("tag", ENTRY)
def test_the_topology_of_a_chain_entered_at_the_node_service_reaches_the_database(
    mixed_fleet: MixedFleet, surfaces: Surfaces, tag: str
) -> None:
    node = mixed_fleet.node(tag).config.service
    chain = f"route.{tag}"
    found = edges(surfaces.topology(chain))
    assert found >= {
        ("user", node),
        (node, "py-trading"),
        ("py-trading", "postgresql"),
    }, f"{chain}: {sorted(found)}"
