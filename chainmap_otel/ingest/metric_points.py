"""OTLP metrics in: the chain entry instruments' points of an ``ExportMetricsServiceRequest``.

The services' chainmap distro counts chain entries before sampling
(:mod:`chainmap_otel.tagging.entry_counts`); its two instruments are the only metrics serve
keeps. Every other metric's points are dropped and counted (``chainmap serve`` is not a
metrics backend). A point of a kept instrument that cannot be stored (wrong data type, no
``chain.id``, a time the store cannot hold, too many buckets) is rejected on its own and
reported in ``partial_success``, as a bad span is; a body that does not parse is refused
whole (:class:`~chainmap_otel.errors.IngestError`, a 400). Both OTLP encodings go through
the protobuf classes: OTLP/JSON is parsed into the same message (exemplars, whose ids
OTLP/JSON writes as hex, are not read).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from chainmap_otel.errors import IngestError
from chainmap_otel.ingest.validate import MAX_REASONS
from chainmap_otel.storage.columns import MAX_TIME_NANOS
from chainmap_otel.tagging import fields
from chainmap_otel.tagging.entry_counts import ATTR_ERROR, ENTRIES, ENTRY_DURATION
from chainmap_otel.tagging.model import ID_PATTERN

__all__ = ["MAX_BUCKETS", "DecodedPoints", "EntryPoint", "decode_metrics"]

#: Most buckets a duration point may have (the distro asks for 16).
MAX_BUCKETS = 256
_CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
_MAX_TEXT = 256


@dataclass(frozen=True)
class EntryPoint:
    """One data point of a chain entry instrument.

    ``series`` identifies a cumulative point's series (resource, scope, instrument and
    point attributes; the start time is held apart, a new one is a restart of the
    counting process). ``value`` is the counter's value or the histogram's count.
    """

    instrument: str
    cumulative: bool
    series: int
    start_ns: int
    time_ns: int
    chain_id: str
    service: str
    environment: str
    error: bool
    value: int
    sum_ms: float = 0.0
    bounds: tuple[float, ...] = ()
    buckets: tuple[int, ...] = ()


@dataclass
class DecodedPoints:
    """The kept points of one request, how many were dropped (other instruments) and
    rejected (kept instruments, unusable), with the first reasons."""

    points: list[EntryPoint] = field(default_factory=list)
    dropped: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = self.rejected - len(self.reasons)
        tail = f"; and {more} more" if more > 0 else ""
        return f"rejected {self.rejected} data point(s): " + "; ".join(self.reasons) + tail

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)


class _Rejected(Exception):
    pass


def decode_metrics(body: bytes, json_body: bool) -> DecodedPoints:
    """The entry points of an OTLP metrics body (protobuf, or OTLP/JSON with ``json_body``);
    IngestError naming the problem when the body does not parse."""
    request = ExportMetricsServiceRequest()
    if json_body:
        try:
            document = json.loads(body)
            if not isinstance(document, dict):
                raise IngestError("an OTLP/JSON metrics body must be a JSON object")
            json_format.ParseDict(_without_exemplars(document), request, ignore_unknown_fields=True)
        except (ValueError, RecursionError, json_format.ParseError) as exc:
            raise IngestError(f"OTLP/JSON metrics body does not parse: {exc}") from None
    else:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise IngestError(
                f"OTLP protobuf metrics body does not parse as ExportMetricsServiceRequest: {exc}"
            ) from None
    return points_of(request)


def _without_exemplars(node: Any, depth: int = 0) -> Any:
    if depth > 64:
        raise IngestError("OTLP/JSON metrics body nests deeper than 64 levels")
    if isinstance(node, dict):
        return {k: _without_exemplars(v, depth + 1) for k, v in node.items() if k != "exemplars"}
    if isinstance(node, list):
        return [_without_exemplars(v, depth + 1) for v in node]
    return node


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    return ""


def _attributes(pairs: Any) -> dict[str, str]:
    return {kv.key: _text(kv.value) for kv in pairs}


def _series(resource: Mapping[str, str], scope: tuple[str, str], name: str, point: Any) -> int:
    digest = hashlib.blake2b(digest_size=8)
    for part in (
        sorted(resource.items()),
        scope,
        name,
        sorted(_attributes(point.attributes).items()),
    ):
        digest.update(repr(part).encode())
    return int.from_bytes(digest.digest(), "big") or 1


def points_of(request: ExportMetricsServiceRequest) -> DecodedPoints:
    decoded = DecodedPoints()
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        service = resource.get("service.name", "")[:_MAX_TEXT]
        environment = (fields.read(fields.ENVIRONMENT, resource) or "")[:_MAX_TEXT]
        for scope_metrics in resource_metrics.scope_metrics:
            scope = (scope_metrics.scope.name, scope_metrics.scope.version)
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if metric.name not in (ENTRIES, ENTRY_DURATION):
                    decoded.dropped += len(getattr(metric, kind).data_points) if kind else 0
                    continue
                wanted = "sum" if metric.name == ENTRIES else "histogram"
                data = getattr(metric, kind) if kind else None
                if kind != wanted or data is None:
                    count = len(data.data_points) if data is not None else 1
                    for _ in range(count):
                        decoded.reject(f"{metric.name} must be a {wanted}, not {kind or 'empty'}")
                    continue
                temporality = data.aggregation_temporality
                for point in data.data_points:
                    try:
                        if temporality not in (_CUMULATIVE, _DELTA):
                            raise _Rejected(f"{metric.name} has no aggregation temporality")
                        decoded.points.append(
                            _point(
                                metric.name,
                                temporality == _CUMULATIVE,
                                _series(resource, scope, metric.name, point),
                                point,
                                service,
                                environment,
                            )
                        )
                    except _Rejected as exc:
                        decoded.reject(str(exc))
    return decoded


def _point(
    name: str, cumulative: bool, series: int, point: Any, service: str, environment: str
) -> EntryPoint:
    attributes = {kv.key: kv.value for kv in point.attributes}
    chain = attributes.get("chain.id")
    chain_id = chain.string_value if chain is not None else ""
    if not ID_PATTERN.match(chain_id):
        raise _Rejected(f"{name} point has no valid chain.id attribute ({chain_id[:70]!r})")
    flag = attributes.get(ATTR_ERROR)
    error = flag is not None and _text(flag).lower() == "true"
    time_ns, start_ns = int(point.time_unix_nano), int(point.start_time_unix_nano)
    if not 0 < time_ns <= MAX_TIME_NANOS or start_ns > time_ns:
        raise _Rejected(f"{name} point time {time_ns} (start {start_ns}) cannot be stored")
    if cumulative and start_ns == 0:
        raise _Rejected(f"cumulative {name} point has no start time")
    if name == ENTRIES:
        kind = point.WhichOneof("value")
        raw = point.as_int if kind == "as_int" else point.as_double
        if not 0 <= raw < 2**63:
            raise _Rejected(f"{name} point value {raw} is not a count")
        return EntryPoint(
            name,
            cumulative,
            series,
            start_ns,
            time_ns,
            chain_id,
            service,
            environment,
            error,
            round(raw),
        )
    bounds, buckets = tuple(point.explicit_bounds), tuple(point.bucket_counts)
    if len(buckets) > MAX_BUCKETS or (buckets and len(buckets) != len(bounds) + 1):
        raise _Rejected(
            f"{name} point has {len(buckets)} buckets for {len(bounds)} bounds "
            f"(at most {MAX_BUCKETS}, one more than bounds)"
        )
    if any(b != b or b in (float("inf"), float("-inf")) for b in bounds):
        raise _Rejected(f"{name} point has a bucket bound that is not a finite number")
    return EntryPoint(
        name,
        cumulative,
        series,
        start_ns,
        time_ns,
        chain_id,
        service,
        environment,
        False,
        int(point.count),
        point.sum if point.HasField("sum") else 0.0,
        bounds,
        buckets,
    )
