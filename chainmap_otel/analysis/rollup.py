"""The edge rollup's former import path, kept for ``chainmap_otel.server``; the rollup lives
in :mod:`chainmap_otel.analysis.rollups.edges`."""

from __future__ import annotations

from chainmap_otel.analysis.rollups.edges import LATENCY_BUCKETS_SECONDS, read_state

__all__ = ["LATENCY_BUCKETS_SECONDS", "read_state"]
