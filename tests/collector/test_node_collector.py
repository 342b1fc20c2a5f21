"""The Node services of the mixed fleet, tagged by the real Collector as chainmap tags them.

The Express services of ``tests/mixedfleet/node`` (official OpenTelemetry JS SDK, no
chainmap: SDK 1.x under the old, the stable and both HTTP conventions, 2.x stable only; OTLP
protobuf, JSON and gRPC) send to otelcol-chainmap: ``otlp -> transform/chains (generated from
the fleet's chains) -> otlphttp -> chainmap serve``, with a file exporter beside it keeping
the typed attribute values. Each service gets ``GET /quotes/AAPL`` (Express route
``/quotes/:symbol``, which calls the previous service's ``/trade/<tag>/AAPL``: a CLIENT span
and, downstream, a SERVER span of a 404), ``DELETE /orders/42`` and ``GET /ping?src=x``
(answered before Express, no ``http.route``). The chains enter there by route, path (of
``url.path`` or of ``http.target``), method, route falling back to the path, and a method
rule without a kind, which client spans match too. For every span the services exported, the chain attributes the Collector
wrote (and serve stored) equal what ``ChainSpanProcessor`` gives the same span in an SDK,
and the chains it enters are the ones ``Classifier`` matches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from chainmap_otel.storage.columns import attribute_text
from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog
from chainmap_otel.tagging.rules import Classifier
from tests.collector.test_connectors import scrape, total, wait_for
from tests.collector.test_ottl_collector import (
    KINDS,
    chain_tags,
    read_file_exporter,
    sdk_tags,
    transform_block,
)
from tests.mixedfleet.conftest import BY_TAG, ENTRY, chains_document
from tests.support.collector import CollectorProcess
from tests.support.node_service import NodeService, missing_node
from tests.support.processes import free_port
from tests.support.serve_process import ServeProcess, query

pytestmark = pytest.mark.slow

#: The JS SDK's SpanKind enum, by value.
JS_KINDS = ("internal", "server", "client", "producer", "consumer")
REQUESTS = (("GET", "/quotes/AAPL"), ("DELETE", "/orders/42"), ("GET", "/ping?src=x"))


def fleet_chains() -> dict[str, Any]:
    """The mixed fleet's chains, plus for each Node service one entered downstream by a path
    glob (``/trade/*``: Express answers 404 there, with ``http.route`` ``/``) and one by a
    method rule without a kind (``GET``: server and client spans)."""
    document = chains_document()
    for tag in ENTRY:
        service = BY_TAG[tag].service
        document["chains"] += [
            {
                "id": f"trade.{tag}",
                "name": "Trade downstream",
                "category": "trading",
                "entry": [{"service": service, "kind": "server", "path": "/trade/*"}],
            },
            {
                "id": f"get.{tag}",
                "name": "Any GET",
                "category": "api",
                "entry": [{"service": service, "method": "GET"}],
            },
        ]
    return document


def fixture_of(span: dict[str, Any]) -> dict[str, Any]:
    """A span the Node SDK exported, as ``sdk_tags`` takes it."""
    return {
        "service": span["resource"]["service.name"],
        "kind": JS_KINDS[span["kind"]],
        "name": span["name"],
        "attributes": {k: v for k, v in span["attributes"].items() if v is not None},
    }


@dataclass(frozen=True)
class Delivered:
    catalog: ChainCatalog
    exported: dict[str, dict[str, Any]]  # span id -> the span as the Node SDK exported it
    written: dict[str, dict[str, Any]]  # span id -> typed attributes the Collector wrote
    stored: dict[str, dict[str, str]]  # span id -> SpanAttributes serve stored
    requests: dict[str, float]  # chain id -> chainmap_chain_requests_total
    collector_log: str


@pytest.fixture(scope="module")
def delivered(otelcol: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivered]:
    for sdk in {BY_TAG[tag].line for tag in ENTRY}:
        reason = missing_node(sdk)
        if reason:
            pytest.skip(reason)
    directory = tmp_path_factory.mktemp("node-collector")
    chains_file = directory / "chains.yaml"
    chains_file.write_text(yaml.safe_dump(fleet_chains(), sort_keys=False), encoding="utf-8")
    catalog = load_catalog(chains_file)
    store_url = f"chdb://{directory / 'store'}"
    serve = ServeProcess(
        store_url,
        directory / "serve.log",
        env={
            "CHAINMAP_CHAINS_FILE": str(chains_file),
            # /metrics answers from a snapshot: a scrape waits for one taken after it began.
            "CHAINMAP_METRICS_FRESH_WAIT": "10s",
        },
    )
    http_port, grpc_port = free_port(), free_port()
    file = directory / "spans.json"
    exporters = {"otlphttp/serve": {"traces_endpoint": serve.url}, "file": {"path": str(file)}}
    config = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "http": {"endpoint": f"127.0.0.1:{http_port}"},
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                }
            }
        },
        "processors": {"transform/chains": transform_block(catalog)},
        "exporters": exporters,
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["transform/chains"],
                    "exporters": list(exporters),
                }
            }
        },
    }
    collector = CollectorProcess(otelcol, config, directory)
    nodes: list[NodeService] = []
    try:
        for tag in ENTRY:
            # Each service's /quotes calls the one started before it.
            downstream = nodes[-1].url if nodes else ""
            nodes.append(
                NodeService(
                    BY_TAG[tag],
                    f"http://127.0.0.1:{http_port}",
                    f"http://127.0.0.1:{grpc_port}",
                    downstream,
                    directory,
                )
            )
        serve.wait_ready()
        collector.wait_ready()
        for node in nodes:
            node.wait_ready()
        for node in nodes:
            for method, path in REQUESTS:
                response = httpx.request(method, node.url + path, timeout=30)
                assert response.status_code == 200, response.text
        # SIGTERM: each SDK flushes into the Collector, which drains into serve and the file.
        for node in nodes:
            node.stop()
        assert collector.stop() == 0, collector.log()
        exported: dict[str, dict[str, Any]] = {}
        for node in nodes:
            for record in node.dump_path.read_text(encoding="utf-8").splitlines():
                if record.strip():
                    span = json.loads(record)
                    exported[span["spanId"]] = span
        metrics = f"http://127.0.0.1:{serve.http_port}/metrics"
        wait_for(
            "chainmap serve did not store every Node span",
            lambda: total(scrape(metrics), "chainmap_spans_stored_total") == len(exported),
            serve.log,
        )
        samples = scrape(metrics)
        requests = {
            chain: total(samples, "chainmap_chain_requests_total", chain_id=chain)
            for chain in catalog.ids
        }
        assert serve.terminate() == 0, serve.log()
    finally:
        for node in nodes:
            node.stop()
        collector.kill()
        serve.terminate()
    rows = query(store_url, "SELECT SpanId, SpanAttributes FROM otel_traces")
    stored: dict[str, dict[str, str]] = {str(row[0]): row[1] for row in rows}  # type: ignore[misc]
    yield Delivered(catalog, exported, read_file_exporter(file), stored, requests, collector.log())


def test_every_node_span_arrives_and_no_statement_fails(delivered: Delivered) -> None:
    assert set(delivered.written) == set(delivered.stored) == set(delivered.exported)
    assert "failed to execute statement" not in delivered.collector_log, delivered.collector_log


def test_the_collector_tags_every_node_span_as_the_sdk_processor_does(
    delivered: Delivered,
) -> None:
    for span_id, span in delivered.exported.items():
        expected = sdk_tags(delivered.catalog, fixture_of(span))
        assert chain_tags(delivered.written[span_id]) == expected, span
        stored = chain_tags(delivered.stored[span_id])
        assert stored == {k: attribute_text(v) for k, v in expected.items()}, span


def test_each_node_span_enters_exactly_the_chains_the_classifier_matches(
    delivered: Delivered,
) -> None:
    classifier = Classifier(delivered.catalog)
    entered: dict[str, int] = {}
    for span_id, span in delivered.exported.items():
        fixture = fixture_of(span)
        expected = classifier.classify(
            fixture["service"], KINDS[fixture["kind"]], fixture["name"], fixture["attributes"]
        )
        entry_ids = delivered.written[span_id].get("chain.entry_ids")
        assert (entry_ids.split(",") if entry_ids else []) == expected, span
        for chain in expected:
            entered[chain] = entered.get(chain, 0) + 1
    # Every rule of every service matched: route, path, method, route by path (/ping), the
    # path glob on the downstream /trade and the kindless GET rule on the GET server spans
    # and the CLIENT span of /quotes (the first service calls none).
    last = len(ENTRY) - 1
    for index, tag in enumerate(ENTRY):
        called = index < last  # the next service's /quotes calls this one's /trade
        for rule in ("route", "path", "method", "ping"):
            assert entered.get(f"{rule}.{tag}") == 1, (rule, tag, entered)
        assert entered.get(f"trade.{tag}", 0) == called, (tag, entered)
        # GET /quotes, /ping and /trade served, and the CLIENT span of /quotes calling.
        assert entered.get(f"get.{tag}") == 2 + called + (index > 0), (tag, entered)


def test_the_node_spans_carry_both_http_conventions(delivered: Delivered) -> None:
    """The premise of the rules above: the fleet's server spans have the old conventions
    only, the stable only, and both."""
    conventions = set()
    for span in delivered.exported.values():
        if JS_KINDS[span["kind"]] == "server":
            keys = set(span["attributes"])
            old = bool(keys & {"http.target", "http.method"})
            stable = bool(keys & {"url.path", "http.request.method"})
            conventions.add((old, stable))
    assert conventions == {(True, False), (False, True), (True, True)}
    assert any(not chain_tags(w) for w in delivered.written.values())


def test_chainmap_counts_one_request_per_chain_entered_at_a_node_service(
    delivered: Delivered,
) -> None:
    """serve counts the entry spans the Collector tagged, once per trace."""
    for tag in ENTRY:
        for rule in ("route", "path", "method", "ping"):
            assert delivered.requests[f"{rule}.{tag}"] == 1, (rule, tag)


def test_a_trace_a_kindless_rule_enters_twice_counts_once(delivered: Delivered) -> None:
    """The last service's GET rule matches its /quotes server span and that span's CLIENT
    call, and the Collector marks both (one span at a time, chain.tagged_by=collector): two
    traces (/quotes and /ping), as the SDK's processor, which enters a chain once per trace,
    would have them counted."""
    assert delivered.requests[f"get.{ENTRY[-1]}"] == 2
