"""Alert notifications in the Alertmanager webhook format, delivered off every request path.

The payload is Alertmanager's own (notify/webhook ``Message``, template ``Data``):
``version "4"``, ``groupKey``, ``truncatedAlerts``, ``status``, ``receiver``,
``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL`` and ``alerts``
with ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt`` (the zero time
while firing), ``generatorURL`` and ``fingerprint``, so Alertmanager, Grafana OnCall and
the PagerDuty/Slack bridges that read it take chainmap's alerts unchanged.

Each URL has its own worker thread and bounded queue: a slow or failing receiver delays
only its own later notifications, never ingest, queries or the other receivers. A full
queue drops the notification (counted, logged, recorded); a failed delivery is retried
with exponential backoff and every outcome goes to the delivery log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chainmap_otel.monitor.alerts import Alert

logger = logging.getLogger(__name__)

__all__ = ["RECEIVER", "WebhookNotifier", "WebhookStats", "alertmanager_payload"]

RECEIVER = "chainmap"
#: Alertmanager's ``endsAt`` for an alert that has not ended (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"
DeliveryLog = Callable[[str, str, str, str, int, "int | None", str], None]


def _time(value: datetime | None) -> str:
    if value is None:
        return ZERO_TIME
    return value.isoformat().replace("+00:00", "Z")


def fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex id of a label set (Alertmanager's fingerprint plays the same role)."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _common(maps: Sequence[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def alertmanager_payload(
    alerts: Sequence[Alert], external_url: str, generator_url: Callable[[Alert], str]
) -> dict[str, Any]:
    """One webhook message for ``alerts`` of one chain (its group)."""
    group_labels = {"chain_id": alerts[0].chain_id} if alerts else {}
    status = "firing" if any(a.state == "firing" for a in alerts) else "resolved"
    items = []
    for alert in alerts:
        items.append(
            {
                "status": "firing" if alert.state == "firing" else "resolved",
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": _time(alert.fired_at or alert.active_since),
                "endsAt": _time(alert.resolved_at) if alert.state != "firing" else ZERO_TIME,
                "generatorURL": generator_url(alert),
                "fingerprint": fingerprint(alert.labels),
            }
        )
    group = ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
    return {
        "version": "4",
        "groupKey": f"{{}}:{{{group}}}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": RECEIVER,
        "groupLabels": group_labels,
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "alerts": items,
    }


@dataclass
class WebhookStats:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0


class WebhookNotifier:
    """Delivers payloads to every URL, each from its own bounded queue and thread."""

    def __init__(
        self,
        urls: Sequence[str],
        log: DeliveryLog | None = None,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        backoff_s: float = 1.0,
        queue_size: int = 256,
    ) -> None:
        self.urls = list(urls)
        self._log = log
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._queues: dict[str, queue.Queue[dict[str, Any] | None]] = {
            url: queue.Queue(maxsize=queue_size) for url in self.urls
        }
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.stats = WebhookStats()
        self._lock = threading.Lock()

    def start(self) -> None:
        for i, url in enumerate(self.urls):
            thread = threading.Thread(
                target=self._work, args=(url,), name=f"chainmap-webhook-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for q in self._queues.values():
            with contextlib.suppress(queue.Full):
                q.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout)

    def notify(self, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for every URL; never blocks (a full queue drops and counts)."""
        for url, q in self._queues.items():
            try:
                q.put_nowait(payload)
            except queue.Full:
                with self._lock:
                    self.stats.dropped += 1
                logger.warning(
                    "alert webhook %s is not keeping up; a notification was dropped", url
                )
                self._record(url, payload, "dropped", 0, None, "queue full")

    def queued(self) -> int:
        return sum(q.qsize() for q in self._queues.values())

    # -- the workers -----------------------------------------------------------------

    def _work(self, url: str) -> None:
        q = self._queues[url]
        while not self._stop.is_set():
            payload = q.get()
            if payload is None:
                return
            self._deliver(url, payload)

    def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        error, status = "", None
        for attempt in range(1, self.max_attempts + 1):
            with self._lock:
                self.stats.attempts += 1
            try:
                request = urllib.request.Request(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json", "User-Agent": "chainmap"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    status = int(response.status)
                if 200 <= status < 300:
                    with self._lock:
                        self.stats.delivered += 1
                    self._record(url, payload, "delivered", attempt, status, "")
                    return
                error = f"HTTP {status}"
            except urllib.error.HTTPError as exc:
                status, error = exc.code, f"HTTP {exc.code}"
            except Exception as exc:  # timeouts, refused connections, DNS: all retried
                status, error = None, f"{type(exc).__name__}: {exc}"
            if attempt < self.max_attempts and self._stop.wait(self.backoff_s * 2 ** (attempt - 1)):
                break
        with self._lock:
            self.stats.failed += 1
        logger.warning("alert webhook %s failed after %d attempts: %s", url, attempt, error)
        self._record(url, payload, "failed", attempt, status, error)

    def _record(
        self,
        url: str,
        payload: dict[str, Any],
        outcome: str,
        attempts: int,
        status: int | None,
        error: str,
    ) -> None:
        if self._log is None:
            return
        try:
            self._log(
                url,
                str(payload.get("groupKey", "")),
                str(payload.get("status", "")),
                outcome,
                attempts,
                status,
                error,
            )
        except Exception:
            logger.warning("the delivery log could not record a %s notification", outcome)
