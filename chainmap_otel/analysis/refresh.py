"""The rollup refresher's former import path, kept for ``chainmap_otel.server``; it lives in
:mod:`chainmap_otel.analysis.rollups.refresh`."""

from __future__ import annotations

from chainmap_otel.analysis.rollups.refresh import RollupRefresher

__all__ = ["RollupRefresher"]
