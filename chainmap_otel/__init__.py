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
    QueryError,
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
    from chainmap_otel.storage.exporter import ClickHouseSpanExporter
    from chainmap_otel.tagging.launcher import configure

_LAZY = {
    "configure": "chainmap_otel.tagging.launcher",
    "ClickHouseSpanExporter": "chainmap_otel.storage.exporter",
}

__all__ = [
    "ChainCatalog",
    "ChainDefinition",
    "ChainDefinitionError",
    "ChainPropagator",
    "ChainSpanProcessor",
    "ChainmapError",
    "ClickHouseSpanExporter",
    "IngestError",
    "QueryError",
    "RegistryError",
    "StoreError",
    "StoreLockedError",
    "configure",
    "load_catalog",
    "parse_catalog",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chainmap_otel' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
