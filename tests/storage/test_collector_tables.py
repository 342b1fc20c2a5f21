"""Tables a real Collector writes: the newer DDL (contrib PR #50878) analysed, `json: true`
tables refused with the column and the fix, current value encodings written and read."""

from __future__ import annotations

import importlib
import json
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from typer.testing import CliRunner

from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.analysis.topology import topology
from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.errors import StoreError
from chainmap_otel.ingest.decode import decode_json
from chainmap_otel.ingest.exporter import ClickHouseSpanExporter
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import TraceStore, open_store
from tests.analysis.conftest import CATALOG_YAML, insert_spans, load_fixture
from tests.support.catalog import chains_catalog

FIXTURES = Path(__file__).parent / "fixtures"
TEXT_INDEXES = """INDEX idx_trace_id TraceId TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_items ResourceAttributeItems TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_items SpanAttributeItems TYPE text(tokenizer = 'array'),"""
BLOOM_INDEXES = """INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,"""
MINUTE_NS = 60_000_000_000


@pytest.fixture
def now_ns() -> int:
    """Ten minutes ago: inside the default one-hour window."""
    return time.time_ns() - 10 * MINUTE_NS


@pytest.fixture
def url(chdb_store: TraceStore, chdb_path: Path) -> Iterator[str]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    chdb_store.command(f"CREATE DATABASE {database}")
    yield f"chdb://{chdb_path}?database={database}"
    chdb_store.command(f"DROP DATABASE IF EXISTS {database}")


def create(store: TraceStore, fixture: str, indexes: str = "") -> None:
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    for statement in body.replace("{db}", store.database).replace("{indexes}", indexes).split(";"):
        if statement.strip():
            store.command(statement)


@pytest.mark.parametrize("indexes", [TEXT_INDEXES, BLOOM_INDEXES], ids=["text", "bloom"])
def test_newer_collector_ddl_analyses_like_chainmap_tables(
    indexes: str, url: str, now_ns: int
) -> None:
    catalog = chains_catalog()
    fixture = load_fixture("nested_chains")
    with open_store(url) as store:
        create(store, "collector_traces_pr50878.sql", indexes)
        apply_schema(store, progress=lambda line: None)
        ddl = store.query(
            "SELECT create_table_query FROM system.tables WHERE database = {db:String} "
            "AND name = 'otel_traces'",
            {"db": store.database},
        ).result_rows[0][0]
        assert "SpanAttributeItems" in ddl and "toDateTime(Timestamp), Timestamp" in ddl
        insert_spans(store, fixture["spans"], now_ns)
        all_traffic = topology(store, catalog, parse_window())
        edges = sorted(
            [e.source, e.target, e.connection_type, e.calls, e.errors] for e in all_traffic.edges
        )
        assert edges == sorted(fixture["expected_edges"])
        b3 = topology(store, catalog, parse_window(), "B3").edge_set()
        assert b3 == {(s, t) for s, t, *_ in fixture["expected_chain_edges"]["B3"]}
        counts = {h["chain_id"]: h["traces"] for h in health(store, catalog, parse_window("1h"))}
        assert counts == {"B1": 1, "A2": 1, "B3": 1, "C9": 0}
        items = store.query(
            "SELECT SpanAttributeItems FROM otel_traces WHERE ParentSpanId = ''"
        ).result_rows[0][0]
        assert "chain.ids=B1" in items
        lookup = store.query(
            "SELECT count(), min(Start) <= max(End) FROM otel_traces_trace_id_ts FINAL"
        ).result_rows
        assert lookup == [(1, 1)]


def test_json_attribute_tables_are_refused_with_the_column_and_the_fix(
    url: str, tmp_path: Path
) -> None:
    with open_store(url) as store:
        create(store, "collector_traces_json.sql")
        with pytest.raises(StoreError) as caught:
            apply_schema(store, progress=lambda line: None)
        message = str(caught.value)
        assert f"{store.database}.otel_traces.ResourceAttributes is of type JSON" in message
        assert "`json: false`" in message
        problem = store.traces_location_problem()
        assert problem is not None and "is of type JSON" in problem
        assert not store.table_exists("chainmap_chain_minute")
    chains = tmp_path / "chains.yaml"
    chains.write_text(CATALOG_YAML, encoding="utf-8")
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    runner = CliRunner()
    applied = runner.invoke(app, ["schema", "apply", "--store", url])
    assert applied.exit_code == 1
    assert "is of type JSON" in applied.output and "Traceback" not in applied.output
    assert len(applied.output.strip().splitlines()) == 1
    read = runner.invoke(app, ["health", "--store", url, "--chains", str(chains)])
    assert read.exit_code == 1 and "is of type JSON" in read.output


def _sdk_spans() -> list[object]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "pricing"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    attributes = {
        "floats": (1.0, 2.5),
        "html": ("a<b", "c&d", "e>f"),
        "nan": math.nan,
        "inf": math.inf,
        "neg_inf": -math.inf,
        "special_floats": (math.nan, math.inf, -math.inf, 0.5),
    }
    with provider.get_tracer("t").start_as_current_span(
        "GET /price", kind=SpanKind.SERVER, attributes=attributes
    ):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


EXPECTED_TEXT = {
    "floats": "[1,2.5]",
    "html": '["a<b","c&d","e>f"]',
    "nan": "NaN",
    "inf": "Infinity",
    "neg_inf": "-Infinity",
    "special_floats": '["NaN","Infinity","-Infinity",0.5]',
}


def _otlp_json(now_ns: int) -> str:
    def double(value: str | float) -> dict[str, object]:
        return {"doubleValue": value}

    attributes = [
        {"key": "floats", "value": {"arrayValue": {"values": [double(1.0), double(2.5)]}}},
        {
            "key": "html",
            "value": {
                "arrayValue": {"values": [{"stringValue": s} for s in ("a<b", "c&d", "e>f")]}
            },
        },
        {"key": "nan", "value": double("NaN")},
        {"key": "inf", "value": double("Infinity")},
        {"key": "neg_inf", "value": double("-Infinity")},
        {
            "key": "special_floats",
            "value": {
                "arrayValue": {
                    "values": [
                        double("NaN"),
                        double("Infinity"),
                        double("-Infinity"),
                        double(0.5),
                    ]
                }
            },
        },
        {
            "key": "map",
            "value": {"kvlistValue": {"values": [{"key": "q", "value": {"stringValue": "x<y&z"}}]}},
        },
    ]
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "GET /price",
        "kind": 9,
        "startTimeUnixNano": str(now_ns),
        "endTimeUnixNano": str(now_ns + 1_000_000),
        "attributes": attributes,
        "status": {"code": 7},
    }
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "q"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "s"}, "spans": [span]}],
                }
            ]
        }
    )


def test_writers_use_the_current_collector_encodings(url: str, now_ns: int) -> None:
    exporter = ClickHouseSpanExporter(url)
    exporter.export(_sdk_spans())  # type: ignore[arg-type]
    exporter.shutdown()
    decoded = decode_json(_otlp_json(now_ns))
    assert decoded.rejected == 0
    with open_store(url) as store:
        store.insert_spans(rows=decoded.rows)
        rows = store.query(
            "SELECT ServiceName, SpanAttributes, SpanKind, StatusCode FROM otel_traces"
        ).result_rows
    by_service = {str(r[0]): r for r in rows}
    for service in ("pricing", "q"):
        stored = by_service[service][1]
        assert {k: stored[k] for k in EXPECTED_TEXT} == EXPECTED_TEXT, service
        json.loads(stored["special_floats"])  # still valid JSON
    assert by_service["q"][1]["map"] == '{"q":"x<y&z"}'
    # Unknown kind/status numbers are written as "" (the current Collector's form).
    assert by_service["q"][2:] == ("", "")
    assert by_service["pricing"][2:] == ("Server", "Unset")


def test_unknown_kind_and_status_enums_read_as_neither(url: str, now_ns: int) -> None:
    catalog = chains_catalog()
    tags = {"chain.ids": "B3", "chain.id": "B3", "chain.entry": "true", "chain.entry_ids": "B3"}
    spans = [
        {
            "trace": "u1",
            "span": "a",
            "service": "trading-engine",
            "kind": "",
            "status": "",
            "attributes": tags,
        },
        {
            "trace": "u1",
            "span": "b",
            "parent": "a",
            "service": "trading-engine",
            "kind": "",
            "status": "",
            "start_ms": 1,
            "attributes": {"chain.ids": "B3", "peer.service": "exchange"},
        },
    ]
    with open_store(url) as store:
        apply_schema(store, progress=lambda line: None)
        insert_spans(store, spans, now_ns)
        b3 = health(store, catalog, parse_window("1h"), ["B3"])[0]
        assert (b3["traces"], b3["errors"]) == (1, 0)
        # Neither client nor server: no edge, as the servicegraph connector would pair none.
        assert topology(store, catalog, parse_window(), "B3").edges == []
