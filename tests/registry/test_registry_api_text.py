"""The registry API on hostile text, numbers and headers, on a real app (uvicorn, chDB, the
session's embedded PostgreSQL): what it accepts every read endpoint renders; what it
refuses is a 4xx naming the field, and nothing of it is stored.

The property test draws chain definitions whose text is any Unicode (unpaired surrogates,
NUL, astral characters, U+2028 included) and whose numbers are any size."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainmap_otel.registry import EmbeddedPostgres
from chainmap_otel.registry.reload import CatalogHolder
from chainmap_otel.server import create_app
from chainmap_otel.server.operations import Operations
from chainmap_otel.server.settings import MonitorSettings
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import CATEGORIES, CRITICALITIES, PERCENTILES, SPAN_KINDS
from tests.server import chain_traffic
from tests.support.stores import fresh_store

TOKEN = "text-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CART = "Checkout 🛒"


@dataclass
class Api:
    client: httpx.Client

    def post(self, body: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(
            "/api/v1/chains",
            content=content,
            headers={**AUTH, "Content-Type": "application/json"},
        )

    def delete(self, chain_id: str) -> None:
        etag = self.client.get(f"/api/v1/chains/{quote(chain_id, safe='')}").headers["ETag"]
        response = self.client.delete(
            f"/api/v1/chains/{quote(chain_id, safe='')}", headers={**AUTH, "If-Match": etag}
        )
        assert response.status_code == 200, response.text

    def reads(self, chain_id: str) -> dict[str, httpx.Response]:
        """Every read endpoint, API and web page, that shows this chain or the catalog."""
        cid = quote(chain_id, safe="")
        paths = [
            "/",
            "/topology",
            f"/chains/{cid}",
            f"/search?chain={cid}",
            "/health/chains",
            "/health/detailed",
            "/metrics",
            "/api/v1/chains",
            "/api/v1/chains/health",
            "/api/v1/chains/topology",
            "/api/v1/chains/drift",
            f"/api/v1/chains/{cid}",
            f"/api/v1/chains/{cid}/topology",
            f"/api/v1/chains/{cid}/topology?format=mermaid",
            f"/api/v1/chains/{cid}/critical-path",
            f"/api/v1/chains/{cid}/history",
            f"/api/v1/traces?chain={cid}",
            "/api/v1/alerts",
        ]
        return {path: self.client.get(path) for path in paths}


@pytest.fixture(scope="module")
def api(
    chdb_store: TraceStore, chdb_path: Path, postgres_server: EmbeddedPostgres
) -> Iterator[Api]:
    store = fresh_store(chdb_path)
    name = store.database  # the registry's PostgreSQL database is named alike
    with psycopg.connect(postgres_server.uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    chain_traffic.seed(store)
    before = os.environ.get("CHAINMAP_API_TOKEN")
    os.environ["CHAINMAP_API_TOKEN"] = TOKEN
    operations = Operations(
        store,
        CatalogHolder(chain_traffic.catalog()),
        registry_url=postgres_server.uri(name),
        settings=MonitorSettings.from_env(interval_s=3600, webhook_urls=[]),
    )
    operations.start()
    try:
        assert operations.source.wait_ready(60), operations.source.error
        with chain_traffic.serving(create_app(store, operations=operations)) as client:
            yield Api(client)
    finally:
        operations.stop()
        if before is None:
            os.environ.pop("CHAINMAP_API_TOKEN", None)
        else:
            os.environ["CHAINMAP_API_TOKEN"] = before
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def chain(**changes: Any) -> dict[str, Any]:
    return {
        "id": "CK",
        "name": CART,
        "category": "api",
        "description": "astral 𝄞, RTL עברית, separators \u2028\u2029, <script>",
        "entry": [{"service": "checkout-🛒", "kind": "server", "attributes": {"🛒": "*"}}],
        "slo": {"latency_ms": {"p95": 300}, "error_rate": 0.01, "window": "1d"},
        **changes,
    }


def assert_all_render(api: Api, chain_id: str) -> None:
    failed = {
        path: (r.status_code, r.text[:200])
        for path, r in api.reads(chain_id).items()
        if not 200 <= r.status_code < 300
    }
    assert not failed, failed


def test_an_emoji_chain_round_trips_and_every_read_renders(api: Api) -> None:
    created = api.post(chain())
    assert created.status_code == 201, created.text
    try:
        got = api.client.get("/api/v1/chains/CK")
        assert got.json()["chain"]["name"] == CART
        assert CART.encode() in got.content  # the UTF-8 bytes, not escapes or surrogates
        history = api.client.get("/api/v1/chains/CK/history").json()
        assert history["versions"][-1]["definition"] == chain()
        assert_all_render(api, "CK")
        assert CART in api.client.get("/").text
    finally:
        api.delete("CK")


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"id": "X1", "name": "Checkout \\ud83d", "category": "api", '
         b'"entry": [{"service": "s"}]}', 422, "name: contains an unpaired surrogate (U+D83D"),
        (b'{"id": "X1", "name": "a\\u0000", "category": "api", "entry": [{"service": "s"}]}',
         422, "name: contains a NUL character"),
        (b'{"id": "X\\u00001", "name": "n", "category": "api", "entry": [{"service": "s"}]}',
         422, "id: contains a NUL character"),
        (json.dumps(chain(id="X1", slo={"latency_ms": {"p95": 10**400}})).encode(), 422,
         "slo.latency_ms.p95:"),
        (json.dumps(chain(id="X1", slo={"error_rate": 10**400})).encode(), 422,
         "slo.error_rate:"),
        (b'{"id": "X1", "name": "n", "category": "api", "entry": [{"service": "s"}], '
         b'"slo": {"latency_ms": {"p95": 1e999}}}', 422, "slo.latency_ms.p95: expected a finite"),
        (b'{"id": "X1", "name": "n", "category": "api", "entry": [{"service": "s"}], '
         b'"slo": {"error_rate": NaN}}', 400, "NaN is not a JSON number"),
        (b"[" * 5000 + b"]" * 5000, 400, "not JSON"),
    ],
)  # fmt: skip
def test_invalid_text_and_numbers_are_4xx_and_nothing_is_stored(
    api: Api, body: bytes, status: int, says: str
) -> None:
    response = api.post(body)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"], response.text
    assert api.client.get("/api/v1/chains/X1").status_code == 404
    assert all(c["id"] != "X1" for c in api.client.get("/api/v1/chains").json()["chains"])


def test_headers_and_ids_that_are_not_ascii_or_not_ids_are_4xx(api: Api) -> None:
    assert api.post(chain(id="HD")).status_code == 201
    try:
        for value in ('"²"'.encode(), b'"\xff"', b'"3 or 1=1"', b'"' + b"9" * 40 + b'"'):
            response = api.client.delete("/api/v1/chains/HD", headers={**AUTH, "If-Match": value})
            assert response.status_code == 400, (value, response.text)
            assert "If-Match" in response.json()["detail"]
        for method in ("DELETE", "PUT", "GET"):
            path = "/api/v1/chains/H%00D" + ("/history" if method == "GET" else "")
            response = api.client.request(
                method, path, headers={**AUTH, "If-Match": '"1"'}, json=chain(id="HD")
            )
            assert response.status_code == 422, (method, response.text)
            assert "chain_id='H\\x00D' is not a chain id" in response.json()["detail"]
    finally:
        api.delete("HD")


# --------------------------------------------------------------------------- the property

#: Any code point, unpaired surrogates and NUL included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
NUMBER = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
)
PATTERN = st.one_of(TEXT, st.builds(lambda t: {"regex": t}, TEXT), st.integers(), st.floats())
#: Mostly valid structure around hostile text, so that most examples are accepted.
RULE = st.fixed_dictionaries(
    {"service": PATTERN, "kind": st.sampled_from(SPAN_KINDS)},
    optional={
        "name": PATTERN,
        "route": PATTERN,
        "method": st.lists(TEXT, max_size=2),
        "attributes": st.dictionaries(TEXT, PATTERN, min_size=1, max_size=2),
    },
)
SLO = st.fixed_dictionaries(
    {},
    optional={
        "latency_ms": st.dictionaries(
            st.sampled_from(PERCENTILES),
            st.one_of(st.floats(min_value=0.001, max_value=86_400_000), NUMBER),
            max_size=2,
        ),
        "error_rate": st.one_of(st.floats(min_value=1e-9, max_value=0.999), NUMBER),
        "window": st.one_of(st.sampled_from(["30d", "6h", "5m", "3660d"]), TEXT),
    },
)
EXPECTED = st.fixed_dictionaries(
    {},
    optional={
        "services": st.lists(TEXT, max_size=3),
        "edges": st.lists(st.builds(lambda a, b: f"{a} -> {b}", TEXT, TEXT), max_size=3),
    },
)
CHAIN_ID = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,8}\Z")
DEFINITION = st.fixed_dictionaries(
    {
        "id": CHAIN_ID,
        "name": TEXT,
        "category": st.sampled_from(CATEGORIES),
        "entry": st.lists(RULE, min_size=1, max_size=2),
    },
    optional={
        "description": TEXT,
        "criticality": st.sampled_from(CRITICALITIES),
        "slo": SLO,
        "expected": EXPECTED,
    },
)


#: Reads that show every chain of the catalog at once (one call covers a whole example).
CATALOG_READS = (
    "/",
    "/search",
    "/health/chains",
    "/health/detailed",
    "/metrics",
    "/api/v1/chains",
    "/api/v1/chains/health",
    "/api/v1/chains/drift",
    "/api/v1/alerts",
)


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(definitions=st.lists(DEFINITION, min_size=1, max_size=4, unique_by=lambda d: d["id"]))
def test_whatever_the_api_accepts_every_read_endpoint_renders(
    api: Api, definitions: list[dict[str, Any]]
) -> None:
    """Each example stores a few definitions, then reads the catalog-wide endpoints once
    and each accepted chain's own (the chain page for the first: it runs every analysis).
    The emoji test above reads every endpoint for one chain."""
    accepted = []
    try:
        for definition in definitions:
            response = api.post(definition)
            assert response.status_code in (201, 400, 422), response.text
            if response.status_code == 201:
                assert response.json()["definition"] == definition
                accepted.append(definition["id"])
        if not accepted:
            return
        paths = [*CATALOG_READS, f"/chains/{quote(accepted[0], safe='')}"]
        for chain_id in accepted:
            cid = quote(chain_id, safe="")
            paths += [f"/api/v1/chains/{cid}", f"/api/v1/chains/{cid}/history"]
        failed = {}
        for path in paths:
            response = api.client.get(path)
            if not 200 <= response.status_code < 300:
                failed[path] = (response.status_code, response.text[:200])
        assert not failed, (definitions, failed)
    finally:
        for chain_id in accepted:
            api.delete(chain_id)
