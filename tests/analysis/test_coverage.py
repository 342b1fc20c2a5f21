"""Coverage of the chain rules over a fleet tagged at the source (current and stale chains
files), by the real Collector's generated OTTL, and only at query time (tests/support/
coverage_fleet.py): instances per chain by what recognised them, the disagreements between
the tags and the current rules, and the root endpoints no chain covers; the instances are
the traces health counts."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import pytest

from chainmap_otel.analysis.coverage import coverage_json
from chainmap_otel.analysis.discovery import discover
from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.errors import ParameterError
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.store import TraceStore
from tests.support.coverage_fleet import (
    EXPECTED,
    UNMATCHED,
    current_catalog,
    load_fleet,
    source_and_plain_spans,
)

_S = 1_000_000_000


@pytest.fixture
def fleet(store: TraceStore, tmp_path: Path) -> tuple[TraceStore, TimeWindow]:
    base = load_fleet(store, tmp_path)
    return store, TimeWindow(base - 60 * _S, base + 120 * _S)


def by_chain(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["chain_id"]: c for c in data["chains"]}


def test_instances_by_what_recognised_them_and_the_disagreements(
    fleet: tuple[TraceStore, TimeWindow],
) -> None:
    store, window = fleet
    data = coverage_json(store, current_catalog(), window)
    chains = by_chain(data)
    assert list(chains) == ["B1", "B3", "A2", "D1", "C1", "C2", "R1"]
    for chain_id, expected in EXPECTED.items():
        found = chains[chain_id]
        assert found["tagged_by"] == expected["tagged_by"], chain_id
        assert found["instances"] == sum(expected["tagged_by"].values()), chain_id
        assert (found["tag_not_rules"], found["rules_not_tag"]) == expected["disagree"], chain_id
        assert found["disagreements"] == sum(expected["disagree"]), chain_id
        assert found["known"] is (chain_id != "R1")
    assert data["totals"] == {
        "instances": 30,
        "tagged_by": {"source": 19, "collector": 6, "query_time": 5},
        "disagreements": 9,
    }


def test_the_disagreements_name_the_service_the_tag_and_the_rules(
    fleet: tuple[TraceStore, TimeWindow],
) -> None:
    store, window = fleet
    rows = {
        (d["chain_id"], d["kind"], d["tagged_by"]): d
        for d in coverage_json(store, current_catalog(), window)["disagreements"]
    }
    assert set(rows) == {
        ("A2", "tag_not_rules", "source"),
        ("C1", "tag_not_rules", "collector"),
        ("D1", "rules_not_tag", None),
        ("D1", "rules_not_tag", "source"),
        ("R1", "tag_not_rules", "source"),
    }
    stale = rows[("A2", "tag_not_rules", "source")]
    assert (stale["service"], stale["route"], stale["method"]) == (
        "ai-orchestration",
        "/legacy/decide",
        "POST",
    )
    assert (stale["tagged"], stale["rules"], stale["instances"]) == (["A2"], [], 3)
    # OTTL generated before a rule change, not rolled out to the Collector.
    ottl = rows[("C1", "tag_not_rules", "collector")]
    assert (ottl["service"], ottl["route"], ottl["tagged"], ottl["rules"]) == (
        "data-bridge",
        "/stream/ticks",
        ["C1"],
        [],
    )
    assert ottl["instances"] == 2
    # An untagged span of a service that tags others: classified at query time.
    untagged = rows[("D1", "rules_not_tag", None)]
    assert (untagged["tagged"], untagged["rules"], untagged["instances"]) == ([], ["D1"], 2)
    assert (untagged["service"], untagged["route"]) == ("ai-orchestration", "/risk/check")
    # A span the stale file tagged with the request's B1 only: no D1 instance at all.
    inside = rows[("D1", "rules_not_tag", "source")]
    assert (inside["tagged"], inside["rules"], inside["instances"]) == (["B1"], ["D1"], 1)


def test_unmatched_root_endpoints_most_traces_first(fleet: tuple[TraceStore, TimeWindow]) -> None:
    store, window = fleet
    unmatched = coverage_json(store, current_catalog(), window)["unmatched"]
    assert unmatched["traces"] == sum(n for *_, n in UNMATCHED)
    assert [
        (e["service"], e["route"], e["method"], e["traces"]) for e in unmatched["endpoints"]
    ] == UNMATCHED
    assert {e["kind"] for e in unmatched["endpoints"]} == {"Server"}
    top = coverage_json(store, current_catalog(), window, limit=1)["unmatched"]
    assert [e["route"] for e in top["endpoints"]] == ["/healthz"]
    assert top["traces"] == unmatched["traces"]


def test_the_instances_are_the_traces_health_counts(fleet: tuple[TraceStore, TimeWindow]) -> None:
    store, window = fleet
    catalog = current_catalog()
    chains = by_chain(coverage_json(store, catalog, window))
    assert {h["chain_id"]: h["traces"] for h in health(store, catalog, window)} == {
        c: chains[c]["instances"] for c in catalog.ids
    }


def test_a_window_without_the_fleet_covers_nothing(fleet: tuple[TraceStore, TimeWindow]) -> None:
    store, window = fleet
    later = TimeWindow(window.end_ns + 600 * _S, window.end_ns + 660 * _S)
    data = coverage_json(store, current_catalog(), later)
    assert data["totals"]["instances"] == 0
    assert data["unmatched"] == {"traces": 0, "endpoints": []}
    assert [c["chain_id"] for c in data["chains"]] == list(current_catalog().ids)


def test_a_limit_out_of_range_names_the_parameter(fleet: tuple[TraceStore, TimeWindow]) -> None:
    store, window = fleet
    with pytest.raises(ParameterError, match="limit"):
        coverage_json(store, current_catalog(), window, limit=0)


def test_the_unmatched_traces_are_the_ones_discovery_clusters(
    fleet: tuple[TraceStore, TimeWindow],
) -> None:
    store, window = fleet
    catalog = current_catalog()
    found = discover(store, catalog, window, min_traces=1).to_json()
    unmatched = coverage_json(store, catalog, window)["unmatched"]
    assert unmatched["traces"] == found["uncovered_traces"]
    proposed = {(p["service"], p["entry"]): p["traces"] for p in found["proposals"]}
    assert proposed == {(e["service"], e["route"]): e["traces"] for e in unmatched["endpoints"]}


def test_counts_stay_exact_when_the_detail_rows_are_cut(
    fleet: tuple[TraceStore, TimeWindow], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, window = fleet
    # The module (the package's ``coverage`` attribute is the function).
    module = importlib.import_module("chainmap_otel.analysis.coverage")
    monkeypatch.setattr(module, "_ROW_CAP", 1)
    data = coverage_json(store, current_catalog(), window)
    chains = by_chain(data)
    for chain_id, expected in EXPECTED.items():
        assert chains[chain_id]["tagged_by"] == expected["tagged_by"], chain_id
        assert (chains[chain_id]["tag_not_rules"], chains[chain_id]["rules_not_tag"]) == expected[
            "disagree"
        ], chain_id
    assert data["unmatched"]["traces"] == sum(n for *_, n in UNMATCHED)
    assert [e["route"] for e in data["unmatched"]["endpoints"]] == ["/healthz"]
    # One row of each detail kind: the most instances of tag_not_rules, of rules_not_tag on
    # tagged spans and of untagged entries (D1's, in a service that tags).
    assert sorted((d["chain_id"], d["tagged_by"] or "") for d in data["disagreements"]) == [
        ("A2", "source"),
        ("D1", ""),
        ("D1", "source"),
    ]


def test_without_the_collector_the_rest_of_the_fleet_counts_the_same(store: TraceStore) -> None:
    """The fleet's SDK spans alone (no Collector built needed): every number but the
    Collector's, which are zero; data-bridge's health checks are not there to be unmatched."""
    base = time.time_ns() - 5 * 60 * _S
    store.insert_arrow(spans_to_arrow(source_and_plain_spans(base)))
    data = coverage_json(store, current_catalog(), TimeWindow(base - 60 * _S, base + 120 * _S))
    chains = by_chain(data)
    for chain_id, expected in EXPECTED.items():
        by = dict(expected["tagged_by"], collector=0)
        disagree = (0, 0) if chain_id == "C1" else expected["disagree"]
        assert chains[chain_id]["tagged_by"] == by, chain_id
        assert (chains[chain_id]["tag_not_rules"], chains[chain_id]["rules_not_tag"]) == disagree
    assert [
        (e["service"], e["route"], e["method"], e["traces"]) for e in data["unmatched"]["endpoints"]
    ] == [e for e in UNMATCHED if e[0] != "data-bridge"]
