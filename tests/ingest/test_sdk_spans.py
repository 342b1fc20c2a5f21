"""The Arrow insert path: same rows as the general path, coalesced exports, value texts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from chainmap_otel.ingest.exporter import ClickHouseSpanExporter
from chainmap_otel.ingest.sdk_spans import spans_to_arrow, stringify_values
from chainmap_otel.storage.arrow import rows_to_arrow
from chainmap_otel.storage.columns import TRACE_COLUMNS, TRACE_SCHEMA, attribute_text
from chainmap_otel.storage.store import TraceStore, open_store
from tests.support.reference_columns import spans_to_columns

HUGE = "é" * 300_000


def _spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "ünïcode-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t", "1")
    linked = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), TraceState([("k", "v")]))
    with tracer.start_as_current_span(
        "root",
        kind=SpanKind.SERVER,
        attributes={"s": "", "u": "注文 <&>", "b": True, "i": -3, "f": 2.5, "t": ("a", "<b>")},
        links=[Link(linked, {"n": 1}), Link(linked)],
    ) as root:
        root.add_event("e1", {"x": 1.0, "huge": HUGE})
        root.add_event("")
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
    with tracer.start_as_current_span("lonely", kind=SpanKind.CONSUMER):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _as_rows(table: Any) -> list[tuple[Any, ...]]:
    columns = []
    for name in TRACE_COLUMNS:
        values = table.column(name).to_pylist()
        if name == "Timestamp":
            values = [v.value for v in values]
        elif name == "Events.Timestamp":
            values = [[t.value for t in times] for times in values]
        elif name.endswith("Attributes"):
            values = [
                [dict(m) for m in v] if name.startswith(("Events", "Links")) else dict(v)
                for v in values
            ]
        columns.append(values)
    return list(zip(*columns, strict=True))


def test_spans_to_arrow_matches_the_row_builder() -> None:
    spans = _spans()
    reference = spans_to_columns(spans)
    # The list fast path of spans_to_columns renders sequences as plain JSON; the
    # Collector's form is Go's (HTML-safe escapes), which attribute_text gives.
    for attributes in reference[TRACE_COLUMNS.index("SpanAttributes")]:
        if "t" in attributes:
            attributes["t"] = attribute_text(("a", "<b>"))
    assert _as_rows(spans_to_arrow(spans)) == list(zip(*reference, strict=True))


def test_rows_to_arrow_round_trips_the_rows() -> None:
    rows = list(zip(*spans_to_columns(_spans()), strict=True))
    table = rows_to_arrow(rows)
    assert table is not None
    assert _as_rows(table) == rows


def test_rows_with_datetime_timestamps_take_the_general_path() -> None:
    from datetime import UTC, datetime

    row = list(next(zip(*spans_to_columns(_spans()), strict=True)))
    row[0] = datetime(2024, 1, 1, tzinfo=UTC)
    assert rows_to_arrow([tuple(row)]) is None


def test_equal_values_of_different_types_keep_their_own_text() -> None:
    values: list[Any] = [(1, 2), (1.0, 2.0), (True, False), 1, 1.0, True, (1, 2), 1e21, [1.5]]
    assert stringify_values(values) == [
        "[1,2]",
        "[1,2]",
        "[true,false]",
        "1",
        "1",
        "true",
        "[1,2]",
        "1e+21",
        "[1.5]",
    ]
    assert stringify_values([(1.5, 2)]) == ["[1.5,2]"]


@pytest.fixture
def db_url(chdb_store: TraceStore, chdb_path: Path) -> Iterator[str]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    yield f"chdb://{chdb_path}?database={database}"
    chdb_store.command(f"DROP DATABASE IF EXISTS {database}")


def _stored(store: TraceStore, table: str) -> list[tuple[Any, ...]]:
    columns = ", ".join(f"`{c}`" for c in TRACE_COLUMNS)
    return [
        tuple(row)
        for row in store.query(
            f"SELECT {columns}, toUnixTimestamp64Nano(Timestamp) FROM {table} ORDER BY SpanId"
        ).result_rows
    ]


def test_arrow_and_native_inserts_store_identical_rows(store_factory: Any) -> None:
    store: TraceStore = store_factory()
    store.command("CREATE TABLE native_copy AS otel_traces")
    columns = spans_to_columns(_spans())
    rows = list(zip(*columns, strict=True))
    # Old (Collector < 0.100) forms of kind and status, read by the aggregates too.
    old = list(rows[0])
    old[2:4] = ["00000000000000aa", ""]
    old[TRACE_COLUMNS.index("SpanKind")] = "SPAN_KIND_SERVER"
    old[TRACE_COLUMNS.index("StatusCode")] = "STATUS_CODE_ERROR"
    rows.append(tuple(old))
    assert store.insert_spans(rows=rows) == 4  # the Arrow path
    store.client.insert(  # clickhouse-connect's Native serialisation, the reference
        "native_copy",
        [list(c) for c in zip(*rows, strict=True)],
        column_names=list(TRACE_COLUMNS),
        column_oriented=True,
    )
    assert _stored(store, "otel_traces") == _stored(store, "native_copy")
    summary = store.query(
        "SELECT RootKind, RootStatus, ErrorCount FROM chainmap_trace_summary FINAL "
        "WHERE RootName = 'root' ORDER BY RootStatus"
    ).result_rows
    assert summary == [("Server", "Unset", 2)]  # max() of two roots; both errors counted


def test_exports_are_coalesced_and_committed_by_flush_and_shutdown(db_url: str) -> None:
    spans = _spans()
    exporter = ClickHouseSpanExporter(db_url, linger_s=3600)
    assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.exported_spans == 0  # waiting for the linger
    assert exporter.force_flush() is True
    assert (exporter.exported_spans, exporter.buffered_spans) == (1 + len(spans), 0)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()  # commits what is buffered
    assert exporter.dropped_spans == 0
    with open_store(db_url) as store:
        assert store.query("SELECT count() FROM otel_traces").result_rows == [(1 + 2 * len(spans),)]


def _wait_exported(exporter: ClickHouseSpanExporter, count: int) -> None:
    deadline = time.monotonic() + 60
    while exporter.exported_spans < count:
        assert time.monotonic() < deadline, "the worker did not insert within 60s"
        time.sleep(0.02)


def test_the_worker_commits_after_the_linger_and_full_batches_at_once(db_url: str) -> None:
    spans = _spans()
    exporter = ClickHouseSpanExporter(db_url, linger_s=0.05, batch_spans=len(spans) * 2)
    exporter.export(spans[:1])
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    _wait_exported(exporter, 1 + len(spans))
    eager = ClickHouseSpanExporter(db_url, linger_s=3600, batch_spans=len(spans))
    assert eager.export(spans) is SpanExportResult.SUCCESS
    _wait_exported(eager, len(spans))  # a full batch does not wait out the hour
    eager.shutdown()
    exporter.shutdown()
    with pytest.raises(ValueError, match="linger_s"):
        ClickHouseSpanExporter(db_url, linger_s=-1)


def test_arrow_tables_follow_the_one_column_definition() -> None:
    kinds = {
        "time": pa.timestamp("ns", "UTC"),
        "uint": pa.uint64(),
        "str": pa.string(),
        "map": pa.map_(pa.string(), pa.string()),
    }
    expected = [
        (c.name, kinds[c.kind] if c.kind in kinds else pa.list_(kinds[c.kind[:-1]]))
        for c in TRACE_SCHEMA
    ]
    from_sdk = spans_to_arrow(_spans())
    from_rows = rows_to_arrow(list(zip(*spans_to_columns(_spans()), strict=True)))
    assert from_rows is not None
    for table in (from_sdk, from_rows):
        assert [(f.name, f.type) for f in table.schema] == expected
