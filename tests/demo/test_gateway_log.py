"""The demo gateway's log line for a failing upstream names the trace, like track's handler."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import HTTPException
from opentelemetry.sdk.trace import TracerProvider

from chainmap_otel.demo import gateway


def test_upstream_failure_logs_the_trace_id(caplog: pytest.LogCaptureFixture) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("POST /api/v1/orders") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        with caplog.at_level(logging.WARNING, logger=gateway.__name__):
            with pytest.raises(HTTPException) as refused:
                gateway._relay(httpx.Response(503), "trading-engine")
    assert refused.value.status_code == 502
    assert f"trading-engine answered 503; trace_id {trace_id}" in caplog.text
