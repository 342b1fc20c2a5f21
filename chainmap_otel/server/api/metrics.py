"""``GET /metrics``: chain RED, the servicegraph connector's series and serve's own health.

The store-derived series are computed in the background (:class:`StoreSeries`, every
``CHAINMAP_METRICS_REFRESH_INTERVAL`` on a read connection of their own) and a scrape
renders the newest snapshot, so a scrape never queries the store and answers while ingest
is busy. A scrape first waits up to ``CHAINMAP_METRICS_FRESH_WAIT`` for a refresh that
started after it, so on an idle server it sees every span already stored; past that it
gets the newest snapshot, whose age is ``chainmap_metrics_age_seconds``. The numbers are
the stored traces' (the same a health or topology query answers):

* ``chainmap_chain_requests_total``, ``chainmap_chain_errors_total`` and the histogram
  ``chainmap_chain_request_duration_seconds`` per ``chain_id`` and ``environment`` (each
  ``deployment.environment.name`` stored, ``""`` for spans naming none), over every stored
  minute (health's entry rows, :func:`~chainmap_otel.analysis.health.chain_totals`; buckets
  from their log-scale latency buckets, interpolated like the health's latency objectives):
  estimates of the unsampled fleet (each entry span weighs its OTEP 235 adjusted count; the
  stored counts when nothing was sampled), and ``chainmap_chain_stored_requests_total``,
  the entry spans stored;
* where the services count their chain entries before sampling (the distro's
  ``chainmap.chain.entries`` and ``chainmap.chain.entry.duration``, received on
  ``/v1/metrics``; :mod:`~chainmap_otel.analysis.entry_counts`), the exact counts over every
  stored minute per ``chain_id`` and ``environment`` (the environment the points' resource
  names, ``""`` for none): ``chainmap_chain_entries_counted_total``,
  ``chainmap_chain_entry_errors_counted_total`` and the histogram
  ``chainmap_chain_entry_counted_duration_seconds`` with the buckets the services recorded
  (the distro's ``DURATION_BUCKETS_MS``, in seconds; ``_count`` the timed entries). Only
  chains some service counted have these series; set beside ``chainmap_chain_requests_total``
  they show how far the sampled estimate is from the count;
* ``traces_service_graph_request_total``, ``traces_service_graph_request_failed_total`` and
  the histograms ``traces_service_graph_request_server_seconds`` and
  ``traces_service_graph_request_client_seconds`` with ``client``, ``server``,
  ``connection_type`` and ``chain_id`` (the topology of each chain since the first stored
  minute, from the edge rollup plus the minutes it does not cover yet, paired live), the
  names Grafana's and Tempo's service-graph views read. The histograms are the connector's:
  its default buckets (``rollup.LATENCY_BUCKETS_SECONDS``, a latency counted in the first
  bucket whose bound is >= it), the server and client latency it records per edge (a paired
  edge the server and client span durations, a database edge the client span's for both, a
  ``user`` edge the server span's and 0, a virtual node 0 and the client span's), ``_sum``
  in seconds and ``_count`` equal to the edge's ``request_total``;
* rule coverage over the last ``CHAINMAP_METRICS_COVERAGE_WINDOW`` (default 15m; its length is
  ``chainmap_coverage_window_seconds``), the numbers of ``chainmap coverage`` and
  ``GET /api/v1/coverage`` for that window (:mod:`~chainmap_otel.analysis.coverage`):
  the gauges ``chainmap_chain_instances`` per ``chain_id`` and ``tagged_by`` (``source``,
  ``collector``, ``query_time``), ``chainmap_chain_rule_disagreements`` per ``chain_id`` and
  ``kind`` (``tag_not_rules``, ``rules_not_tag``), ``chainmap_unmatched_traces`` (traces in
  no chain) and ``chainmap_unmatched_endpoint_traces`` per ``service``, ``route`` and
  ``method`` for the ``COVERAGE_ENDPOINTS`` endpoints with the most such traces only, so
  the label sets stay bounded (the chains are the catalog's and the ids a tag names);
* serve's own counters, read live at each scrape: spans received, stored, dropped,
  refused requests, queued spans, edge-rollup lag (as of the snapshot's watermark), reads
  running and refused, alert evaluations and webhook deliveries, failures and drops.

A refresh that could not read the store sets ``chainmap_store_up 0``; the scrape keeps
the last series computed (``chainmap_metrics_age_seconds`` grows), or has only serve's own
series if there were none.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from chainmap_otel import config
from chainmap_otel.analysis.by_environment import environment_names, totals_by_environment
from chainmap_otel.analysis.entry_counts import counted_totals
from chainmap_otel.analysis.health import slower_fraction_count
from chainmap_otel.analysis.rollups.edges import LATENCY_BUCKETS_SECONDS
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.errors import StoreError
from chainmap_otel.server.http.pool import Refresher, Snapshot
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from chainmap_otel.tagging.entry_counts import DURATION_BUCKETS_MS

logger = logging.getLogger(__name__)

__all__ = [
    "COVERAGE_ENDPOINTS",
    "ChainMetricsCollector",
    "StoreSeries",
    "install_metrics",
    "metrics_text",
    "store_series_refresher",
]

_NS = 1_000_000_000
#: Unmatched endpoints /metrics labels (the ones with the most traces): bounded cardinality.
COVERAGE_ENDPOINTS = 10


@dataclass(frozen=True)
class StoreSeries:
    """The series /metrics derives from the store, computed off the request path."""

    families: tuple[Metric, ...]
    #: The edge rollup's watermark (ns since the epoch), None when it covers nothing yet.
    rollup_watermark_ns: int | None

    @classmethod
    def compute(cls, store: TraceStore, catalog: ChainCatalog) -> StoreSeries:
        """Every chain and service-graph series; raises StoreError when the store fails."""
        families = (
            *ChainMetricsCollector._chains(store, catalog),
            *ChainMetricsCollector._coverage(store, catalog),
        )
        return cls(families, _rollup_watermark(store, catalog))


def store_series_refresher(
    state: Any, interval_s: float | None = None, on_start: Callable[[], None] | None = None
) -> Refresher[StoreSeries]:
    """The background refresher of ``state``'s store series (not started)."""
    interval = (
        interval_s
        if interval_s is not None
        else config.env_seconds(config.CHAINMAP_METRICS_REFRESH_INTERVAL)
    )
    return Refresher(
        "chainmap-metrics-refresh",
        lambda: StoreSeries.compute(state.store, state.catalog),
        interval,
        on_start,
    )


class ChainMetricsCollector:
    """Collects from ``app.state``: the store series of ``snapshot``, serve's own live."""

    def __init__(self, state: Any, snapshot: Snapshot[StoreSeries] | None = None) -> None:
        self.state = state
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        age = GaugeMetricFamily(
            "chainmap_metrics_age_seconds",
            "Age of the store-derived series in this scrape (since their refresh started; "
            "NaN: none computed yet)",
        )
        age.add_metric([], snapshot.age_s() if snapshot is not None else math.nan)
        yield age
        if snapshot is None:
            yield from self._serve(None)
            return
        took = GaugeMetricFamily(
            "chainmap_metrics_refresh_seconds", "How long the last refresh of those series took"
        )
        took.add_metric([], snapshot.finished - snapshot.started)
        yield took
        up = GaugeMetricFamily(
            "chainmap_store_up", "1 when the trace store answered the last refresh"
        )
        up.add_metric([], 1 if snapshot.error is None else 0)
        yield up
        if snapshot.value is not None:
            # After a failed refresh: the last series computed, as old as the age says.
            yield from snapshot.value.families
        yield from self._serve(snapshot.value)

    @staticmethod
    def _chains(store: TraceStore, catalog: ChainCatalog) -> Iterator[Metric]:
        from chainmap_otel.analysis.topology import topologies

        names = environment_names(store, TimeWindow(0, time.time_ns()))
        by_environment = totals_by_environment(store, catalog, names)
        requests = CounterMetricFamily(
            "chainmap_chain_requests",
            "Entry spans (traces) of each chain, estimated for the unsampled fleet",
            labels=["chain_id", "environment"],
        )
        stored = CounterMetricFamily(
            "chainmap_chain_stored_requests",
            "Entry spans of each chain stored (below requests when traces were sampled)",
            labels=["chain_id", "environment"],
        )
        errors = CounterMetricFamily(
            "chainmap_chain_errors",
            "Failed traces of each chain (entry span Error)",
            labels=["chain_id", "environment"],
        )
        latency = HistogramMetricFamily(
            "chainmap_chain_request_duration_seconds",
            "Entry-span duration of each chain's traces",
            labels=["chain_id", "environment"],
        )
        none: dict[str, Any] = {"calls": 0, "errors": 0, "duration_ns": 0, "buckets": {}}
        for environment, totals in sorted(by_environment.items()):
            for chain in catalog:
                found = totals.get(chain.id, none)
                calls = found["calls"]
                labels = [chain.id, environment]
                requests.add_metric(labels, calls)
                stored.add_metric(labels, found.get("sampling", {}).get("stored", 0))
                errors.add_metric(labels, found["errors"])
                buckets = [
                    (
                        f"{bound:g}",
                        float(round(calls - slower_fraction_count(found["buckets"], bound * 1000))),
                    )
                    for bound in LATENCY_BUCKETS_SECONDS
                ]
                buckets.append(("+Inf", float(calls)))
                latency.add_metric(labels, buckets, found["duration_ns"] / _NS)
        yield requests
        yield stored
        yield errors
        yield latency
        yield from _counted(store, catalog)

        first = [
            t["first_minute"]
            for totals in by_environment.values()
            for t in totals.values()
            if t.get("first_minute")
        ]
        graph_total = CounterMetricFamily(
            "traces_service_graph_request",
            "Requests between two nodes (servicegraph connector semantics), per chain",
            labels=["client", "server", "connection_type", "chain_id"],
        )
        graph_failed = CounterMetricFamily(
            "traces_service_graph_request_failed",
            "Failed requests between two nodes (client or server span Error), per chain",
            labels=["client", "server", "connection_type", "chain_id"],
        )
        graph_server = HistogramMetricFamily(
            "traces_service_graph_request_server_seconds",
            "Server latency of the requests between two nodes (servicegraph connector "
            "semantics), per chain",
            labels=["client", "server", "connection_type", "chain_id"],
        )
        graph_client = HistogramMetricFamily(
            "traces_service_graph_request_client_seconds",
            "Client latency of the requests between two nodes (servicegraph connector "
            "semantics), per chain",
            labels=["client", "server", "connection_type", "chain_id"],
        )
        if first and len(catalog):
            start_ns = int(min(first).timestamp()) * _NS
            window = TimeWindow(start_ns, time.time_ns())
            for chain_id, topo in topologies(
                store, catalog, window, include_all_traffic=False
            ).items():
                for edge in topo.edges:
                    labels = [edge.source, edge.target, edge.connection_type, str(chain_id)]
                    # Stored calls, as the servicegraph connector counts (it does not
                    # weight by sampling), matching the histograms' counts.
                    graph_total.add_metric(labels, edge.stored_calls or 0)
                    graph_failed.add_metric(labels, edge.stored_errors or 0)
                    graph_server.add_metric(
                        labels, _cumulative(edge.server_buckets), edge.server_sum_ns / _NS
                    )
                    graph_client.add_metric(
                        labels, _cumulative(edge.client_buckets), edge.client_sum_ns / _NS
                    )
        yield graph_total
        yield graph_failed
        yield graph_server
        yield graph_client

    @staticmethod
    def _coverage(store: TraceStore, catalog: ChainCatalog) -> Iterator[Metric]:
        from chainmap_otel.analysis.coverage import TAGGERS, coverage

        seconds = config.env_seconds(config.CHAINMAP_METRICS_COVERAGE_WINDOW)
        try:
            found = coverage(store, catalog, TimeWindow.last(seconds), COVERAGE_ENDPOINTS)
        except StoreError as exc:
            # It reads span rows, unlike the series above: a window too heavy for the store
            # (CHAINMAP_QUERY_TIMEOUT_S, memory) costs these series, not chain RED.
            logger.warning("/metrics: rule coverage over the last %gs left out: %s", seconds, exc)
            return
        window = GaugeMetricFamily(
            "chainmap_coverage_window_seconds",
            "Length of the window the coverage series count over (ending at the refresh)",
        )
        window.add_metric([], seconds)
        yield window
        instances = GaugeMetricFamily(
            "chainmap_chain_instances",
            "Chain instances in the coverage window by what recognised them: tagged at the "
            "source, by the Collector, or classified at query time",
            labels=["chain_id", "tagged_by"],
        )
        disagreements = GaugeMetricFamily(
            "chainmap_chain_rule_disagreements",
            "Chain instances in the coverage window where a tag and the current rules disagree",
            labels=["chain_id", "kind"],
        )
        for chain in found.chains:
            for tagger in TAGGERS:
                instances.add_metric([chain["chain_id"], tagger], chain["tagged_by"][tagger])
            for kind in ("tag_not_rules", "rules_not_tag"):
                disagreements.add_metric([chain["chain_id"], kind], chain[kind])
        yield instances
        yield disagreements
        unmatched = GaugeMetricFamily(
            "chainmap_unmatched_traces",
            "Traces in the coverage window that belong to no chain (no tag, no rule match)",
        )
        unmatched.add_metric([], found.unmatched_traces)
        yield unmatched
        endpoints = GaugeMetricFamily(
            "chainmap_unmatched_endpoint_traces",
            f"Traces in the coverage window whose root endpoint matches no chain, for the "
            f"{COVERAGE_ENDPOINTS} endpoints with the most",
            labels=["service", "route", "method"],
        )
        # Endpoints that differ only in span kind are one series.
        by_endpoint: dict[tuple[str, str, str], int] = {}
        for e in found.unmatched:
            key = (e["service"], e["route"], e["method"])
            by_endpoint[key] = by_endpoint.get(key, 0) + e["traces"]
        for labels, traces in by_endpoint.items():
            endpoints.add_metric(list(labels), traces)
        yield endpoints

    def _serve(self, series: StoreSeries | None) -> Iterator[Metric]:
        writer = getattr(self.state, "span_writer", None)
        if writer is not None:
            stats = writer.stats()
            for name, value, text in (
                (
                    "chainmap_spans_received",
                    stats.accepted_spans,
                    "Spans accepted by the receivers",
                ),
                ("chainmap_spans_stored", stats.written_spans, "Spans written to the trace store"),
                ("chainmap_spans_dropped", stats.dropped_spans, "Spans dropped after acceptance"),
                (
                    "chainmap_requests_refused",
                    stats.refused_requests,
                    "OTLP requests refused (queue full, write-ahead log full or unwritable)",
                ),
            ):
                counter = CounterMetricFamily(name, text)
                counter.add_metric([], value)
                yield counter
        entry_counts = getattr(self.state, "entry_counts", None)
        if entry_counts is not None:
            points = entry_counts.stats()
            for name, value, text in (
                (
                    "chainmap_entry_count_points_stored",
                    points.stored_points,
                    "Chain entry count points (/v1/metrics) stored",
                ),
                (
                    "chainmap_metric_points_dropped",
                    points.dropped_points,
                    "OTLP metric points dropped: not a chain entry instrument",
                ),
                (
                    "chainmap_metric_points_rejected",
                    points.rejected_points,
                    "Chain entry count points rejected (partial_success)",
                ),
            ):
                counter = CounterMetricFamily(name, text)
                counter.add_metric([], value)
                yield counter
        if writer is not None:
            for name, value, text in (
                ("chainmap_span_queue_spans", stats.queued_spans, "Spans waiting to be written"),
                (
                    "chainmap_ingest_oldest_unstored_age_seconds",
                    stats.oldest_unstored_age_s,
                    "Age of the oldest acknowledged request not yet stored (0: none)",
                ),
                (
                    "chainmap_ingest_wal_unstored_bytes",
                    stats.wal_pending_bytes,
                    "Bytes of acknowledged requests in the write-ahead log not yet stored",
                ),
                (
                    "chainmap_ingest_wal_disk_bytes",
                    stats.wal_disk_bytes,
                    "Bytes of the write-ahead log's segment files",
                ),
                (
                    "chainmap_ingest_problems",
                    len(writer.problems()),
                    "Conditions keeping requests from being logged or spans from being stored "
                    "(/health/detailed names them)",
                ),
            ):
                gauge = GaugeMetricFamily(name, text)
                gauge.add_metric([], value)
                yield gauge
        if series is not None and series.rollup_watermark_ns is not None:
            gauge = GaugeMetricFamily(
                "chainmap_edge_rollup_lag_seconds", "How far the edge rollup is behind now"
            )
            gauge.add_metric([], max(0.0, (time.time_ns() - series.rollup_watermark_ns) / _NS))
            yield gauge
        pool = getattr(self.state, "read_pool", None)
        if pool is not None:
            running = GaugeMetricFamily(
                "chainmap_reads_admitted", "Reads running or waiting for a read thread"
            )
            running.add_metric([], pool.admitted)
            yield running
            refused = CounterMetricFamily(
                "chainmap_reads_refused",
                "Reads answered 503 because every read thread was busy and the queue full",
            )
            refused.add_metric([], pool.refused)
            yield refused
        operations = getattr(self.state, "operations", None)
        monitor = operations.monitor if operations is not None else None
        notifier = operations.notifier if operations is not None else None
        for name, value, text in (
            (
                "chainmap_alert_evaluations",
                monitor.evaluations if monitor else 0,
                "Monitor evaluations",
            ),
            (
                "chainmap_alert_evaluation_failures",
                monitor.failures if monitor else 0,
                "Monitor evaluations that failed",
            ),
            (
                "chainmap_webhook_deliveries",
                notifier.stats.delivered if notifier else 0,
                "Alert notifications delivered",
            ),
            (
                "chainmap_webhook_failures",
                notifier.stats.failed if notifier else 0,
                "Alert notifications that failed every attempt",
            ),
            (
                "chainmap_webhook_dropped",
                notifier.stats.dropped if notifier else 0,
                "Alert notifications dropped (queue full, or too old or superseded at start)",
            ),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], value)
            yield counter
        firing = GaugeMetricFamily(
            "chainmap_alerts_firing",
            "Firing alerts per chain, environment and severity",
            labels=["chain_id", "environment", "severity"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        if operations is not None:
            for alert in operations.active_alerts():
                if alert["state"] == "firing":
                    key = (alert["chain_id"], alert.get("environment", ""), alert["severity"])
                    counts[key] = counts.get(key, 0) + 1
        for labels, count in sorted(counts.items()):
            firing.add_metric(list(labels), count)
        yield firing


def _counted(store: TraceStore, catalog: ChainCatalog) -> Iterator[Metric]:
    """The services' counted entries, errors and durations (module docstring)."""
    entries = CounterMetricFamily(
        "chainmap_chain_entries_counted",
        "Entries of each chain counted by its services before sampling",
        labels=["chain_id", "environment"],
    )
    errors = CounterMetricFamily(
        "chainmap_chain_entry_errors_counted",
        "Failed entries (entry span Error) of each chain counted by its services",
        labels=["chain_id", "environment"],
    )
    durations = HistogramMetricFamily(
        "chainmap_chain_entry_counted_duration_seconds",
        "Entry duration of each chain as its services' histogram recorded it",
        labels=["chain_id", "environment"],
    )
    for total in counted_totals(store, list(catalog.ids)):
        labels = [total.chain_id, total.environment]
        entries.add_metric(labels, total.entries)
        errors.add_metric(labels, total.errors)
        # The distro's bounds, and any other a View set: a bucket empty so far is stored as
        # absent, and every series of the family should carry the same bounds.
        bounds = sorted({float(b) for b in DURATION_BUCKETS_MS} | set(total.histogram))
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound in bounds:
            running += total.histogram.get(bound, 0)
            if not math.isinf(bound):
                buckets.append((f"{bound / 1000:g}", float(running)))
        buckets.append(("+Inf", float(total.timed)))
        durations.add_metric(labels, buckets, total.duration_sum_ms / 1000)
    yield entries
    yield errors
    yield durations


def _rollup_watermark(store: TraceStore, catalog: ChainCatalog) -> int | None:
    from chainmap_otel.analysis.rollups.edges import read_state

    try:
        state = read_state(store, catalog)
    except Exception:
        return None
    return int(state.watermark_ns) if state.covers else None


def _cumulative(counts: tuple[int, ...]) -> list[tuple[str, float]]:
    """Calls per bucket as Prometheus' cumulative ``le`` buckets, +Inf last (its count is
    the histogram's ``_count``)."""
    buckets = []
    total = 0
    for bound, count in zip((*LATENCY_BUCKETS_SECONDS, None), counts, strict=True):
        total += count
        buckets.append(("+Inf" if bound is None else f"{bound:g}", float(total)))
    return buckets


def metrics_text(state: Any, snapshot: Snapshot[StoreSeries] | None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ChainMetricsCollector(state, snapshot))  # type: ignore[arg-type]
    return bytes(generate_latest(registry))


def install_metrics(app: FastAPI) -> None:
    """``GET /metrics``; its store series come from ``app.state.metrics_refresher``."""
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", summary="Prometheus metrics: chain RED, service graph, serve health")
    async def metrics(request: Request) -> Response:
        arrived = time.monotonic()
        refresher: Refresher[StoreSeries] = request.app.state.metrics_refresher
        wait = config.env_seconds(config.CHAINMAP_METRICS_FRESH_WAIT)
        snapshot = await refresher.newer(arrived, wait)
        return Response(metrics_text(request.app.state, snapshot), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
