from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from chainmap_otel import track
from chainmap_otel.tagging.definitions import load_catalog
from chainmap_otel.tagging.processor import ChainSpanProcessor

ROOT = Path(__file__).resolve().parents[2]


class Fleet:
    """One provider per service name, all exporting to one in-memory exporter."""

    def __init__(self) -> None:
        self.catalog = load_catalog(ROOT / "chains.example.yaml")
        self.exporter = InMemorySpanExporter()
        self.providers: list[TracerProvider] = []

    def provider(self, service: str) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(ChainSpanProcessor(self.catalog))
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.providers.append(provider)
        track.use_tracer_provider(provider)
        return provider

    def spans(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.exporter.get_finished_spans()}


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    fleet = Fleet()
    yield fleet
    track.use_tracer_provider(None)
    for provider in fleet.providers:
        provider.shutdown()


def test_chain_pushes_the_chain_for_the_block_and_its_children(fleet: Fleet) -> None:
    fleet.provider("trading-engine")
    with track.chain("B3"), track.stage("risk_check", criticality="critical"):
        pass
    spans = fleet.spans()
    outer, inner = spans["chain B3"], spans["risk_check"]
    assert outer.kind is SpanKind.INTERNAL
    assert outer.attributes is not None and inner.attributes is not None
    assert outer.attributes["chain.push"] == "B3"
    assert outer.attributes["chain.entry_ids"] == "B3"
    assert inner.attributes["chain.ids"] == "B3"
    assert inner.attributes["chainmap.stage.criticality"] == "critical"
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id


def test_chain_decorator_makes_one_span_per_call_sync_and_async(fleet: Fleet) -> None:
    fleet.provider("trading-engine")

    @track.chain("B3", name="reconcile")
    def reconcile(n: int) -> int:
        return n * 2

    @track.stage("persist", criticality="high")
    async def persist(n: int) -> int:
        await asyncio.sleep(0)
        return n + 1

    assert reconcile(2) == 4
    assert reconcile(3) == 6
    assert asyncio.run(persist(1)) == 2
    names = [span.name for span in fleet.exporter.get_finished_spans()]
    assert names.count("reconcile") == 2
    assert names.count("persist") == 1
    assert reconcile.__name__ == "reconcile"


def test_exception_in_stage_is_recorded_and_reraised(fleet: Fleet) -> None:
    fleet.provider("trading-engine")
    with pytest.raises(RuntimeError), track.stage("execute"):
        raise RuntimeError("exchange rejected the order")
    span = fleet.spans()["execute"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "RuntimeError"
    assert [event.name for event in span.events] == ["exception"]


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="criticality 'urgent'"):
        track.stage("x", criticality="urgent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty string"):
        track.chain(" ")


def test_trading_decision_and_order_execution_stages(fleet: Fleet) -> None:
    fleet.provider("ai-orchestration")
    with track.trading_decision("d-1", symbol="AAPL"):
        with track.stage("signals", criticality="high"):
            pass
        with (
            track.order_execution("o-1", symbol="AAPL"),
            track.stage("route", criticality="critical"),
        ):
            pass
    spans = fleet.spans()
    decision, order = spans["trading_decision"], spans["order_execution"]
    assert decision.attributes is not None and order.attributes is not None
    assert decision.attributes["chainmap.trading.decision_id"] == "d-1"
    assert decision.attributes["chainmap.stage.criticality"] == "critical"
    assert order.attributes["chainmap.trading.order_id"] == "o-1"
    assert order.parent is not None and order.parent.span_id == decision.context.span_id
    route = spans["route"]
    assert route.parent is not None and route.parent.span_id == order.context.span_id


def test_market_data_measures_latency_or_takes_the_given_one(fleet: Fleet) -> None:
    fleet.provider("data-bridge")
    with track.market_data("AAPL", "tick"):
        pass
    with track.market_data("MSFT", "quote", latency_ms=12.5):
        pass
    spans = fleet.spans()
    tick, quote = spans["market_data tick"], spans["market_data quote"]
    assert tick.attributes is not None and quote.attributes is not None
    assert tick.attributes["chainmap.market_data.symbol"] == "AAPL"
    assert tick.attributes["chainmap.market_data.type"] == "tick"
    assert isinstance(tick.attributes["chainmap.market_data.latency_ms"], float)
    assert quote.attributes["chainmap.market_data.latency_ms"] == 12.5


def test_inference_sizes_latency_and_failure(fleet: Fleet) -> None:
    fleet.provider("ai-risk-model")
    with track.inference("risk-v3", input={"symbol": "AAPL"}, model_version="3.1") as call:
        call.set_output("BUY")
    with pytest.raises(ValueError), track.inference("risk-v3", input=128):
        raise ValueError("feature vector has NaN")
    ok, failed = fleet.exporter.get_finished_spans()
    assert ok.attributes is not None and failed.attributes is not None
    assert ok.attributes["ml.model.id"] == "risk-v3"
    assert ok.attributes["ml.model.version"] == "3.1"
    assert ok.attributes["ml.inference.input_size"] == len(str({"symbol": "AAPL"}))
    assert ok.attributes["ml.inference.output_size"] == 3
    assert "ml.inference.latency_ms" in ok.attributes
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["ml.inference.input_size"] == 128
    assert "ml.inference.latency_ms" in failed.attributes
    assert failed.events[0].name == "exception"


def test_training_stage_metrics(fleet: Fleet) -> None:
    fleet.provider("ai-market-model")
    with track.training_stage("nightly", "fit", metrics={"rows": 1000}) as fit:
        fit.record_metrics(loss=0.12, accuracy=0.91)
    span = fleet.spans()["training fit"]
    assert span.attributes is not None
    assert span.attributes["ml.training.pipeline_id"] == "nightly"
    assert span.attributes["ml.training.stage"] == "fit"
    assert span.attributes["ml.training.metric.rows"] == 1000
    assert span.attributes["ml.training.metric.loss"] == 0.12


class WebSocketDisconnect(Exception):
    """Named like Starlette's: a normal close, not an error."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def test_websocket_session_lifecycle_events_in_the_chain(fleet: Fleet) -> None:
    provider = fleet.provider("data-bridge")
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span(
            "/ws/market", kind=SpanKind.SERVER, attributes={"http.route": "/ws/market"}
        ),
        pytest.raises(WebSocketDisconnect),
        track.websocket_session("c-1") as ws,
    ):
        ws.message_processed("subscribe")
        ws.message_processed("ping")
        raise WebSocketDisconnect(1000)
    span = fleet.spans()["/ws/market"]
    assert span.attributes is not None
    assert span.attributes["chain.id"] == "C1"
    assert span.attributes["chainmap.websocket.connection_id"] == "c-1"
    assert span.attributes["chainmap.websocket.messages"] == 2
    assert [event.name for event in span.events] == [
        "websocket.connection_established",
        "websocket.message_processed",
        "websocket.message_processed",
        "websocket.connection_closed",
    ]
    closed = span.events[-1].attributes
    assert closed is not None and closed["chainmap.websocket.close_code"] == 1000
    assert span.status.status_code is StatusCode.UNSET


def test_websocket_session_failure_is_recorded(fleet: Fleet) -> None:
    provider = fleet.provider("trading-engine")
    with (
        provider.get_tracer("test").start_as_current_span("/ws/orders", kind=SpanKind.SERVER),
        pytest.raises(KeyError),
        track.websocket_session("c-2"),
    ):
        raise KeyError("account")
    span = fleet.spans()["/ws/orders"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[-1].name == "exception"


def test_chain_exception_handler_records_logs_and_answers_500(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    provider = fleet.provider("api-gateway")
    app = FastAPI()

    @app.get("/api/v1/orders")
    async def orders() -> dict[str, str]:
        raise LookupError("no route to trading-engine")

    track.install_exception_handler(app)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get("/api/v1/orders")

    try:
        with caplog.at_level(logging.ERROR, logger="chainmap_otel.tagging.track"):
            response = asyncio.run(call())
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "LookupError"
    assert body["chains"] == ["B1"]
    assert len(body["trace_id"]) == 32
    assert "chains affected: B1" in caplog.text
    assert f"trace_id {body['trace_id']}" in caplog.text
    server = next(
        span for span in fleet.exporter.get_finished_spans() if span.kind is SpanKind.SERVER
    )
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None and server.attributes["error.type"] == "LookupError"


def test_helpers_do_nothing_without_an_sdk() -> None:
    """A fresh interpreter with only the API: every helper runs, nothing records or raises."""
    script = textwrap.dedent(
        """
        import asyncio
        from opentelemetry import trace
        from chainmap_otel import track

        assert not trace.get_current_span().is_recording()
        with track.chain("B3") as scope:
            assert not scope.span.is_recording()
            with track.stage("s", criticality="low"), track.market_data("A", "tick"):
                pass
        with track.inference("m", input="x") as call:
            call.set_output("y")
        with track.training_stage("p", "fit") as fit:
            fit.record_metrics(loss=1.0)
        with track.trading_decision("d"), track.order_execution("o"):
            pass
        with track.websocket_session("c") as ws:
            ws.message_processed()
        track.websocket_event("message_processed", "c")

        @track.stage("a")
        async def coro():
            return 1

        assert asyncio.run(coro()) == 1
        assert track.chains_of() == []
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert result.stderr == ""
