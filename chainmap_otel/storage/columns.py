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
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class TraceColumn:
    """One insert column of ``otel_traces``: its name, ClickHouse type and value kind.

    ``kind`` says how writers hold and convert its values (and so its Arrow type):
    ``time`` int nanoseconds, ``uint`` an unsigned int, ``str`` a string, ``map`` a
    ``dict[str, str]``; ``times``/``strs``/``maps`` lists of those (Nested columns).
    """

    name: str
    clickhouse_type: str
    kind: str


_MAP = "Map(LowCardinality(String), String)"
_LOW = "LowCardinality(String)"

#: The one definition of the ``otel_traces`` insert columns, in insert order. Decoders, the
#: Arrow builder, the insert types and the DDL consistency test all derive from it.
TRACE_SCHEMA: tuple[TraceColumn, ...] = (
    TraceColumn("Timestamp", "DateTime64(9)", "time"),
    TraceColumn("TraceId", "String", "str"),
    TraceColumn("SpanId", "String", "str"),
    TraceColumn("ParentSpanId", "String", "str"),
    TraceColumn("TraceState", "String", "str"),
    TraceColumn("SpanName", _LOW, "str"),
    TraceColumn("SpanKind", _LOW, "str"),
    TraceColumn("ServiceName", _LOW, "str"),
    TraceColumn("ResourceAttributes", _MAP, "map"),
    TraceColumn("ScopeName", "String", "str"),
    TraceColumn("ScopeVersion", "String", "str"),
    TraceColumn("SpanAttributes", _MAP, "map"),
    TraceColumn("Duration", "UInt64", "uint"),
    TraceColumn("StatusCode", _LOW, "str"),
    TraceColumn("StatusMessage", "String", "str"),
    TraceColumn("Events.Timestamp", "Array(DateTime64(9))", "times"),
    TraceColumn("Events.Name", f"Array({_LOW})", "strs"),
    TraceColumn("Events.Attributes", f"Array({_MAP})", "maps"),
    TraceColumn("Links.TraceId", "Array(String)", "strs"),
    TraceColumn("Links.SpanId", "Array(String)", "strs"),
    TraceColumn("Links.TraceState", "Array(String)", "strs"),
    TraceColumn("Links.Attributes", f"Array({_MAP})", "maps"),
)

#: Column order of every insert into ``otel_traces``.
TRACE_COLUMNS: tuple[str, ...] = tuple(column.name for column in TRACE_SCHEMA)
#: ClickHouse types of the insert columns (passing them saves a DESCRIBE per insert).
TRACE_COLUMN_TYPES: tuple[str, ...] = tuple(column.clickhouse_type for column in TRACE_SCHEMA)

#: Latest storable span time (ns): DateTime64(9) ends in 2262, but the schema also derives
#: ``DateTime`` values (ORDER BY toDateTime(Timestamp), the per-minute views), which end at
#: 2106-02-07 06:28:15 UTC. Both writers reject spans outside 1970..this.
MAX_TIME_NANOS = (2**32 - 1) * 10**9

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
    """OTLP kind number (0-5) to ``Server|Client|...``; an unknown number is ``""``, as the
    current Collector writes it."""
    return SPAN_KIND_NAMES[kind] if 0 <= kind < len(SPAN_KIND_NAMES) else ""


def status_code_name(code: int) -> str:
    """OTLP status code (0-2) to ``Unset|Ok|Error``; an unknown number is ``""``."""
    return STATUS_CODE_NAMES[code] if 0 <= code < len(STATUS_CODE_NAMES) else ""


#: Non-finite doubles as the current Collector writes them (pdata since v0.151).
_SPECIAL_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _float_text(value: float) -> str:
    # pdata formats doubles like ES6 Number#toString: 1.0 -> "1", 1e21 -> "1e+21".
    if math.isnan(value) or math.isinf(value):
        return _SPECIAL_FLOATS[repr(value)]
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if 1e-6 <= abs(value) < 1e21:
        # Fixed notation with the shortest round-tripping digits, as Go writes it.
        return format(Decimal(text), "f")
    mantissa, exponent = text.split("e")
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


#: Go's JSON encoder escapes these even with HTML escaping off (pdata since v0.152 leaves
#: ``< > &`` as they are).
_GO_JSON_ESCAPES = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})


def _go_json(value: Any) -> str:
    # Go's encoding/json, as pdata renders array and map values: sorted keys, no HTML
    # escapes, doubles in their shortest form (1.0 -> 1), non-finite doubles as the
    # strings "NaN"/"Infinity"/"-Infinity" (valid JSON), bytes as base64 strings.
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).translate(_GO_JSON_ESCAPES)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = _float_text(value)
        return f'"{text}"' if text in _SPECIAL_FLOATS.values() else text
    if isinstance(value, bytes):
        return '"' + base64.b64encode(value).decode("ascii") + '"'
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{_go_json(k)}:{_go_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_go_json(v) for v in value) + "]"
    return _go_json(str(value))


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
    return _go_json(value)
