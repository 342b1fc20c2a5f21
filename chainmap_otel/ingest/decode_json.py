"""OTLP/JSON requests (the OTLP/HTTP JSON body, the Collector file exporter's lines).

The document is parsed with :func:`json.loads` and read through thin views that give
:func:`~.validate.append_spans` the protobuf message's attribute names, so every span
is validated and converted by the same code as a protobuf request. What only JSON can
get wrong is decided here, following the Collector's OTLP/JSON unmarshaler
(pdata/internal/json/iterator.go, generated_proto_anyvalue.go):

* ids are hex (the OTLP/JSON mapping); base64 ids (the plain protobuf JSON mapping) are
  repaired; anything else rejects the span;
* ``intValue`` is an int64 written as a JSON integer or a decimal string. pdata reads it
  with ``ReadInt64``, which fails the whole request for a number with a fraction or an
  exponent (``1.5e+21``: "can not decode float as int"; ``1e+21``: the exponent is left
  unread and the object does not parse) or beyond int64 (``1500000000000000000000`` as a
  number: "overflow", as a string: strconv's "value out of range"). The OpenTelemetry JS
  exporter writes whole doubles of 2^53 and more that way, so the Collector answers such a
  request with 400; so does chainmap (:class:`~chainmap_otel.errors.IngestError`, naming the
  value and the fix);
* enums are numbers (int32, like pdata's ``ReadEnumValue``) or their names; an unknown name
  fails the request, a number outside the enum is stored as ``""``;
* a lone UTF-16 surrogate (``"\\ud800"``) becomes U+FFFD, as Go's decoder does.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from chainmap_otel.errors import IngestError
from chainmap_otel.ingest.validate import (
    DecodedSpans,
    Malformed,
    Rejected,
    Wording,
    attribute_map,
    decode_spans,
)

__all__ = [
    "decode_document",
    "decode_json",
    "decode_json_lines",
    "repair_surrogates",
]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: A ``\uD800``-``\uDFFF`` escape in the raw JSON: only then can a decoded string hold one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: What Go's strconv.ParseInt(s, 10, 64) takes: an optional sign and ASCII digits.
_DECIMAL = re.compile(r"[+-]?[0-9]+\Z")
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)

_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _describe(span: _Span) -> tuple[str, str]:
    raw = span.raw
    return str(raw.get("spanId") or "(no id)"), str(raw.get("name", ""))


#: Rejection reasons in OTLP/JSON's field names.
JSON_WORDING = Wording(
    trace_id_missing="traceId is missing",
    trace_id_size="traceId must be 16 bytes",
    trace_id_zero="traceId must not be all zero",
    span_id_missing="spanId is missing",
    span_id_size="spanId must be 8 bytes",
    span_id_zero="spanId must not be all zero",
    parent_size="parentSpanId must be 8 bytes or empty",
    link_size="link traceId must be 16 bytes and link spanId 8 bytes",
    describe=_describe,
)


# --------------------------------------------------------------------------- values


def _json_int(value: Any, what: str) -> int:
    """A time field: int64/uint64/fixed64 are strings in proto3 JSON; numbers (also whole
    floats such as ``-1e20``, whose span is then rejected by its time) are accepted too."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    raise Malformed(f"{what} must be an integer or a decimal string, got {value!r}")


def _int_value(value: Any) -> int:
    """``intValue``: an int64 as a JSON integer or a decimal string, as pdata reads it."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DECIMAL.match(value):
        number = int(value)
    if number is None or not _INT64[0] <= number <= _INT64[1]:
        raise Malformed(
            f"intValue must be a 64-bit integer (a JSON integer or a decimal string), got "
            f"{value!r}; the Collector refuses such a request too (the OpenTelemetry JS "
            "exporter writes whole doubles >= 2^53 this way): record such values as strings"
        )
    return number


def _enum(value: Any, names: Mapping[str, int], what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if _INT32[0] <= value <= _INT32[1]:
            return value
    elif isinstance(value, str) and value in names:
        return names[value]
    raise Malformed(f"{what} must be an enum name or a 32-bit integer, got {value!r}")


def _double(number: Any) -> float:
    if isinstance(number, int | float) and not isinstance(number, bool):
        return float(number)
    if isinstance(number, str):
        if number in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[number]
        try:
            return float(number)
        except ValueError:
            pass
    raise Malformed(f"doubleValue must be a number, got {number!r}")


def _member(value: Any) -> tuple[str | None, Any]:
    """An OTLP/JSON ``AnyValue`` object as :data:`~.validate.Member` sees it."""
    if not isinstance(value, dict):
        if value is None:
            return None, None
        raise Malformed(f"attribute value must be an AnyValue object, got {value!r}")
    if "stringValue" in value:
        text = value["stringValue"]
        if not isinstance(text, str):
            raise Malformed(f"stringValue must be a string, got {text!r}")
        return "string_value", text
    if "intValue" in value:
        return "int_value", _int_value(value["intValue"])
    if "boolValue" in value:
        flag = value["boolValue"]
        if not isinstance(flag, bool):
            raise Malformed(f"boolValue must be true or false, got {flag!r}")
        return "bool_value", flag
    if "doubleValue" in value:
        return "double_value", _double(value["doubleValue"])
    if "arrayValue" in value:
        return "array_value", (value["arrayValue"] or {}).get("values") or []
    if "kvlistValue" in value:
        return "kvlist_value", _pairs((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        data = value["bytesValue"]
        try:
            raw = base64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, AttributeError, ValueError):
            raise Malformed(f"bytesValue must be base64, got {data!r}") from None
        return "bytes_value", raw
    return None, None


def _pairs(items: Any) -> list[tuple[str, Any]]:
    """A list of key/value objects as ``(key, AnyValue object)`` pairs."""
    if not items:
        return []
    if not isinstance(items, list):
        raise Malformed(f"attributes must be a list of key/value objects, got {items!r}")
    out: list[tuple[str, Any]] = []
    for kv in items:
        key = kv.get("key", "")
        if not isinstance(key, str):
            raise Malformed(f"attribute key must be a string, got {key!r}")
        out.append((key, kv.get("value")))
    return out


def _attributes(items: Any) -> dict[str, str]:
    """An ``attributes`` list as the stored map (the reader's ``attributes_of``)."""
    return attribute_map(_pairs(items), _member)


def _str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{what} must be a string, got {value!r}")
    return value


def _id(value: Any, size: int, what: str) -> bytes:
    """An id's bytes: ``b""`` when missing, else hex (or base64) of exactly ``size`` bytes."""
    if not value:
        return b""
    if not isinstance(value, str):
        raise Malformed(f"{what} must be a hex string, got {value!r}")
    raw = b""
    if len(value) == 2 * size:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
    if len(raw) != size:
        # Repaired: the protobuf JSON mapping's base64 ids (some senders write those).
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != size:
        raise Rejected(
            f"{what} {value[:64]!r} must be {2 * size} hex characters (or base64 of {size} bytes)"
        )
    return raw


# --------------------------------------------------------------------------- views


def _objects(value: Any, what: str) -> list[dict[str, Any]]:
    """A repeated field's objects (an item that is no object fails when it is read)."""
    if not value:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{what} must be a list of objects, got {value!r}"[:200])
    return value


class _Named:
    """``scope`` and ``status``: a JSON object read by protobuf field names."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        if raw is not None and not isinstance(raw, dict):
            raise Malformed(f"expected an object, got {raw!r}")
        self.raw: dict[str, Any] = raw or {}

    @property
    def name(self) -> str:
        return _str(self.raw.get("name"), "scope name")

    @property
    def version(self) -> str:
        return _str(self.raw.get("version"), "scope version")

    @property
    def code(self) -> int:
        return _enum(self.raw.get("code", 0), _STATUS_NAMES, "status code")

    @property
    def message(self) -> str:
        return _str(self.raw.get("message"), "status message")


class _Event:
    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def time_unix_nano(self) -> int:
        return _json_int(self.raw.get("timeUnixNano", 0), "event timeUnixNano")

    @property
    def name(self) -> str:
        return _str(self.raw.get("name"), "event name")

    @property
    def attributes(self) -> Any:
        return self.raw.get("attributes")


class _Link:
    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def trace_id(self) -> bytes:
        return _id(self.raw.get("traceId"), 16, "link traceId")

    @property
    def span_id(self) -> bytes:
        return _id(self.raw.get("spanId"), 8, "link spanId")

    @property
    def trace_state(self) -> str:
        return _str(self.raw.get("traceState"), "link traceState")

    @property
    def attributes(self) -> Any:
        return self.raw.get("attributes")


class _Span:
    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def trace_id(self) -> bytes:
        return _id(self.raw.get("traceId"), 16, "traceId")

    @property
    def span_id(self) -> bytes:
        return _id(self.raw.get("spanId"), 8, "spanId")

    @property
    def parent_span_id(self) -> bytes:
        return _id(self.raw.get("parentSpanId"), 8, "parentSpanId")

    @property
    def trace_state(self) -> str:
        return _str(self.raw.get("traceState"), "traceState")

    @property
    def name(self) -> str:
        return _str(self.raw.get("name"), "name")

    @property
    def kind(self) -> int:
        return _enum(self.raw.get("kind", 0), _KIND_NAMES, "kind")

    @property
    def start_time_unix_nano(self) -> int:
        return _json_int(self.raw.get("startTimeUnixNano", 0), "startTimeUnixNano")

    @property
    def end_time_unix_nano(self) -> int:
        return _json_int(self.raw.get("endTimeUnixNano", 0), "endTimeUnixNano")

    @property
    def attributes(self) -> Any:
        return self.raw.get("attributes")

    @property
    def events(self) -> list[_Event]:
        return [_Event(e) for e in _objects(self.raw.get("events"), "events")]

    @property
    def links(self) -> list[_Link]:
        return [_Link(link) for link in _objects(self.raw.get("links"), "links")]

    @property
    def status(self) -> _Named:
        return _Named(self.raw.get("status"))


class _ScopeSpans:
    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def scope(self) -> _Named:
        return _Named(self.raw.get("scope"))

    @property
    def spans(self) -> list[_Span]:
        return [_Span(s) for s in _objects(self.raw.get("spans"), "spans")]


class _Resource:
    __slots__ = ("attributes",)

    def __init__(self, raw: Any) -> None:
        if raw is not None and not isinstance(raw, dict):
            raise Malformed(f"resource must be an object, got {raw!r}")
        self.attributes = (raw or {}).get("attributes")


class _ResourceSpans:
    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def resource(self) -> _Resource:
        return _Resource(self.raw.get("resource"))

    @property
    def scope_spans(self) -> list[_ScopeSpans]:
        return [_ScopeSpans(s) for s in _objects(self.raw.get("scopeSpans"), "scopeSpans")]


def _resources(document: Any) -> Iterator[_ResourceSpans]:
    if not isinstance(document, dict):
        raise Malformed("the document must be a JSON object with 'resourceSpans'")
    for raw in _objects(document.get("resourceSpans"), "resourceSpans"):
        yield _ResourceSpans(raw)


# --------------------------------------------------------------------------- documents


def _load(text: bytes | str) -> Any:
    try:
        document = json.loads(text)
    except RecursionError:
        raise IngestError(
            "payload nests JSON deeper than the decoder allows; OTLP/JSON needs a few levels"
        ) from None
    except UnicodeDecodeError as exc:
        raise IngestError(f"payload is not UTF-8 JSON ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"payload is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _SURROGATE_ESCAPE.search(raw):
        document = repair_surrogates(document)
    return document


def repair_surrogates(document: Any) -> Any:
    """``document`` with lone UTF-16 surrogates (``"\\ud800"``) replaced by U+FFFD.

    ``json.loads`` accepts them, UTF-8 cannot hold them; Go's encoding/json
    (the Collector's decoder) makes the same replacement.
    """
    fix = _LONE_SURROGATE.sub
    if isinstance(document, str):
        return fix("\ufffd", document)
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                if isinstance(value, str):
                    node[key] = fix("\ufffd", value)
                elif isinstance(value, dict | list):
                    stack.append(value)
                if _LONE_SURROGATE.search(key):
                    node[fix("\ufffd", key)] = node.pop(key)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = fix("\ufffd", value)
                elif isinstance(value, dict | list):
                    stack.append(value)
    return document


def decode_document(document: Any, out: DecodedSpans | None = None) -> DecodedSpans:
    """The spans of an already parsed OTLP/JSON ``ExportTraceServiceRequest`` object;
    IngestError (and nothing decoded) when it does not follow OTLP/JSON."""
    try:
        decoded = decode_spans(_resources(document), _attributes, JSON_WORDING)
    except RecursionError:
        raise IngestError("payload is not OTLP/JSON: it nests too deeply") from None
    except Malformed as exc:
        raise IngestError(f"payload is not OTLP/JSON: {exc}") from exc
    except (AttributeError, TypeError) as exc:
        raise IngestError(
            "payload is not OTLP/JSON: expected resourceSpans[].scopeSpans[].spans[] objects "
            f"with lowerCamelCase fields ({exc})"
        ) from exc
    if out is None:
        return decoded
    out.extend(decoded)
    return out


def decode_json(payload: bytes | str, out: DecodedSpans | None = None) -> DecodedSpans:
    """The spans of one OTLP/JSON ``ExportTraceServiceRequest`` document."""
    return decode_document(_load(payload), out)


def decode_json_lines(
    lines: Iterable[bytes | str],
) -> Iterator[tuple[int, DecodedSpans | IngestError]]:
    """Per line of the Collector file exporter's format: (line number, spans or the error).

    Each line is an independent request, so one broken line does not void the others.
    Blank lines are skipped.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, decode_json(line)
        except IngestError as exc:
            yield number, exc
