"""Integration with the ``opentelemetry-instrument`` launcher, and the programmatic path.

``OTEL_PYTHON_DISTRO=chainmap OTEL_PYTHON_CONFIGURATOR=chainmap
CHAINMAP_CHAINS_FILE=chains.yaml opentelemetry-instrument uvicorn app:app``
tags every span with no code change:

- :class:`ChainmapDistro` sets defaults (OTLP over HTTP/protobuf for traces,
  no metrics/logs exporters) and the response-header propagator;
- :class:`ChainmapConfigurator` adds :class:`ChainSpanProcessor` through the
  SDK's ``span_processors``, wraps the sampler so unsampled chain entries are counted too
  (:mod:`chainmap_otel.tagging.entry_counts`) and, when ``OTEL_PROPAGATORS`` is unset, installs
  ``tracecontext,baggage,chainmap`` (propagators cannot be set from a distro:
  ``opentelemetry.propagate`` is imported before it runs).

Apps that build their own TracerProvider call :func:`configure` instead.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_PROPAGATORS,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.instrumentation.propagators import (
    ResponsePropagator,
    get_global_response_propagator,
    set_global_response_propagator,
)
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import CarrierT, Setter, default_setter
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_PROTOCOL
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chainmap_otel.config import (
    CHAINMAP_CHAINS_FILE,
    CHAINMAP_CHAINS_RELOAD_INTERVAL,
    CHAINMAP_RESPONSE_HEADERS,
    env_bool,
    env_seconds,
    env_str,
)
from chainmap_otel.tagging.active import (
    ChainsFileWatcher,
    load_catalog_safely,
    set_active_catalog,
)
from chainmap_otel.tagging.definitions import ChainCatalog
from chainmap_otel.tagging.entry_counts import EntryCountingSampler
from chainmap_otel.tagging.processor import ATTR_CHAIN_ID, ChainSpanProcessor
from chainmap_otel.tagging.propagator import ChainPropagator

logger = logging.getLogger(__name__)

HEADER_TRACE_ID = "X-Trace-ID"
HEADER_CHAIN_ID = "X-Chain-ID"
_EXPOSE_HEADERS = "Access-Control-Expose-Headers"


class ChainResponsePropagator(ResponsePropagator):
    """Adds ``X-Trace-ID`` (32 hex) and, in a chain, ``X-Chain-ID`` to HTTP responses."""

    def inject(
        self,
        carrier: CarrierT,
        context: Any = None,
        setter: Setter[CarrierT] = default_setter,  # type: ignore[assignment]
    ) -> None:
        span = trace.get_current_span(context)
        span_context = span.get_span_context()
        if not span_context.is_valid:
            return
        setter.set(carrier, HEADER_TRACE_ID, format_trace_id(span_context.trace_id))
        attributes = getattr(span, "attributes", None)
        chain_id = attributes.get(ATTR_CHAIN_ID) if attributes else None
        exposed = HEADER_TRACE_ID
        if isinstance(chain_id, str):
            setter.set(carrier, HEADER_CHAIN_ID, chain_id)
            exposed += f", {HEADER_CHAIN_ID}"
        setter.set(carrier, _EXPOSE_HEADERS, exposed)


def chain_propagators() -> CompositePropagator:
    """``tracecontext,baggage,chainmap``: chainmap last, so its baggage header wins."""
    return CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator(), ChainPropagator()]
    )


def _install_response_headers() -> None:
    if env_bool(CHAINMAP_RESPONSE_HEADERS) and get_global_response_propagator() is None:
        set_global_response_propagator(ChainResponsePropagator())


#: ``opentelemetry_instrumentor`` entry points that make a service's SERVER spans: without
#: one a request has no server span, so no chain entry, no ``X-Trace-ID`` and no nesting.
SERVER_INSTRUMENTATIONS = frozenset(
    {
        "aiohttp-server",
        "asgi",
        "django",
        "falcon",
        "fastapi",
        "flask",
        "grpc_aio_server",
        "grpc_server",
        "pyramid",
        "starlette",
        "tornado",
        "wsgi",
    }
)


def server_instrumentations() -> list[str]:
    """The server instrumentations ``opentelemetry-instrument`` will load: installed as
    ``opentelemetry_instrumentor`` entry points and not in
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``."""
    from importlib.metadata import entry_points

    disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    if disabled.strip() == "*":
        return []
    off = {name.strip() for name in disabled.split(",")}
    names = {ep.name for ep in entry_points(group="opentelemetry_instrumentor")}
    return sorted((names & SERVER_INSTRUMENTATIONS) - off)


def _warn_without_server_instrumentation() -> None:
    try:
        found = server_instrumentations()
    except Exception:
        logger.debug("chainmap: cannot list the installed instrumentations", exc_info=True)
        return
    if not found:
        logger.warning(
            "chainmap: no server instrumentation is installed and enabled (fastapi, starlette, "
            "flask, django, ...), so requests make no server spans: no chain entries, no "
            "X-Trace-ID; install them with `opentelemetry-bootstrap -a install` or e.g. "
            "pip install opentelemetry-instrumentation-fastapi"
        )


class ChainmapDistro(BaseDistro):  # type: ignore[misc]
    """Defaults for services that send their spans to a Collector or ``chainmap serve``."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault(OTEL_TRACES_EXPORTER, "otlp")
        os.environ.setdefault(OTEL_METRICS_EXPORTER, "none")
        os.environ.setdefault(OTEL_LOGS_EXPORTER, "none")
        os.environ.setdefault(OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf")
        _install_response_headers()
        _warn_without_server_instrumentation()


class ChainmapConfigurator(_OTelSDKConfigurator):  # type: ignore[misc]
    """The SDK's own configurator plus the chain processor and propagators."""

    def _configure(self, **kwargs: Any) -> None:
        catalog = load_catalog_safely(None)
        set_active_catalog(catalog)
        processor = ChainSpanProcessor(catalog)
        _watch_chains_file(processor)
        processors: list[SpanProcessor] = [processor]
        processors.extend(kwargs.pop("span_processors", None) or ())
        if not os.environ.get(OTEL_PROPAGATORS):
            propagate.set_global_textmap(chain_propagators())
        _install_response_headers()
        if catalog.chains:
            logger.info(
                "chainmap: tagging spans with %d chains from %s", len(catalog), catalog.source
            )
        super()._configure(span_processors=processors, **kwargs)
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider) and metrics_exported():
            count_unsampled_entries(provider, processor)


def metrics_exported() -> bool:
    """Whether ``OTEL_METRICS_EXPORTER`` names an exporter (the distro's default is
    ``none``): only then are unsampled entries worth recording, since nobody reads counts
    that are never exported."""
    names = (name.strip().lower() for name in os.environ.get(OTEL_METRICS_EXPORTER, "").split(","))
    return any(name and name != "none" for name in names)


def _meter_provider_set() -> bool:
    """Whether a metrics SDK MeterProvider is the global one (not the API's placeholder)."""
    return isinstance(metrics.get_meter_provider(), MeterProvider)


def count_unsampled_entries(provider: TracerProvider, processor: ChainSpanProcessor) -> None:
    """Make ``provider``'s sampler record (not sample) the spans it drops that could begin a
    chain, so ``processor`` counts every chain entry (tracers made after this call)."""
    if not isinstance(provider.sampler, EntryCountingSampler):
        provider.sampler = EntryCountingSampler(provider.sampler, processor, provider)


def _watch_chains_file(processor: ChainSpanProcessor) -> ChainsFileWatcher | None:
    """Reload ``$CHAINMAP_CHAINS_FILE`` into ``processor`` when the file changes."""
    path = env_str(CHAINMAP_CHAINS_FILE)
    if not path:
        return None
    watcher = ChainsFileWatcher(
        path, processor.swap_catalog, env_seconds(CHAINMAP_CHAINS_RELOAD_INTERVAL)
    )
    watcher.start()
    return watcher


def configure(
    chains: ChainCatalog | str | Path | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    service_name: str | None = None,
    exporter: SpanExporter | None = None,
    set_propagators: bool = True,
    set_global: bool = True,
    count_entries: bool | None = None,
) -> TracerProvider:
    """Tag spans of an app that builds its own TracerProvider.

    ``chains`` is a catalog or a YAML path (default ``$CHAINMAP_CHAINS_FILE``; a
    bad file logs a warning and leaves spans untagged). Adds the processor to
    ``tracer_provider`` (a new one named ``service_name`` if omitted), batches
    ``exporter`` if given, installs the propagators and returns the provider. Chain entries
    are counted on the global MeterProvider (:mod:`chainmap_otel.tagging.entry_counts`);
    ``count_entries`` (default: when an SDK MeterProvider is already the global one) makes
    the sampler record the unsampled ones too, for tracers made after this call.
    """
    catalog = chains if isinstance(chains, ChainCatalog) else load_catalog_safely(chains)
    set_active_catalog(catalog)
    if tracer_provider is None:
        resource = Resource.create({SERVICE_NAME: service_name} if service_name else {})
        tracer_provider = TracerProvider(resource=resource)
    processor = ChainSpanProcessor(catalog)
    tracer_provider.add_span_processor(processor)
    if _meter_provider_set() if count_entries is None else count_entries:
        count_unsampled_entries(tracer_provider, processor)
    if exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    if set_propagators:
        propagate.set_global_textmap(chain_propagators())
    _install_response_headers()
    if set_global:
        trace.set_tracer_provider(tracer_provider)
    return tracer_provider
