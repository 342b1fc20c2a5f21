"""The row form of ``otel_traces``, value for value as the Collector's clickhouseexporter writes it.

Both writers (the SDK exporter and the OTLP ingest) build rows with these
functions, so a table filled by chainmap reads exactly like one filled by a
real Collector.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

#: Column order of every insert into ``otel_traces``.
TRACE_COLUMNS: tuple[str, ...] = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)

#: OTLP SpanKind enum value -> the current Collector's string.
SPAN_KIND_NAMES: tuple[str, ...] = (
    "Unspecified",
    "Internal",
    "Server",
    "Client",
    "Producer",
    "Consumer",
)

#: OTLP StatusCode enum value -> the current Collector's string.
STATUS_CODE_NAMES: tuple[str, ...] = ("Unset", "Ok", "Error")


def span_kind_name(kind: int) -> str:
    """OTLP kind number (0-5) to ``Server|Client|...``; out-of-range is ``Unspecified``."""
    return SPAN_KIND_NAMES[kind] if 0 <= kind < len(SPAN_KIND_NAMES) else "Unspecified"


def status_code_name(code: int) -> str:
    return STATUS_CODE_NAMES[code] if 0 <= code < len(STATUS_CODE_NAMES) else "Unset"


def trace_id_hex(trace_id: int) -> str:
    return f"{trace_id:032x}" if trace_id else ""


def span_id_hex(span_id: int) -> str:
    return f"{span_id:016x}" if span_id else ""


def _float_text(value: float) -> str:
    # pdata formats doubles like ES6 Number#toString: 1.0 -> "1", 1e21 -> "1e+21".
    if math.isnan(value) or math.isinf(value):
        return "json: unsupported value: " + repr(value).replace("inf", "+Inf").replace(
            "nan", "NaN"
        )
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
    return text


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def attribute_text(value: Any) -> str:
    """One attribute value as the Collector stores it in a ``Map(String, String)``.

    Strings as-is, bools ``true``/``false``, numbers in Go's shortest form,
    bytes base64, arrays and maps as compact JSON.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if value is None:
        return ""
    return json.dumps(_json_value(value), separators=(",", ":"), ensure_ascii=False)


def attributes_map(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    if not attributes:
        return {}
    return {key: attribute_text(value) for key, value in attributes.items()}
