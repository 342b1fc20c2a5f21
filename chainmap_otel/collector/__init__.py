"""Collector pipelines: chain rules compiled to OTTL for the contrib transform processor."""

from __future__ import annotations

from chainmap_otel.collector.ottl import glob_to_re2, quote, trace_statements
from chainmap_otel.collector.pipeline import (
    CONTRIB_IMAGE_TAG,
    PROCESSOR_ID,
    collector_config,
    transform_processor,
)

__all__ = [
    "CONTRIB_IMAGE_TAG",
    "PROCESSOR_ID",
    "collector_config",
    "glob_to_re2",
    "quote",
    "trace_statements",
    "transform_processor",
]
