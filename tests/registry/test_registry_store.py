"""The registry on a real PostgreSQL: push/pull round trip, versions, concurrency, candidates."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from chainmap_otel.errors import (
    ChainDefinitionError,
    NotFoundError,
    QueryError,
    RegistryConflictError,
)
from chainmap_otel.registry import ChainRegistry, open_registry_database
from chainmap_otel.registry.candidates import accept_candidate, save_candidates
from chainmap_otel.registry.postgres import RegistryDatabase, migrations
from chainmap_otel.tagging.definitions import load_catalog, parse_catalog

CHAINS = """
version: 1
chains:
  - id: CK
    name: Checkout
    category: api
    criticality: high
    entry:
      - service: checkout
        kind: server
        route: /checkout*
    slo:
      error_rate: 0.05
      window: 1d
  - id: PAY
    name: Payment
    category: trading
    entry:
      - service: {regex: "^payments(-v[0-9]+)?$"}
        kind: server
"""


def definitions(text: str) -> list[dict[str, object]]:
    chains: list[dict[str, object]] = yaml.safe_load(text)["chains"]
    return chains


def test_push_pull_round_trip_keeps_every_chain_and_rule(
    registry: ChainRegistry, tmp_path: Path
) -> None:
    report = registry.push(definitions(CHAINS), author="ana", comment="first")
    assert report.added == ["CK", "PAY"] and not report.changed

    pulled = tmp_path / "pulled.yaml"
    pulled.write_text(registry.pull())
    original = parse_catalog(CHAINS)
    again = load_catalog(pulled)
    assert [c.id for c in again] == ["CK", "PAY"]
    for a, b in zip(original, again, strict=True):
        assert {**a.to_dict(), "source": ""} == {**b.to_dict(), "source": ""}
    assert registry.catalog().get("PAY") is not None


def test_push_stores_only_changed_chains_and_deletes_only_when_asked(
    registry: ChainRegistry,
) -> None:
    registry.push(definitions(CHAINS), author="ana", comment="first")
    assert registry.push(definitions(CHAINS)).unchanged == ["CK", "PAY"]

    changed = CHAINS.replace("error_rate: 0.05", "error_rate: 0.01")
    report = registry.push(definitions(changed), author="bo", comment="tighter")
    assert report.changed == ["CK"] and report.unchanged == ["PAY"]
    history = registry.history("CK")
    assert [(v.version, v.author, v.comment) for v in history] == [
        (1, "ana", "first"),
        (2, "bo", "tighter"),
    ]
    assert [v.version for v in registry.history("PAY")] == [1]

    only_ck = [d for d in definitions(changed) if d["id"] == "CK"]
    kept = registry.push(only_ck)
    assert kept.kept == ["PAY"] and registry.get("PAY") is not None
    pruned = registry.push(only_ck, prune=True)
    assert pruned.deleted == ["PAY"] and registry.get("PAY") is None
    assert [v.deleted for v in registry.history("PAY")] == [False, True]
    assert registry.catalog().ids == ("CK",)


def test_diff_and_rollback_add_versions_and_never_rewrite_history(
    registry: ChainRegistry,
) -> None:
    registry.push(definitions(CHAINS))
    registry.push(definitions(CHAINS.replace("error_rate: 0.05", "error_rate: 0.01")))
    diff = registry.diff("CK", 1, 2)
    assert "-  error_rate: 0.05" in diff and "+  error_rate: 0.01" in diff

    restored = registry.rollback("CK", 1, author="ana")
    assert restored.version == 3 and restored.comment == "rollback to v1"
    ck = registry.catalog().get("CK")
    assert ck is not None and ck.slo is not None and ck.slo.error_rate == 0.05
    with pytest.raises(NotFoundError) as unknown:
        registry.rollback("CK", 9)
    assert (unknown.value.kind, unknown.value.id) == ("chain version", "CK@9")


def test_invalid_definitions_are_refused_with_the_loaders_field_errors(
    registry: ChainRegistry,
) -> None:
    bad = {"id": "X", "name": "x", "category": "nope", "entry": [{"kind": "serverr"}]}
    with pytest.raises(ChainDefinitionError) as caught:
        registry.create(bad)
    assert any("category: unknown category 'nope'" in p for p in caught.value.problems)
    assert any("entry[0].kind: unknown value 'serverr'" in p for p in caught.value.problems)
    assert registry.current() == []


def test_concurrent_writers_with_the_same_version_one_wins(
    registry: ChainRegistry, registry_url: str
) -> None:
    registry.push(definitions(CHAINS))
    base = definitions(CHAINS)[0]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def write(name: str) -> None:
        with open_registry_database(registry_url) as database:
            barrier.wait()
            try:
                ChainRegistry(database).update("CK", {**base, "name": name}, if_match=1)
                outcomes.append("ok")
            except RegistryConflictError as exc:
                assert exc.current_version == 2
                outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(n,)) for n in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict", "ok"]
    assert [v.version for v in registry.history("CK")] == [1, 2]


def test_migrations_are_idempotent(registry_db: RegistryDatabase) -> None:
    assert registry_db.migrate() == []
    assert registry_db.schema_version() == 2 == max(v for v, _, _ in migrations())


def test_discovery_candidates_are_saved_once_and_accepted_into_the_registry(
    registry: ChainRegistry, store_factory: object
) -> None:
    from chainmap_otel.analysis.discovery import discover
    from chainmap_otel.analysis.timewindow import TimeWindow
    from tests.server import chain_traffic

    store = store_factory()  # type: ignore[operator]
    chain_traffic.seed(store)
    found = discover(store, chain_traffic.catalog(), TimeWindow.last(3600), min_traces=2)
    assert found.proposals, "the seeded report traces should be proposed"
    first = save_candidates(registry.database, found)
    again = save_candidates(registry.database, found)
    assert [c[0] for c in first] == [c[0] for c in again]  # same shapes, same candidates

    stored = accept_candidate(registry, first[0][0], chain_id="REPORTS")
    assert stored.version == 1 and registry.catalog().get("REPORTS") is not None
    with pytest.raises(QueryError, match="already accepted"):
        accept_candidate(registry, first[0][0])


def test_objectives_per_environment_are_validated_and_kept(registry: ChainRegistry) -> None:
    chain = {
        "id": "CK",
        "name": "Checkout",
        "category": "api",
        "entry": [{"service": "checkout"}],
        "slo": {"error_rate": 0.01, "environments": {"staging": {"error_rate": 1.5, "p95": 3}}},
    }
    with pytest.raises(ChainDefinitionError) as caught:
        registry.create(chain, author="t")
    problems = caught.value.problems
    assert any("slo.environments.staging.error_rate: expected the allowed" in p for p in problems)
    assert any("slo.environments.staging.p95: unknown key" in p for p in problems)
    assert registry.current() == []
    chain["slo"] = {"error_rate": 0.01, "environments": {"staging": {"error_rate": 0.1}}}
    registry.create(chain, author="t")
    stored = registry.catalog().get("CK")
    assert stored is not None and stored.slo is not None
    assert stored.slo.effective("staging").error_rate == 0.1
    assert stored.slo.effective("prod").error_rate == 0.01
