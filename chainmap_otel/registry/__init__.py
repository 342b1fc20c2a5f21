"""The operations layer's store: chain definitions with versions in PostgreSQL, and the
hot reload of whatever analyses with them (LISTEN/NOTIFY)."""

from __future__ import annotations

from chainmap_otel.registry.chains import (
    NOTIFY_CHANNEL,
    ChainRegistry,
    PushReport,
    StoredChain,
    validate_definition,
)
from chainmap_otel.registry.embedded import EmbeddedPostgres
from chainmap_otel.registry.postgres import RegistryDatabase, open_registry_database

__all__ = [
    "NOTIFY_CHANNEL",
    "ChainRegistry",
    "EmbeddedPostgres",
    "PushReport",
    "RegistryDatabase",
    "StoredChain",
    "open_registry_database",
    "validate_definition",
]
