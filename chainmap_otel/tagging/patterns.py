"""Rule patterns as RE2 regexes: linear-time matching, the same answers as ClickHouse ``match()``.

A chain rule classifies a span twice: at the source, in the span processor, and at
query time inside ClickHouse (:mod:`chainmap_otel.analysis.membership`) for spans no
processor tagged. ClickHouse's ``match()`` is RE2 with ``.`` matching line breaks, so
the processor compiles with RE2 and the same option: a rule means the same in both
places, and no pattern (``^(a+)+$``) can make a span start backtrack for seconds.
RE2 refuses what it cannot run in linear time (backreferences, lookaround); the
chains loader reports those as validation errors.

Globs (``/api/v1/*``, ``[!x]``) are fnmatch globs, translated here once to an
anchored RE2 regex for both the processor and the query-time classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

__all__ = [
    "StringTest",
    "compile_regex",
    "escape_regex",
    "glob_to_regex",
    "regex_error",
    "string_test",
]

StringTest = Callable[[str], bool]


def _options() -> Any:
    options = re2.Options()
    # ClickHouse match(): '.' matches '\n' too (prepend (?-s) to opt out, in both places).
    options.dot_nl = True
    # A rejected pattern is reported by the chains loader; RE2's own stderr log is noise.
    options.log_errors = False
    return options


_OPTIONS = _options()


def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled with RE2 as ClickHouse compiles it; raises ``re2.error``."""
    return re2.compile(pattern, _OPTIONS)


def regex_error(pattern: str) -> str | None:
    """Why RE2 refuses ``pattern`` (one line), or None when it compiles."""
    try:
        compile_regex(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return str(reason)
    return None


#: Characters a regex literal escapes outside and inside a class.
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")
_CLASS_SPECIAL = frozenset("\\]^[-")


def _literal(char: str, special: frozenset[str]) -> str:
    if char in special:
        return "\\" + char
    if not char.isprintable():
        return f"\\x{{{ord(char):x}}}"
    return char


def escape_regex(text: str) -> str:
    """``text`` as an RE2 literal (specials escaped, non-printables as ``\\x{..}``)."""
    return "".join(_literal(char, _REGEX_SPECIAL) for char in text)


def _bracket(body: str) -> str:
    """One fnmatch ``[...]`` body as an RE2 class: ``!`` negates, ``a-z`` is a range."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    parts: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low > high:
                raise ValueError(f"glob range {low}-{high} is empty; write it {high}-{low}")
            parts.append(f"{_literal(low, _CLASS_SPECIAL)}-{_literal(high, _CLASS_SPECIAL)}")
            i += 3
        else:
            parts.append(_literal(body[i], _CLASS_SPECIAL))
            i += 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def glob_to_regex(glob: str) -> str:
    """An fnmatch glob as an anchored RE2 regex: ``*`` any text, ``?`` one character,
    ``[...]`` a class (``[!...]`` negated, ``a-z`` a range), classes ending where
    ``fnmatch.translate`` ends them. ``*`` and ``?`` cross ``/`` and, with ``dot_nl`` or
    ``(?s)`` (ClickHouse's ``match()``, the processor; OTTL adds it), line breaks. Raises
    ValueError for an empty range."""
    out = ["^"]
    i, n = 0, len(glob)
    while i < n:
        char = glob[i]
        i += 1
        if char == "*":
            while i < n and glob[i] == "*":
                i += 1
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")
            else:
                out.append(_bracket(glob[i:j]))
                i = j + 1
        else:
            out.append(_literal(char, _REGEX_SPECIAL))
    out.append("$")
    return "".join(out)


def _prefix_test(prefix: str) -> StringTest:
    return lambda text: text.startswith(prefix)


def string_test(kind: str, value: str) -> StringTest:
    """A matcher for one pattern: ``equals`` (==), ``glob`` (whole text), ``regex`` (search)."""
    if kind == "equals":
        return value.__eq__
    if kind == "glob":
        # A trailing-star glob ("/api/v1/trading*") is a prefix test: the common case, made cheap.
        head = value[:-1]
        if value.endswith("*") and not any(c in head for c in "*?["):
            return _prefix_test(head)
        compiled = compile_regex(glob_to_regex(value))
        return lambda text: compiled.search(text) is not None
    regex = compile_regex(value)
    return lambda text: regex.search(text) is not None
