"""What Grafana and its ClickHouse datasource do to a panel's SQL before ClickHouse sees it.

Two steps, transcribed so the dashboards' SQL can run on chDB without a Grafana server:

1. **Template variables** (Grafana's frontend, ``templateSrv.replace``): ``${name:sqlstring}``
   becomes the value with every ``'`` doubled, in single quotes; ``${name}``, ``$name`` and
   ``[[name]]`` become the raw value. Unknown names are left as written.
2. **Macros** (grafana/clickhouse-datasource v4.20.0, ``pkg/macros/macros.go``, expanded by
   grafana/macropro ``parser.go`` / ``macropro.go``): comments are blanked first (``--`` to
   the end of the line, ``/* ... */``; string literals ``'...'`` / ``"..."`` with doubled
   quotes or backslash escapes, backtick identifiers and ``$tag$...$tag$`` are kept), then
   each known macro name, longest first, is replaced wherever ``$__name`` appears not
   followed by a name character, with an optional ``(...)`` argument list (balanced
   parentheses, quotes respected; arguments split at top-level commas and trimmed).
   Expansions, for the time range ``from``/``to`` (Unix seconds) and ``interval_s``:

   - ``$__fromTime`` / ``$__toTime``: ``toDateTime(<unix s>)``
   - ``$__fromTime_ms`` / ``$__toTime_ms``: ``fromUnixTimestamp64Milli(<unix ms>)``
   - ``$__timeFilter(c)``: ``c >= toDateTime(<from>) AND c <= toDateTime(<to>)``
   - ``$__timeFilter_ms(c)``: the same with ``fromUnixTimestamp64Milli``
   - ``$__dateFilter(c)``: ``c >= toDate('YYYY-MM-DD') AND c <= toDate('YYYY-MM-DD')``
   - ``$__timeFrom(c)``: ``c >= toDateTime(<from>)``; ``$__timeTo(c)``: ``c <= toDateTime(<to>)``
   - ``$__timeInterval(c)``: ``toStartOfInterval(toDateTime(c), INTERVAL <max(interval, 1)> second)``
   - ``$__interval_s``: ``<max(interval, 1)>``
   - ``$__timeGroup(c, 5m)``: ``toStartOfInterval(toDateTime(c), INTERVAL <seconds> second)``

   A macro with the wrong number of arguments is an error, as in the datasource.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

_NAME_CHAR = re.compile(r"[_a-zA-Z0-9]")


@dataclass(frozen=True)
class QueryContext:
    """The time range (Unix seconds) and interval of one panel query."""

    from_s: int
    to_s: int
    interval_s: float = 60.0


# -- template variables ---------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$\{(?P<braced>[\w.]+)(?::(?P<format>\w+))?\}|\[\[(?P<old>[\w.]+)\]\]|\$(?P<plain>\w+)"
)


def interpolate_variables(sql: str, variables: Mapping[str, str]) -> str:
    """Grafana's template variable interpolation for single-valued variables."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("old") or match.group("plain")
        if name not in variables:
            return match.group(0)
        value = variables[name]
        if match.group("format") == "sqlstring":
            return "'" + value.replace("'", "''") + "'"
        if match.group("format") not in (None, "raw"):
            raise ValueError(f"variable format {match.group('format')!r} is not transcribed")
        return value

    return _VARIABLE.sub(replace, sql)


# -- macro expansion ------------------------------------------------------------------------


def _scan_string(s: str, pos: int) -> int:
    quote = s[pos]
    j = pos + 1
    while j < len(s):
        if s[j] == "\\" and quote == "'":
            j += 2
            continue
        if s[j] == quote:
            if j + 1 < len(s) and s[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return j


def _dollar_quote_end(s: str, pos: int) -> int:
    j = pos + 1
    while j < len(s) and s[j] != "$":
        if not _NAME_CHAR.match(s[j]):
            return -1
        j += 1
    if j >= len(s):
        return -1
    tag = s[pos : j + 1]
    close = s.find(tag, j + 1)
    return -1 if close < 0 else close + len(tag)


def strip_comments(sql: str) -> str:
    """Comments blanked with spaces; strings, backtick names and dollar quotes kept."""
    out: list[str] = []
    i = 0
    while i < len(sql):
        c = sql[i]
        if c in "'\"`":
            j = _scan_string(sql, i)
            out.append(sql[i:j])
            i = j
            continue
        if c == "$":
            end = _dollar_quote_end(sql, i)
            if end >= 0:
                out.append(sql[i:end])
                i = end
                continue
        if sql.startswith("--", i):
            j = i
            while j < len(sql) and sql[j] not in "\r\n":
                j += 1
            out.append(" " * (j - i))
            i = j
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = len(sql) if j < 0 else j + 2
            out.append(" " * (j - i))
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _closing_paren(s: str, open_at: int) -> int:
    depth = 0
    i = open_at
    while i < len(s):
        c = s[i]
        if c in "'\"":
            i = _scan_string(s, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _split_args(raw: str) -> list[str]:
    raw = raw.strip()
    if not raw:
        return []
    args: list[str] = []
    depth = start = i = 0
    while i < len(raw):
        c = raw[i]
        if c in "'\"":
            i = _scan_string(raw, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(raw[start:i].strip())
            start = i + 1
        i += 1
    args.append(raw[start:].strip())
    return args


def _date_time(seconds: int) -> str:
    return f"toDateTime({seconds})"


def _date(seconds: int) -> str:
    return f"toDate('{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%d}')"


def _ms(seconds: int) -> str:
    return f"fromUnixTimestamp64Milli({seconds * 1000})"


def _arity(name: str, args: list[str], count: int) -> None:
    if len(args) != count:
        raise ValueError(f"$__{name} expected {count} argument(s), received {len(args)}")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _time_group(ctx: QueryContext, args: list[str]) -> str:
    _arity("timeGroup", args, 2)
    period = args[1].strip().strip("'\"")
    match = _DURATION.match(period)
    if match is None:
        raise ValueError(f"$__timeGroup: invalid interval {period!r}")
    seconds = round(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if seconds <= 0:
        raise ValueError(f"$__timeGroup: interval must be positive, got {period!r}")
    return f"toStartOfInterval(toDateTime({args[0].strip()}), INTERVAL {seconds} second)"


def _one(name: str, render: Callable[[QueryContext, str], str]) -> Callable[..., str]:
    def expand(ctx: QueryContext, args: list[str]) -> str:
        _arity(name, args, 1)
        return render(ctx, args[0])

    return expand


MACROS: dict[str, Callable[[QueryContext, list[str]], str]] = {
    "fromTime": lambda ctx, args: _date_time(ctx.from_s),
    "toTime": lambda ctx, args: _date_time(ctx.to_s),
    "fromTime_ms": lambda ctx, args: _ms(ctx.from_s),
    "toTime_ms": lambda ctx, args: _ms(ctx.to_s),
    "timeFilter": _one(
        "timeFilter",
        lambda ctx, c: f"{c} >= {_date_time(ctx.from_s)} AND {c} <= {_date_time(ctx.to_s)}",
    ),
    "timeFilter_ms": _one(
        "timeFilter_ms", lambda ctx, c: f"{c} >= {_ms(ctx.from_s)} AND {c} <= {_ms(ctx.to_s)}"
    ),
    "dateFilter": _one(
        "dateFilter", lambda ctx, c: f"{c} >= {_date(ctx.from_s)} AND {c} <= {_date(ctx.to_s)}"
    ),
    "timeFrom": _one("timeFrom", lambda ctx, c: f"{c} >= {_date_time(ctx.from_s)}"),
    "timeTo": _one("timeTo", lambda ctx, c: f"{c} <= {_date_time(ctx.to_s)}"),
    "timeInterval": _one(
        "timeInterval",
        lambda ctx, c: (
            f"toStartOfInterval(toDateTime({c}), INTERVAL {int(max(ctx.interval_s, 1))} second)"
        ),
    ),
    "interval_s": lambda ctx, args: str(int(max(ctx.interval_s, 1))),
    "timeGroup": _time_group,
}


def expand_macros(sql: str, ctx: QueryContext) -> str:
    """The datasource's macro expansion (see the module docstring)."""
    result = strip_comments(sql)
    for name in sorted(MACROS, key=lambda n: (-len(n), n)):
        token = "$__" + name
        out: list[str] = []
        rest = result
        while True:
            at = rest.find(token)
            if at < 0:
                out.append(rest)
                break
            after = at + len(token)
            if after < len(rest) and _NAME_CHAR.match(rest[after]):
                out.append(rest[:after])
                rest = rest[after:]
                continue
            out.append(rest[:at])
            rest = rest[after:]
            raw = ""
            if rest.startswith("("):
                end = _closing_paren(rest, 0)
                if end >= 0:
                    raw, rest = rest[1:end], rest[end + 1 :]
            out.append(MACROS[name](ctx, _split_args(raw)))
        result = "".join(out)
    return result


def panel_sql(raw_sql: str, variables: Mapping[str, str], ctx: QueryContext) -> str:
    """A target's ``rawSql`` as ClickHouse receives it."""
    return expand_macros(interpolate_variables(raw_sql, variables), ctx)
