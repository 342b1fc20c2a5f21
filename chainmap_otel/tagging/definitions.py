"""Chain definitions: the YAML format, its validation and loading.

A catalog is validated as a whole: every problem is reported at once, each
with ``file:line``, the field path and what to write instead, so an operator
fixes a file in one pass. The resulting objects are in
:mod:`chainmap_otel.tagging.model` (re-exported here).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from chainmap_otel.errors import ChainDefinitionError
from chainmap_otel.tagging.chainsfile import (
    INT_RANGE,
    MAX_YAML_DEPTH,
    SHOWN_CHARS,
    LineDict,
    LineList,
    joined_surrogates,
    load_yaml,
    plain_data,
    printable,
    read_chains_text,
    text_problem,
)
from chainmap_otel.tagging.chainsfile import (
    line_of as _line_of,
)
from chainmap_otel.tagging.chainsfile import (
    shown_value as _shown,
)
from chainmap_otel.tagging.chainsfile import (
    type_name as _type_name,
)
from chainmap_otel.tagging.model import (
    CATEGORIES,
    CRITICALITIES,
    ID_PATTERN,
    MATCHER_FIELDS,
    PERCENTILES,
    SLO,
    SPAN_KINDS,
    ChainCatalog,
    ChainDefinition,
    EntryRule,
    ExpectedTopology,
    Pattern,
    SLOOverride,
    duration_seconds,
)
from chainmap_otel.tagging.objectives import MAX_LATENCY_MS, MAX_SLO_WINDOW_S, SLOParsing
from chainmap_otel.tagging.patterns import glob_to_regex, regex_error

__all__ = [
    "CATEGORIES",
    "CRITICALITIES",
    "ID_PATTERN",
    "MATCHER_FIELDS",
    "MAX_LATENCY_MS",
    "MAX_SLO_WINDOW_S",
    "PERCENTILES",
    "SLO",
    "SPAN_KINDS",
    "ChainCatalog",
    "ChainDefinition",
    "EntryRule",
    "ExpectedTopology",
    "Pattern",
    "SLOOverride",
    "duration_seconds",
    "load_catalog",
    "load_definitions",
    "parse_catalog",
    "parse_document",
]

_CHAIN_KEYS = ("id", "name", "category", "criticality", "description", "entry", "slo", "expected")
_EXPECTED_KEYS = ("services", "edges")
_PATTERN_KINDS = ("equals", "glob", "regex")


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []
        self.lines: list[int] = []
        self.places: set[str] = set()

    def add(self, line: int, where: str, message: str) -> None:
        if len(where) > SHOWN_CHARS:
            where = where[: SHOWN_CHARS - 3] + "..."
        where, message = printable(where), printable(message)
        if where in self.places:
            return  # one problem per field: the first found says it
        self.places.add(where)
        self.lines.append(line)
        place = f"{self.source}:{line}" if line else self.source
        self.items.append(f"{place}: {where}: {message}")

    def sorted(self) -> list[str]:
        return [
            item for _, item in sorted(zip(self.lines, self.items, strict=True), key=lambda p: p[0])
        ]


class _Parser(SLOParsing):
    problems: _Problems

    def __init__(self, source: str) -> None:
        self.problems = _Problems(source)
        self.source = source

    def clean(self, value: Any, line: int, where: str, depth: int = 0) -> Any:
        """``value`` with surrogate pairs joined; problems for what no store keeps as it is:
        text with NUL or an unpaired surrogate, numbers that are not finite or not 64-bit,
        nesting deeper than ``MAX_YAML_DEPTH``. Line numbers are kept."""
        place = where or "top level"
        if depth > MAX_YAML_DEPTH:
            self.problems.add(line, place, f"nested deeper than {MAX_YAML_DEPTH} levels")
            return None
        if isinstance(value, str):
            text = joined_surrogates(value)
            reason = text_problem(text)
            if reason is not None:
                self.problems.add(line, place, reason)
            return text
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int) and value not in INT_RANGE:
            self.problems.add(
                line, place, f"{_shown(value)} is out of range; numbers are at most 2^63 - 1"
            )
        elif isinstance(value, float) and not math.isfinite(value):
            self.problems.add(line, place, f"expected a finite number, got {value!r}")
        if isinstance(value, dict):
            mapping = LineDict()
            mapping.line = getattr(value, "line", line)
            mapping.key_lines = {}
            for key, item in value.items():
                kline = _line_of(value, key, line)
                name = self.clean(str(key), kline, f"{where}.{key}" if where else str(key), depth)
                mapping[name] = self.clean(
                    item, kline, f"{where}.{name}" if where else name, depth + 1
                )
                mapping.key_lines[name] = kline
            return mapping
        if isinstance(value, list):
            items = LineList()
            items.line = getattr(value, "line", line)
            items.item_lines = []
            for i, item in enumerate(value):
                iline = _line_of(value, i, line)
                items.append(self.clean(item, iline, f"{where}[{i}]", depth + 1))
                items.item_lines.append(iline)
            return items
        return value

    def unknown_keys(self, mapping: LineDict, allowed: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.problems.add(
                    _line_of(mapping, key, mapping.line),
                    f"{where}.{key}",
                    f"unknown key; allowed keys are {', '.join(allowed)}",
                )

    def pattern(self, value: Any, line: int, where: str) -> Pattern | None:
        if isinstance(value, bool):
            return Pattern("equals", "true" if value else "false")
        if value is None:
            self.problems.add(line, where, "expected a string pattern, e.g. '/api/v1/*'")
            return None
        if isinstance(value, str | int | float):
            text = str(value)
            kind = "glob" if any(ch in text for ch in "*?[") else "equals"
            if kind == "glob":
                return self._checked(Pattern("glob", text), line, where)
            return Pattern("equals", text)
        if isinstance(value, dict):
            keys = [k for k in value if k in _PATTERN_KINDS]
            extra = [k for k in value if k not in _PATTERN_KINDS]
            if len(keys) != 1 or extra:
                self.problems.add(
                    line,
                    where,
                    "a pattern mapping takes exactly one of equals, glob, regex "
                    f"(got {', '.join(map(str, value)) or 'nothing'})",
                )
                return None
            inner = value[keys[0]]
            if not isinstance(inner, str | int | float) or isinstance(inner, bool):
                self.problems.add(line, f"{where}.{keys[0]}", "expected a string")
                return None
            return self._checked(Pattern(keys[0], str(inner)), line, where)
        self.problems.add(
            line, where, f"expected a string or {{regex: ...}}, got {_type_name(value)}"
        )
        return None

    def _checked(self, pattern: Pattern, line: int, where: str) -> Pattern | None:
        if pattern.kind == "glob" and pattern.value.count("[") != pattern.value.count("]"):
            self.problems.add(
                line, where, f"bad glob {_shown(pattern.value)}: unbalanced '['; escape it as [[]"
            )
            return None
        try:
            regex = pattern.value if pattern.kind == "regex" else glob_to_regex(pattern.value)
        except ValueError as exc:  # an empty range
            self.problems.add(line, where, f"bad glob {_shown(pattern.value)}: {exc}")
            return None
        reason = regex_error(regex)
        if reason is not None:
            hint = "; RE2 has no backreferences or lookaround" if pattern.kind == "regex" else ""
            self.problems.add(
                line, where, f"bad {pattern.kind} {_shown(pattern.value)}: {reason}{hint}"
            )
            return None
        return pattern

    def str_list(
        self, value: Any, line: int, where: str, choices: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            self.problems.add(line, where, "expected a string or a list of strings")
            return ()
        out = []
        for item in items:
            norm = item.strip().lower() if choices else item.strip()
            if choices and norm not in choices:
                self.problems.add(
                    line, where, f"unknown value {_shown(item)}; use one of {', '.join(choices)}"
                )
                continue
            out.append(norm)
        return tuple(out)

    def entry_rule(self, raw: Any, line: int, where: str) -> EntryRule | None:
        if not isinstance(raw, dict):
            self.problems.add(line, where, f"expected a mapping of matchers, got {_type_name(raw)}")
            return None
        if not raw:
            self.problems.add(
                line,
                where,
                "empty entry rule matches nothing useful; set at least one of "
                + ", ".join(MATCHER_FIELDS),
            )
            return None
        self.unknown_keys(raw, tuple(MATCHER_FIELDS), where)  # type: ignore[arg-type]
        fields: dict[str, Any] = {}
        for key in (
            "service",
            "name",
            "route",
            "path",
            "rpc_service",
            "rpc_method",
            "messaging_destination",
        ):
            if key in raw:
                fields[key] = self.pattern(raw[key], _line_of(raw, key, line), f"{where}.{key}")
        if "kind" in raw:
            fields["kinds"] = self.str_list(
                raw["kind"], _line_of(raw, "kind", line), f"{where}.kind", SPAN_KINDS
            )
        if "method" in raw:
            methods = self.str_list(raw["method"], _line_of(raw, "method", line), f"{where}.method")
            fields["method"] = tuple(m.upper() for m in methods)
        if "attributes" in raw:
            attrs = raw["attributes"]
            aline = _line_of(raw, "attributes", line)
            if not isinstance(attrs, dict) or not attrs:
                self.problems.add(
                    aline,
                    f"{where}.attributes",
                    "expected a non-empty mapping of attribute -> pattern",
                )
            else:
                pairs = []
                for key, value in attrs.items():
                    pat = self.pattern(
                        value, _line_of(attrs, key, aline), f"{where}.attributes.{key}"
                    )
                    if pat is not None:
                        pairs.append((key, pat))
                fields["attributes"] = tuple(pairs)
        return EntryRule(**{k: v for k, v in fields.items() if v is not None})

    def expected(self, raw: Any, line: int, where: str) -> ExpectedTopology | None:
        if not isinstance(raw, dict):
            self.problems.add(
                line, where, f"expected a mapping with services and edges, got {_type_name(raw)}"
            )
            return None
        self.unknown_keys(raw, _EXPECTED_KEYS, where)  # type: ignore[arg-type]
        services: tuple[str, ...] = ()
        if "services" in raw:
            services = self.str_list(
                raw["services"], _line_of(raw, "services", line), f"{where}.services"
            )
        edges: list[tuple[str, str]] = []
        raw_edges = raw.get("edges", [])
        eline = _line_of(raw, "edges", line)
        if not isinstance(raw_edges, list):
            self.problems.add(
                eline, f"{where}.edges", "expected a list of 'source -> target' strings"
            )
            raw_edges = []
        for i, edge in enumerate(raw_edges):
            iline = _line_of(raw_edges, i, eline)
            if isinstance(edge, str) and edge.count("->") == 1:
                source, target = (part.strip() for part in edge.split("->"))
                if source and target:
                    edges.append((source, target))
                    continue
            if isinstance(edge, dict) and set(edge) == {"source", "target"}:
                edges.append((str(edge["source"]), str(edge["target"])))
                continue
            self.problems.add(
                iline,
                f"{where}.edges[{i}]",
                "expected 'source -> target' or {source: ..., target: ...}",
            )
        return ExpectedTopology(services=services, edges=tuple(edges))

    def chain(self, raw: Any, line: int, where: str) -> ChainDefinition | None:
        if not isinstance(raw, dict):
            self.problems.add(line, where, f"expected a chain mapping, got {_type_name(raw)}")
            return None
        self.unknown_keys(raw, _CHAIN_KEYS, where)  # type: ignore[arg-type]
        ok = True
        for required in ("id", "name", "category", "entry"):
            if required not in raw:
                self.problems.add(line, f"{where}.{required}", "required field is missing")
                ok = False
        chain_id = raw.get("id")
        if "id" in raw and (not isinstance(chain_id, str) or not ID_PATTERN.match(chain_id)):
            self.problems.add(
                _line_of(raw, "id", line),
                f"{where}.id",
                f"bad id {_shown(chain_id)}; use 1-64 letters, digits, '_', '-', '.' (e.g. A2), no commas",
            )
            ok = False
        for key in ("name", "description"):
            if key in raw and not isinstance(raw[key], str):
                self.problems.add(
                    _line_of(raw, key, line),
                    f"{where}.{key}",
                    f"expected a string, got {_type_name(raw[key])}",
                )
                ok = False
        category = raw.get("category")
        if "category" in raw and category not in CATEGORIES:
            self.problems.add(
                _line_of(raw, "category", line),
                f"{where}.category",
                f"unknown category {_shown(category)}; use one of {', '.join(CATEGORIES)}",
            )
            ok = False
        criticality = raw.get("criticality", "medium")
        if criticality not in CRITICALITIES:
            self.problems.add(
                _line_of(raw, "criticality", line),
                f"{where}.criticality",
                f"unknown criticality {_shown(criticality)}; use one of {', '.join(CRITICALITIES)}",
            )
            ok = False
        rules: list[EntryRule] = []
        if "entry" in raw:
            entry = raw["entry"]
            eline = _line_of(raw, "entry", line)
            if isinstance(entry, dict):
                entry_items: list[Any] = LineList([entry])
                entry_items.line = eline  # type: ignore[attr-defined]
                entry_items.item_lines = [eline]  # type: ignore[attr-defined]
            else:
                entry_items = entry
            if not isinstance(entry_items, list) or not entry_items:
                self.problems.add(
                    eline,
                    f"{where}.entry",
                    "expected a non-empty list of matchers (service, kind, route, ...)",
                )
                ok = False
            else:
                for i, item in enumerate(entry_items):
                    rule = self.entry_rule(
                        item, _line_of(entry_items, i, eline), f"{where}.entry[{i}]"
                    )
                    if rule is None:
                        ok = False
                    else:
                        rules.append(rule)
        slo = (
            self.slo(raw["slo"], _line_of(raw, "slo", line), f"{where}.slo")
            if "slo" in raw
            else None
        )
        expected = (
            self.expected(raw["expected"], _line_of(raw, "expected", line), f"{where}.expected")
            if "expected" in raw
            else None
        )
        if not ok:
            return None
        return ChainDefinition(
            id=str(chain_id),
            name=str(raw["name"]),
            category=str(category),
            criticality=str(criticality),
            description=str(raw.get("description", "")),
            entry=tuple(rules),
            slo=slo,
            expected=expected,
            source=f"{self.source}:{line}" if line else self.source,
        )


def parse_catalog(text: str, source: str = "<string>") -> ChainCatalog:
    """Parse and validate chain definitions; raises ChainDefinitionError listing every problem."""
    return parse_document(load_yaml(text, source), source)


def parse_document(document: Any, source: str = "<data>") -> ChainCatalog:
    """Validate already-loaded definitions (a chains file's mapping or its ``chains`` list,
    as YAML or JSON gave them); raises ChainDefinitionError listing every problem.

    Problems carry ``source:line`` for data from :func:`parse_catalog`, ``source`` alone
    for data without lines (JSON, the registry).
    """
    parser = _Parser(source)
    document = parser.clean(document, 1, "")
    if document is None:
        document = LineDict()
    if isinstance(document, list):
        wrapped = LineDict(chains=document)
        wrapped.line = 1
        wrapped.key_lines = {"chains": 1}
        document = wrapped
    if not isinstance(document, dict) or "chains" not in document:
        raise ChainDefinitionError(
            [
                f"{source}:1: top level: expected a mapping with a 'chains:' list (see chains.example.yaml)"
            ]
        )
    parser.unknown_keys(document, ("version", "chains"), "top level")  # type: ignore[arg-type]
    if document.get("version", 1) != 1:
        parser.problems.add(
            _line_of(document, "version", 1),
            "version",
            "unsupported version; this chainmap reads version: 1",
        )
    raw_chains = document["chains"]
    if parser.problems.items:  # text or numbers no store keeps: nothing more to check
        raise ChainDefinitionError(parser.problems.sorted())
    cline = _line_of(document, "chains", 1)
    chains: list[ChainDefinition] = []
    if not isinstance(raw_chains, list):
        parser.problems.add(
            cline, "chains", f"expected a list of chains, got {_type_name(raw_chains)}"
        )
        raw_chains = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_chains):
        line = _line_of(raw_chains, i, cline)
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(raw_id, str) and raw_id in seen:
            parser.problems.add(
                _line_of(raw, "id", line),
                f"chains[{i}].id",
                f"duplicate id {_shown(raw_id)} (first defined at line {seen[raw_id]}); "
                "give each chain its own id",
            )
            continue
        if isinstance(raw_id, str):
            seen[raw_id] = line
        chain = parser.chain(raw, line, f"chains[{i}]")
        if chain is not None:
            chains.append(chain)
    if parser.problems.items:
        raise ChainDefinitionError(parser.problems.sorted())
    return ChainCatalog(chains=tuple(chains), source=source)


def load_catalog(path: str | Path) -> ChainCatalog:
    """Load and validate a chains YAML file; raises ChainDefinitionError.

    Only a regular file within ``CHAINMAP_CHAINS_MAX_BYTES`` is read (see
    :func:`~chainmap_otel.tagging.chainsfile.read_chains_text`).
    """
    return load_definitions(path)[0]


def load_definitions(path: str | Path) -> tuple[ChainCatalog, list[dict[str, Any]]]:
    """A chains file validated, and its chains as written (plain mappings, in file order):
    what ``chainmap registry push`` and the registry's seeding store."""
    source = str(Path(path))
    document = load_yaml(read_chains_text(path), source)
    catalog = parse_document(document, source)
    raw = document.get("chains") if isinstance(document, dict) else document
    return catalog, [plain_data(chain) for chain in raw or ()]
