"""The generated OTTL run by the real transform processor, against the SDK's processor.

Services without chainmap (the plain Python SDK here) send OTLP to otelcol-chainmap:
``otlp -> transform/<catalog> (generated) -> otlphttp -> chainmap serve``, and a file
exporter beside it keeps the typed attribute values. For every fixture span the chain
attributes serve stored, and the ones the Collector wrote, equal what ``ChainSpanProcessor``
gives the same span in an SDK and what ``Classifier`` matches.
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
from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel.collector.ottl import quote
from chainmap_otel.collector.pipeline import processor_config
from chainmap_otel.storage.columns import attribute_text
from chainmap_otel.tagging.active import MAX_STACK_DEPTH
from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog, parse_catalog
from chainmap_otel.tagging.processor import ChainSpanProcessor
from chainmap_otel.tagging.rules import Classifier
from tests.support.collector import CollectorProcess
from tests.support.processes import free_port
from tests.support.serve_process import ServeProcess, query

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
CHAIN_KEYS: tuple[str, ...] = ("chain.id", "chain.ids", "chain.name", "chain.category")
CHAIN_KEYS += ("chain.entry", "chain.entry_ids")
KINDS = {
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "internal": SpanKind.INTERNAL,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
NEWLINE_CATALOG = """
chains:
  - id: NL
    name: Newline
    category: api
    entry: [{service: svc, name: {regex: "^place.order$"}}]
"""
DEEP_CATALOG = "chains:\n" + "".join(
    f"  - {{id: D{i}, name: deep {i}, category: batch, entry: [{{service: deep}}]}}\n"
    for i in range(MAX_STACK_DEPTH + 2)
)
SDK_TAGS = {"chain.id": "B1", "chain.ids": "B1", "chain.name": "API request"}
SDK_TAGS |= {"chain.category": "api"}
# Texts an OTTL string literal must carry unchanged (quote() writes them, Go unquotes them).
LITERALS: tuple[str, ...] = (
    "",
    "plain",
    'q"uote',
    "back\\slash",
    "tab\tnew\nline\r",
    "del\x7f",
    "ünï 字",
)
LITERALS += ("dollar $x ${y} $$z",)


def fixture_spans() -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = yaml.safe_load((FIXTURES / "spans.yaml").read_text())["spans"]
    return spans


def resource_of(span: dict[str, Any]) -> Resource:
    # Resource(), not Resource.create(): a span without a service name must arrive without one.
    return Resource({"service.name": span["service"]} if span["service"] else {})


def sdk_tags(catalog: ChainCatalog, span: dict[str, Any]) -> dict[str, Any]:
    """What ChainSpanProcessor gives this span in a real SDK (baggage as from a remote parent)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource_of(span))
    provider.add_span_processor(ChainSpanProcessor(catalog))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = Context()
    if span.get("baggage"):
        context = baggage.set_baggage("chain.ids", span["baggage"], context)
    provider.get_tracer("agreement").start_span(
        span["name"], context=context, kind=KINDS[span["kind"]], attributes=span["attributes"]
    ).end()
    provider.shutdown()
    (finished,) = exporter.get_finished_spans()
    return {k: v for k, v in (finished.attributes or {}).items() if k in CHAIN_KEYS}


def plain_span(span: dict[str, Any], kind: SpanKind | None = None) -> ReadableSpan:
    """The span as a service without chainmap records it; a baggage stack is copied onto it
    as a baggage span processor (in any language) would."""
    attributes = dict(span["attributes"])
    if span.get("baggage"):
        attributes["chain.ids"] = span["baggage"]
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource_of(span))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("plain.sdk", "1.0").start_span(
        span["name"], kind=kind or KINDS[span["kind"]], attributes=attributes
    ).end()
    provider.shutdown()
    (finished,) = exporter.get_finished_spans()
    return finished


def span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def literal_statements() -> list[str]:
    """One ``set`` per literal: the text as the attribute's key (with a prefix) and value."""
    return [f"set(span.attributes[{quote('lit.' + t)}], {quote(t)})" for t in LITERALS]


def dollars_escaped(value: Any) -> Any:
    """The YAML a user writes for a value: every ``$`` as ``$$`` (confmap's escape)."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [dollars_escaped(v) for v in value]
    return value


def transform_block(catalog: ChainCatalog) -> dict[str, Any]:
    """``transform/chains`` exactly as the generator writes it (``$$`` and all)."""
    block: dict[str, Any] = yaml.safe_load(processor_config(catalog))["processors"][
        "transform/chains"
    ]
    return block


@dataclass
class Delivered:
    """What came out of the Collector, by span id."""

    stored: dict[str, dict[str, str]]
    written: dict[str, dict[str, Any]]
    collector_log: str


@dataclass
class Batches:
    """The spans sent to each pipeline of the Collector."""

    catalogs: dict[str, ChainCatalog]
    spans: dict[str, list[tuple[dict[str, Any], ReadableSpan]]]

    @classmethod
    def build(cls) -> Batches:
        catalogs = {
            "chains": load_catalog(FIXTURES / "catalog.yaml"),
            "newline": parse_catalog(NEWLINE_CATALOG, source="newline.yaml"),
            "deep": parse_catalog(DEEP_CATALOG, source="deep.yaml"),
        }
        tagged: dict[str, Any] = {"service": "gw", "kind": "server", "name": "GET"}
        tagged["attributes"] = {"http.route": "/api/v1/trading", "http.method": "GET", **SDK_TAGS}
        spans: dict[str, list[dict[str, Any]]] = {
            "chains": [*fixture_spans(), tagged],
            "newline": [
                {"service": "svc", "kind": "server", "name": "place\norder", "attributes": {}},
                {"service": "svc", "kind": "server", "name": "place\nxorder", "attributes": {}},
            ],
            "deep": [{"service": "deep", "kind": "internal", "name": "work", "attributes": {}}],
            "literals": [{"service": "lit", "kind": "internal", "name": "l", "attributes": {}}],
        }
        return cls(
            catalogs=catalogs,
            spans={name: [(s, plain_span(s)) for s in batch] for name, batch in spans.items()},
        )

    def config(self, ports: dict[str, int], serve_url: str, file: Path) -> dict[str, Any]:
        processors = {f"transform/{name}": transform_block(c) for name, c in self.catalogs.items()}
        processors["transform/literals"] = {
            "error_mode": "propagate",
            "trace_statements": dollars_escaped(literal_statements()),
        }
        exporters = {
            "otlphttp/serve": {"traces_endpoint": serve_url},
            "file": {"path": str(file)},
        }
        return {
            "receivers": {
                f"otlp/{name}": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}
                for name, port in ports.items()
            },
            "processors": processors,
            "exporters": exporters,
            "service": {
                "pipelines": {
                    f"traces/{name}": {
                        "receivers": [f"otlp/{name}"],
                        "processors": [f"transform/{name}"],
                        "exporters": list(exporters),
                    }
                    for name in ports
                }
            },
        }


def unspecified_kind_request() -> tuple[str, bytes]:
    """An item span with SPAN_KIND_UNSPECIFIED, which no SDK records: raw OTLP protobuf."""
    span: dict[str, Any] = {"service": "any", "kind": "internal", "name": "item"}
    span["attributes"] = {"url.path": "/items/7"}
    request: ExportTraceServiceRequest = encode_spans([plain_span(span)])
    proto = request.resource_spans[0].scope_spans[0].spans[0]
    proto.kind = ProtoSpan.SpanKind.SPAN_KIND_UNSPECIFIED
    return proto.span_id.hex(), request.SerializeToString()


def any_value(value: dict[str, Any]) -> Any:
    """A typed value from OTLP/JSON (ints are JSON strings there)."""
    ((kind, raw),) = value.items() if value else (("stringValue", None),)
    return int(str(raw)) if kind == "intValue" else raw


def read_file_exporter(path: Path) -> dict[str, dict[str, Any]]:
    """Span id -> typed attributes, from the file exporter's OTLP/JSON lines (hex ids)."""
    written: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    attributes = {
                        kv["key"]: any_value(kv["value"]) for kv in span.get("attributes", [])
                    }
                    written[span["spanId"]] = attributes
    return written


@pytest.fixture(scope="module")
def batches() -> Batches:
    return Batches.build()


@pytest.fixture(scope="module")
def delivered(
    otelcol: Path, batches: Batches, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Delivered]:
    directory = tmp_path_factory.mktemp("ottl-collector")
    store_url = f"chdb://{directory / 'store'}"
    serve = ServeProcess(store_url, directory / "serve.log")
    ports = {name: free_port() for name in [*batches.spans, "unspecified"]}
    file = directory / "spans.json"
    config = batches.config(ports, serve.url, file)
    config["service"]["pipelines"]["traces/unspecified"]["processors"] = ["transform/chains"]
    collector = CollectorProcess(otelcol, config, directory)
    try:
        serve.wait_ready()
        collector.wait_ready()
        for name, batch in batches.spans.items():
            exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{ports[name]}/v1/traces")
            assert exporter.export([span for _s, span in batch]) == SpanExportResult.SUCCESS
            exporter.shutdown()  # type: ignore[no-untyped-call]
        _id, body = unspecified_kind_request()
        response = httpx.post(
            f"http://127.0.0.1:{ports['unspecified']}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        # SIGTERM drains the exporters' queues into serve and closes the file; then serve
        # flushes what it received and the store can be read.
        assert collector.stop() == 0, collector.log()
        assert serve.terminate() == 0, serve.log()
    finally:
        collector.kill()
        serve.terminate()
    rows = query(store_url, "SELECT SpanId, SpanAttributes FROM otel_traces")
    stored: dict[str, dict[str, str]] = {str(row[0]): row[1] for row in rows}  # type: ignore[misc]
    yield Delivered(stored=stored, written=read_file_exporter(file), collector_log=collector.log())


def chain_tags(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if k in CHAIN_KEYS}


def test_every_span_arrives_and_no_statement_fails(batches: Batches, delivered: Delivered) -> None:
    sent = {span_id(span) for batch in batches.spans.values() for _s, span in batch}
    assert len(batches.spans["chains"]) >= 60
    assert sent < set(delivered.stored) and len(delivered.stored) == len(sent) + 1
    assert set(delivered.written) == set(delivered.stored)
    # error_mode: ignore would log a failing statement and go on; none may fail.
    assert "failed to execute statement" not in delivered.collector_log, delivered.collector_log
    # Release 0.161.0 still reads the old component names, with a warning (README).
    assert '"otlphttp" alias is deprecated' in delivered.collector_log


def test_the_collector_tags_every_fixture_span_as_the_sdk_processor_does(
    batches: Batches, delivered: Delivered
) -> None:
    catalog = batches.catalogs["chains"]
    entered: set[str] = set()
    untagged = 0
    stable = old = 0
    for fixture, span in batches.spans["chains"]:
        if "chain.id" in fixture["attributes"]:
            continue
        expected = sdk_tags(catalog, fixture)
        written = chain_tags(delivered.written[span_id(span)])
        stored = chain_tags(delivered.stored[span_id(span)])
        assert written == expected, fixture
        assert stored == {k: attribute_text(v) for k, v in expected.items()}, fixture
        # The Collector's entry marks say who set them (the analyses keep the first of a
        # trace's marks from the root down); spans it left alone carry no such attribute.
        tagged_by = delivered.written[span_id(span)].get("chain.tagged_by")
        assert tagged_by == ("collector" if "chain.entry" in expected else None), fixture
        entered.update(str(expected.get("chain.entry_ids", "")).split(","))
        untagged += not expected
        keys = set(fixture["attributes"])
        stable += bool(keys & {"http.route", "url.path", "http.request.method"})
        old += bool(keys & {"http.target", "http.method"})
    # The fixtures are only worth something if every chain matches and spans miss too.
    assert set(catalog.ids) <= entered
    assert untagged >= 10 and stable >= 10 and old >= 10


def test_each_span_enters_exactly_the_chains_the_classifier_matches(
    batches: Batches, delivered: Delivered
) -> None:
    classifier = Classifier(batches.catalogs["chains"])
    for fixture, span in batches.spans["chains"]:
        attributes = fixture["attributes"]
        if fixture["service"] is None or fixture.get("baggage") or "chain.id" in attributes:
            continue
        expected = classifier.classify(
            fixture["service"], KINDS[fixture["kind"]], fixture["name"], attributes
        )
        entry_ids = delivered.written[span_id(span)].get("chain.entry_ids")
        assert (entry_ids.split(",") if entry_ids else []) == expected, fixture


def test_several_matching_chains_push_in_file_order(batches: Batches, delivered: Delivered) -> None:
    (span,) = [
        span
        for fixture, span in batches.spans["chains"]
        if fixture["attributes"]
        == {"http.route": "/api/v1/trading/decision", "http.method": "POST"}
    ]
    assert chain_tags(delivered.written[span_id(span)]) == {
        "chain.id": "N1",
        "chain.ids": "S1,N1",
        "chain.name": "Trading via the gateway",
        "chain.category": "trading",
        "chain.entry": True,
        "chain.entry_ids": "S1,N1",
    }


def test_spans_tagged_by_an_sdk_are_left_alone(batches: Batches, delivered: Delivered) -> None:
    (span,) = [s for f, s in batches.spans["chains"] if "chain.id" in f["attributes"]]
    assert chain_tags(delivered.written[span_id(span)]) == SDK_TAGS


def test_unspecified_kind_counts_as_internal_like_the_query_time_classifier(
    batches: Batches, delivered: Delivered
) -> None:
    (unspecified,) = set(delivered.written) - {
        span_id(span) for batch in batches.spans.values() for _s, span in batch
    }
    assert delivered.written[unspecified]["chain.ids"] == "S3"
    unknown_kind: Any = None
    classifier = Classifier(batches.catalogs["chains"])
    assert classifier.classify("any", unknown_kind, "item", {"url.path": "/items/7"}) == ["S3"]


def test_a_catalog_deeper_than_a_stack_stops_at_the_depth_like_the_processor(
    batches: Batches, delivered: Delivered
) -> None:
    ((fixture, span),) = batches.spans["deep"]
    expected = sdk_tags(batches.catalogs["deep"], fixture)
    assert expected["chain.ids"] == ",".join(f"D{i}" for i in range(MAX_STACK_DEPTH))
    assert chain_tags(delivered.written[span_id(span)]) == expected


def test_a_user_regex_dot_matches_a_newline_in_the_collector_as_in_the_processor(
    batches: Batches, delivered: Delivered
) -> None:
    matched, missed = batches.spans["newline"]
    for fixture, span in (matched, missed):
        expected = sdk_tags(batches.catalogs["newline"], fixture)
        assert chain_tags(delivered.written[span_id(span)]) == expected
    assert sdk_tags(batches.catalogs["newline"], matched[0]).get("chain.id") == "NL"
    assert "chain.id" not in sdk_tags(batches.catalogs["newline"], missed[0])


def test_string_literals_reach_the_span_unchanged(batches: Batches, delivered: Delivered) -> None:
    ((_fixture, span),) = batches.spans["literals"]
    for attributes in (delivered.written[span_id(span)], delivered.stored[span_id(span)]):
        assert {k: v for k, v in attributes.items() if k.startswith("lit.")} == {
            "lit." + text: text for text in LITERALS
        }
