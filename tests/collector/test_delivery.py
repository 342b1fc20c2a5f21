"""Between the Collector and chainmap serve: nothing acknowledged is lost, and ingest tokens.

The otlphttp exporter's persistent sending queue (``file_storage``) keeps what the Collector
acknowledged to its senders across a SIGKILL while serve is down; the ``bearertokenauth``
extension carries serve's ``CHAINMAP_INGEST_TOKEN``, and without it the exporter drops
the batch on serve's 401 (a permanent error to otlphttp, never retried).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.test_connectors import scrape, total, wait_for, workload
from tests.support.collector import CollectorProcess
from tests.support.processes import free_port
from tests.support.serve_process import ServeProcess, query

pytestmark = pytest.mark.slow


def forwarding_config(
    receiver_port: int, serve_url: str, exporter: dict[str, Any], extensions: dict[str, Any]
) -> dict[str, Any]:
    return {
        "extensions": extensions,
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{receiver_port}"}}}},
        "exporters": {"otlphttp": {"traces_endpoint": serve_url, **exporter}},
        "service": {
            "extensions": list(extensions),
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlphttp"]}},
        },
    }


def send(port: int, spans: list[ReadableSpan]) -> None:
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]


def stored_span_ids(store_url: str) -> list[str]:
    return [str(row[0]) for row in query(store_url, "SELECT SpanId FROM otel_traces")]


def test_a_persistent_queue_keeps_acknowledged_spans_across_sigkill_until_serve_is_up(
    otelcol: Path, tmp_path: Path
) -> None:
    spans = workload()
    store_url = f"chdb://{tmp_path / 'store'}"
    serve_port, receiver_port = free_port(), free_port()
    queue_directory = tmp_path / "queue"
    queue_directory.mkdir()
    exporter = {
        "sending_queue": {"enabled": True, "storage": "file_storage"},
        # Retry for as long as serve is away, quickly once it is back.
        "retry_on_failure": {
            "enabled": True,
            "initial_interval": "200ms",
            "max_interval": "1s",
            "max_elapsed_time": "0s",
        },
    }
    config = forwarding_config(
        receiver_port,
        f"http://127.0.0.1:{serve_port}/v1/traces",
        exporter,
        {"file_storage": {"directory": str(queue_directory)}},
    )
    collector = CollectorProcess(otelcol, config, tmp_path)
    serve: ServeProcess | None = None
    try:
        collector.wait_ready()
        send(receiver_port, spans)  # acknowledged: in the queue on disk, serve not running
        collector.kill()
        collector.restart()
        collector.wait_ready()
        serve = ServeProcess(store_url, tmp_path / "serve.log", http_port=serve_port)
        serve.wait_ready()
        metrics = f"http://127.0.0.1:{serve_port}/metrics"
        running = serve
        wait_for(
            "the restarted Collector did not deliver its queue",
            lambda: total(scrape(metrics), "chainmap_spans_stored_total") >= len(spans),
            lambda: collector.log() + running.log(),
        )
        assert collector.stop() == 0, collector.log()
        assert serve.terminate() == 0, serve.log()
    finally:
        collector.kill()
        if serve is not None:
            serve.terminate()
    ids = stored_span_ids(store_url)
    assert sorted(ids) == sorted(format(s.context.span_id, "016x") for s in spans if s.context)


def test_bearertokenauth_carries_the_ingest_token_and_a_collector_without_it_gets_401(
    otelcol: Path, tmp_path: Path
) -> None:
    spans = workload()
    store_url = f"chdb://{tmp_path / 'store'}"
    token = "s3cret-ingest-token"
    serve = ServeProcess(store_url, tmp_path / "serve.log", env={"CHAINMAP_INGEST_TOKEN": token})
    with_port, without_port = free_port(), free_port()
    with_token = CollectorProcess(
        otelcol,
        forwarding_config(
            with_port,
            serve.url,
            {"auth": {"authenticator": "bearertokenauth"}},
            {"bearertokenauth": {"token": token}},
        ),
        tmp_path,
        name="with-token",
    )
    without_token = CollectorProcess(
        otelcol, forwarding_config(without_port, serve.url, {}, {}), tmp_path, name="no-token"
    )
    try:
        serve.wait_ready()
        with_token.wait_ready()
        without_token.wait_ready()
        send(with_port, spans)
        send(without_port, spans)  # the Collector acknowledges, then serve refuses it
        wait_for(
            "the Collector without the token did not report serve's 401",
            lambda: "HTTP Status Code 401" in without_token.log(),
            without_token.log,
        )
        assert with_token.stop() == 0, with_token.log()
        assert without_token.stop() == 0, without_token.log()
        assert serve.terminate() == 0, serve.log()
    finally:
        with_token.kill()
        without_token.kill()
        serve.terminate()
    ids = stored_span_ids(store_url)
    assert sorted(ids) == sorted(format(s.context.span_id, "016x") for s in spans if s.context)
    # otlphttp treats 401 as permanent: it drops the batch instead of retrying (README).
    assert "Exporting failed. Dropping data." in without_token.log()
