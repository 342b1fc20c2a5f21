"""Text is text in the registry: any Unicode (non-BMP included) goes in and comes back byte
for byte; text no store keeps (NUL, unpaired surrogates) and numbers out of range are
refused naming the field, before anything is stored."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chainmap_otel.errors import ChainDefinitionError
from chainmap_otel.registry import ChainRegistry
from chainmap_otel.tagging.definitions import load_definitions, parse_catalog

CART = "Checkout 🛒"
#: Every plane: ASCII, Latin-1, BMP (CJK, RTL, the line separators), astral (emoji, a
#: flag of two regional indicators, a ZWJ family, a musical symbol), combining marks.
EVERY_PLANE = "a é 中文 עברית \u2028\u2029 🛒 🇫🇷 👨‍👩‍👧 𝄞 e\u0301 \U0010fffd \x7f\x85"


def definition(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "CK",
        "name": CART,
        "category": "api",
        "description": EVERY_PLANE,
        "entry": [
            {
                "service": "checkout-🛒",
                "kind": "server",
                "attributes": {"cart.emoji 🛒": "🛒*", "plain": {"regex": "^𝄞+$"}},
            }
        ],
        "expected": {"edges": ["checkout-🛒 -> pay-💳"]},
    }
    base.update(changes)
    return base


def test_non_bmp_text_round_trips_byte_for_byte(registry: ChainRegistry) -> None:
    raw = definition()
    stored = registry.create(raw)
    assert stored.definition == raw
    again = registry.get("CK")
    assert again is not None and again.definition == raw
    (chain,) = registry.catalog().chains
    assert chain.name == CART and chain.description == EVERY_PLANE
    assert chain.name.encode() == CART.encode()
    assert chain.entry[0].service is not None and chain.entry[0].service.value == "checkout-🛒"
    assert chain.expected is not None and chain.expected.edges == (("checkout-🛒", "pay-💳"),)
    pulled = yaml.safe_load(registry.pull())
    assert pulled["chains"] == [raw]


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"name": "Checkout \ud83d"}, "definition: name:", "unpaired surrogate (U+D83D"),
        ({"description": "x\udee2"}, "definition: description:", "unpaired surrogate"),
        ({"name": "a\x00b"}, "definition: name:", "NUL character"),
        ({"id": "C\x00K"}, "definition: id:", "NUL character"),
        (
            {"entry": [{"service": "s", "attributes": {"k\ud800": "v"}}]},
            "definition: entry[0].attributes.k",
            "unpaired surrogate",
        ),
        ({"slo": {"latency_ms": {"p95": 10**400}}}, "definition: slo.latency_ms.p95:", "range"),
        (
            {"slo": {"latency_ms": {"p95": float("inf")}}},
            "definition: slo.latency_ms.p95:",
            "finite",
        ),
        (
            {"slo": {"latency_ms": {"p99": float("nan")}}},
            "definition: slo.latency_ms.p99:",
            "finite",
        ),
        (
            {"slo": {"latency_ms": {"p95": 1e300}}},
            "definition: slo.latency_ms.p95:",
            "up to 86400000",
        ),
        ({"slo": {"error_rate": 10**400}}, "definition: slo.error_rate:", "range"),
        ({"slo": {"window": "9" * 30 + "d"}}, "definition: slo.window:", "at most 3660d"),
    ],
)
def test_invalid_text_and_numbers_are_refused_before_anything_is_stored(
    registry: ChainRegistry, changes: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ChainDefinitionError) as caught:
        registry.create(definition(**changes))
    (problem,) = caught.value.problems
    assert problem.startswith(field) and reason in problem, problem
    problem.encode("utf-8")  # the message itself is always text
    assert registry.current() == []


def test_a_registry_that_was_written_through_an_old_path_still_answers(
    registry: ChainRegistry,
) -> None:
    """Definitions are validated as data: JSON's surrogate-pair escapes never come back as
    two lone surrogates (what json.dumps followed by PyYAML made of an emoji)."""
    registry.create(definition(name=CART))
    assert registry.catalog().chains[0].name == CART


def test_yaml_surrogate_pair_escapes_become_one_character(tmp_path: Any) -> None:
    text = (
        'version: 1\nchains:\n  - id: CK\n    name: "Checkout \\ud83d\\uded2"\n'
        "    category: api\n    entry: [{service: checkout}]\n"
    )
    assert parse_catalog(text).chains[0].name == "Checkout \U0001f6d2"
    path = tmp_path / "chains.yaml"
    path.write_text(text, encoding="utf-8")
    catalog, raw = load_definitions(path)
    assert catalog.chains[0].name == raw[0]["name"] == "Checkout \U0001f6d2"
    lone = text.replace("\\ud83d\\uded2", "\\ud83d")
    with pytest.raises(ChainDefinitionError) as caught:
        parse_catalog(lone, source="chains.yaml")
    assert caught.value.problems[0].startswith(
        "chains.yaml:4: chains[0].name: contains an unpaired"
    )
