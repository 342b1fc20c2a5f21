"""Domain helpers: the trading platform's integration points as spans and span events.

Each helper is a thin layer over the OpenTelemetry API, so it costs next to
nothing when no SDK is configured (the API's no-op tracer) and needs no
chainmap setup beyond ``opentelemetry-instrument``. Attribute names follow the
semantic conventions where one exists (``error.type``, exception events) and
otherwise a documented ``chainmap.*`` / ``ml.*`` namespace:

==================================  =====================================================
``chainmap.stage.name``             a business stage (:func:`stage`, trading helpers)
``chainmap.stage.criticality``      ``low`` / ``medium`` / ``high`` / ``critical``
``chainmap.websocket.connection_id`` WebSocket connection id (:func:`websocket_session`)
``chainmap.websocket.event_type``   ``connection_established`` / ``message_processed`` /
                                    ``connection_closed`` (span events ``websocket.<type>``)
``chainmap.websocket.messages``     messages processed on the connection, set at close
``chainmap.market_data.symbol``     instrument symbol (:func:`market_data`)
``chainmap.market_data.type``       ``tick``, ``quote``, ``trade``, ``bar`` ...
``chainmap.market_data.latency_ms`` processing latency of the update
``ml.model.id`` / ``ml.model.version``  the model (:func:`inference`)
``ml.inference.input_size`` / ``ml.inference.output_size``  payload sizes (characters of
                                    the payload's text form, or the int given)
``ml.inference.latency_ms``         inference latency, also on failures
``ml.training.pipeline_id`` / ``ml.training.stage``  (:func:`training_stage`)
``ml.training.metric.<name>``       a stage metric (loss, accuracy, rows ...)
``chainmap.trading.decision_id`` / ``chainmap.trading.order_id`` / ``chainmap.trading.symbol``
``messaging.destination.name``      queue or topic (:func:`publish`, :func:`consume`), with
                                    ``messaging.operation.type`` ``send`` / ``process``,
                                    ``messaging.system``, ``messaging.message.id``,
                                    ``messaging.batch.message_count`` (:func:`consume_batch`)
==================================  =====================================================

``with chain("B3"):`` (or ``@chain("B3")``) starts an INTERNAL span carrying
``chain.push`` at start, which :class:`~chainmap_otel.tagging.ChainSpanProcessor`
turns into a pushed chain for that span and its descendants.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import trace
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from chainmap_otel.tagging.messaging import (
    ATTR_MESSAGING_BATCH_COUNT,
    ATTR_MESSAGING_DESTINATION,
    ATTR_MESSAGING_MESSAGE_ID,
    ATTR_MESSAGING_OPERATION_NAME,
    ATTR_MESSAGING_OPERATION_TYPE,
    ATTR_MESSAGING_SYSTEM,
    MessagePublish,
    consume,
    consume_batch,
    publish,
)
from chainmap_otel.tagging.scopes import (
    ATTR_ERROR_TYPE,
    SpanScope,
    _attrs,
    record_error,
    use_tracer_provider,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

logger = logging.getLogger(__name__)

__all__ = [
    "ATTR_DECISION_ID",
    "ATTR_ERROR_TYPE",
    "ATTR_INFERENCE_INPUT_SIZE",
    "ATTR_INFERENCE_LATENCY_MS",
    "ATTR_INFERENCE_OUTPUT_SIZE",
    "ATTR_MARKET_DATA_LATENCY_MS",
    "ATTR_MARKET_DATA_SYMBOL",
    "ATTR_MARKET_DATA_TYPE",
    "ATTR_MESSAGING_BATCH_COUNT",
    "ATTR_MESSAGING_DESTINATION",
    "ATTR_MESSAGING_MESSAGE_ID",
    "ATTR_MESSAGING_OPERATION_NAME",
    "ATTR_MESSAGING_OPERATION_TYPE",
    "ATTR_MESSAGING_SYSTEM",
    "ATTR_MODEL_ID",
    "ATTR_MODEL_VERSION",
    "ATTR_ORDER_ID",
    "ATTR_STAGE_CRITICALITY",
    "ATTR_STAGE_NAME",
    "ATTR_TRADING_SYMBOL",
    "ATTR_TRAINING_METRIC_PREFIX",
    "ATTR_TRAINING_PIPELINE_ID",
    "ATTR_TRAINING_STAGE",
    "ATTR_WS_CONNECTION_ID",
    "ATTR_WS_EVENT_TYPE",
    "ATTR_WS_MESSAGES",
    "Criticality",
    "Inference",
    "MessagePublish",
    "SpanScope",
    "TrainingStage",
    "WebSocketSession",
    "chain",
    "chain_exception_handler",
    "chains_of",
    "consume",
    "consume_batch",
    "inference",
    "install_exception_handler",
    "market_data",
    "order_execution",
    "publish",
    "record_error",
    "stage",
    "trading_decision",
    "training_stage",
    "use_tracer_provider",
    "websocket_event",
    "websocket_session",
]

ATTR_STAGE_NAME = "chainmap.stage.name"
ATTR_STAGE_CRITICALITY = "chainmap.stage.criticality"
ATTR_WS_CONNECTION_ID = "chainmap.websocket.connection_id"
ATTR_WS_EVENT_TYPE = "chainmap.websocket.event_type"
ATTR_WS_MESSAGES = "chainmap.websocket.messages"
ATTR_MARKET_DATA_SYMBOL = "chainmap.market_data.symbol"
ATTR_MARKET_DATA_TYPE = "chainmap.market_data.type"
ATTR_MARKET_DATA_LATENCY_MS = "chainmap.market_data.latency_ms"
ATTR_MODEL_ID = "ml.model.id"
ATTR_MODEL_VERSION = "ml.model.version"
ATTR_INFERENCE_INPUT_SIZE = "ml.inference.input_size"
ATTR_INFERENCE_OUTPUT_SIZE = "ml.inference.output_size"
ATTR_INFERENCE_LATENCY_MS = "ml.inference.latency_ms"
ATTR_TRAINING_PIPELINE_ID = "ml.training.pipeline_id"
ATTR_TRAINING_STAGE = "ml.training.stage"
ATTR_TRAINING_METRIC_PREFIX = "ml.training.metric."
ATTR_DECISION_ID = "chainmap.trading.decision_id"
ATTR_ORDER_ID = "chainmap.trading.order_id"
ATTR_TRADING_SYMBOL = "chainmap.trading.symbol"
#: Most producers one batch consumer span links to (:func:`consume_batch`).
_ATTR_CHAIN_PUSH = "chain.push"  # read by ChainSpanProcessor at span start
_ATTR_CHAIN_IDS = "chain.ids"  # written by ChainSpanProcessor

Criticality = Literal["low", "medium", "high", "critical"]
_CRITICALITIES = frozenset(("low", "medium", "high", "critical"))
#: Exception class names that end a WebSocket normally rather than fail it.
_NORMAL_CLOSE = frozenset(("WebSocketDisconnect", "ConnectionClosedOK"))


def _payload_size(payload: object) -> int:
    if isinstance(payload, bool):
        return len(str(payload))
    if isinstance(payload, int):
        return payload
    if isinstance(payload, str | bytes | bytearray):
        return len(payload)
    return len(str(payload))


def chains_of(span: Span | None = None) -> list[str]:
    """The chain stack (outermost first) of ``span`` (default: the current span)."""
    target = span if span is not None else trace.get_current_span()
    attributes: Mapping[str, Any] | None = getattr(target, "attributes", None)
    raw = attributes.get(_ATTR_CHAIN_IDS) if attributes else None
    return [part for part in raw.split(",") if part] if isinstance(raw, str) else []


def _criticality(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in _CRITICALITIES:
        raise ValueError(f"criticality {value!r} is not one of {', '.join(sorted(_CRITICALITIES))}")
    return value


def chain(chain_id: str, name: str | None = None) -> SpanScope:
    """Put a block or function into chain ``chain_id`` (a code path rules cannot see).

    Starts an INTERNAL span (``name`` default ``chain <id>``) with ``chain.push``
    set at start; the chain processor pushes the chain for it and its children.
    Unknown ids are ignored by the processor, so spans stay valid.
    """
    if not isinstance(chain_id, str) or not chain_id.strip():
        raise ValueError(f"chain id must be a non-empty string like 'B3', got {chain_id!r}")
    chain_id = chain_id.strip()
    return SpanScope(name or f"chain {chain_id}", {_ATTR_CHAIN_PUSH: chain_id})


def stage(
    name: str,
    *,
    criticality: Criticality | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> SpanScope:
    """A business stage as a child span (``with stage("risk_check", criticality="critical"):``
    or ``@stage("risk_check")``), so critical-path analysis shows which stage dominates."""
    attrs = dict(attributes or {})
    attrs[ATTR_STAGE_NAME] = name
    checked = _criticality(criticality)
    if checked is not None:
        attrs[ATTR_STAGE_CRITICALITY] = checked
    return SpanScope(name, attrs)


def _business_span(
    name: str, id_attribute: str, value: str, symbol: str | None, criticality: Criticality
) -> SpanScope:
    return SpanScope(
        name,
        _attrs(
            **{
                id_attribute: value,
                ATTR_TRADING_SYMBOL: symbol,
                ATTR_STAGE_NAME: name,
                ATTR_STAGE_CRITICALITY: _criticality(criticality),
            }
        ),
    )


def trading_decision(
    decision_id: str, *, symbol: str | None = None, criticality: Criticality = "critical"
) -> SpanScope:
    """The span of one trading decision; its stages are :func:`stage` children."""
    return _business_span("trading_decision", ATTR_DECISION_ID, decision_id, symbol, criticality)


def order_execution(
    order_id: str, *, symbol: str | None = None, criticality: Criticality = "critical"
) -> SpanScope:
    """The span of one order's execution; its stages are :func:`stage` children."""
    return _business_span("order_execution", ATTR_ORDER_ID, order_id, symbol, criticality)


class MarketDataFlow(SpanScope):
    """Processing of one market data update; the latency is set when the block ends."""

    def __init__(self, symbol: str, data_type: str, latency_ms: float | None) -> None:
        super().__init__(
            f"market_data {data_type}",
            {ATTR_MARKET_DATA_SYMBOL: symbol, ATTR_MARKET_DATA_TYPE: data_type},
        )
        self.latency_ms = latency_ms

    def _finish(self, exc: BaseException | None) -> None:
        latency = self.latency_ms if self.latency_ms is not None else self.elapsed_ms()
        self._span.set_attribute(ATTR_MARKET_DATA_LATENCY_MS, float(latency))
        super()._finish(exc)


def market_data(symbol: str, data_type: str, *, latency_ms: float | None = None) -> MarketDataFlow:
    """A span around processing one update of ``symbol``; ``latency_ms`` defaults to the
    block's duration (pass it when the latency is measured elsewhere, e.g. from the feed)."""
    return MarketDataFlow(symbol, data_type, latency_ms)


class Inference(SpanScope):
    """One model inference: sizes and latency are set when the block ends, a failure is
    recorded with its exception."""

    def __init__(self, model_id: str, model_version: str | None, input_payload: object) -> None:
        super().__init__(
            f"inference {model_id}",
            _attrs(**{ATTR_MODEL_ID: model_id, ATTR_MODEL_VERSION: model_version}),
        )
        self._input = input_payload
        self._output: object = None

    def set_output(self, output: object) -> None:
        """The model's output (or its size as an int)."""
        self._output = output

    def _finish(self, exc: BaseException | None) -> None:
        self._span.set_attribute(ATTR_INFERENCE_LATENCY_MS, self.elapsed_ms())
        if self._input is not None:
            self._span.set_attribute(ATTR_INFERENCE_INPUT_SIZE, _payload_size(self._input))
        if self._output is not None:
            self._span.set_attribute(ATTR_INFERENCE_OUTPUT_SIZE, _payload_size(self._output))
        super()._finish(exc)


def inference(
    model_id: str, *, input: object = None, model_version: str | None = None
) -> Inference:
    """``with inference("risk-v3", input=features) as call: ...; call.set_output(result)``."""
    return Inference(model_id, model_version, input)


class TrainingStage(SpanScope):
    """One stage of a training pipeline; metrics become ``ml.training.metric.<name>``."""

    def record_metrics(self, **metrics: float | int | str | bool) -> None:
        for key, value in metrics.items():
            self.set_attribute(ATTR_TRAINING_METRIC_PREFIX + key, value)


def training_stage(
    pipeline_id: str, stage: str, *, metrics: Mapping[str, float | int | str | bool] | None = None
) -> TrainingStage:
    """``with training_stage("nightly", "fit") as s: ...; s.record_metrics(loss=0.1)``."""
    attrs: dict[str, AttributeValue] = {
        ATTR_TRAINING_PIPELINE_ID: pipeline_id,
        ATTR_TRAINING_STAGE: stage,
    }
    for key, value in (metrics or {}).items():
        attrs[ATTR_TRAINING_METRIC_PREFIX + key] = value
    return TrainingStage(f"training {stage}", attrs)


def websocket_event(
    event_type: str,
    connection_id: str,
    *,
    span: Span | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> None:
    """A ``websocket.<event_type>`` event on ``span`` (default: the current span, which in
    an instrumented app is the connection's SERVER span, in the WebSocket chain)."""
    target = span if span is not None else trace.get_current_span()
    if not target.is_recording():
        return
    attrs: dict[str, AttributeValue] = dict(attributes or {})
    attrs[ATTR_WS_CONNECTION_ID] = connection_id
    attrs[ATTR_WS_EVENT_TYPE] = event_type
    target.add_event(f"websocket.{event_type}", attrs)


class WebSocketSession:
    """Lifecycle events of one WebSocket connection on the span current at ``with``.

    ``connection_established`` on entry, :meth:`message_processed` per message,
    ``connection_closed`` on exit (a normal disconnect is not an error; any other
    exception is recorded on the span).
    """

    def __init__(self, connection_id: str, span: Span | None = None) -> None:
        self.connection_id = connection_id
        self.messages = 0
        self._span = span

    @property
    def span(self) -> Span:
        return self._span if self._span is not None else trace.INVALID_SPAN

    def message_processed(self, message_type: str | None = None) -> None:
        self.messages += 1
        websocket_event(
            "message_processed",
            self.connection_id,
            span=self._span,
            attributes=_attrs(**{"chainmap.websocket.message_type": message_type}),
        )

    def __enter__(self) -> WebSocketSession:
        if self._span is None:
            self._span = trace.get_current_span()
        if self._span.is_recording():
            self._span.set_attribute(ATTR_WS_CONNECTION_ID, self.connection_id)
        websocket_event("connection_established", self.connection_id, span=self._span)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self.span
        if not span.is_recording():
            return
        attrs: dict[str, AttributeValue] = {}
        code = getattr(exc, "code", None)
        if isinstance(code, int):
            attrs["chainmap.websocket.close_code"] = code
        websocket_event("connection_closed", self.connection_id, span=span, attributes=attrs)
        span.set_attribute(ATTR_WS_MESSAGES, self.messages)
        if exc is not None and type(exc).__name__ not in _NORMAL_CLOSE:
            record_error(span, exc)


def websocket_session(connection_id: str, *, span: Span | None = None) -> WebSocketSession:
    """``with websocket_session(conn_id) as ws: ... ws.message_processed("subscribe")``."""
    return WebSocketSession(connection_id, span)


async def chain_exception_handler(request: Request, exc: Exception) -> Response:
    """FastAPI/Starlette handler: records ``exc`` on the current span (the request's SERVER
    span under the FastAPI instrumentation), logs the chains it affects and the trace id, and
    answers a JSON 500.
    """
    from starlette.responses import JSONResponse

    span = trace.get_current_span()
    record_error(span, exc)
    chains = chains_of(span)
    context = span.get_span_context()
    trace_id = trace.format_trace_id(context.trace_id) if context.is_valid else None
    # The trace id leads from the log line to the trace (chainmap's /traces/<id>).
    logger.error(
        "%s %s failed with %s: %s; chains affected: %s; trace_id %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
        ", ".join(chains) or "none",
        trace_id or "none",
    )
    body: dict[str, Any] = {
        "detail": "Internal Server Error",
        "error": type(exc).__name__,
        "chains": chains,
    }
    if trace_id is not None:
        body["trace_id"] = trace_id
    return JSONResponse(body, status_code=500)


def install_exception_handler(app: Starlette) -> None:
    """Register :func:`chain_exception_handler` for every unhandled exception of ``app``."""
    app.add_exception_handler(Exception, chain_exception_handler)
