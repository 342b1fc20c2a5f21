"""chainmap-otel: end-to-end request chains from standard OpenTelemetry traces.

Importing this package stays light (OTel API/SDK and PyYAML): the storage and
analysis names below are imported on first use, so a service that only tags
spans never loads ClickHouse, chDB or networkx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chainmap_otel.errors import (
    ChainDefinitionError,
    ChainmapError,
    IngestError,
    NotFoundError,
    ParameterError,
    QueryError,
    RegistryConflictError,
    RegistryError,
    StoreError,
    StoreLockedError,
)
from chainmap_otel.tagging.definitions import (
    ChainCatalog,
    ChainDefinition,
    load_catalog,
    parse_catalog,
)
from chainmap_otel.tagging.processor import ChainSpanProcessor
from chainmap_otel.tagging.propagator import ChainPropagator

if TYPE_CHECKING:
    from chainmap_otel.analysis.coverage import coverage
    from chainmap_otel.analysis.critical_path import chain_critical_path, critical_path
    from chainmap_otel.analysis.discovery import discover
    from chainmap_otel.analysis.drift import drift
    from chainmap_otel.analysis.health import health
    from chainmap_otel.analysis.impact import impact
    from chainmap_otel.analysis.timewindow import parse_window
    from chainmap_otel.analysis.topology import topology
    from chainmap_otel.analysis.traces import TraceQuery, search_traces
    from chainmap_otel.collector import collector_config
    from chainmap_otel.ingest.exporter import ClickHouseSpanExporter
    from chainmap_otel.ingest.files import ingest_files
    from chainmap_otel.monitor import ChainMonitor
    from chainmap_otel.registry import ChainRegistry, open_registry_database
    from chainmap_otel.server import create_app, run_server
    from chainmap_otel.storage.schema import apply_schema, show_schema
    from chainmap_otel.storage.store import TraceStore, open_store
    from chainmap_otel.tagging import track
    from chainmap_otel.tagging.launcher import configure

#: Public names whose modules are imported on first use (heavy dependencies).
_LAZY = {
    "configure": "chainmap_otel.tagging.launcher",
    "ClickHouseSpanExporter": "chainmap_otel.ingest.exporter",
    "TraceStore": "chainmap_otel.storage.store",
    "open_store": "chainmap_otel.storage.store",
    "apply_schema": "chainmap_otel.storage.schema",
    "show_schema": "chainmap_otel.storage.schema",
    "ingest_files": "chainmap_otel.ingest.files",
    "topology": "chainmap_otel.analysis",
    "critical_path": "chainmap_otel.analysis",
    "chain_critical_path": "chainmap_otel.analysis",
    "health": "chainmap_otel.analysis",
    "coverage": "chainmap_otel.analysis",
    "impact": "chainmap_otel.analysis",
    "drift": "chainmap_otel.analysis",
    "discover": "chainmap_otel.analysis",
    "parse_window": "chainmap_otel.analysis",
    "collector_config": "chainmap_otel.collector",
    "search_traces": "chainmap_otel.analysis",
    "TraceQuery": "chainmap_otel.analysis",
    "create_app": "chainmap_otel.server",
    "run_server": "chainmap_otel.server",
    "ChainRegistry": "chainmap_otel.registry",
    "open_registry_database": "chainmap_otel.registry",
    "ChainMonitor": "chainmap_otel.monitor",
}

__all__ = [
    "ChainCatalog",
    "ChainDefinition",
    "ChainDefinitionError",
    "ChainMonitor",
    "ChainPropagator",
    "ChainRegistry",
    "ChainSpanProcessor",
    "ChainmapError",
    "ClickHouseSpanExporter",
    "IngestError",
    "NotFoundError",
    "ParameterError",
    "QueryError",
    "RegistryConflictError",
    "RegistryError",
    "StoreError",
    "StoreLockedError",
    "TraceQuery",
    "TraceStore",
    "apply_schema",
    "chain_critical_path",
    "collector_config",
    "configure",
    "coverage",
    "create_app",
    "critical_path",
    "discover",
    "drift",
    "health",
    "impact",
    "ingest_files",
    "load_catalog",
    "open_registry_database",
    "open_store",
    "parse_catalog",
    "parse_window",
    "run_server",
    "search_traces",
    "show_schema",
    "topology",
    "track",
]


def __getattr__(name: str) -> Any:
    if name == "track":
        return importlib.import_module("chainmap_otel.tagging.track")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chainmap_otel' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
