"""The adjusted count of a sampled span reads the same in Python and in ClickHouse."""

from __future__ import annotations

import random

import pytest

from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging import fields
from chainmap_otel.tagging.sampling import adjusted_count, adjusted_count_sql, threshold_for

STATES = [
    "",
    "ot=th:0",
    "ot=th:8",
    "ot=th:c",
    "ot=rv:abcdef01234567;th:8",
    "vendor=x,ot=th:e6666666666668",
    "a=b, ot=th:fffffffffffff;x:1",
    "ot=th:zz",
    "ot=th:",
    "ot=th:8zz",
    "ot=th:123456789abcdef0",
    "ot=th:8,ot=th:c",
    "xot=th:8",
    "ot=rv:8",
]


def _sql(store: TraceStore, states: list[str]) -> list[float]:
    query = (
        f"SELECT {adjusted_count_sql('s')} FROM (SELECT arrayJoin({{states:Array(String)}}) AS s)"
    )
    # arrayJoin keeps the array's order within one block
    return [float(row[0]) for row in store.query(query, {"states": states}).result_rows]


def test_python_and_sql_agree_on_well_formed_and_hostile_states(chdb_store: TraceStore) -> None:
    rng = random.Random(7)
    states = list(STATES)
    for _ in range(200):
        p = rng.choice([1.0, 0.5, 0.1, 0.01]) * rng.random() or 1.0
        states.append(f"ot=th:{threshold_for(p)}")
    engine_weights = _sql(chdb_store, states)
    for python, engine in zip([adjusted_count(s) for s in states], engine_weights, strict=True):
        assert engine == pytest.approx(python, rel=1e-12)


@pytest.mark.parametrize(
    ("state", "weight"),
    [("", 1.0), ("ot=th:0", 1.0), ("ot=th:8", 2.0), ("ot=th:c", 4.0), ("ot=th:zz", 1.0)],
)
def test_known_thresholds(state: str, weight: float) -> None:
    assert adjusted_count(state) == weight


def test_threshold_for_round_trips_and_rejects_impossible_probabilities() -> None:
    for p in (1.0, 0.5, 0.25, 0.1, 0.001):
        assert 1 / adjusted_count(f"ot=th:{threshold_for(p)}") == pytest.approx(p, rel=1e-9)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="probability"):
            threshold_for(bad)


def test_environment_reads_the_new_name_before_the_old_one(chdb_store: TraceStore) -> None:
    sql = fields.SCHEMA_PLACEHOLDERS["environment_sql"]
    query = (
        f"SELECT {sql} FROM (SELECT arrayJoin([map('deployment.environment.name', 'prod', "
        "'deployment.environment', 'old'), map('deployment.environment', 'staging'), "
        "map('service.name', 'x')]) AS ResourceAttributes)"
    )
    assert [row[0] for row in chdb_store.query(query).result_rows] == ["prod", "staging", ""]
    assert fields.read(fields.ENVIRONMENT, {"deployment.environment": "staging"}) == "staging"
