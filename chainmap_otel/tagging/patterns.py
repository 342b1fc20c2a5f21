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

__all__ = ["StringTest", "compile_regex", "glob_to_regex", "regex_error", "string_test"]

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


def _escape(ch: str) -> str:
    return "\\" + ch if ch.isascii() and not ch.isalnum() else ch


def glob_to_regex(glob: str) -> str:
    """An fnmatch glob as an anchored RE2 regex: ``*`` any text, ``?`` one character, ``[...]``."""
    out: list[str] = ["^"]
    i = 0
    while i < len(glob):
        ch = glob[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append("\\[")
            else:
                body = glob[i + 1 : end]
                negate = body.startswith("!")
                if negate:
                    body = body[1:]
                escaped = "".join("\\" + c if c in "\\[]^" else c for c in body)
                out.append("[" + ("^" if negate else "") + escaped + "]")
                i = end
        else:
            out.append(_escape(ch))
        i += 1
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
