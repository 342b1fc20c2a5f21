"""The rule engine: chain entry rules compiled once, looked up by service and span kind.

Per span the processor asks :meth:`Classifier.candidates` for the rules that can
apply to its (service, kind) — a cached tuple, usually empty for CLIENT and
INTERNAL spans — and only those rules read the span's name and attributes.
What each field reads (both the old and the stable HTTP semantic conventions, whatever
``OTEL_SEMCONV_STABILITY_OPT_IN`` says) is defined once in :mod:`chainmap_otel.tagging.fields`. Patterns are RE2
(:mod:`chainmap_otel.tagging.patterns`): matching is linear in the text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind

from chainmap_otel.tagging import fields
from chainmap_otel.tagging.model import ChainCatalog, ChainDefinition, EntryRule, Pattern
from chainmap_otel.tagging.patterns import StringTest, string_test

#: SpanKind -> the name used in chain definitions.
KIND_NAMES: dict[SpanKind, str] = {
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.INTERNAL: "internal",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
_ALL_KINDS = tuple(KIND_NAMES.values())
_MAX_CACHED_SERVICES = 1024


def _string_test(pattern: Pattern) -> StringTest:
    return string_test(pattern.kind, pattern.value)


def _path_of(attributes: Mapping[str, Any]) -> str | None:
    return fields.read(fields.PATH, attributes)


def _route_of(attributes: Mapping[str, Any]) -> str | None:
    return fields.read(fields.ROUTE, attributes)


def _destination_of(attributes: Mapping[str, Any]) -> str | None:
    return fields.read(fields.DESTINATION, attributes)


@functools.cache
def _attribute(key: str) -> Callable[[Mapping[str, Any]], str | None]:
    def read(attributes: Mapping[str, Any]) -> str | None:
        value = attributes.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return read


@dataclass(frozen=True)
class CompiledRule:
    """An entry rule of one chain, reduced to the checks that read span data."""

    chain: ChainDefinition
    service_test: StringTest | None
    service_exact: str | None
    kinds: tuple[str, ...]
    name_test: StringTest | None
    checks: tuple[tuple[Callable[[Mapping[str, Any]], str | None], StringTest], ...]

    def matches(self, name: str, attributes: Mapping[str, Any]) -> bool:
        if self.name_test is not None and not self.name_test(name):
            return False
        for read, test in self.checks:
            value = read(attributes)
            if value is None or not test(value):
                return False
        return True


def compile_rule(chain: ChainDefinition, rule: EntryRule) -> CompiledRule:
    checks: list[tuple[Callable[[Mapping[str, Any]], str | None], StringTest]] = []
    if rule.route is not None:
        checks.append((_route_of, _string_test(rule.route)))
    if rule.path is not None:
        checks.append((_path_of, _string_test(rule.path)))
    if rule.method:
        methods = frozenset(rule.method)
        checks.append((fields.read_method, methods.__contains__))
    if rule.rpc_service is not None:
        checks.append((_attribute("rpc.service"), _string_test(rule.rpc_service)))
    if rule.rpc_method is not None:
        checks.append((_attribute("rpc.method"), _string_test(rule.rpc_method)))
    if rule.messaging_destination is not None:
        checks.append((_destination_of, _string_test(rule.messaging_destination)))
    for key, pattern in rule.attributes:
        checks.append((_attribute(key), _string_test(pattern)))
    service = rule.service
    return CompiledRule(
        chain=chain,
        service_test=_string_test(service)
        if service is not None and service.kind != "equals"
        else None,
        service_exact=service.value if service is not None and service.kind == "equals" else None,
        kinds=rule.kinds or _ALL_KINDS,
        name_test=_string_test(rule.name) if rule.name is not None else None,
        checks=tuple(checks),
    )


_MAX_CACHED_KEYS = 4096


class KindRules:
    """The rules one (service, kind) can match, with a memo of past classifications.

    The memo key is the span name plus every value those rules read, so it is exact;
    with high-cardinality inputs (raw URL paths) it stops growing and rules run directly.
    """

    __slots__ = ("cache", "readers", "rules")

    def __init__(self, rules: tuple[CompiledRule, ...]) -> None:
        self.rules = rules
        readers: list[Callable[[Mapping[str, Any]], str | None]] = []
        for rule in rules:
            for read, _ in rule.checks:
                if read not in readers:
                    readers.append(read)
        self.readers = tuple(readers)
        self.cache: dict[tuple[str | None, ...], tuple[str, ...]] = {}

    def match(self, name: str, attributes: Mapping[str, Any]) -> tuple[str, ...]:
        """Ids of the chains whose entry rules match, in catalog order."""
        key = (name, *[read(attributes) for read in self.readers])
        matched = self.cache.get(key)
        if matched is None:
            matched = tuple(
                dict.fromkeys(r.chain.id for r in self.rules if r.matches(name, attributes))
            )
            if len(self.cache) < _MAX_CACHED_KEYS:
                self.cache[key] = matched
        return matched


class Classifier:
    """Entry-rule lookup for a catalog, indexed by service then kind."""

    def __init__(self, catalog: ChainCatalog) -> None:
        self.catalog = catalog
        self._exact: dict[str, list[CompiledRule]] = {}
        self._other: list[CompiledRule] = []
        for chain in catalog:
            for rule in chain.entry:
                compiled = compile_rule(chain, rule)
                if compiled.service_exact is not None:
                    self._exact.setdefault(compiled.service_exact, []).append(compiled)
                else:
                    self._other.append(compiled)
        self._order = {chain.id: i for i, chain in enumerate(catalog)}
        self._by_service: dict[str, dict[str, KindRules]] = {}

    def rules_for_service(self, service: str) -> dict[str, KindRules]:
        """Rules that can apply to spans of ``service``, per span kind name (cached)."""
        cached = self._by_service.get(service)
        if cached is not None:
            return cached
        rules = list(self._exact.get(service, ()))
        rules.extend(r for r in self._other if r.service_test is None or r.service_test(service))
        rules.sort(key=lambda r: self._order[r.chain.id])
        by_kind = {
            kind: KindRules(tuple(r for r in rules if kind in r.kinds)) for kind in _ALL_KINDS
        }
        if len(self._by_service) < _MAX_CACHED_SERVICES:
            self._by_service[service] = by_kind
        return by_kind

    def candidates(self, service: str, kind: SpanKind) -> tuple[CompiledRule, ...]:
        return self.rules_for_service(service)[KIND_NAMES.get(kind, "internal")].rules

    def classify(
        self, service: str, kind: SpanKind, name: str, attributes: Mapping[str, Any]
    ) -> list[str]:
        """Ids of the chains whose entry rules match this span, in catalog order."""
        return list(
            self.rules_for_service(service)[KIND_NAMES.get(kind, "internal")].match(
                name, attributes
            )
        )
