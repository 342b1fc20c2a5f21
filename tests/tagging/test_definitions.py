from __future__ import annotations

from pathlib import Path

import pytest

from chainmap_otel.errors import ChainDefinitionError
from chainmap_otel.tagging.definitions import load_catalog, parse_catalog

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(ChainDefinitionError) as info:
        parse_catalog(text, source="chains.yaml")
    return info.value.problems


def test_example_file_loads_with_the_seed_chains() -> None:
    catalog = load_catalog(ROOT / "chains.example.yaml")
    assert {"A1", "A2", "B1", "B3", "C1", "C2"} <= set(catalog.ids)
    a2 = catalog.by_id["A2"]
    assert a2.category == "ai_decision"
    assert a2.slo is not None and a2.slo.latency_ms["p95"] == 1200
    assert a2.slo.window_seconds == 7 * 86400
    assert a2.expected is not None and ("ai-orchestration", "trading-engine") in a2.expected.edges


def test_every_problem_is_reported_with_file_line_field_and_fix() -> None:
    text = """\
chains:
  - id: A1
    name: one
    category: data_flow
    entry:
      - service: svc
        kind: serverr
  - id: A1
    name: dup
    category: data_flow
    entry:
      - route: /x
  - id: B2
    name: bad
    category: nonsense
    entry:
      - route: {regex: "(unclosed"}
        colour: red
  - id: C3
    name: empty
    category: api
    entry:
      - {}
  - id: C4
    name: 42
    category: api
    entry: []
    slo: {error_rate: 5, window: soon}
"""
    found = problems(text)
    joined = "\n".join(found)
    assert (
        "chains.yaml:7: chains[0].entry[0].kind: unknown value 'serverr'; use one of server"
        in joined
    )
    assert "chains.yaml:8: chains[1].id: duplicate id 'A1' (first defined at line 2)" in joined
    assert "chains.yaml:15: chains[2].category: unknown category 'nonsense'" in joined
    assert "chains.yaml:17: chains[2].entry[0].route: bad regex '(unclosed'" in joined
    assert "chains.yaml:18: chains[2].entry[0].colour: unknown key" in joined
    assert "chains[3].entry[0]: empty entry rule" in joined
    assert "chains[4].name: expected a string, got a number" in joined
    assert "chains[4].entry: expected a non-empty list" in joined
    assert "chains[4].slo.error_rate: expected the allowed error ratio between 0 and 1" in joined
    assert "chains[4].slo.window: bad duration 'soon'" in joined
    assert all(line.startswith("chains.yaml:") for line in found)


def test_yaml_syntax_error_names_the_line() -> None:
    found = problems("chains:\n  - id: A1\n    name: [unclosed\n")
    assert len(found) == 1
    assert found[0].startswith("chains.yaml:") and "not valid YAML" in found[0]


def test_wrong_types_and_missing_fields() -> None:
    joined = "\n".join(
        problems("chains:\n  - id: A1\n    entry: {service: x}\n  - just a string\n")
    )
    assert "chains[0].name: required field is missing" in joined
    assert "chains[0].category: required field is missing" in joined
    assert "chains[1]: expected a chain mapping, got a string" in joined


def test_bad_glob_and_unknown_top_level_key() -> None:
    joined = "\n".join(
        problems("chainz: []\n")
        + problems(
            "chains:\n  - id: A1\n    name: n\n    category: api\n    entry:\n      - route: '/x/[abc'\n"
        )
    )
    assert "expected a mapping with a 'chains:' list" in joined
    assert "bad glob '/x/[abc'" in joined


def test_missing_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        ChainDefinitionError, match=r"nope\.yaml: file not found; set CHAINMAP_CHAINS_FILE"
    ):
        load_catalog(tmp_path / "nope.yaml")


def test_single_entry_mapping_and_pattern_kinds() -> None:
    catalog = parse_catalog(
        """\
chains:
  - id: X1
    name: x
    category: trading
    entry:
      service: {glob: "trading-*"}
      name: {equals: "POST /orders"}
      attributes:
        tenant: {regex: "^acme"}
        flag: true
"""
    )
    rule = catalog.by_id["X1"].entry[0]
    assert rule.service is not None and rule.service.kind == "glob"
    assert rule.name is not None and rule.name.kind == "equals"
    assert dict(rule.attributes)["tenant"].kind == "regex"
    assert dict(rule.attributes)["flag"].value == "true"


def test_slo_overrides_per_environment_fall_back_to_the_chain() -> None:
    catalog = load_catalog(ROOT / "chains.example.yaml")
    b1 = catalog.by_id["B1"]
    assert b1.slo is not None
    staging = b1.in_environment("staging").slo
    assert staging is not None
    assert dict(staging.latency_ms) == {"p95": 2000.0, "p99": 4000.0}
    # What staging leaves out (the window) is the chain's.
    assert staging.error_rate == 0.05 and staging.window_seconds == 30 * 86400
    assert staging.environments == {}
    assert b1.in_environment("prod") is b1 and b1.in_environment("") is b1
    shown = b1.to_dict()["slo"]
    assert shown["environments"] == {
        "staging": {"latency_ms": {"p95": 2000.0, "p99": 4000.0}, "error_rate": 0.05}
    }
    assert "environments" not in b1.in_environment("staging").to_dict()["slo"]


def test_bad_environment_overrides_name_the_chain_and_the_key() -> None:
    text = """\
chains:
  - id: B1
    name: API
    category: api
    entry: {service: gw}
    slo:
      error_rate: 0.01
      environments:
        staging: {error_rate: 2, latency: {p95: 10}, latency_ms: {p97: 3}}
        prod: {}
        qa: fast
"""
    assert problems(text) == [
        "chains.yaml:9: chains[0].slo.environments.staging.latency: unknown key; allowed keys "
        "are latency_ms, error_rate, window",
        "chains.yaml:9: chains[0].slo.environments.staging.latency_ms.p97: unknown percentile; "
        "use one of p50, p75, p90, p95, p99",
        "chains.yaml:9: chains[0].slo.environments.staging.error_rate: expected the allowed "
        "error ratio between 0 and 1, e.g. 0.01 for a 99% objective",
        "chains.yaml:10: chains[0].slo.environments.prod: expected a mapping with latency_ms, "
        "error_rate or window, got an empty mapping",
        "chains.yaml:11: chains[0].slo.environments.qa: expected a mapping with latency_ms, "
        "error_rate or window, got a string",
    ]
    listed = text.split("    slo:")[0] + "    slo: {environments: [staging]}\n"
    assert problems(listed) == [
        "chains.yaml:6: chains[0].slo.environments: expected a mapping of environment name -> "
        "objectives, e.g. {staging: {error_rate: 0.05}}"
    ]
