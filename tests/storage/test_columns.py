"""Attribute values render exactly as the Collector's pdata ``AsString`` renders them."""

from __future__ import annotations

import math

import pytest

from chainmap_otel.storage.columns import attribute_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-7, "-7"),
        (1.0, "1"),
        (-3.0, "-3"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (1e-5, "0.00001"),
        (1.5e-7, "1.5e-7"),
        (1e21, "1e+21"),
        (2.5e22, "2.5e+22"),
        # The current Collector (pdata >= v0.151): NaN/Infinity/-Infinity.
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (math.nan, "NaN"),
        ([1.5, math.nan, -math.inf], '[1.5,"NaN","-Infinity"]'),
        (b"\x00\xff", "AP8="),
        ([1, 2], "[1,2]"),
        ([1.0, 2.5], "[1,2.5]"),
        # No HTML escaping (pdata >= v0.152); U+2028/U+2029 stay escaped as Go does.
        (["a<b", "c&d", "x>y"], '["a<b","c&d","x>y"]'),
        (["\u2028"], '["\\u2028"]'),
        ((True, False), "[true,false]"),
        ({"b": 1, "a": [None, "x"]}, '{"a":[null,"x"],"b":1}'),
        ("ünïcode ✓", "ünïcode ✓"),
    ],
)
def test_attribute_text_matches_the_collector(value: object, expected: str) -> None:
    assert attribute_text(value) == expected
