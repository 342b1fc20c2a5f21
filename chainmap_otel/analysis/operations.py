"""RED per operation inside a chain: rate, errors and latency of each service's operations
that run as part of the chain, with their sparklines (Jaeger SPM's view, for one flow).

A span counts for the chain when the chain is among the own chains of the span or one of its
ancestors (:mod:`~chainmap_otel.analysis.membership`), so an operation's numbers are its
calls made for this chain, not every call of the service. Rates divide by the part of the
window that has data (:func:`~chainmap_otel.analysis.entry_rows.observed_window`), as chain
health does, so the chain's entry operation has the chain's rate, traces and errors; its
quantiles come from t-digests of the spans themselves (health merges per-minute digests, so
the two can differ by the digests' error). The sparkline steps are the chain list's
(:func:`~chainmap_otel.analysis.entry_rows.series_steps`). At most ``limit`` operations, the
busiest first; ``operations`` says how many there were.

JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chainmap_otel.analysis.entry_rows import (
    SERIES_POINTS,
    observed_steps,
    observed_window,
    series_steps,
)
from chainmap_otel.analysis.health import sampling_json
from chainmap_otel.analysis.membership import classify_expression, require_chain
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import TimeWindow, check_limit
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = ["DEFAULT_LIMIT", "LIMIT_RANGE", "ChainOperations", "Operation", "chain_operations"]

#: Operations listed by default (the busiest first), and the most one answer may list.
DEFAULT_LIMIT = 50
LIMIT_RANGE = (1, 1000)
_NS = 1_000_000_000


@dataclass(frozen=True)
class Operation:
    """One (service, operation, kind) of the chain: its totals and per-step series. Calls and
    errors are estimates of the unsampled fleet (sums of adjusted counts; the stored counts
    when no span was sampled, see ``sampling``)."""

    service: str
    operation: str
    kind: str
    calls: float
    errors: float
    rate_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    series_rate_per_s: list[float]
    series_errors: list[int]
    series_p95_ms: list[float | None]
    sampling: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "operation": self.operation,
            "kind": self.kind,
            "calls": round(self.calls),
            "rate_per_s": self.rate_per_s,
            "errors": round(self.errors),
            "error_ratio": round(self.errors / self.calls, 6) if self.calls else 0.0,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "series": {
                "rate_per_s": self.series_rate_per_s,
                "errors": self.series_errors,
                "p95_ms": self.series_p95_ms,
            },
            "sampling": self.sampling,
        }


@dataclass(frozen=True)
class ChainOperations:
    """The chain's operations over one window."""

    chain_id: str
    window: TimeWindow
    rate_seconds: float
    series_start: str
    step_seconds: int
    series_seconds: list[float]
    total: int
    operations: list[Operation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "window": self.window.to_json(),
            "rate_seconds": self.rate_seconds,
            "series_start": self.series_start,
            "series_seconds": self.series_seconds,
            "step_seconds": self.step_seconds,
            "operations_total": self.total,
            "operations": [o.to_json() for o in self.operations],
        }


def _ms(nanoseconds: float) -> float:
    return round(float(nanoseconds) / 1e6, 3)


def chain_operations(
    store: TraceStore,
    catalog: ChainCatalog,
    window: TimeWindow,
    chain_id: str,
    limit: int = DEFAULT_LIMIT,
    points: int = SERIES_POINTS,
) -> ChainOperations:
    """RED of each operation of chain ``chain_id`` in ``window``, the busiest ``limit`` first."""
    check_limit("limit", limit, LIMIT_RANGE)
    chain = require_chain(catalog, chain_id)
    classify, params = classify_expression(ChainCatalog((chain,), catalog.source))
    start, step, count = series_steps(window, points)
    seconds = observed_window(store, window).seconds
    observed = observed_steps(store, start, step, count, window.environment)
    rows = store.query(
        load_sql("chain_operations", store.database, classify=classify),
        {
            **params,
            **window.params(),
            "chain": chain.id,
            "series_start": start,
            "step": step,
            "limit": limit,
        },
    ).result_rows
    operations = []
    total = 0
    for service, name, kind, calls, errors, quantiles, steps, found, stored, sampled in rows:
        total = int(found)
        rate = [0.0] * count
        failed = [0] * count
        p95: list[float | None] = [None] * count
        for bucket, step_calls, step_errors, step_p95 in steps:
            if 0 <= int(bucket) < count:
                rate[int(bucket)] = round(float(step_calls) / observed[int(bucket)], 6)
                failed[int(bucket)] = round(float(step_errors))
                p95[int(bucket)] = _ms(step_p95)
        p50_ns, p95_ns, p99_ns = quantiles
        operations.append(
            Operation(
                service=str(service),
                operation=str(name),
                kind=str(kind),
                calls=float(calls),
                errors=float(errors),
                rate_per_s=round(float(calls) / seconds, 6) if seconds else 0.0,
                p50_ms=_ms(p50_ns),
                p95_ms=_ms(p95_ns),
                p99_ms=_ms(p99_ns),
                series_rate_per_s=rate,
                series_errors=failed,
                series_p95_ms=p95,
                sampling=sampling_json(int(stored), float(calls), int(sampled)),
            )
        )
    return ChainOperations(
        chain_id=chain.id,
        window=window,
        rate_seconds=round(seconds, 6),
        series_start=str(TimeWindow(start * _NS, start * _NS).to_json()["since"]),
        step_seconds=step,
        series_seconds=[round(s, 6) for s in observed],
        total=total,
        operations=operations,
    )
