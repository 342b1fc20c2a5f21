"""The monitor's burn rates are health's, so where a service counted its entries before
sampling they are the counts'; and one evaluation reads the counts once, whatever the
number of environments."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.monitor.alerts import Alert
from chainmap_otel.monitor.monitor import ChainMonitor
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from chainmap_otel.tagging.processor import ChainSpanProcessor

NS = 1_000_000_000
CHAINS = """
version: 1
chains:
  - id: CK
    name: Checkout
    category: api
    criticality: high
    entry: {service: checkout, kind: server, route: /checkout}
    slo: {error_rate: 0.01, window: 1d}
"""


class MemoryAlerts:
    """The alert store's two calls the monitor makes, in memory."""

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}

    def load(self) -> dict[str, Alert]:
        return dict(self.alerts)

    def save(self, alerts: list[Alert], transitions: list[Alert]) -> None:
        self.alerts.update({a.key: a for a in alerts})


def checkout_spans(catalog: ChainCatalog, end_ns: int) -> list[Any]:
    """Ten successful checkouts in each of prod and staging, in the last 30 s."""
    exporter = InMemorySpanExporter()
    for environment in ("prod", "staging"):
        resource = {"service.name": "checkout", "deployment.environment.name": environment}
        provider = TracerProvider(resource=Resource.create(resource))
        provider.add_span_processor(ChainSpanProcessor(catalog))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("monitor")
        for i in range(10):
            start = end_ns - (30 - i) * NS
            span = tracer.start_span(
                "POST /checkout",
                kind=SpanKind.SERVER,
                attributes={"http.route": "/checkout", "http.method": "POST"},
                start_time=start,
            )
            span.end(end_time=start + 20_000_000)
        provider.shutdown()
    return list(exporter.get_finished_spans())


def test_counted_errors_fire_the_alert_and_are_read_once_per_evaluation(
    store_factory: Callable[[], TraceStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = parse_catalog(CHAINS, "monitor.yaml")
    store = store_factory()
    now_ns = time.time_ns()
    store.insert_arrow(spans_to_arrow(checkout_spans(catalog, now_ns)))
    # prod's service counted 200 entries, 40 failed (the stored sample holds no failure);
    # staging's counts nothing.
    minute = now_ns // NS // 60 * 60
    store.command(
        f"INSERT INTO {store.database}.chainmap_entry_counts (Minute, ChainId, ServiceName, "
        f"Environment, Entries, Errors) VALUES (toDateTime({minute}), 'CK', 'checkout', "
        "'prod', 200, 40)"
    )
    health_module = importlib.import_module("chainmap_otel.analysis.health")
    reads: list[str] = []
    counted_windows = health_module.counted_windows

    def counting(*args: Any, **kwargs: Any) -> Any:
        reads.append(str(args[4] if len(args) > 4 else kwargs.get("environment", "")))
        return counted_windows(*args, **kwargs)

    monkeypatch.setattr(health_module, "counted_windows", counting)
    alerts = MemoryAlerts()
    monitor = ChainMonitor(
        store,
        lambda: catalog,
        alerts,  # type: ignore[arg-type]
        None,
        interval_s=0,
        for_s=0,
        external_url=lambda: "http://chainmap",
    )
    monitor.evaluate(datetime.fromtimestamp(now_ns / NS + 1, UTC))
    assert reads == [""]  # one read, every environment
    active = {(a.environment, a.rule): a.state for a in monitor.active()}
    # 20 % failed against 1 %: 20x over every window, the page-now rules hold in prod only.
    assert active.get(("prod", "1h/5m")) in ("pending", "firing")
    assert not [key for key in active if key[0] == "staging"]
