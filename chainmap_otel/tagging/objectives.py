"""A chain's ``slo`` block in a chains file: objectives, their window and per-environment
overrides, validated like the rest of a definition (every problem named by its field).

::

    slo:
      latency_ms: {p95: 800}
      error_rate: 0.01
      window: 30d
      environments:            # keyed by deployment.environment.name
        staging: {latency_ms: {p95: 2000}, error_rate: 0.05}

An environment's block takes the same keys as ``slo`` (but no ``environments``); what it
sets replaces the chain's objective, what it leaves out falls back to the chain's
(:meth:`~chainmap_otel.tagging.model.SLO.effective`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from chainmap_otel.tagging.chainsfile import line_of, shown_value, type_name
from chainmap_otel.tagging.model import PERCENTILES, SLO, SLOOverride, duration_seconds

__all__ = ["MAX_ENVIRONMENT_CHARS", "MAX_LATENCY_MS", "MAX_SLO_WINDOW_S", "SLOParsing"]

#: Largest latency objective: one day (longer is no latency objective).
MAX_LATENCY_MS = 86_400_000
#: Longest SLO window: ten years (the longest window analysis reads).
MAX_SLO_WINDOW_S = 3660 * 86400
#: Longest environment name (as the analysis window's ``environment`` filter accepts).
MAX_ENVIRONMENT_CHARS = 128
_SLO_KEYS = ("latency_ms", "error_rate", "window", "environments")
_OVERRIDE_KEYS = ("latency_ms", "error_rate", "window")


class _Problems(Protocol):
    def add(self, line: int, where: str, message: str) -> None: ...


class SLOParsing:
    """The ``slo`` part of the chains-file parser (mixed into it: it shares the parser's
    problem list and key checks)."""

    problems: _Problems
    #: The parser's check of a mapping's keys (``ChainsFileParser.unknown_keys``).
    unknown_keys: Callable[[Any, tuple[str, ...], str], None]

    def slo(self, raw: Any, line: int, where: str) -> SLO | None:
        if not isinstance(raw, dict):
            self.problems.add(line, where, f"expected a mapping, got {type_name(raw)}")
            return None
        self.unknown_keys(raw, _SLO_KEYS, where)
        latency, error_rate, window = self._objectives(raw, line, where)
        environments: dict[str, SLOOverride] = {}
        if "environments" in raw:
            environments = self._environments(
                raw["environments"], line_of(raw, "environments", line), f"{where}.environments"
            )
        return SLO(
            latency_ms=latency,
            error_rate=error_rate,
            window_seconds=30 * 86400 if window is None else window,
            environments=environments,
        )

    def _environments(self, raw: Any, line: int, where: str) -> dict[str, SLOOverride]:
        if not isinstance(raw, dict):
            self.problems.add(
                line,
                where,
                "expected a mapping of environment name -> objectives, e.g. "
                "{staging: {error_rate: 0.05}}",
            )
            return {}
        out: dict[str, SLOOverride] = {}
        for name, block in raw.items():
            eline = line_of(raw, name, line)
            place = f"{where}.{name}"
            text = str(name).strip()
            if not text or len(text) > MAX_ENVIRONMENT_CHARS or not text.isprintable():
                self.problems.add(
                    eline,
                    place,
                    f"bad environment name {shown_value(name)}; use the "
                    f"deployment.environment.name value (1-{MAX_ENVIRONMENT_CHARS} printable "
                    "characters)",
                )
                continue
            if not isinstance(block, dict) or not block:
                self.problems.add(
                    eline,
                    place,
                    "expected a mapping with latency_ms, error_rate or window, got "
                    + ("an empty mapping" if isinstance(block, dict) else type_name(block)),
                )
                continue
            self.unknown_keys(block, _OVERRIDE_KEYS, place)
            latency, error_rate, window = self._objectives(block, eline, place)
            out[text] = SLOOverride(
                latency_ms=latency, error_rate=error_rate, window_seconds=window
            )
        return out

    def _objectives(
        self, raw: Any, line: int, where: str
    ) -> tuple[dict[str, float], float | None, int | None]:
        """``latency_ms``, ``error_rate`` and ``window`` (seconds) of an ``slo`` mapping or of
        one environment's, each None / empty where absent or bad."""
        latency: dict[str, float] = {}
        if "latency_ms" in raw:
            lat = raw["latency_ms"]
            lline = line_of(raw, "latency_ms", line)
            if not isinstance(lat, dict):
                self.problems.add(
                    lline, f"{where}.latency_ms", "expected a mapping like {p95: 300, p99: 800}"
                )
            else:
                for key, value in lat.items():
                    kline = line_of(lat, key, lline)
                    if key not in PERCENTILES:
                        self.problems.add(
                            kline,
                            f"{where}.latency_ms.{key}",
                            f"unknown percentile; use one of {', '.join(PERCENTILES)}",
                        )
                    elif (
                        isinstance(value, bool)
                        or not isinstance(value, int | float)
                        or not 0 < value <= MAX_LATENCY_MS
                    ):
                        self.problems.add(
                            kline,
                            f"{where}.latency_ms.{key}",
                            f"expected a positive number of milliseconds up to {MAX_LATENCY_MS} "
                            "(one day)",
                        )
                    else:
                        latency[key] = float(value)
        error_rate = None
        if "error_rate" in raw:
            value = raw["error_rate"]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                self.problems.add(
                    line_of(raw, "error_rate", line),
                    f"{where}.error_rate",
                    "expected the allowed error ratio between 0 and 1, e.g. 0.01 for a 99% objective",
                )
            else:
                error_rate = float(value)
        window = None
        if "window" in raw:
            text = raw["window"]
            seconds = duration_seconds(text) if isinstance(text, str) and len(text) < 20 else None
            if seconds is None or not 0 < seconds <= MAX_SLO_WINDOW_S:
                self.problems.add(
                    line_of(raw, "window", line),
                    f"{where}.window",
                    f"bad duration {shown_value(raw['window'])}; write e.g. 30d, 6h, 15m "
                    f"(at most {MAX_SLO_WINDOW_S // 86400}d)",
                )
            else:
                window = seconds
        return latency, error_rate, window
