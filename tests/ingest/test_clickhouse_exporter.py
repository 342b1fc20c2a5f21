"""ClickHouseSpanExporter against the real engine (chDB): every field, failures, the buffer."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from chainmap_otel.ingest.exporter import ClickHouseSpanExporter, ExporterSettings
from chainmap_otel.storage.columns import TRACE_COLUMNS
from chainmap_otel.storage.store import TraceStore, open_store

HUGE = "x" * (1024 * 1024)


@pytest.fixture
def db_url(chdb_store: TraceStore, chdb_path: Path) -> Iterator[str]:
    """A fresh database on the session's chDB, dropped afterwards."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    yield f"chdb://{chdb_path}?database={database}"
    chdb_store.command(f"DROP DATABASE IF EXISTS {database}")


def _recorded_spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout", "deployment.environment": "prod"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("shop.tracer", "2.1.0")
    linked = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "v1")]),
    )
    attributes = {
        "http.route": "/orders/{id}",
        "str.empty": "",
        "unicode": "naïve — 注文 ✓",
        "bool.true": True,
        "bool.false": False,
        "int": 42,
        "int.negative": -7,
        "float": 0.25,
        "float.whole": 3.0,
        "strings": ["a", "", "é"],
        "ints": [1, 2, 3],
        "floats": [0.5, 1.5],
        "bools": [True, False],
        "huge": HUGE,
    }
    with tracer.start_as_current_span(
        "POST /orders/{id}",
        kind=SpanKind.SERVER,
        attributes=attributes,
        links=[Link(linked, {"link.kind": "follows", "n": 1})],
    ) as root:
        root.add_event("validated", {"items": 3, "ok": True})
        root.add_event("no-attributes")
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "deadlock détecté"))
        root.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span("", kind=SpanKind.INTERNAL):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _rows(store: TraceStore) -> dict[str, dict[str, object]]:
    columns = ", ".join(f"`{c}`" for c in TRACE_COLUMNS)
    result = store.query(
        f"SELECT {columns}, toUnixTimestamp64Nano(Timestamp) AS ts, "
        "arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`) AS ets FROM otel_traces"
    )
    return {
        row[2]: dict(zip([*TRACE_COLUMNS, "ts", "ets"], row, strict=True))
        for row in result.result_rows
    }


def test_every_field_round_trips(db_url: str) -> None:
    spans = _recorded_spans()
    exporter = ClickHouseSpanExporter(db_url)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    with open_store(db_url) as store:
        rows = _rows(store)
    assert len(rows) == 3
    root_span = next(s for s in spans if s.name == "POST /orders/{id}")
    child_span = next(s for s in spans if s.name == "SELECT orders")
    root = rows[f"{root_span.context.span_id:016x}"]
    child = rows[f"{child_span.context.span_id:016x}"]
    assert root["TraceId"] == f"{root_span.context.trace_id:032x}"
    assert root["ParentSpanId"] == "" and child["ParentSpanId"] == root["SpanId"]
    assert root["ts"] == root_span.start_time
    assert root["Duration"] == root_span.end_time - root_span.start_time
    assert (root["SpanKind"], child["SpanKind"]) == ("Server", "Client")
    assert (root["StatusCode"], root["StatusMessage"]) == ("Ok", "")
    assert (child["StatusCode"], child["StatusMessage"]) == ("Error", "deadlock détecté")
    assert root["ServiceName"] == "checkout"
    assert root["ResourceAttributes"]["deployment.environment"] == "prod"
    assert root["ResourceAttributes"]["telemetry.sdk.language"] == "python"
    assert (root["ScopeName"], root["ScopeVersion"]) == ("shop.tracer", "2.1.0")
    assert root["SpanAttributes"] == {
        "http.route": "/orders/{id}",
        "str.empty": "",
        "unicode": "naïve — 注文 ✓",
        "bool.true": "true",
        "bool.false": "false",
        "int": "42",
        "int.negative": "-7",
        "float": "0.25",
        "float.whole": "3",
        "strings": '["a","","é"]',
        "ints": "[1,2,3]",
        "floats": "[0.5,1.5]",
        "bools": "[true,false]",
        "huge": HUGE,
    }
    assert root["Events.Name"] == ["validated", "no-attributes"]
    assert root["Events.Attributes"] == [{"items": "3", "ok": "true"}, {}]
    assert root["ets"] == [e.timestamp for e in root_span.events]
    assert root["Links.TraceId"] == ["0af7651916cd43dd8448eb211c80319c"]
    assert root["Links.SpanId"] == ["00f067aa0ba902b7"]
    assert root["Links.TraceState"] == ["vendor=v1"]
    assert root["Links.Attributes"] == [{"link.kind": "follows", "n": "1"}]
    empty = next(r for r in rows.values() if r["SpanName"] == "")
    assert empty["SpanKind"] == "Internal" and empty["StatusCode"] == "Unset"
    assert empty["Events.Name"] == [] and empty["Links.TraceId"] == []
    assert json.loads(str(root["SpanAttributes"]["strings"])) == ["a", "", "é"]  # type: ignore[index]


def test_exporting_creates_the_schema_and_feeds_the_aggregates(db_url: str) -> None:
    exporter = ClickHouseSpanExporter(db_url)
    exporter.export(_recorded_spans())
    exporter.shutdown()
    with open_store(db_url) as store:
        summary = store.query(
            "SELECT sum(SpanCount), sum(ErrorCount), max(RootService) FROM chainmap_trace_summary"
        ).result_rows
    assert summary == [(3, 1, "checkout")]


def test_an_unreachable_store_never_blocks_the_app_and_every_drop_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spans = _recorded_spans()
    exporter = ClickHouseSpanExporter(
        "http://user:s3cret@127.0.0.1:9/otel", timeout=0.5, buffer_spans=4
    )
    with caplog.at_level(logging.WARNING, logger="chainmap_otel.ingest.exporter"):
        # export() only queues: it returns while the store has still not been reached.
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.exported_spans == 0
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.buffered_spans == 4
        assert exporter.drop_counts["buffer_full"] == 2
        assert exporter.force_flush(timeout_millis=200) is False
        exporter.shutdown()
    assert exporter.drop_counts == {"buffer_full": 2, "invalid": 0, "refused": 0, "shutdown": 4}
    assert (exporter.dropped_spans, exporter.buffered_spans, exporter.exported_spans) == (6, 0, 0)
    assert "dropped 2 spans beyond the buffer of 4 spans" in caplog.text
    assert "http://user:***@127.0.0.1:9/otel" in caplog.text
    assert "s3cret" not in caplog.text
    assert exporter.export(spans) is SpanExportResult.FAILURE


def test_buffered_spans_are_stored_once_the_store_takes_inserts_again(db_url: str) -> None:
    spans = _recorded_spans()
    exporter = ClickHouseSpanExporter(db_url, timeout=5)
    assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
    assert exporter.force_flush() is True
    with open_store(db_url) as store:
        # The store refuses inserts (TOO_MANY_PARTS) until the setting is put back.
        store.command("ALTER TABLE otel_traces MODIFY SETTING max_parts_in_total = 1")
        try:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
            assert exporter.force_flush(timeout_millis=300) is False
            assert (exporter.buffered_spans, exporter.dropped_spans) == (3, 0)
        finally:
            store.command("ALTER TABLE otel_traces MODIFY SETTING max_parts_in_total = 100000")
    assert exporter.force_flush() is True  # wakes the waiting retry
    assert (exporter.exported_spans, exporter.buffered_spans, exporter.dropped_spans) == (4, 0, 0)
    exporter.shutdown()
    with open_store(db_url) as store:
        assert store.query("SELECT count() FROM otel_traces").result_rows == [(4,)]


def _span_at(tracer: Any, name: str, start: int, **attributes: Any) -> None:
    span = tracer.start_span(name, start_time=start, attributes=attributes)
    span.end(end_time=start + 1000)


def test_poison_spans_cost_only_themselves(db_url: str) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "poisoned"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    now = time.time_ns()
    for day in range(120):  # more days than one insert may touch
        _span_at(tracer, f"day-{day}", now - day * 86_400 * 10**9)
    _span_at(tracer, "surrogate", now, bad="x\ud800")
    _span_at(tracer, "ancient", 5)
    _span_at(tracer, "far-future", 2**63 - 10_000)
    provider.shutdown()
    exporter = ClickHouseSpanExporter(db_url)
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
    assert exporter.force_flush() is True
    exporter.shutdown()
    assert exporter.exported_spans == 121
    assert exporter.drop_counts == {"buffer_full": 0, "invalid": 2, "refused": 0, "shutdown": 0}
    with open_store(db_url) as store:
        rows = store.query("SELECT count(), uniqExact(SpanId) FROM otel_traces").result_rows
        names = store.query("SELECT SpanName FROM otel_traces WHERE SpanName NOT LIKE 'day-%'")
    assert rows == [(121, 121)]
    assert names.result_rows == [("ancient",)]  # 1970 + 5 ns is a time the store can hold


FORK = """
import logging, os, sys
logging.basicConfig(level=logging.WARNING)
from chainmap_otel.ingest.exporter import ClickHouseSpanExporter
from tests.ingest.test_clickhouse_exporter import _recorded_spans
exporter = ClickHouseSpanExporter("http://127.0.0.1:9/otel", timeout=0.5)
exporter.export(_recorded_spans())
assert exporter.buffered_spans == 3
pid = os.fork()
if pid == 0:
    ok = exporter.buffered_spans == 0
    exporter.export(_recorded_spans()[:1])
    ok = ok and exporter.buffered_spans == 1
    exporter.force_flush(timeout_millis=2000)  # its worker tries the (unreachable) store
    exporter.shutdown()
    ok = ok and exporter.drop_counts["shutdown"] == 1
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
exporter.shutdown()
print(os.waitstatus_to_exitcode(status), exporter.drop_counts["shutdown"])
"""


def test_a_forked_child_starts_with_an_empty_queue_and_its_own_worker() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FORK],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "3"]  # the child's spans are the child's, not resent
    # The child's own worker tried to store its one span (and only it).
    assert "retrying an insert of 1 spans" in out.stderr


def test_exporting_makes_no_spans_of_its_own(db_url: str) -> None:
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value

    seen: list[object] = []

    class Probe(ClickHouseSpanExporter):
        def _write(self, inserter: Any, batch: list[ReadableSpan]) -> None:
            seen.append(get_value(_SUPPRESS_INSTRUMENTATION_KEY))
            super()._write(inserter, batch)

    exporter = Probe(db_url)
    exporter.export(_recorded_spans())
    exporter.shutdown()
    assert seen == [True]


def test_the_entry_point_builds_from_the_environment_alone(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "ep, = [e for e in entry_points(group='opentelemetry_traces_exporter') "
        "if e.name == 'chainmap_clickhouse']\n"
        "cls = ep.load()\n"
        "exporter = cls()\n"
        "print('clickhouse_connect' in sys.modules, 'chdb' in sys.modules,"
        " exporter.settings.linger_s, exporter.settings.batch_spans)\n"
    )
    env = {
        "CHAINMAP_CLICKHOUSE_URL": f"chdb://{tmp_path}/store",
        "CHAINMAP_EXPORT_LINGER_MS": "250",
        "CHAINMAP_EXPORT_BATCH_SPANS": "4096",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "0.25", "4096"]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="timeout"):
        ClickHouseSpanExporter(timeout=0)
    with pytest.raises(ValueError, match="buffer_spans"):
        ClickHouseSpanExporter(buffer_spans=0)
    with pytest.raises(TypeError, match="either settings"):
        ClickHouseSpanExporter(settings=ExporterSettings.from_env(), timeout=1)


def test_settings_are_resolved_once_from_arguments_then_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAINMAP_CLICKHOUSE_URL", "http://clickhouse.example:8123/otel")
    monkeypatch.setenv("CHAINMAP_EXPORT_LINGER_MS", "250")
    monkeypatch.setenv("CHAINMAP_EXPORT_BATCH_SPANS", "not a number")  # logged, default used
    monkeypatch.setenv("CHAINMAP_EXPORT_BUFFER_SPANS", "1000")
    exporter = ClickHouseSpanExporter(linger_s=0.5)
    monkeypatch.setenv("CHAINMAP_EXPORT_LINGER_MS", "9999")  # read once: no effect now
    assert exporter.settings == ExporterSettings(
        url="http://clickhouse.example:8123/otel",
        timeout=10.0,
        buffer_spans=1000,
        auto_apply_schema=True,
        table="otel_traces",
        linger_s=0.5,
        batch_spans=1000,  # the default 16384, capped by the buffer
    )
    exporter.shutdown()
