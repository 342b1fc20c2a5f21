"""Tagging at the source: chain definitions, the rule engine, processor, propagator, launcher,
and the in-application helpers of :mod:`.track`."""

from __future__ import annotations

from chainmap_otel.tagging.definitions import (
    SLO,
    ChainCatalog,
    ChainDefinition,
    EntryRule,
    ExpectedTopology,
    Pattern,
    load_catalog,
    parse_catalog,
)
from chainmap_otel.tagging.processor import ChainSpanProcessor
from chainmap_otel.tagging.propagator import ChainPropagator
from chainmap_otel.tagging.rules import Classifier

__all__ = [
    "SLO",
    "ChainCatalog",
    "ChainDefinition",
    "ChainPropagator",
    "ChainSpanProcessor",
    "Classifier",
    "EntryRule",
    "ExpectedTopology",
    "Pattern",
    "load_catalog",
    "parse_catalog",
]
