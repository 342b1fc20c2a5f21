"""SQL templates rendered one way: comments out first (a fragment spanning lines never lands
in a comment, where its tail would become live SQL), fragments then the database, and no
placeholder left unfilled."""

from __future__ import annotations

import pytest

from chainmap_otel.storage.sqltext import render_sql

TEMPLATE = """-- Reads {{db}}.otel_traces; {{filter}} narrows them.
SELECT count() FROM {{db}}.otel_traces -- by {{filter}}
WHERE {{filter}} AND SpanName != '-- not a comment {{kept}}'
"""


def test_comments_go_before_fragments_and_quoted_text_stays() -> None:
    sql = render_sql(TEMPLATE, "otel", filter="1\nOR 1 = 1", kept="x")
    assert sql == (
        "SELECT count() FROM otel.otel_traces\n"
        "WHERE 1\nOR 1 = 1 AND SpanName != '-- not a comment x'\n"
    )


def test_a_placeholder_left_unfilled_is_an_error_and_the_database_is_checked() -> None:
    with pytest.raises(ValueError, match="placeholders left unfilled: filter, kept"):
        render_sql(TEMPLATE, "otel")
    with pytest.raises(ValueError, match="database"):
        render_sql(TEMPLATE, "otel; DROP TABLE x", filter="1", kept="x")
