"""Trace comparison on fixture traces in chDB: matching, added and missing spans, repeated
siblings, self time, errors on one side, folded ASGI spans, and the chain's typical trace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chainmap_otel.analysis.compare import compare_traces, self_time, typical_trace
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.analysis.trace_spans import whole_trace
from chainmap_otel.errors import QueryError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import hex_id

Load = Callable[[str], dict[str, Any]]


def compared(store: TraceStore, prefix: str) -> dict[str, Any]:
    return compare_traces(store, hex_id(f"{prefix}-a", 32), hex_id(f"{prefix}-b", 32))


def rows(result: dict[str, Any]) -> list[list[Any]]:
    """Each node as the fixtures write it: service, operation, depth, state, the two diffs."""
    return [
        [
            n["service"],
            n["operation"],
            n["depth"],
            n["state"],
            n["duration_diff_ms"],
            n["self_diff_ms"],
        ]
        for n in result["nodes"]
    ]


def test_an_added_call_is_added_with_its_subtree(load: Load, store: TraceStore) -> None:
    fixture = load("compare_added_span")
    result = compared(store, "added")
    expected = fixture["expected"]
    assert rows(result) == expected["nodes"]
    assert (result["matched"], result["added"], result["missing"]) == (4, 2, 0)
    added = [n for n in result["nodes"] if n["state"] == "added"]
    assert all(n["a"] is None and n["b"]["span_id"] for n in added)
    # The server span of the new call hangs under its client span, as in the trace.
    client = next(n for n in added if n["operation"] == "GET")
    assert next(n for n in added if n["operation"] == "GET /risk")["parent_id"] == client["id"]
    assert result["duration_diff_ms"] == 30.0
    assert result["a"]["compared_spans"] == 4 and result["b"]["compared_spans"] == 6
    assert result["a"]["root_operation"] == "POST /api/v1/orders"


def test_a_call_no_longer_made_is_missing(load: Load, store: TraceStore) -> None:
    expected = load("compare_missing_span")["expected"]
    result = compared(store, "missing")
    assert rows(result) == expected["nodes"]
    assert (result["matched"], result["added"], result["missing"]) == (2, 0, 2)
    missing = [n for n in result["nodes"] if n["state"] == "missing"]
    assert all(n["b"] is None and n["a"]["duration_ms"] > 0 for n in missing)
    # Matched by service+operation+path, not by position: the query starts 20 ms earlier in b.
    select = next(n for n in result["nodes"] if n["operation"] == "SELECT quotes")
    assert (select["a"]["start_ms"], select["b"]["start_ms"]) == (30.0, 10.0)


def test_repeated_siblings_pair_in_start_order(load: Load, store: TraceStore) -> None:
    expected = load("compare_repeated_siblings")["expected"]
    result = compared(store, "rep")
    assert rows(result) == expected["nodes"]
    selects = [n for n in result["nodes"] if n["operation"] == "SELECT positions"]
    assert [n["occurrence"] for n in selects] == [1, 2, 3]
    assert [n["a"]["span_id"] for n in selects] == [
        hex_id(f"rep-a/{s}", 16) for s in ("s1", "s2", "s3")
    ]
    assert [n["b"] and n["b"]["span_id"] for n in selects] == [
        hex_id("rep-b/s1", 16),
        hex_id("rep-b/s2", 16),
        None,
    ]
    root = result["nodes"][0]
    # Self time: the overlapping price calls count once (union), not twice.
    assert (root["a"]["self_ms"], root["b"]["self_ms"]) == (
        expected["self_ms"]["a"],
        expected["self_ms"]["b"],
    )


def test_errors_on_one_side_and_folded_asgi_spans(load: Load, store: TraceStore) -> None:
    expected = load("compare_error_one_side")["expected"]
    result = compared(store, "err")
    assert [
        [n["service"], n["operation"], n["depth"], n["state"], n["errors"]] for n in result["nodes"]
    ] == expected["nodes"]
    assert result["errors"] == expected["errors"]
    assert (result["matched"], result["added"], result["missing"]) == (3, 0, 0)
    assert (result["a"]["error_count"], result["b"]["error_count"]) == (1, 2)
    assert (result["a"]["folded_asgi_spans"], result["b"]["folded_asgi_spans"]) == (2, 3)
    # The folded send/receive time is the server span's own.
    root = result["nodes"][0]
    assert root["b"]["self_ms"] == pytest.approx(50 - 40)
    assert not any("http send" in n["operation"] for n in result["nodes"])


def test_the_trace_counts_no_error_for_a_failed_asgi_send(load: Load, store: TraceStore) -> None:
    load("compare_error_one_side")
    trace = whole_trace(store, hex_id("err-b", 32))
    asgi = [s for s in trace["spans"] if s["asgi_internal"]]
    assert (
        sorted(s["name"] for s in asgi)
        == ["POST /api/v1/orders http receive"] + ["POST /api/v1/orders http send"] * 2
    )
    assert any(s["status"] == "error" for s in asgi)
    assert trace["error_count"] == 2 and trace["asgi_internal_count"] == 3
    # Only kind INTERNAL with asgi.event.type is folded: the server span is not.
    assert not any(s["asgi_internal"] for s in trace["spans"] if s["kind"] != "internal")


def test_the_typical_trace_is_the_error_free_one_nearest_the_median(
    load: Load, store: TraceStore, catalog: ChainCatalog
) -> None:
    expected = load("compare_typical")["expected"]
    window = parse_window("1h")
    typical = typical_trace(store, catalog, "B1", window)
    assert typical.trace_id == hex_id(expected["typical"], 32)
    assert typical.median_ms == expected["median_ms"] and typical.latency_ms == 310.0
    assert typical.traces == expected["traces"]
    again = typical_trace(store, catalog, "B1", window, exclude=typical.trace_id)
    assert again.trace_id == hex_id(expected["excluding_typical"], 32)
    slow = hex_id("typ-5", 32)
    result = compare_traces(store, None, slow, catalog=catalog, chain="B1", window=window)
    assert result["a"]["trace_id"] == typical.trace_id and result["b"]["trace_id"] == slow
    assert result["typical"] == {
        "chain_id": "B1",
        "window": window.to_json(),
        "traces": 5,
        "median_ms": 300.0,
        "latency_ms": 310.0,
    }
    assert result["nodes"][0]["duration_diff_ms"] == 900.0 - 310.0


def test_no_typical_trace_says_why(load: Load, store: TraceStore, catalog: ChainCatalog) -> None:
    load("compare_typical")
    window = parse_window("1h")
    with pytest.raises(
        QueryError, match=r"chain A2 has no typical trace .* it has no traces there"
    ):
        typical_trace(store, catalog, "A2", window)
    with pytest.raises(QueryError, match="unknown chain"):
        typical_trace(store, catalog, "ZZ", window)


@pytest.mark.parametrize(
    ("a", "b", "chain", "message"),
    [
        (None, "ab" * 16, None, r"give the baseline trace \(a\) or a chain"),
        ("ab" * 16, "ab" * 16, "B1", "not both"),
        ("nope", "ab" * 16, None, "a 'nope' is not 32 hex characters"),
        ("ab" * 16, "xyz", None, "b 'xyz' is not 32 hex characters"),
    ],
)
def test_bad_comparisons_are_refused(
    store: TraceStore, a: str | None, b: str, chain: str | None, message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        compare_traces(store, a, b, chain=chain)


def test_an_unknown_trace_is_named(load: Load, store: TraceStore) -> None:
    load("compare_added_span")
    with pytest.raises(QueryError, match=f"trace {'cd' * 16} not found"):
        compare_traces(store, hex_id("added-a", 32), "cd" * 16)


def test_self_time_is_the_duration_minus_the_union_of_children() -> None:
    assert self_time(0, 100, []) == 100
    assert self_time(0, 100, [(10, 30), (20, 40)]) == 70  # overlap counted once
    assert self_time(0, 100, [(10, 20), (30, 40)]) == 80
    assert self_time(0, 100, [(90, 150)]) == 90  # clipped to the parent
    assert self_time(0, 100, [(-50, 200)]) == 0
    assert self_time(0, 100, [(10, 90), (20, 30)]) == 20  # nested inside another child
