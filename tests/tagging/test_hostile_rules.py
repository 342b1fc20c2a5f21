"""Rules and chains files written to hurt: catastrophic regexes, YAML bombs, huge values.

The rule engine runs on every span start of a service, so a pattern must not be able
to stall it (RE2 is linear time) and must classify exactly as ClickHouse's ``match()``
does at query time. The chains loader runs at service start-up and in ``chainmap chains
validate``: a hostile file gets a clear one-line error, never a hang or a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel.errors import ChainDefinitionError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import parse_catalog
from chainmap_otel.tagging.patterns import glob_to_regex, string_test
from chainmap_otel.tagging.processor import ChainSpanProcessor

CHAINMAP = str(Path(sys.executable).parent / "chainmap")
# Generous: RE2 answers in microseconds; Python's re needs seconds to minutes here.
PROMPT_S = 30.0


def chain_yaml(entry: str) -> str:
    return f"chains:\n  - id: R1\n    name: r\n    category: api\n    entry: {entry}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ChainDefinitionError) as info:
        parse_catalog(text, source="chains.yaml")
    return info.value.problems


def test_catastrophic_regex_classifies_a_near_match_promptly() -> None:
    catalog = parse_catalog(chain_yaml("{service: api, route: {regex: '^(a+)+$'}}"))
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "api"}))
    provider.add_span_processor(ChainSpanProcessor(catalog))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    # 28 characters take Python's re seconds; 40 would take it days.
    routes = {"near": "a" * 27 + "!", "far": "a" * 40 + "!", "match": "a" * 28}

    def serve_requests() -> None:
        for route in routes.values():
            with tracer.start_as_current_span(
                "GET", kind=SpanKind.SERVER, attributes={"http.route": route}
            ):
                pass

    worker = threading.Thread(target=serve_requests, daemon=True)
    worker.start()
    worker.join(PROMPT_S)
    assert not worker.is_alive(), "the rule engine backtracked on a near-match route"
    by_route = {
        span.attributes["http.route"]: span.attributes for span in exporter.get_finished_spans()
    }  # type: ignore[index]
    assert "chain.id" not in by_route[routes["near"]]
    assert "chain.id" not in by_route[routes["far"]]
    assert by_route[routes["match"]]["chain.id"] == "R1"
    provider.shutdown()


@pytest.mark.parametrize(
    ("pattern", "why"),
    [("(a)\\1", "invalid escape sequence"), ("^(?!/health)", "invalid perl operator")],
)
def test_patterns_re2_rejects_fail_validation_with_line_and_field(pattern: str, why: str) -> None:
    found = problems(chain_yaml(f"[{{route: {{regex: '{pattern}'}}}}]"))
    assert len(found) == 1
    assert found[0].startswith("chains.yaml:5: chains[0].entry[0].route: bad regex")
    assert why in found[0] and "RE2" in found[0]


def test_glob_with_an_impossible_class_fails_validation() -> None:
    (found,) = problems(chain_yaml("[{route: '/x/[z-a]*'}]"))
    assert found.startswith("chains.yaml:5: chains[0].entry[0].route: bad glob '/x/[z-a]*'")


PARITY_PATTERNS = [
    ("regex", "^/api/v[0-9]+/"),
    ("regex", "a.b"),
    ("regex", "(?i)^get"),
    ("regex", "(?-s)a.b"),
    ("regex", "^(a+)+$"),
    ("glob", "/api/*/orders"),
    ("glob", "/x/[!0-9]?"),
    ("glob", "/x/[]a]*"),
    ("glob", "a.b+c(d)*"),
]
PARITY_TEXTS = [
    "/api/v1/orders",
    "/api/v12/x",
    "/api/vx/orders",
    "a\nb",
    "axb",
    "GET /x",
    "get",
    "aaaa",
    "/x/ab",
    "/x/1b",
    "/x/]z",
    "a.b+c(d)",
    "a.b+c(d)zz",
    "axb+c(d)",
]


def test_rule_patterns_match_exactly_like_clickhouse(chdb_store: TraceStore) -> None:
    """The processor's answer equals ClickHouse match() for every pattern/text pair."""
    for kind, value in PARITY_PATTERNS:
        test = string_test(kind, value)
        regex = value if kind == "regex" else "(?s)" + glob_to_regex(value)
        rows = chdb_store.query(
            "SELECT t, match(t, {p:String}) FROM (SELECT arrayJoin({texts:Array(String)}) AS t)",
            {"p": regex, "texts": PARITY_TEXTS},
        ).result_rows
        engine = {text: bool(hit) for text, hit in rows}
        assert engine == {text: test(text) for text in PARITY_TEXTS}, (kind, value)


BILLION_LAUGHS = """\
version: 1
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
chains:
  - id: A1
    name: bomb
    category: api
    entry: [{attributes: {? *i : x}}]
"""


def test_billion_laughs_is_refused_at_the_first_alias() -> None:
    (found,) = problems(BILLION_LAUGHS)
    assert found.startswith("chains.yaml:3: not valid YAML: YAML aliases (*a) are not allowed")


@pytest.mark.parametrize(
    "text",
    [
        "chains: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "chains:\n" + "".join("  " * i + "- x:\n" for i in range(10_000)),
    ],
    ids=["flow", "block"],
)
def test_deep_nesting_is_refused_without_a_traceback(text: str) -> None:
    (found,) = problems(text)
    assert "nested deeper than 64 levels" in found


def test_errors_never_print_a_huge_value() -> None:
    huge = "x" * 1_000_000
    found = problems(chain_yaml(f"[{{route: /x}}]\n    criticality: {huge}"))
    assert found and all(len(line) < 300 for line in found)
    assert "..." in found[0]


def test_chains_validate_reports_a_bomb_on_one_line(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    deep = tmp_path / "deep.yaml"
    deep.write_text("chains: " + "[" * 10_000 + "]" * 10_000 + "\n")
    regex = tmp_path / "regex.yaml"
    regex.write_text(chain_yaml("[{route: {regex: '(?<=x)y'}}]"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAINMAP_", "OTEL_"))}
    for path, expected in (
        (bomb, "bomb.yaml:3: not valid YAML: YAML aliases"),
        (deep, "deep.yaml:1: not valid YAML: nested deeper"),
        (regex, "regex.yaml:5: chains[0].entry[0].route: bad regex '(?<=x)y'"),
    ):
        done = subprocess.run(
            [CHAINMAP, "chains", "validate", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert expected in done.stderr, done.stderr
