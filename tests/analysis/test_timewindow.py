"""Window and limit errors carry the logical parameter, the value and what is allowed.

The surfaces name the parameter their own way (tests/cli, tests/server); here only the
attributes count, never the message text.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chainmap_otel.analysis.drift import history_window
from chainmap_otel.analysis.timewindow import (
    MAX_WINDOW_DAYS,
    SAMPLE_CAP_RANGE,
    check_limit,
    parse_window,
)
from chainmap_otel.errors import ParameterError, QueryError

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "parameter", "value"),
    [
        ("bogus", None, "since", "bogus"),
        (None, "later", "until", "later"),
        (f"{MAX_WINDOW_DAYS + 1}d", None, "since", f"{MAX_WINDOW_DAYS + 1}d"),
        ("0001-01-01T00:00:00Z", None, "since", "0001-01-01T00:00:00Z"),
        (None, "9999-12-31T00:00:00Z", "until", "9999-12-31T00:00:00Z"),
        ("1970-01-01T00:00:00Z", "2262-01-01T00:00:00Z", "since", "1970-01-01T00:00:00Z"),
    ],
)
def test_a_bad_bound_names_itself(
    since: str | None, until: str | None, parameter: str, value: str
) -> None:
    with pytest.raises(ParameterError) as refused:
        parse_window(since, until, now=NOW)
    assert (refused.value.parameter, refused.value.value) == (parameter, value)
    assert refused.value.allowed
    assert isinstance(refused.value, QueryError)


def test_an_inverted_window_names_both_ends() -> None:
    with pytest.raises(ParameterError) as refused:
        parse_window("2h", "3h", now=NOW)
    error = refused.value
    assert (error.parameter, error.value, error.related) == ("since", "2h", {"until": "3h"})


def test_drift_history_is_its_own_parameter() -> None:
    with pytest.raises(ParameterError) as refused:
        history_window("ages", None)
    assert (refused.value.parameter, refused.value.value) == ("history", "ages")
    with pytest.raises(ParameterError) as refused:
        history_window("7d", "soon")
    assert refused.value.parameter == "until"


def test_a_limit_out_of_range_carries_the_range() -> None:
    assert check_limit("sample_cap", 5, SAMPLE_CAP_RANGE) == 5
    with pytest.raises(ParameterError) as refused:
        check_limit("sample_cap", 0, SAMPLE_CAP_RANGE)
    error = refused.value
    assert (error.parameter, error.value, error.allowed) == ("sample_cap", 0, "1 to 100000")


def test_each_surface_spells_the_parameter() -> None:
    with pytest.raises(ParameterError) as refused:
        parse_window("2h", "3h", now=NOW)
    flags = refused.value.describe(lambda name: f"--{name}")
    assert flags.startswith("--since '2h' is not before --until '3h'")
    assert str(refused.value).startswith("since '2h' is not before until '3h'")


def test_the_environment_travels_with_the_window_and_is_bounded() -> None:
    now = datetime(2025, 1, 31, 12, tzinfo=UTC)
    window = parse_window("1h", None, now=now, environment=" prod ")
    assert window.environment == "prod"
    assert window.params()["environment"] == "prod"
    assert window.ending(60).environment == "prod"
    assert window.to_json()["environment"] == "prod"
    assert "environment" not in parse_window("1h", None, now=now).to_json()
    assert window.within("").params()["environment"] == ""
    for bad in ("x" * 129, "prod\nstaging", "a\x00b"):
        with pytest.raises(ParameterError) as caught:
            parse_window("1h", None, now=now, environment=bad)
        assert caught.value.parameter == "environment"
