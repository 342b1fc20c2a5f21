"""Spans tagged with chain ids but no chain.entry count in health: the span where a chain
first appears in a trace is its entry (root spans through a materialized view, the others
through the inferred-entry rollup and its live tail), and nothing counts twice."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.rollups import entries
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import insert_spans, load_fixture, span_row


def ids_only(prefix: str, failed_at: str = "") -> list[dict[str, Any]]:
    """The nested B1 > A2 > B3 trace, renamed, with chain.entry/chain.entry_ids removed."""
    spans = copy.deepcopy(load_fixture("nested_chains")["spans"])
    for span in spans:
        span["trace"] = prefix + span["trace"]
        span["attributes"].pop("chain.entry", None)
        span["attributes"].pop("chain.entry_ids", None)
        if span["span"] == failed_at:
            span["status"] = "Error"
    return spans


def renamed(prefix: str) -> list[dict[str, Any]]:
    spans = copy.deepcopy(load_fixture("nested_chains")["spans"])
    for span in spans:
        span["trace"] = prefix + span["trace"]
    return spans


def counts(store: TraceStore, catalog: ChainCatalog) -> dict[str, tuple[int, int]]:
    return {
        h["chain_id"]: (h["traces"], h["errors"])
        for h in health(store, catalog, parse_window("1h"), ["B1", "A2", "B3"])
    }


def test_ids_only_traces_count_at_the_span_where_each_chain_appears(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    assert not any("chain.entry" in s["attributes"] for s in ids_only("x"))
    insert_spans(store, ids_only("i1", failed_at="te"), now_ns)
    insert_spans(store, ids_only("i2"), now_ns)
    # B1 at the gateway's root span, A2 at ai-orchestration's server, B3 at trading-engine's.
    assert counts(store, catalog) == {"B1": (2, 0), "A2": (2, 0), "B3": (2, 1)}
    rows = store.query(
        f"SELECT ChainId, sum(Calls) FROM {store.database}.chainmap_chain_minute "
        "WHERE ChainId != '' GROUP BY ChainId"
    ).result_rows
    assert dict(rows) == {"B1": 2}  # the root span, from the view at insert time


def test_tagged_entries_are_not_counted_twice(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    insert_spans(store, renamed("t"), now_ns)
    insert_spans(store, ids_only("i"), now_ns)
    assert counts(store, catalog) == {"B1": (2, 0), "A2": (2, 0), "B3": (2, 0)}


def test_rollup_and_live_tail_agree_and_recover(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    insert_spans(store, ids_only("r", failed_at="ao"), now_ns)
    table = f"{store.database}.{entries.TABLE}"
    # Before any refresh: a watermark below the spans, so health pairs them live.
    entries.refresh_entries(store, until_ns=now_ns - 600 * 1_000_000_000)
    live = {
        h["chain_id"]: (h["traces"], h["errors"])
        for h in health(store, catalog, parse_window("1h"), ["A2", "B3"])
    }
    # One closing time for both refreshes: a minute boundary passing between two default
    # (now - lag) refreshes would move the watermark and hide whether the second did work.
    until = time.time_ns() - 60 * 1_000_000_000
    watermark = entries.refresh_entries(store, until_ns=until)
    assert watermark > now_ns
    rolled = store.query(f"SELECT ChainId, sum(Calls) FROM {table} GROUP BY ChainId").result_rows
    assert dict(rolled) == {"A2": 1, "B3": 1}
    assert (
        counts(store, catalog)
        == {"B1": (1, 0), **live}
        == {
            "B1": (1, 0),
            "A2": (1, 1),
            "B3": (1, 0),
        }
    )
    assert entries.refresh_entries(store, until_ns=until) == watermark  # idempotent
    # A crash between a slice's insert and its watermark: the slice is deleted and redone.
    since, _, _ = entries.read_state(store)
    # The state rows are deleted before the crashed state is written: a background merge
    # may fold rows of one rollup together (max of Watermark) at any time.
    store.command(
        f"ALTER TABLE {store.database}.chainmap_rollup_state DELETE "
        "WHERE Rollup = 'entries' AND Watermark > {s:Int64} SETTINGS mutations_sync = 2",
        {"s": since},
    )
    store.command(
        f"ALTER TABLE {store.database}.chainmap_rollup_state DELETE "
        "WHERE Rollup = 'entries' SETTINGS mutations_sync = 2"
    )
    store.command(
        f"INSERT INTO {store.database}.chainmap_rollup_state "
        "(Rollup, Catalog, Since, Watermark, Pending, Updated) "
        "SELECT 'entries', 0, {s:Int64}, {s:Int64}, {w:Int64}, now()",
        {"s": since, "w": watermark},
    )
    assert entries.read_state(store)[1:] == (since, watermark)
    assert entries.refresh_entries(store) >= watermark
    again = store.query(f"SELECT ChainId, sum(Calls) FROM {table} GROUP BY ChainId").result_rows
    assert dict(again) == {"A2": 1, "B3": 1}


@pytest.mark.parametrize("parent_tags", ["", "B1"])
def test_a_child_whose_parent_lacks_the_chain_is_its_entry(
    parent_tags: str, store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    parent_attributes = {"chain.ids": parent_tags} if parent_tags else {}
    insert_spans(
        store,
        [
            {"trace": "p", "span": "a", "service": "edge-proxy", "kind": "Server"}
            | {"attributes": parent_attributes},
            {
                "trace": "p",
                "span": "b",
                "parent": "a",
                "service": "trading-engine",
                "kind": "Server",
                "start_ms": 1,
                "attributes": {"chain.ids": f"{parent_tags},B3".lstrip(",")},
            },
        ],
        now_ns,
    )
    result = counts(store, catalog)
    assert result["B3"] == (1, 0)
    assert result["B1"] == ((1, 0) if parent_tags else (0, 0))


def test_reads_never_write_and_schema_apply_rolls_up(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    from chainmap_otel.analysis.rollups.refresh import apply_schema_with_rollup

    insert_spans(store, ids_only("w"), now_ns)
    assert counts(store, catalog)["B3"] == (1, 0)  # paired live
    assert entries.read_state(store) == (0, 0, 0)  # health wrote nothing
    apply_schema_with_rollup(store, catalog, progress=lambda line: None)
    assert (entries.analysis_watermark(store) or 0) > now_ns
    assert counts(store, catalog)["B3"] == (1, 0)  # rolled up, not counted twice


def test_the_live_part_runs_only_when_a_span_may_be_an_entry(
    store: TraceStore, catalog: ChainCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Health leaves the live inferred entries out when no span above the watermark can be
    one (spans tagged by chainmap's processor, with their entry marks), and runs them, with
    the same counts as the rollup, once a span tagged without marks arrives."""
    import importlib

    health_module = importlib.import_module("chainmap_otel.analysis.health")
    runs: list[bool] = []
    bind = health_module.bind_live

    def spy(*args: Any) -> bool:
        runs.append(bind(*args))
        return runs[-1]

    monkeypatch.setattr(health_module, "bind_live", spy)
    now = time.time_ns()
    insert_spans(store, renamed("m"), now - 60 * 10**9)  # marked: never an inferred entry
    entries.refresh_entries(store, until_ns=now - 30 * 60 * 10**9)  # watermark below them
    marked = counts(store, catalog)
    assert runs == [False]
    insert_spans(store, ids_only("i"), now - 60 * 10**9)  # no marks: entries below the root
    live = counts(store, catalog)
    assert runs == [False, True]
    assert all(live[c][0] == 2 * marked[c][0] for c in marked), (live, marked)


def test_sampled_entries_below_the_root_are_weighted_live_and_rolled_up(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    """Spans kept with probability 1/2 (``ot=th:8``) in ``prod``: the entries the rollup and
    its live tail find count twice each, in prod only."""
    spans = ids_only("s", failed_at="te")
    for span in spans:
        span["resource"] = {"deployment.environment.name": "prod"}
    rows = [span_row(span, now_ns) for span in spans]
    store.insert_spans(rows=[(*row[:4], "ot=th:8", *row[5:]) for row in rows])

    def estimated(environment: str) -> dict[str, tuple[float, int, int]]:
        window = parse_window("1h", environment=environment)
        return {
            h["chain_id"]: (h["sampling"]["estimated"], h["sampling"]["stored"], h["errors"])
            for h in health(store, catalog, window, ["B1", "A2", "B3"])
        }

    entries.refresh_entries(store, until_ns=now_ns - 600 * 1_000_000_000)  # all live
    expected = {"B1": (2.0, 1, 0), "A2": (2.0, 1, 0), "B3": (2.0, 1, 2)}
    assert estimated("prod") == estimated("") == expected
    assert entries.refresh_entries(store, until_ns=time.time_ns() - 60 * 1_000_000_000) > now_ns
    rolled = store.query(
        f"SELECT ChainId, Environment, sum(AdjustedCalls), sum(SampledCalls) "
        f"FROM {store.database}.{entries.TABLE} GROUP BY ChainId, Environment ORDER BY ChainId"
    ).result_rows
    assert rolled == [("A2", "prod", 2.0, 1), ("B3", "prod", 2.0, 1)]
    assert estimated("prod") == expected
    assert estimated("staging") == {"B1": (0.0, 0, 0), "A2": (0.0, 0, 0), "B3": (0.0, 0, 0)}
