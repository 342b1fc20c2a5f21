"""Analysis fixtures: small JSON traces inserted into a fresh chDB database per test.

A fixture file holds ``spans`` with short readable ids (``"trace": "t1"``, ``"span": "a"``),
times in milliseconds relative to the fixture's base time (``start_ms``, ``duration_ms``;
``duration_ns`` where a duration must be exact to the nanosecond), and the expectations of
the case (``expected_edges`` as ``[source, target, type, calls, errors]``). Rows are inserted
in ``TRACE_COLUMNS`` order through ``TraceStore.insert_spans``, so the materialized views
fill the aggregates exactly as they do for real ingest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.support.catalog import ANALYSIS_CHAINS, chains_catalog, chains_yaml

FIXTURES = Path(__file__).parent / "fixtures"
MS = 1_000_000


def hex_id(name: str, length: int) -> str:
    if not name:
        return ""
    return hashlib.sha1(name.encode()).hexdigest()[:length]


def span_row(span: Mapping[str, Any], base_ns: int) -> tuple[Any, ...]:
    """One fixture span as an ``otel_traces`` row in TRACE_COLUMNS order."""
    start = base_ns + int(float(span.get("start_ms", 0)) * MS)
    links = span.get("links", [])  # [{"trace", "span"}]: span links to other fixture spans
    return (
        start,
        hex_id(span["trace"], 32),
        hex_id(span["trace"] + "/" + span["span"], 16),
        hex_id(span["trace"] + "/" + span["parent"], 16) if span.get("parent") else "",
        span.get("trace_state", ""),
        span.get("name", "op"),
        span.get("kind", "Internal"),
        span["service"],
        {"service.name": span["service"], **span.get("resource", {})},
        "fixture",
        "1",
        {str(k): str(v) for k, v in span.get("attributes", {}).items()},
        int(span["duration_ns"])
        if "duration_ns" in span
        else int(float(span.get("duration_ms", 1)) * MS),
        span.get("status", "Unset"),
        span.get("status_message", ""),
        [],
        [],
        [],
        [hex_id(link["trace"], 32) for link in links],
        [hex_id(link["trace"] + "/" + link["span"], 16) for link in links],
        ["" for _ in links],
        [{} for _ in links],
    )


def insert_spans(store: TraceStore, spans: Iterable[Mapping[str, Any]], base_ns: int) -> int:
    return store.insert_spans(rows=[span_row(span, base_ns) for span in spans])


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def now_ns() -> int:
    """Fixture base time: ten minutes ago, so the default one-hour window covers it."""
    return time.time_ns() - 10 * 60 * 1_000_000_000


@pytest.fixture
def store(store_factory: Callable[[], TraceStore]) -> TraceStore:
    return store_factory()


@pytest.fixture
def load(store: TraceStore, now_ns: int) -> Callable[[str], dict[str, Any]]:
    """Inserts the named fixture's spans at ``now_ns`` and returns the fixture."""

    def run(name: str) -> dict[str, Any]:
        data = load_fixture(name)
        insert_spans(store, data["spans"], now_ns)
        return data

    return run


CATALOG_YAML = chains_yaml(ANALYSIS_CHAINS)


@pytest.fixture
def catalog() -> ChainCatalog:
    return chains_catalog(ANALYSIS_CHAINS)
