"""The OTTL generator: golden output, OTTL's grammar, and agreement with the rule engine."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel.collector import collector_config, glob_to_re2, quote, trace_statements
from chainmap_otel.errors import ChainDefinitionError
from chainmap_otel.tagging.active import MAX_STACK_DEPTH
from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog, parse_catalog
from chainmap_otel.tagging.patterns import string_test
from chainmap_otel.tagging.processor import ChainSpanProcessor
from tests.collector.ottl_grammar import (
    OTTLSyntaxError,
    SpanRecord,
    Statement,
    _go_unquote,
    parse_statement,
    run_statements,
)

FIXTURES = Path(__file__).parent / "fixtures"
CHAIN_KEYS = ("chain.id", "chain.ids", "chain.name", "chain.category", "chain.entry")
CHAIN_KEYS += ("chain.entry_ids",)
KINDS = {
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "internal": SpanKind.INTERNAL,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}


@pytest.fixture(scope="module")
def catalog() -> ChainCatalog:
    return load_catalog(FIXTURES / "catalog.yaml")


@pytest.fixture(scope="module")
def program(catalog: ChainCatalog) -> list[Statement]:
    return [parse_statement(s) for s in trace_statements(catalog)]


def spans() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load((FIXTURES / "spans.yaml").read_text())["spans"]
    return loaded


def sdk_tags(catalog: ChainCatalog, span: dict[str, Any]) -> dict[str, Any]:
    """What ChainSpanProcessor gives this span in a real SDK (baggage as from a remote parent)."""
    resource = Resource({"service.name": span["service"]} if span["service"] else {})
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(ChainSpanProcessor(catalog))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = Context()
    if span.get("baggage"):
        context = baggage.set_baggage("chain.ids", span["baggage"], context)
    tracer = provider.get_tracer("agreement")
    tracer.start_span(
        span["name"], context=context, kind=KINDS[span["kind"]], attributes=span["attributes"]
    ).end()
    provider.shutdown()
    (finished,) = exporter.get_finished_spans()
    return {k: v for k, v in (finished.attributes or {}).items() if k in CHAIN_KEYS}


def ottl_tags(program: list[Statement], span: dict[str, Any]) -> dict[str, Any]:
    """What the transform processor gives the same span, as the Collector receives it."""
    attributes = dict(span["attributes"])
    if span.get("baggage"):
        attributes["chain.ids"] = span["baggage"]  # a baggage span processor's copy
    record = SpanRecord(
        resource={"service.name": span["service"]} if span["service"] else {},
        kind=f"SPAN_KIND_{span['kind'].upper()}",
        name=span["name"],
        attributes=attributes,
    )
    errors = run_statements(program, record)
    assert not errors, f"the Collector would log errors for {span}: {errors}"
    return {k: v for k, v in record.attributes.items() if k in CHAIN_KEYS}


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


def test_every_generated_statement_is_in_ottl_grammar(catalog: ChainCatalog) -> None:
    statements = trace_statements(catalog)
    assert len(statements) == 4 * len(catalog) + 1 + len(catalog)
    for text in statements:
        parsed = parse_statement(text)
        assert parsed.editor.name in ("set", "merge_maps")
        assert parsed.where is not None


@pytest.mark.parametrize(
    "text",
    [
        'set(span.attributes["a"], "b") where',
        'set(span.attributes["a"], "b"',
        'set(span.attributes["a"] "b")',
        'Set(span.attributes["a"], "b")',
        'set(span.attributes["a"], "b")[0]',
        'set(span.attributes["a"], "b") where span.name == "x" and',
        'set(span.attributes["a"], "b") where span.name = "x"',
        'set(span.attributes["a"], "b") where (span.name == "x"',
        'set(span.attributes["a"], "unterminated) where span.name == "x"',
        'set(span.attributes["a"], "b") where isMatch(span.name, "x")',
        'set(span.attributes["a"], "b") where span.name == "x" or or span.name == "y"',
        'set(span.attributes["a"], "bad \\q escape")',
        'set(span.attributes["a"], "b") where span.name == "x" extra',
        'set(span.attributes[a], "b")',
        "set(span.attributes['a'], \"b\")",
        'set(span.attributes["a"], {"k" "v"})',
        'set(span.attributes["a"], "b") where IsMatch(span.name, "x") == ',
        "",
    ],
)
def test_the_grammar_rejects_malformed_statements(text: str) -> None:
    with pytest.raises(OTTLSyntaxError):
        parse_statement(text)


def test_the_grammar_accepts_ottl_forms_the_generator_does_not_use() -> None:
    for text in (
        'set(span.attributes["x"], span.attributes["y"] + 1 * (2 - 3))',
        'set(attributes["x"], 0x0a) where span.kind != SPAN_KIND_CLIENT or not true',
        'merge_maps(span.attributes, ParseJSON(span.attributes["j"])["k"], "insert")',
        'delete_key(span.attributes, "x") where IsMatch(span.name, pattern="a.*")',
        'set(span.attributes["l"], [1, 2.5, "x", nil, {"k": false}])',
    ):
        parse_statement(text)


@pytest.mark.parametrize(
    "text", ["", "plain", 'q"uote', "back\\slash", "tab\tnew\nline\r", "nul\x00 del\x7f", "ünï 字"]
)
def test_string_literals_unquote_to_the_original(text: str) -> None:
    assert _go_unquote(quote(text)) == text
    statement = parse_statement(f"set(span.attributes[{quote(text)}], {quote(text)})")
    assert statement.editor.args[1][1].value == text


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


def test_collector_and_rule_engine_agree_on_every_fixture_span(
    catalog: ChainCatalog, program: list[Statement]
) -> None:
    matched: set[str] = set()
    untagged = 0
    for span in spans():
        expected = sdk_tags(catalog, span)
        assert ottl_tags(program, span) == expected, span
        matched.update(str(expected.get("chain.entry_ids", "")).split(","))
        untagged += not expected
    # The fixtures are only worth something if every chain matches and spans miss too.
    assert set(catalog.ids) <= matched
    assert untagged >= 10


def test_each_chain_condition_matches_exactly_where_the_classifier_does(
    catalog: ChainCatalog,
) -> None:
    from chainmap_otel.collector.ottl import chain_condition
    from chainmap_otel.tagging.rules import Classifier

    classifier = Classifier(catalog)
    conditions = {
        chain.id: parse_statement(f'set(span.attributes["m"], true) where {chain_condition(chain)}')
        for chain in catalog
    }
    for span in spans():
        if span["service"] is None:
            continue
        expected = classifier.classify(
            span["service"], KINDS[span["kind"]], span["name"], span["attributes"]
        )
        matched = []
        for chain_id, statement in conditions.items():
            record = SpanRecord(
                {"service.name": span["service"]},
                f"SPAN_KIND_{span['kind'].upper()}",
                span["name"],
                dict(span["attributes"]),
            )
            assert not run_statements([statement], record), span
            if record.attributes.get("m") is True:
                matched.append(chain_id)
        assert matched == expected, span


def test_several_matching_chains_push_in_file_order(program: list[Statement]) -> None:
    span = {
        "service": "gw",
        "kind": "server",
        "name": "POST",
        "attributes": {"http.route": "/api/v1/trading", "http.method": "POST"},
    }
    assert ottl_tags(program, span) == {
        "chain.id": "N1",
        "chain.ids": "S1,N1",
        "chain.name": "Trading via the gateway",
        "chain.category": "trading",
        "chain.entry": True,
        "chain.entry_ids": "S1,N1",
    }


def test_spans_tagged_by_an_sdk_are_left_alone(program: list[Statement]) -> None:
    tagged = {
        "chain.id": "B1",
        "chain.ids": "B1",
        "chain.name": "API request",
        "chain.category": "api",
    }
    span = {
        "service": "gw",
        "kind": "server",
        "name": "GET",
        "attributes": {"http.route": "/api/v1/trading", "http.method": "GET", **tagged},
    }
    assert ottl_tags(program, span) == tagged


def test_unspecified_kind_counts_as_internal_like_the_query_time_classifier(
    catalog: ChainCatalog, program: list[Statement]
) -> None:
    from chainmap_otel.tagging.rules import Classifier

    attributes = {"url.path": "/items/7"}
    record = SpanRecord({"service.name": "any"}, "SPAN_KIND_UNSPECIFIED", "item", attributes)
    assert not run_statements(program, record)
    assert record.attributes["chain.ids"] == "S3"
    unknown_kind: Any = None
    assert Classifier(catalog).classify("any", unknown_kind, "item", attributes) == ["S3"]


def test_a_catalog_deeper_than_a_stack_stops_at_the_depth_like_the_processor() -> None:
    count = MAX_STACK_DEPTH + 2
    text = "chains:\n" + "".join(
        f"  - {{id: D{i}, name: deep {i}, category: batch, entry: [{{service: deep}}]}}\n"
        for i in range(count)
    )
    catalog = parse_catalog(text)
    program = [parse_statement(s) for s in trace_statements(catalog)]
    span = {"service": "deep", "kind": "internal", "name": "work", "attributes": {}}
    expected = sdk_tags(catalog, span)
    assert expected["chain.ids"] == ",".join(f"D{i}" for i in range(MAX_STACK_DEPTH))
    assert ottl_tags(program, span) == expected


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


def test_a_user_regex_dot_matches_a_newline_in_the_collector_as_in_the_processor() -> None:
    catalog = parse_catalog(
        """
version: 1
chains:
  - id: NL
    name: Newline
    category: api
    entry:
      - service: svc
        name: {regex: "^place.order$"}
""",
        source="newline.yaml",
    )
    program = [parse_statement(s) for s in trace_statements(catalog)]
    span = {"service": "svc", "kind": "server", "name": "place\norder", "attributes": {}}
    assert sdk_tags(catalog, span).get("chain.id") == "NL"
    assert ottl_tags(program, span) == sdk_tags(catalog, span)
