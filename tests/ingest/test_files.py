"""``ingest_files``: OTLP JSON (single documents, the file exporter's JSON lines) and protobuf."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from chainmap_otel.ingest.files import FileReport, ingest_files
from chainmap_otel.storage.store import TraceStore
from tests.support.otlp_payloads import request_of, sdk_spans, to_otlp_json

FIXTURES = Path(__file__).parent / "fixtures"


def count(store: TraceStore, service: str | None = None) -> int:
    if service is None:
        return int(store.query("SELECT count() FROM otel_traces").result_rows[0][0])
    result = store.query(
        "SELECT count() FROM otel_traces WHERE ServiceName = {s:String}", {"s": service}
    )
    return int(result.result_rows[0][0])


def line(service: str, traces: int) -> str:
    return json.dumps(to_otlp_json(request_of(sdk_spans(service, count=traces))))


@pytest.fixture
def store(store_factory: Callable[[], TraceStore]) -> TraceStore:
    return store_factory()


def test_collector_file_exporter_json_lines(store: TraceStore, tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_text("\n".join([line("a", 2), line("b", 3), "", line("a", 1)]) + "\n")
    seen: list[FileReport] = []
    report = ingest_files(store, [path], progress=seen.append)
    assert report.ok and report.spans_stored == 12 and report.spans_rejected == 0
    assert [f.requests for f in seen] == [3]
    assert (count(store, "a"), count(store, "b")) == (6, 6)


def test_a_malformed_line_is_reported_and_the_others_are_stored(
    store: TraceStore, tmp_path: Path
) -> None:
    path = tmp_path / "traces.json"  # .json holding JSON lines is read as lines too
    path.write_text("\n".join([line("ok", 1), '{"resourceSpans": [', line("ok", 2)]))
    report = ingest_files(store, [path])
    (file_report,) = report.files
    assert not report.ok
    assert file_report.malformed_requests == 1
    assert file_report.errors[0].startswith("line 2: payload is not valid JSON")
    assert file_report.spans_stored == 6
    assert count(store, "ok") == 6


def test_single_documents_pretty_printed_and_compressed(store: TraceStore, tmp_path: Path) -> None:
    pretty = tmp_path / "one.json"
    pretty.write_text(json.dumps(to_otlp_json(request_of(sdk_spans("pretty"))), indent=2))
    zipped = tmp_path / "two.json.gz"
    zipped.write_bytes(gzip.compress(line("zipped", 2).encode()))
    report = ingest_files(store, [pretty, zipped, FIXTURES / "otlp_spec_example.json"])
    assert report.ok, report.as_dict()
    assert [f.spans_stored for f in report.files] == [2, 4, 1]
    assert count(store, "my.service") == 1


def test_protobuf_files_bare_and_length_prefixed(store: TraceStore, tmp_path: Path) -> None:
    bare = tmp_path / "one.binpb"
    bare.write_bytes(request_of(sdk_spans("pb", count=2)).SerializeToString())
    messages = [request_of(sdk_spans("framed", count=n)).SerializeToString() for n in (1, 2, 3)]
    framed = tmp_path / "stream.pb"
    framed.write_bytes(b"".join(len(m).to_bytes(4, "big") + m for m in messages))
    report = ingest_files(store, [tmp_path])  # a directory stands for its OTLP files
    assert report.ok, report.as_dict()
    assert sorted(f.spans_stored for f in report.files) == [4, 12]
    assert count(store, "framed") == 12


def test_a_cut_off_protobuf_stream_keeps_its_complete_requests(
    store: TraceStore, tmp_path: Path
) -> None:
    messages = [request_of(sdk_spans("cut", count=n)).SerializeToString() for n in (1, 2)]
    framed = b"".join(len(m).to_bytes(4, "big") + m for m in messages)
    path = tmp_path / "cut.protobuf"
    path.write_bytes(framed[:-5])
    (file_report,) = ingest_files(store, [path]).files
    assert file_report.spans_stored == 2
    assert "request 2: truncated message" in file_report.errors[0]


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("bad.pb", b"\xff\xffnot protobuf", "not a protobuf ExportTraceServiceRequest"),
        ("bad.json", b'{\n  "resourceSpans": [\n', "not valid JSON"),
        ("list.json", b"[\n{}\n]", "a JSON array is not an OTLP request"),
        ("traces.csv", b"a,b", "unknown file type '.csv'"),
    ],
)
def test_bad_files_store_nothing_and_say_why(
    store: TraceStore, tmp_path: Path, name: str, content: bytes, error: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    (file_report,) = ingest_files(store, [path]).files
    assert error in file_report.errors[0]
    assert file_report.spans_stored == 0
    assert count(store) == 0


def test_a_missing_file_is_reported(store: TraceStore, tmp_path: Path) -> None:
    report = ingest_files(store, [tmp_path / "nope.json"])
    assert "cannot read the file" in report.files[0].errors[0]


def test_rejected_spans_are_counted_per_file(store: TraceStore, tmp_path: Path) -> None:
    document = to_otlp_json(request_of(sdk_spans("rej", count=2)))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "0" * 32
    path = tmp_path / "rej.json"
    path.write_text(json.dumps(document))
    (file_report,) = ingest_files(store, [path]).files
    assert (file_report.spans_stored, file_report.spans_rejected) == (3, 1)
    assert "traceId must not be all zero" in file_report.rejection_reasons[0]
