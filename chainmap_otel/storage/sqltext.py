"""The one way SQL templates become SQL: ``{{name}}`` placeholders filled with fragments the
code compiled (never user input: values are bound parameters), ``{{db}}`` with a validated
database name, after the ``--`` comments are removed (they name the placeholders, and a
fragment spanning lines must never land in a comment, where its tail would turn into live
SQL); a placeholder left unfilled is an error, not SQL sent to the store.
"""

from __future__ import annotations

import re

from chainmap_otel.storage.location import validate_identifier

__all__ = ["render_sql", "strip_comments"]

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render_sql(template: str, database: str, **fragments: str) -> str:
    """``template`` without comments, each ``{{fragment}}`` and then ``{{db}}`` filled in.

    Raises ``ValueError`` naming any placeholder left (a fragment the caller forgot)."""
    sql = strip_comments(template)
    sql = _PLACEHOLDER.sub(lambda m: fragments.get(m.group(1), m.group(0)), sql)
    sql = sql.replace("{{db}}", validate_identifier(database, "database"))
    left = sorted(set(_PLACEHOLDER.findall(sql)))
    if left:
        raise ValueError(f"SQL template placeholders left unfilled: {', '.join(left)}")
    return sql


def strip_comments(sql: str) -> str:
    """``sql`` without ``--`` comments (quoted text kept) and the lines they leave blank."""
    out: list[str] = []
    i, quote = 0, ""
    while i < len(sql):
        c = sql[i]
        if quote:
            out.append(c)
            if c == "\\" and quote == "'":
                out.append(sql[i + 1 : i + 2])
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
            out.append(c)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        else:
            out.append(c)
        i += 1
    lines = [line.rstrip() for line in "".join(out).splitlines()]
    return "\n".join(line for line in lines if line.strip()) + "\n"
