"""The operations runtime of ``chainmap serve``: registry listener, monitor and notifier.

:class:`Operations` starts what runs beside the receivers when the registry is on
(``CHAINMAP_REGISTRY_URL`` not ``off``): the registry listener (its catalog replaces the
YAML one, which seeds an empty registry), and once the registry is reachable the SLO
monitor and the webhook notifier. Nothing here runs on a request's path: the API reads
the state these threads keep. :class:`ServeState` is ``app.state`` with ``catalog``
read through the swappable holder, so every reader of ``app.state.catalog`` sees the
reloaded catalog without knowing about reloads.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.datastructures import State

from chainmap_otel.monitor.alerts import AlertStore
from chainmap_otel.monitor.monitor import ChainMonitor
from chainmap_otel.monitor.webhook import WebhookNotifier
from chainmap_otel.registry.reload import CatalogHolder, RegistryCatalogSource
from chainmap_otel.server.settings import MonitorSettings
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

logger = logging.getLogger(__name__)

__all__ = ["Operations", "ServeState", "catalog_statistics"]


class ServeState(State):
    """``app.state`` whose ``catalog`` is always the holder's current catalog."""

    @property
    def catalog(self) -> ChainCatalog:
        holder: CatalogHolder = self._state["catalogs"]
        return holder.current

    def __setattr__(self, key: Any, value: Any) -> None:
        if key == "catalog":
            holder: CatalogHolder | None = self._state.get("catalogs")
            if holder is None:
                self._state["catalogs"] = CatalogHolder(value)
            else:
                holder.swap(value)
            return
        super().__setattr__(key, value)


def catalog_statistics(catalog: ChainCatalog) -> dict[str, Any]:
    """The spec's registry statistics: totals by category and criticality."""
    return {
        "total_chains": len(catalog),
        "with_slo": sum(1 for c in catalog if c.slo is not None),
        "by_category": dict(Counter(c.category for c in catalog)),
        "by_criticality": dict(Counter(c.criticality for c in catalog)),
    }


class Operations:
    """Registry listener + monitor + notifier of one ``chainmap serve`` process."""

    def __init__(
        self,
        store: TraceStore,
        holder: CatalogHolder,
        *,
        seed: ChainCatalog | None = None,
        registry_url: str | None = None,
        settings: MonitorSettings | None = None,
    ) -> None:
        self.store = store
        self.holder = holder
        # ``seed``: the chains file the user gave, stored in an empty registry (None: the
        # user gave none, so the registry's chains are analysed, even none).
        self.source = RegistryCatalogSource(holder, seed=seed, url=registry_url)
        self.settings = settings if settings is not None else MonitorSettings.from_env()
        self.listen_url = ""
        self.monitor: ChainMonitor | None = None
        self.notifier: WebhookNotifier | None = None
        self._stop = threading.Event()
        self._starter: threading.Thread | None = None

    def external_url(self) -> str:
        return self.settings.external_url or self.listen_url

    def start(self) -> None:
        self.source.start()
        self._starter = threading.Thread(
            target=self._start_monitor, name="chainmap-monitor-start", daemon=True
        )
        self._starter.start()

    def _start_monitor(self) -> None:
        while not self._stop.is_set():
            if self.source.wait_ready(0.5):
                break
        if self._stop.is_set() or self.source.database is None:
            return
        alerts = AlertStore(self.source.database)
        settings = self.settings
        if settings.webhook_urls:
            self.notifier = WebhookNotifier(
                list(settings.webhook_urls),
                alerts,
                timeout_s=settings.webhook_timeout_s,
                max_age_s=settings.webhook_max_age_s,
            )
            # Re-queues what a previous run left pending, before the monitor adds anything.
            self.notifier.start()
        self.monitor = ChainMonitor(
            self.store,
            lambda: self.holder.current,
            alerts,
            self.notifier,
            interval_s=settings.interval_s,
            for_s=settings.for_s,
            repeat_s=settings.repeat_s,
            external_url=self.external_url,
        )
        self.monitor.start()
        logger.info(
            "chain monitor: every %gs, alerts fire after %gs, %d webhook receivers",
            settings.interval_s,
            settings.for_s,
            len(settings.webhook_urls),
        )

    def stop(self) -> None:
        self._stop.set()
        if self._starter is not None:
            self._starter.join(5)
        if self.monitor is not None:
            self.monitor.stop()
        if self.notifier is not None:
            self.notifier.stop()
        self.source.stop()

    # -- reads for the API --------------------------------------------------------------

    def active_alerts(self) -> list[dict[str, Any]]:
        if self.monitor is None:
            return []
        try:
            return [a.to_json() for a in self.monitor.active()]
        except Exception as exc:
            logger.warning("active alerts unavailable: %s", exc)
            return []

    def alert_history(self, seconds: float) -> list[dict[str, Any]]:
        if self.source.database is None:
            return []
        return AlertStore(self.source.database).history(seconds)

    def resolved_alerts(self, seconds: float) -> list[dict[str, Any]]:
        """Alerts that resolved in the last ``seconds``, newest first (the registry's state)."""
        if self.source.database is None:
            return []
        since = datetime.now(UTC) - timedelta(seconds=seconds)
        resolved = [
            a
            for a in AlertStore(self.source.database).load().values()
            if a.state == "resolved" and a.resolved_at is not None and a.resolved_at >= since
        ]
        resolved.sort(key=lambda a: a.resolved_at or since, reverse=True)
        return [a.to_json() for a in resolved]

    def deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The webhook delivery log, newest first."""
        if self.source.database is None:
            return []
        return AlertStore(self.source.database).deliveries(limit)

    def monitoring_status(self) -> dict[str, Any]:
        """The monitor's state (running, interval, for, evaluations), read from memory."""
        monitor = self.monitor
        return monitor.status() if monitor is not None else {"running": False}

    def versions(self) -> dict[str, dict[str, Any]]:
        """chain id -> registry fields (version, author, changed) as of the last reload."""
        return {
            chain_id: {
                "version": c.version,
                "author": c.author,
                "comment": c.comment,
                "updated_at": c.created_at.isoformat(),
            }
            for chain_id, c in self.source.versions.items()
        }

    def chain_mapping(self) -> dict[str, Any]:
        """``/health/detailed``'s ``chain_mapping`` (the spec's shape)."""
        notifier = self.notifier
        database = self.source.database
        embedded = database.embedded if database is not None else None
        return {
            "enabled": True,
            "registry": {
                "status": self.source.status,
                "error": self.source.error,
                "url": self.source.database.url_for_display if self.source.database else None,
                "reloads": self.source.reloads,
                "embedded_postgres": embedded.status() if embedded is not None else None,
            },
            "statistics": catalog_statistics(self.holder.current),
            "active_alerts": self.active_alerts(),
            "monitoring_status": {
                **self.monitoring_status(),
                "webhooks": {
                    "urls": len(self.settings.webhook_urls),
                    "delivered": notifier.stats.delivered if notifier else 0,
                    "failed": notifier.stats.failed if notifier else 0,
                    "dropped": notifier.stats.dropped if notifier else 0,
                    "requeued": notifier.stats.requeued if notifier else 0,
                    "queued": notifier.queued() if notifier else 0,
                },
            },
        }
