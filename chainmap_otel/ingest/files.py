"""``chainmap ingest``: OTLP trace files into the store.

Formats, by file extension:

* ``.json`` / ``.jsonl`` / ``.ndjson``: OTLP/JSON, either one
  ``ExportTraceServiceRequest`` document or the Collector file exporter's JSON
  lines (one request per line; a ``.json`` file is read as lines when it is not
  one document). Each line is its own request: a malformed line is reported
  with its number and skipped, the other lines are stored.
* ``.pb`` / ``.binpb`` / ``.protobuf``: one protobuf request, or the file
  exporter's stream of requests each prefixed with its 4-byte length.
* any of these with ``.gz`` appended: gzip-compressed.

A malformed single-document file stores nothing. Spans are inserted in
batches so a large file never sits in memory as rows all at once.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from chainmap_otel.errors import IngestError
from chainmap_otel.ingest.decode import (
    DecodedSpans,
    decode_document,
    decode_json,
    decode_protobuf,
    iter_protobuf_frames,
    repair_surrogates,
)
from chainmap_otel.storage.store import TraceStore

__all__ = ["FileReport", "IngestReport", "ingest_files"]

JSON_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson"})
PROTOBUF_SUFFIXES = frozenset({".pb", ".binpb", ".protobuf"})
#: Spans per insert.
BATCH_SPANS = 20_000
#: Malformed lines listed per file in the report (all are counted).
MAX_LINE_ERRORS = 10

Progress = Callable[["FileReport"], None]


@dataclass
class FileReport:
    """What ingesting one file did."""

    path: str
    spans_stored: int = 0
    spans_rejected: int = 0
    requests: int = 0
    malformed_requests: int = 0
    errors: list[str] = field(default_factory=list)
    rejection_reasons: list[str] = field(default_factory=list)
    #: Start of the earliest span stored (Unix ns), None when none was.
    earliest_ns: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class IngestReport:
    """Per-file results of :func:`ingest_files`; ``ok`` when no file had an error."""

    files: list[FileReport] = field(default_factory=list)

    @property
    def spans_stored(self) -> int:
        return sum(f.spans_stored for f in self.files)

    @property
    def spans_rejected(self) -> int:
        return sum(f.spans_rejected for f in self.files)

    @property
    def earliest_ns(self) -> int | None:
        """Start of the earliest span stored from any file (Unix ns)."""
        return min((f.earliest_ns for f in self.files if f.earliest_ns is not None), default=None)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "spans_stored": self.spans_stored,
            "spans_rejected": self.spans_rejected,
            "files": [
                {
                    "path": f.path,
                    "spans_stored": f.spans_stored,
                    "spans_rejected": f.spans_rejected,
                    "requests": f.requests,
                    "malformed_requests": f.malformed_requests,
                    "errors": f.errors,
                    "rejection_reasons": f.rejection_reasons,
                }
                for f in self.files
            ],
        }


def _format_of(path: Path) -> tuple[str, bool]:
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in JSON_SUFFIXES:
        return "json", compressed
    if last in PROTOBUF_SUFFIXES:
        return "protobuf", compressed
    raise IngestError(
        f"{path}: unknown file type {last or '(no extension)'!r}; name OTLP/JSON files "
        "*.json or *.jsonl and OTLP protobuf files *.pb, *.binpb or *.protobuf (optionally .gz)"
    )


def _open(path: Path, compressed: bool) -> IO[bytes]:
    if compressed:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


class _Batcher:
    """Collects decoded requests and inserts them into the store in batches, as Arrow tables
    (the receivers' insert path)."""

    def __init__(self, store: TraceStore, report: FileReport) -> None:
        self._store = store
        self._report = report
        self._tables: list[Any] = []
        self._spans = 0

    def add(self, decoded: DecodedSpans) -> None:
        report = self._report
        report.requests += 1
        report.spans_rejected += decoded.rejected
        room = MAX_LINE_ERRORS - len(report.rejection_reasons)
        if room > 0:
            report.rejection_reasons.extend(decoded.reasons[:room])
        if decoded.table is not None:
            self._tables.append(decoded.table)
            self._spans += decoded.accepted
        if self._spans >= BATCH_SPANS:
            self.flush()

    def flush(self) -> None:
        if not self._tables:
            return
        import pyarrow as pa
        import pyarrow.compute as pc

        table = pa.concat_tables(self._tables).combine_chunks()
        self._store.insert_arrow(table)
        report = self._report
        report.spans_stored += table.num_rows
        earliest = int(pc.min(pc.cast(table.column("Timestamp"), pa.int64())).as_py())
        report.earliest_ns = min(earliest, report.earliest_ns or earliest)
        self._tables = []
        self._spans = 0


def _json_requests(stream: IO[bytes], report: FileReport) -> Iterator[DecodedSpans]:
    # One document (possibly pretty-printed over many lines) or JSON lines.
    head = stream.read(1 << 20)
    first_line, newline, _ = head.partition(b"\n")
    if not newline or not first_line.strip():
        # Small single-line file, or a document that starts on a later line.
        yield from _json_whole(head + stream.read(), report)
        return
    try:
        json.loads(first_line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        # The first line is not a complete document: a pretty-printed single document.
        yield from _json_whole(head + stream.read(), report)
        return
    lines = io.BytesIO(head)
    yield from _json_lines(_chain_lines(lines, stream), report)


def _chain_lines(head: IO[bytes], rest: IO[bytes]) -> Iterator[bytes]:
    pending = b""
    for line in head:
        if line.endswith(b"\n"):
            yield pending + line
            pending = b""
        else:
            pending += line
    for line in rest:
        if pending:
            line, pending = pending + line, b""
        yield line
    if pending:
        yield pending


def _json_whole(data: bytes, report: FileReport) -> Iterator[DecodedSpans]:
    try:
        document = repair_surrogates(json.loads(data))
    except RecursionError:
        raise IngestError("the JSON nests deeper than the decoder allows") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = (
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise IngestError(f"not valid JSON ({detail})") from None
    if isinstance(document, list):
        raise IngestError(
            "a JSON array is not an OTLP request: write one ExportTraceServiceRequest "
            "object per line (JSON lines)"
        )
    yield decode_document(document)


def _json_lines(lines: Iterable[bytes], report: FileReport) -> Iterator[DecodedSpans]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield decode_json(line)
        except IngestError as exc:
            report.malformed_requests += 1
            if len(report.errors) < MAX_LINE_ERRORS:
                report.errors.append(f"line {number}: {exc}")


def _protobuf_requests(stream: IO[bytes], report: FileReport) -> Iterator[DecodedSpans]:
    data = stream.read()
    if not data or data[0] != 0:
        yield decode_protobuf(data)  # one bare request: malformed means nothing is stored
        return
    # The file exporter's length-prefixed stream: every frame is its own request, and
    # a frame cut short (the exporter was stopped mid-write) ends the file.
    frames = iter_protobuf_frames(data)
    number = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except IngestError as exc:
            report.malformed_requests += 1
            report.errors.append(f"request {number + 1}: {exc}")
            return
        number += 1
        try:
            yield decode_protobuf(frame)
        except IngestError as exc:
            report.malformed_requests += 1
            if len(report.errors) < MAX_LINE_ERRORS:
                report.errors.append(f"request {number}: {exc}")


def ingest_file(store: TraceStore, path: str | Path) -> FileReport:
    """Store the spans of one OTLP file; problems are recorded in the report, not raised."""
    file_path = Path(path)
    report = FileReport(str(file_path))
    batcher = _Batcher(store, report)
    try:
        kind, compressed = _format_of(file_path)
        with _open(file_path, compressed) as stream:
            if kind == "json":
                requests = _json_requests(stream, report)
            else:
                requests = _protobuf_requests(stream, report)
            for decoded in requests:
                batcher.add(decoded)
        batcher.flush()
    except IngestError as exc:
        message = str(exc)
        prefix = f"{file_path}: "
        report.errors.append(message[len(prefix) :] if message.startswith(prefix) else message)
        batcher.flush()
    except (OSError, EOFError) as exc:
        report.errors.append(f"cannot read the file ({exc})")
        batcher.flush()
    return report


def ingest_files(
    store: TraceStore, paths: Sequence[str | Path], progress: Progress | None = None
) -> IngestReport:
    """Store the spans of OTLP JSON/protobuf files; ``progress`` is called after each file.

    A directory stands for the OTLP files directly inside it. Store errors
    (:class:`~chainmap_otel.errors.StoreError`) propagate: nothing more can be stored.
    """
    report = IngestReport()
    for path in _expand(paths):
        file_report = ingest_file(store, path)
        report.files.append(file_report)
        if progress is not None:
            progress(file_report)
    return report


def _expand(paths: Sequence[str | Path]) -> Iterator[Path]:
    known = JSON_SUFFIXES | PROTOBUF_SUFFIXES
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                suffixes = [s.lower() for s in child.suffixes if s.lower() != ".gz"]
                if child.is_file() and suffixes and suffixes[-1] in known:
                    yield child
        else:
            yield path
