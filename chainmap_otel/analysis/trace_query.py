"""What a trace search asks: :class:`TraceQuery`, its filters validated from user input.

Every filter is bounded (``limit`` <= :data:`MAX_LIMIT`, texts <= :data:`MAX_TEXT`
characters, at most :data:`MAX_ATTRS` ``attr`` filters, RE2-compatible regexes) and a bad one
is a :class:`~chainmap_otel.errors.ParameterError` naming it. The search itself, and the
semantics of each filter, are in :mod:`chainmap_otel.analysis.traces`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from chainmap_otel.analysis.timewindow import parse_count
from chainmap_otel.errors import ParameterError

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
ORDERS = ("start", "duration")
STATUSES = ("error", "ok")
#: Longest service, operation, attribute key or value accepted (longer ones match nothing
#: real and only cost memory).
MAX_TEXT = 512
#: Most ``attr`` filters in one search.
MAX_ATTRS = 16
#: How an ``attr`` filter is written, longest operator first: ``key=~regex``, ``key!=value``,
#: ``key=value``; a bare ``key`` tests that the key exists.
ATTRIBUTE_OPERATORS = ("=~", "!=", "=")
#: RE2 (ClickHouse's ``match``) has no look-around and no back-references.
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]")


class AttributeFilter(NamedTuple):
    """One ``attr`` filter: ``operator`` is ``=``, ``!=``, ``=~`` or ``exists``."""

    key: str
    operator: str
    value: str

    def __str__(self) -> str:
        return self.key if self.operator == "exists" else f"{self.key}{self.operator}{self.value}"


@dataclass(frozen=True)
class TraceQuery:
    """Validated search filters; build one with :meth:`parse` from user input."""

    chain: str | None = None
    service: str | None = None
    operation: str | None = None
    status: str | None = None
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    attributes: tuple[AttributeFilter, ...] = ()
    chain_status: str | None = None
    order: str = "start"
    limit: int = DEFAULT_LIMIT

    @property
    def span_level_duration(self) -> bool:
        """Whether min/max duration apply to a matching span (Jaeger's semantics)."""
        has_duration = self.min_duration_ms is not None or self.max_duration_ms is not None
        spans = self.service is not None or self.operation is not None or bool(self.attributes)
        return has_duration and spans and self.chain is None

    @property
    def by_entry_span(self) -> bool:
        """Whether the chain's own entry span filters or ranks the traces."""
        return self.chain is not None and (
            self.min_duration_ms is not None
            or self.max_duration_ms is not None
            or self.chain_status is not None
            or self.order == "duration"
        )

    @classmethod
    def parse(
        cls,
        *,
        chain: str | None = None,
        service: str | None = None,
        operation: str | None = None,
        status: str | None = None,
        min_duration_ms: str | float | None = None,
        max_duration_ms: str | float | None = None,
        attr: Sequence[str] = (),
        chain_status: str | None = None,
        order: str | None = None,
        limit: str | int | None = None,
    ) -> TraceQuery:
        """Check every filter; a bad one raises ParameterError naming it."""
        for key, text in (("chain", chain), ("service", service), ("operation", operation)):
            if text is not None and (not text.strip() or len(text) > MAX_TEXT):
                raise ParameterError(
                    key,
                    text,
                    f"1-{MAX_TEXT} characters",
                    "{name} {value} must be {allowed}; leave it out to match every trace",
                )
        if status is not None and status.lower() not in STATUSES:
            raise ParameterError(
                "status",
                status,
                " or ".join(STATUSES),
                "{name} {value} is not supported; use {allowed}",
            )
        if chain_status is not None and chain_status.lower() not in STATUSES:
            raise ParameterError(
                "chain_status",
                chain_status,
                " or ".join(STATUSES),
                "{name} {value} is not supported; use {allowed}",
            )
        if chain_status is not None and chain is None:
            raise ParameterError(
                "chain_status",
                chain_status,
                "only with a chain",
                "{name} {value} needs a chain: it is the status of the chain's entry span",
            )
        if order is not None and order.lower() not in ORDERS:
            raise ParameterError(
                "order",
                order,
                " or ".join(ORDERS),
                "{name} {value} is not supported; use {allowed}",
            )
        low = _duration(min_duration_ms, "min_duration_ms")
        high = _duration(max_duration_ms, "max_duration_ms")
        if low is not None and high is not None and low > high:
            raise ParameterError(
                "min_duration_ms",
                low,
                "at most the maximum",
                "{name} {value} is above {related}: no trace can match; swap them",
                {"max_duration_ms": high},
            )
        return cls(
            chain=chain,
            service=service,
            operation=operation,
            status=status.lower() if status is not None else None,
            min_duration_ms=low,
            max_duration_ms=high,
            attributes=_attributes(attr),
            chain_status=chain_status.lower() if chain_status is not None else None,
            order=order.lower() if order is not None else "start",
            limit=_limit(limit),
        )


def _duration(value: str | float | None, key: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 <= number < 1e12:
        raise ParameterError(
            key, value, "a number of milliseconds, 0 or more", "{name} {value} must be {allowed}"
        )
    return number


def _limit(value: str | int | None) -> int:
    return parse_count("limit", value, DEFAULT_LIMIT, (1, MAX_LIMIT))


def _attributes(values: Sequence[str]) -> tuple[AttributeFilter, ...]:
    if len(values) > MAX_ATTRS:
        raise ParameterError(
            "attr", len(values), f"at most {MAX_ATTRS}", "{name} is given {value} times; {allowed}"
        )
    return tuple(_attribute(text) for text in values)


def _attribute(text: str) -> AttributeFilter:
    def refuse(why: str) -> ParameterError:
        return ParameterError(
            "attr",
            text[:80],
            f"key=value, key!=value, key=~regex or key, up to {MAX_TEXT} characters each",
            "{name} {value} "
            + why.replace("{", "{{").replace("}", "}}")
            + " (use {allowed}, e.g. http.route=/orders)",
        )

    found = [(text.find(op), op) for op in ATTRIBUTE_OPERATORS if op in text]
    if found:
        at, operator = min(found, key=lambda hit: (hit[0], -len(hit[1])))
        key, value = text[:at].strip(), text[at + len(operator) :]
    else:
        key, operator, value = text.strip(), "exists", ""
    if not key or len(key) > MAX_TEXT or len(value) > MAX_TEXT:
        raise refuse("has no key or a part that is too long")
    if operator == "=~":
        try:
            re.compile(value)
        except re.error as exc:
            raise refuse(f"is not a valid regex: {exc}") from None
        if _NOT_RE2.search(value):
            raise refuse("uses look-around or a back-reference, which RE2 does not support")
    return AttributeFilter(key, operator, value)
