"""The Collector the collector tests run, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.collector import build_collector


@pytest.fixture(scope="session")
def otelcol() -> Path:
    """``.build/otelcol-chainmap``, built by ``make collector`` on first use."""
    return build_collector()
