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
        (math.inf, "json: unsupported value: +Inf"),
        (-math.inf, "json: unsupported value: -Inf"),
        (math.nan, "json: unsupported value: NaN"),
        (b"\x00\xff", "AP8="),
        ([1, 2], "[1,2]"),
        ([1.0, 2.5], "[1,2.5]"),
        (["a<b", "c&d"], '["a\\u003cb","c\\u0026d"]'),
        ((True, False), "[true,false]"),
        ({"b": 1, "a": [None, "x"]}, '{"a":[null,"x"],"b":1}'),
        ("ünïcode ✓", "ünïcode ✓"),
    ],
)
def test_attribute_text_matches_the_collector(value: object, expected: str) -> None:
    assert attribute_text(value) == expected
