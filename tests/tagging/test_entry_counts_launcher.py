"""Under ``opentelemetry-instrument`` with a 10 % sampler, a service's chain entries reach a
real ``chainmap serve`` exactly: the configurator wraps the sampler from
``OTEL_TRACES_SAMPLER`` and the SDK's OTLP metric exporter sends the counts."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Service
from tests.support.serve_process import ServeProcess, query
from tests.tagging.test_launcher_e2e import APPS, ROOT

pytestmark = pytest.mark.slow

REQUESTS = 150


def stored_points(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    found = re.search(r"^chainmap_entry_count_points_stored_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for_stored_points(base: str, at_least: float, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while stored_points(base) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"serve stored fewer than {at_least} entry points in {timeout}s")
        time.sleep(0.2)


def test_every_entry_is_counted_while_one_in_ten_traces_is_kept(tmp_path: Path) -> None:
    store_url = f"chdb://{tmp_path / 'store'}"
    serve = ServeProcess(store_url, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{serve.http_port}"
    env = {
        "OTEL_PYTHON_DISTRO": "chainmap",
        "OTEL_PYTHON_CONFIGURATOR": "chainmap",
        "CHAINMAP_CHAINS_FILE": str(ROOT / "chains.example.yaml"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": base,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod",
        "PYTHONPATH": str(ROOT),
    }
    gateway = Service("api-gateway", "fleet:app", env, APPS, tmp_path)
    try:
        serve.wait_ready()
        gateway.wait_ready()
        with httpx.Client(timeout=10) as client:
            for _ in range(REQUESTS):
                assert client.get(f"{gateway.url}/api/v1/ping").status_code == 200
        # Two more exports (two points each: the B1 entry total, the durations) after the last
        # request carry every entry; the store is serve's alone until it stops.
        wait_for_stored_points(base, stored_points(base) + 4)
    finally:
        gateway.stop()
        assert serve.terminate() == 0, serve.log()
    counted = query(
        store_url,
        "SELECT ChainId, ServiceName, Environment, sum(Entries), sum(Errors), "
        "sum(DurationCount) FROM chainmap_entry_counts GROUP BY ChainId, ServiceName, "
        "Environment",
    )
    assert counted == [["B1", "api-gateway", "prod", REQUESTS, 0, REQUESTS]], gateway.log()
    ((stored,),) = query(
        store_url,
        "SELECT count() FROM otel_traces WHERE SpanAttributes['chain.entry_ids'] = 'B1'",
    )
    assert 0 < int(stored) < REQUESTS * 0.3  # type: ignore[call-overload]
