"""The chain definition model: what a validated chains file becomes.

Parsing and validation live in :mod:`chainmap_otel.tagging.definitions`; these
frozen dataclasses are what the rule engine, the processor and analysis read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chainmap_otel.tagging.patterns import string_test

CATEGORIES = (
    "data_flow",
    "ai_decision",
    "api",
    "trading",
    "user_experience",
    "infrastructure",
    "batch",
    "monitoring",
)
CRITICALITIES = ("critical", "high", "medium", "low")
SPAN_KINDS = ("server", "client", "internal", "producer", "consumer")
PERCENTILES = ("p50", "p75", "p90", "p95", "p99")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

#: Matcher fields of an entry rule and the span data each one reads.
MATCHER_FIELDS = {
    "service": "resource service.name",
    "kind": "span kind",
    "name": "span name",
    "route": "http.route (else the URL path)",
    "path": "url.path / http.target",
    "method": "http.request.method / http.method",
    "rpc_service": "rpc.service",
    "rpc_method": "rpc.method",
    "messaging_destination": "messaging.destination.name",
    "attributes": "any span attribute",
}


_PATTERN_FIELDS = (
    "service",
    "name",
    "route",
    "path",
    "rpc_service",
    "rpc_method",
    "messaging_destination",
)


@dataclass(frozen=True)
class Pattern:
    """A string matcher: ``equals``, ``glob`` (fnmatch) or ``regex`` (RE2 search)."""

    kind: str
    value: str

    def to_json(self) -> str | dict[str, str]:
        """As written in YAML: a plain string for equals/glob, ``{"regex": ...}`` otherwise."""
        return self.value if self.kind in ("equals", "glob") else {self.kind: self.value}

    def matches(self, text: str) -> bool:
        return string_test(self.kind, self.value)(text)


@dataclass(frozen=True)
class EntryRule:
    """One entry matcher; every field it sets must match (AND). A chain's rules are OR-ed."""

    service: Pattern | None = None
    kinds: tuple[str, ...] = ()
    name: Pattern | None = None
    route: Pattern | None = None
    path: Pattern | None = None
    method: tuple[str, ...] = ()
    rpc_service: Pattern | None = None
    rpc_method: Pattern | None = None
    messaging_destination: Pattern | None = None
    attributes: tuple[tuple[str, Pattern], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The rule in the YAML's field names."""
        out: dict[str, Any] = {}
        for key in _PATTERN_FIELDS:
            pattern = getattr(self, key)
            if pattern is not None:
                out[key] = pattern.to_json()
        if self.kinds:
            out["kind"] = list(self.kinds)
        if self.method:
            out["method"] = list(self.method)
        if self.attributes:
            out["attributes"] = {key: p.to_json() for key, p in self.attributes}
        return out


@dataclass(frozen=True)
class SLOOverride:
    """One environment's objectives (``slo.environments.<name>``): what it sets replaces the
    chain's (latency per percentile); what it leaves out falls back to the chain's."""

    latency_ms: Mapping[str, float] = field(default_factory=dict)
    error_rate: float | None = None
    window_seconds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.latency_ms:
            out["latency_ms"] = dict(self.latency_ms)
        if self.error_rate is not None:
            out["error_rate"] = self.error_rate
        if self.window_seconds is not None:
            out["window_seconds"] = self.window_seconds
        return out


@dataclass(frozen=True)
class SLO:
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    error_rate: float | None = None
    window_seconds: int = 30 * 86400
    #: Overrides per ``deployment.environment.name`` (a staging fleet is slower, noisier).
    environments: Mapping[str, SLOOverride] = field(default_factory=dict)

    @property
    def error_budget(self) -> float | None:
        return self.error_rate

    def effective(self, environment: str) -> SLO:
        """The objectives health judges ``environment`` by: the chain's, with that
        environment's overrides applied (``""`` or an environment without overrides: the
        chain's own)."""
        override = self.environments.get(environment) if environment else None
        if override is None:
            return self
        return SLO(
            latency_ms={**self.latency_ms, **override.latency_ms},
            error_rate=self.error_rate if override.error_rate is None else override.error_rate,
            window_seconds=self.window_seconds
            if override.window_seconds is None
            else override.window_seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        """As ``chainmap chains list`` and the API show it (``environments`` only when set)."""
        out: dict[str, Any] = {
            "latency_ms": dict(self.latency_ms),
            "error_rate": self.error_rate,
            "window_seconds": self.window_seconds,
        }
        if self.environments:
            out["environments"] = {
                name: override.to_dict() for name, override in self.environments.items()
            }
        return out


@dataclass(frozen=True)
class ExpectedTopology:
    services: tuple[str, ...] = ()
    edges: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ChainDefinition:
    id: str
    name: str
    category: str
    criticality: str = "medium"
    description: str = ""
    entry: tuple[EntryRule, ...] = ()
    slo: SLO | None = None
    expected: ExpectedTopology | None = None
    source: str = ""

    def in_environment(self, environment: str) -> ChainDefinition:
        """This chain judged in ``environment``: its SLO is the effective one there
        (:meth:`SLO.effective`); ``""`` or no overrides for it: the chain itself."""
        if self.slo is None or not environment or environment not in self.slo.environments:
            return self
        return replace(self, slo=self.slo.effective(environment))

    def to_dict(self) -> dict[str, Any]:
        """The definition in the YAML's field names: the JSON of ``chainmap chains list``
        and ``GET /api/v1/chains/{id}`` (``slo.window`` in seconds as ``window_seconds``)."""
        slo, expected = self.slo, self.expected
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "criticality": self.criticality,
            "description": self.description,
            "entry": [rule.to_dict() for rule in self.entry],
            "slo": None if slo is None else slo.to_dict(),
            "expected": None
            if expected is None
            else {
                "services": list(expected.services),
                "edges": [list(edge) for edge in expected.edges],
            },
            "source": self.source,
        }


@dataclass(frozen=True)
class ChainCatalog:
    """A validated set of chains, in file order (the order nested pushes use)."""

    chains: tuple[ChainDefinition, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {c.id: c for c in self.chains})

    @property
    def by_id(self) -> Mapping[str, ChainDefinition]:
        by_id: dict[str, ChainDefinition] = self.__dict__["_by_id"]
        return by_id

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.chains)

    def __iter__(self) -> Iterator[ChainDefinition]:
        return iter(self.chains)

    def __len__(self) -> int:
        return len(self.chains)

    def get(self, chain_id: str) -> ChainDefinition | None:
        return self.by_id.get(chain_id)


def duration_seconds(text: str) -> int | None:
    """``30d`` / ``6h`` / ``5m`` / ``10s`` to seconds; None when malformed."""
    match = _DURATION.match(text.strip())
    if not match:
        return None
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]
