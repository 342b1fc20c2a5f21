"""The analysis fixtures (fixture traces in a fresh chDB database, the test catalog)."""

from __future__ import annotations

from tests.analysis.conftest import catalog, load, now_ns, store

__all__ = ["catalog", "load", "now_ns", "store"]
