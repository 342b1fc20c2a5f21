"""Without a token, or without a registry, the write endpoints refuse clearly."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from tests.server import chain_traffic


@pytest.fixture
def client(
    store_factory: Callable[[], TraceStore], monkeypatch: pytest.MonkeyPatch
) -> Iterator[httpx.Client]:
    monkeypatch.delenv("CHAINMAP_API_TOKEN", raising=False)
    with chain_traffic.serving(create_app(store_factory(), chains=chain_traffic.catalog())) as c:
        yield c


def test_write_endpoints_are_forbidden_until_a_token_is_configured(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"id": "X", "name": "x", "category": "api", "entry": [{"service": "a"}]}
    for method, path in (("POST", ""), ("PUT", "/B1"), ("DELETE", "/B1")):
        response = client.request(method, f"/api/v1/chains{path}", json=body)
        assert response.status_code == 403, (method, response.text)
        assert "set CHAINMAP_API_TOKEN" in response.json()["detail"]

    monkeypatch.setenv("CHAINMAP_API_TOKEN", "t0ken")
    accepted = client.post("/api/v1/chains", json=body, headers={"Authorization": "Bearer t0ken"})
    # The token is accepted; this app has no registry, which the answer says.
    assert accepted.status_code == 503
    assert "CHAINMAP_REGISTRY_URL" in accepted.json()["detail"]


def test_without_a_registry_detailed_health_reports_chain_mapping_off(
    client: httpx.Client,
) -> None:
    body = client.get("/health/detailed").json()
    assert body["overall_status"] == "healthy"
    mapping = body["chain_mapping"]
    assert mapping["enabled"] is False and mapping["active_alerts"] == []
    assert mapping["statistics"]["total_chains"] == len(chain_traffic.catalog())
    assert client.get("/api/v1/alerts").json() == {"enabled": False, "alerts": []}
    assert client.get("/api/v1/alerts?history=1h").json()["events"] == []
    assert client.get("/api/v1/alerts?history=1000000d").status_code == 400
    listed = client.get("/api/v1/chains").json()
    assert "registry" not in listed["chains"][0]
