"""The OTTL generator, where the Collector cannot check it: golden output, YAML escaping,
statement layout, the glob translation against fnmatch, rules refused before any OTTL.

The real transform processor parses and runs the statements in test_ottl_collector.py."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
import yaml

from chainmap_otel.collector import collector_config, glob_to_re2, trace_statements
from chainmap_otel.errors import ChainDefinitionError
from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog, parse_catalog
from chainmap_otel.tagging.patterns import string_test

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def catalog() -> ChainCatalog:
    return load_catalog(FIXTURES / "catalog.yaml")


def test_generated_config_is_the_golden_file(catalog: ChainCatalog) -> None:
    expected = (FIXTURES / "catalog.expected.yaml").read_text(encoding="utf-8")
    assert collector_config(catalog) == expected, (
        "regenerate with: chainmap collector-config --chains tests/collector/fixtures/catalog.yaml "
        "--output tests/collector/fixtures/catalog.expected.yaml"
    )


def confmap_unescape(text: str) -> str:
    """What the Collector's confmap makes of a string value without ``${...}``: ``$$`` is ``$``."""
    assert "${" not in text.replace("$$", "")
    return text.replace("$$", "$")


def test_generated_yaml_reads_back_as_the_statements(catalog: ChainCatalog) -> None:
    document = yaml.safe_load(collector_config(catalog))
    processor = document["processors"]["transform/chains"]
    assert processor["error_mode"] == "ignore"
    read = [confmap_unescape(s) for s in processor["trace_statements"]]
    assert read == trace_statements(catalog)
    assert any("${id}$$" in s for s in read)


def test_four_pushes_per_chain_then_the_entry_marks_then_one_name_per_chain(
    catalog: ChainCatalog,
) -> None:
    # The real Collector parses and runs them (test_configs.py, test_ottl_collector.py).
    statements = trace_statements(catalog)
    assert len(statements) == 4 * len(catalog) + 2 + len(catalog)
    assert all(" where " in s for s in statements)
    marks = statements[4 * len(catalog) : 4 * len(catalog) + 2]
    assert [m.split(",")[0] for m in marks] == [
        'set(span.attributes["chain.entry"]',
        'set(span.attributes["chain.tagged_by"]',
    ]


@pytest.mark.parametrize(
    ("glob", "texts"),
    [
        ("/api/v1/*", ["/api/v1/", "/api/v1/x/y", "/api/v1", "x/api/v1/", "/api/v1/\nz"]),
        ("a?c", ["abc", "a\nc", "ac", "abbc"]),
        ("[!x]y", ["ay", "xy", "y", "\ny"]),
        ("[]]x", ["]x", "x", "]]x"]),
        ("[a-c-]", ["b", "-", "d"]),
        ("a[", ["a[", "a"]),
        ("a.b+(c)|{d}^$\\", ["a.b+(c)|{d}^$\\", "aXb+(c)|{d}^$\\"]),
        ("**x", ["x", "yyx", "xy"]),
        ("[!]a]x", ["bx", "]x", "ax", "x"]),
        ("\x01*", ["\x01", "\x01a", "a"]),
    ],
)
def test_globs_become_anchored_re2_matching_like_fnmatch(glob: str, texts: list[str]) -> None:
    import re2

    regex = re2.compile(glob_to_re2(glob))
    rule_engine = string_test("glob", glob)
    for text in texts:
        expected = fnmatch.fnmatchcase(text, glob)  # the reference the one translation follows
        assert (regex.search(text) is not None) == rule_engine(text) == expected, (glob, text)


def test_rules_ottl_cannot_express_are_refused_by_the_loader_naming_the_field() -> None:
    # RE2 is the rule engine's regex dialect, so patterns OTTL's IsMatch (Go regexp, RE2
    # syntax) could not run are refused when the chains file loads, before any OTTL exists.
    with pytest.raises(ChainDefinitionError) as raised:
        parse_catalog(
            """\
    chains:
      - id: OK1
        name: fine
        category: api
        entry: [{service: gw}]
      - id: LOOK
        name: lookahead
        category: api
        entry:
          - service: gw
          - route: {regex: "^/api/(?!internal)"}
      - id: RANGE
        name: empty range
        category: api
        entry: [{name: "job-[z-a]"}]
    """,
            source="chains.yaml",
        )
    problems = raised.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("chains.yaml:")
    assert "chains[1].entry[1].route: bad regex" in problems[0] and "lookaround" in problems[0]
    assert "chains[2].entry[0].name: bad glob 'job-[z-a]'" in problems[1]
