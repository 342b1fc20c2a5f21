"""The transcription of Grafana's side (tests/grafana/datasource.py) against the expansions
grafana/clickhouse-datasource v4.20.0 tests in pkg/macros/macros_test.go, and the rule that
the dashboards use only macros it transcribes."""

from __future__ import annotations

import re

import pytest

from chainmap_otel.grafana import dashboards
from chainmap_otel.tagging.active import example_catalog_path
from chainmap_otel.tagging.definitions import load_catalog
from tests.grafana.datasource import MACROS, QueryContext, expand_macros, interpolate_variables

CTX = QueryContext(from_s=1415792726, to_s=1447328726, interval_s=60)


@pytest.mark.parametrize(
    ("raw", "expanded"),
    [
        (
            "select * from foo where $__timeFilter(cast(sth as timestamp) )",
            "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND "
            "cast(sth as timestamp) <= toDateTime(1447328726)",
        ),
        (
            "select * from foo where ( date >= $__fromTime ) and ( date <= $__toTime ) limit 100",
            "select * from foo where ( date >= toDateTime(1415792726) ) and "
            "( date <= toDateTime(1447328726) ) limit 100",
        ),
        (
            "SELECT $__timeInterval($__fromTime) AS from_time",
            "SELECT toStartOfInterval(toDateTime(toDateTime(1415792726)), INTERVAL 60 second) "
            "AS from_time",
        ),
        (
            "select * from foo where $__timeFilter(coalesce(closed_at, $__toTime))",
            "select * from foo where coalesce(closed_at, toDateTime(1447328726)) >= "
            "toDateTime(1415792726) AND coalesce(closed_at, toDateTime(1447328726)) <= "
            "toDateTime(1447328726)",
        ),
        (
            r"select * from foo where msg = 'it\'s -- fine' and $__fromTime",
            r"select * from foo where msg = 'it\'s -- fine' and toDateTime(1415792726)",
        ),
        (
            "select * from foo where msg = 'it''s' and $__fromTime",
            "select * from foo where msg = 'it''s' and toDateTime(1415792726)",
        ),
        ("SELECT $__interval_s", "SELECT 60"),
        (
            "SELECT $__timeGroup(ts, '5m')",
            "SELECT toStartOfInterval(toDateTime(ts), INTERVAL 300 second)",
        ),
    ],
)
def test_macro_expansion_matches_the_datasource(raw: str, expanded: str) -> None:
    assert expand_macros(raw, CTX) == expanded


def test_comments_are_blanked_and_their_macros_not_expanded() -> None:
    assert expand_macros("SELECT 1 -- $__fromTime\n", CTX) == "SELECT 1 " + " " * 14 + "\n"
    assert expand_macros("SELECT /* $__toTime */ 2", CTX) == "SELECT " + " " * 15 + " 2"


def test_a_macro_with_the_wrong_arguments_fails() -> None:
    with pytest.raises(ValueError, match="expected 1 argument"):
        expand_macros("SELECT $__timeFilter(a, b)", CTX)


def test_template_variables() -> None:
    sql = "x = ${chain:sqlstring} AND y = '$chain' AND z = [[chain]] AND $unknown"
    assert interpolate_variables(sql, {"chain": "o'b"}) == (
        "x = 'o''b' AND y = 'o'b' AND z = o'b AND $unknown"
    )


def test_the_dashboards_use_only_transcribed_macros_and_known_variables() -> None:
    catalog = load_catalog(example_catalog_path())
    for name, build in dashboards.DASHBOARDS.items():
        board = build(catalog, "otel")
        variables = {v["name"] for v in board["templating"]["list"]}
        for panel in board["panels"]:
            for target in panel["targets"]:
                sql = target["rawSql"]
                for macro in re.findall(r"\$__(\w+)", sql):
                    assert macro in MACROS, (name, macro)
                for variable in re.findall(r"\$\{(\w+)", sql):
                    assert variable in variables, (name, variable)
                assert "--" not in sql and "/*" not in sql, f"{name}: a comment in the SQL"
                assert "{{" not in sql, f"{name}: a fragment left unfilled"
