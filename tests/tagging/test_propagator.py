from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry import baggage, context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from chainmap_otel.tagging.active import set_active_catalog
from chainmap_otel.tagging.definitions import ChainCatalog
from chainmap_otel.tagging.launcher import chain_propagators
from chainmap_otel.tagging.propagator import ChainPropagator


@pytest.fixture(autouse=True)
def active(example_catalog: ChainCatalog) -> object:
    set_active_catalog(example_catalog)
    yield
    set_active_catalog(ChainCatalog())


def extracted(headers: dict[str, str]) -> str | None:
    ctx = chain_propagators().extract(headers, context=context.Context())
    value = baggage.get_baggage("chain.ids", ctx)
    return None if value is None else str(value)


def test_known_ids_are_extracted_and_other_baggage_kept() -> None:
    ctx = chain_propagators().extract(
        {"baggage": "user=alice, chain.ids=B1%2CA2;prop=1"}, context=context.Context()
    )
    assert baggage.get_baggage("chain.ids", ctx) == "B1,A2"
    assert baggage.get_baggage("user", ctx) == "alice"


@pytest.mark.parametrize(
    "header",
    [
        "chain.ids=EVIL%2CWORSE",
        "chain.ids=" + "A" * 100_000,
        "chain.ids=%ff%fe%00",
        "chain.ids",
        "=,=,==;;;",
        "x=" + "y" * 100_000 + ",chain.ids=B1",
        ",".join(f"k{i}=v" for i in range(500)) + ",chain.ids=B1",
    ],
    ids=[
        "unknown-ids",
        "100KB-value",
        "invalid-encoding",
        "no-value",
        "garbage",
        "100KB-header",
        "too-many-members",
    ],
)
def test_hostile_baggage_is_ignored_without_error(header: str) -> None:
    assert extracted({"baggage": header}) is None


def test_unknown_ids_accepted_by_the_plain_baggage_propagator_are_removed() -> None:
    ctx = W3CBaggagePropagator().extract({"baggage": "chain.ids=EVIL"}, context=context.Context())
    assert baggage.get_baggage("chain.ids", ctx) == "EVIL"
    ctx = ChainPropagator().extract({"baggage": "chain.ids=EVIL"}, context=ctx)
    assert baggage.get_baggage("chain.ids", ctx) is None


def test_inject_without_a_chain_keeps_existing_baggage() -> None:
    ctx = baggage.set_baggage("user", "a b", context.Context())
    carrier: dict[str, str] = {}
    ChainPropagator().inject(carrier, context=ctx)
    assert carrier == {"baggage": "user=a%20b"}
    empty: dict[str, str] = {}
    ChainPropagator().inject(empty, context=context.Context())
    assert empty == {}


def test_propagator_module_does_not_import_instrumentation() -> None:
    code = (
        "import sys; import chainmap_otel.tagging.propagator; "
        "bad = [m for m in sys.modules if m.startswith('opentelemetry.instrumentation') "
        "or m.startswith(('chdb', 'clickhouse_connect', 'networkx', 'fastapi'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tagging_runtime_stays_light() -> None:
    code = (
        "import sys; import chainmap_otel; from chainmap_otel import ChainSpanProcessor; "
        "bad = [m for m in sys.modules if m.startswith(('chdb', 'clickhouse_connect', 'networkx', 'fastapi', 'psycopg'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
