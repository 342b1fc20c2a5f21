"""Alerts per environment on one real ``chainmap serve``: the monitor judges each
``deployment.environment.name`` seen by its own objectives (``slo.environments``), so an
error burst in staging fires staging's alert only, labelled ``environment="staging"`` in the
webhook, ``/api/v1/alerts``, the alerts page and ``chainmap_alerts_firing``; the spans of a
service naming no environment are judged on their own (``environment=(none)``)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from chainmap_otel.tagging.definitions import load_catalog
from tests.monitor.conftest import OpsServe, WebhookReceiver, wait_until

pytestmark = pytest.mark.slow

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
      error_rate: 0.01
      window: 1d
      environments:
        staging: {error_rate: 0.05}
"""

#: The resource attribute each environment's fleet names itself by: prod the current
#: semantic conventions, staging the old name.
RESOURCES = {
    "prod": {"service.name": "checkout", "deployment.environment.name": "prod"},
    "staging": {"service.name": "checkout", "deployment.environment": "staging"},
    "unnamed": {"service.name": "checkout"},
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def env_serve(receiver: WebhookReceiver) -> Iterator[OpsServe]:
    root = Path(tempfile.mkdtemp(prefix="chainmap-env-alerts-"))
    serve = OpsServe(root, [receiver.url])
    serve.chains_file.write_text(CHAINS)
    try:
        serve.start()
        yield serve
    finally:
        serve.stop()
        shutil.rmtree(root, ignore_errors=True)


def send(serve: OpsServe, environment: str, count: int, failing: bool) -> list[SpanExportResult]:
    """``count`` checkout requests of one environment's fleet, by the real SDK."""
    from chainmap_otel.tagging.processor import ChainSpanProcessor

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(RESOURCES[environment]))
    provider.add_span_processor(ChainSpanProcessor(load_catalog(serve.chains_file)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for _ in range(count):
        with tracer.start_as_current_span(
            "POST /checkout", kind=SpanKind.SERVER, attributes={"http.route": "/checkout"}
        ) as entry:
            if failing:
                entry.set_status(Status(StatusCode.ERROR, "card declined"))
    exporter = OTLPSpanExporter(endpoint=serve.url + "/v1/traces", timeout=30)
    return [exporter.export(list(memory.get_finished_spans()))]


def firing(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return [p for p in list(receiver.payloads) if p["status"] == "firing"]


def test_an_error_burst_in_staging_fires_only_stagings_alert(
    env_serve: OpsServe, receiver: WebhookReceiver
) -> None:
    assert send(env_serve, "prod", 20, failing=False) == [SpanExportResult.SUCCESS]
    # A service naming no environment: judged on its own, never with staging's errors.
    assert send(env_serve, "unnamed", 20, failing=False) == [SpanExportResult.SUCCESS]
    assert send(env_serve, "staging", 10, failing=True) == [SpanExportResult.SUCCESS]
    payload = wait_until(lambda: firing(receiver), "a firing webhook")[0]
    assert payload["groupLabels"] == {"chain_id": "CK", "environment": "staging"}
    assert payload["groupKey"] == '{}:{chain_id="CK",environment="staging"}'
    page = next(a for a in payload["alerts"] if a["labels"]["window"] == "1h/5m")
    assert page["labels"]["environment"] == "staging"
    assert page["generatorURL"] == f"{env_serve.url}/chains/CK?env=staging"
    assert " in staging " in page["annotations"]["summary"]

    active = env_serve.get("/api/v1/alerts").json()["alerts"]
    states = {(a["environment"], a["rule"]): a["state"] for a in active}
    assert states[("staging", "1h/5m")] == "firing"
    assert not any(env == "prod" for env, _ in states), states
    # Staging is judged by its own objective (5 % errors allowed), prod by the chain's (1 %).
    staging = env_serve.get("/api/v1/chains/health?environment=staging").json()["chains"][0]
    assert [o["budget"] for o in staging["slo"]["objectives"]] == [0.05]
    prod = env_serve.get("/api/v1/chains/health?environment=prod").json()["chains"][0]
    assert [o["budget"] for o in prod["slo"]["objectives"]] == [0.01]
    assert prod["status"] == "healthy" and prod["traces"] == 20
    unnamed = env_serve.get("/api/v1/chains/health?environment=(none)").json()["chains"][0]
    assert unnamed["status"] == "healthy" and unnamed["traces"] == 20
    shown = env_serve.get("/api/v1/chains/CK?environment=staging").json()["chain"]["slo"]
    assert shown["error_rate"] == 0.05 and "environments" not in shown

    via_cli = env_serve.cli("alerts", "--server", env_serve.url, "--format", "json")
    assert via_cli.returncode == 0, via_cli.stderr
    listed = json.loads(via_cli.stdout)["alerts"]
    assert {a["environment"] for a in listed} == {"staging"}
    table = env_serve.cli("alerts", "--server", env_serve.url, "--wide")
    assert "environment" in table.stdout and "staging" in table.stdout, table.stdout

    families = {
        f.name: f
        for f in text_string_to_metric_families(env_serve.get("/metrics").text)
        if f.name == "chainmap_alerts_firing"
    }
    samples = [s for s in families["chainmap_alerts_firing"].samples if s.value > 0]
    assert samples and {s.labels.get("environment") for s in samples} == {"staging"}

    page_html = env_serve.get("/alerts").text
    assert "staging" in page_html and 'href="/chains/CK?env=staging"' in page_html
    assert not [p for p in firing(receiver) if p["groupLabels"].get("environment") != "staging"]


def test_a_bad_environment_is_a_400_naming_it(env_serve: OpsServe) -> None:
    response = env_serve.get("/api/v1/chains/health", params={"environment": "x" * 200})
    assert response.status_code == 400 and "environment" in response.json()["detail"]
