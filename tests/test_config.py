"""Every ``CHAINMAP_*`` variable: a malformed or out-of-range value is logged and the default
used, as config.py promises (``CHAINMAP_SERVE_QUEUE_SPANS=0`` once ended in a ValueError)."""

from __future__ import annotations

import logging

import pytest

from chainmap_otel import config
from chainmap_otel.server.app import new_span_writer
from chainmap_otel.storage.store import TraceStore

BOUNDED = [v for v in config.ALL_ENV_VARS if v.low is not None or v.high is not None]


@pytest.mark.parametrize("var", BOUNDED, ids=[v.name for v in BOUNDED])
def test_a_value_outside_the_declared_range_is_the_default_with_a_warning(
    var: config.EnvVar, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    read = config.env_seconds if var.default[-1:].isalpha() else config.env_float
    default = read(var)
    outside = var.high + 1 if var.high is not None else (var.low or 0) - 1
    monkeypatch.setenv(var.name, f"{outside:g}")
    with caplog.at_level(logging.WARNING, logger="chainmap_otel.config"):
        assert read(var) == default
    assert f"{var.name}='{outside:g}' is outside {var.bounds}; using the default" in caplog.text
    inside = var.low if var.low is not None else var.high
    monkeypatch.setenv(var.name, f"{inside:g}")
    assert read(var) == inside


def test_an_unreadable_number_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.CHAINMAP_SERVE_QUEUE_SPANS.name, "lots")
    assert config.env_int(config.CHAINMAP_SERVE_QUEUE_SPANS) == 100_000
    monkeypatch.setenv(config.CHAINMAP_QUERY_TIMEOUT_S.name, "nan")
    assert config.env_float(config.CHAINMAP_QUERY_TIMEOUT_S) == 60.0


def test_serve_queue_of_zero_spans_warns_and_uses_the_default(
    store: TraceStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHAINMAP_SERVE_QUEUE_SPANS", "0")
    with caplog.at_level(logging.WARNING, logger="chainmap_otel.config"):
        writer = new_span_writer(store)  # a ValueError before the range was declared
    assert writer.max_queued_spans == 100_000
    assert "CHAINMAP_SERVE_QUEUE_SPANS='0' is outside 1..; using the default 100000" in caplog.text


@pytest.fixture
def store(store_factory: object) -> TraceStore:
    return store_factory()  # type: ignore[operator,no-any-return]
