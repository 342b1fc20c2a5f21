"""The shapes of docs/json-contract.md, parsed, and a check of real JSON against them.

A shape is the page's notation: ``{"a", "b": [{"c"}], "s": "x|y", "o": null|{...}}``. A key
without a value holds anything; ``{...}`` and ``[...]`` hold any object or list; quoted
values after a key are the allowed strings (``|`` separates them, inside or between quotes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<any>\{\.\.\.\}|\[\.\.\.\])|(?P<word>null|true|false)'
    r"|(?P<punct>[{}\[\]:,|]))"
)


@dataclass(frozen=True)
class Shape:
    """One node of a shape: an object's keys, a list's element, or allowed leaf values."""

    kind: str  # "object", "list", "any", "leaf"
    keys: dict[str, list[Shape]] = field(default_factory=dict)
    element: list[Shape] = field(default_factory=list)
    values: frozenset[Any] = frozenset()


@dataclass
class Coverage:
    """The object shapes real JSON matched: every one should be, or its check is hollow."""

    matched: set[int] = field(default_factory=set)


def object_shapes(shapes: list[Shape]) -> list[Shape]:
    """Every object shape in ``shapes``, nested ones included."""
    found: list[Shape] = []
    for shape in shapes:
        if shape.kind == "object":
            found.append(shape)
            for sub in shape.keys.values():
                found += object_shapes(sub)
        elif shape.kind == "list":
            found += object_shapes(shape.element)
    return found


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    text = text.replace("\\|", "|")
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"cannot read the shape at {text[position : position + 30]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if value is not None and token[1] != value:
            raise ValueError(f"expected {value!r}, found {token[1]!r} in the shape")
        self.at += 1
        return token

    def alternatives(self) -> list[Shape]:
        shapes = [self.atom()]
        while self.peek()[1] == "|":
            self.take("|")
            shapes.append(self.atom())
        leaves = [s for s in shapes if s.kind == "leaf"]
        if len(leaves) > 1:  # "a"|"b"|null: one leaf with every allowed value
            values = frozenset().union(*(s.values for s in leaves))
            shapes = [s for s in shapes if s.kind != "leaf"] + [Shape("leaf", values=values)]
        return shapes

    def atom(self) -> Shape:
        kind, text = self.take()
        if kind == "any":
            return Shape("any")
        if kind == "word":
            return Shape("leaf", values=frozenset([{"null": None, "true": True}.get(text, False)]))
        if kind == "string":
            return Shape("leaf", values=frozenset(text[1:-1].split("|")))
        if text == "[":
            element = self.alternatives()
            self.take("]")
            return Shape("list", element=element)
        if text == "{":
            keys: dict[str, list[Shape]] = {}
            while self.peek()[1] != "}":
                key = self.take()[1]
                keys[key[1:-1]] = (
                    self.alternatives() if self.peek()[1] == ":" and self.take() else []
                )
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
            return Shape("object", keys=keys)
        raise ValueError(f"unexpected {text!r} in the shape")


def parse_shape(text: str) -> list[Shape]:
    """The alternatives of one shape written on the page."""
    parser = _Parser(text)
    shapes = parser.alternatives()
    if parser.peek()[0] != "end":
        raise ValueError(f"text left after the shape: {parser.tokens[parser.at :]}")
    return shapes


def check(value: Any, shapes: list[Shape], where: str, seen: Coverage) -> list[str]:
    """Where ``value`` departs from every alternative of ``shapes`` (empty: it conforms)."""
    failures: list[list[str]] = []
    for shape in shapes:
        problems = _check_one(value, shape, where, seen)
        if not problems:
            return []
        failures.append(problems)
    return min(failures, key=len) if failures else []


def _check_one(value: Any, shape: Shape, where: str, seen: Coverage) -> list[str]:
    if shape.kind == "any":
        return []
    if shape.kind == "leaf":
        if isinstance(value, str | bool) or value is None:
            if value in shape.values:
                return []
            return [f"{where}: {value!r} is not one of {sorted(shape.values, key=repr)}"]
        return [f"{where}: {value!r} is not one of the documented values"]
    if shape.kind == "list":
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [
            p
            for i, item in enumerate(value)
            for p in check(item, shape.element, f"{where}[{i}]", seen)
        ]
    if not isinstance(value, dict):
        return [f"{where}: expected an object, got {type(value).__name__}"]
    documented, real = set(shape.keys), set(value)
    problems = []
    if documented != real:
        problems.append(
            f"{where}: keys not documented {sorted(real - documented)}, "
            f"documented but absent {sorted(documented - real)}"
        )
        return problems
    seen.matched.add(id(shape))
    for key, sub in shape.keys.items():
        if sub:
            problems += check(value[key], sub, f"{where}.{key}", seen)
    return problems
