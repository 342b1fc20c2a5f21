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
with exponential backoff and every outcome goes to the delivery log. Each attempt has a
deadline (``timeout_s``, ``CHAINMAP_ALERT_WEBHOOK_TIMEOUT``) for the whole exchange, not
per read, so a receiver that drips its answer cannot hold a worker.

The queue is durable through that log (:class:`NotificationLog`, the registry's
``chainmap_notification_deliveries``): :meth:`WebhookNotifier.notify` (called by the
monitor's thread, never on a request's path) stores each notification as ``pending`` per
URL before queueing it, and a delivery marks it ``delivered``, ``failed`` (every attempt
failed) or ``dropped``. A stop leaves what is still queued, or waiting between retries,
pending; :meth:`WebhookNotifier.start` re-queues the pending ones, oldest first and within
the queue's bound, and records as dropped, with the reason, those older than ``max_age_s``,
those superseded (a later notification to the same URL covers every alert fingerprint of
theirs: its news is newer) and those for a URL no longer configured. Delivery is at least
once: a POST that reached the receiver just before the process died is sent again.

For the monitor's repeats the notifier also tells, per alert fingerprint, whether a
notification of it is still queued or being delivered (:meth:`WebhookNotifier.in_flight`)
and when one was last delivered (:meth:`WebhookNotifier.delivered_at`).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import queue
import socket
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from chainmap_otel.monitor.alerts import Alert, PendingNotification

logger = logging.getLogger(__name__)

__all__ = [
    "RECEIVER",
    "NotificationLog",
    "WebhookNotifier",
    "WebhookStats",
    "alertmanager_payload",
    "post_json",
]

RECEIVER = "chainmap"
#: Alertmanager's ``endsAt`` for an alert that has not ended (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"
#: How old a pending notification may be and still be re-queued at start.
DEFAULT_MAX_AGE_S = 24 * 3600.0


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
    """One webhook message for ``alerts`` of one chain in one environment (its group)."""
    group_labels = {"chain_id": alerts[0].chain_id} if alerts else {}
    if alerts and alerts[0].environment:
        group_labels["environment"] = alerts[0].environment
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


class NotificationLog(Protocol):
    """The delivery log the queue is kept in (:class:`~chainmap_otel.monitor.alerts.AlertStore`)."""

    def add_pending_notifications(
        self, urls: list[str], payload: dict[str, Any], fingerprints: list[str]
    ) -> dict[str, int]: ...

    def finish_notification(
        self,
        notification_id: int,
        outcome: str,
        attempts: int,
        http_status: int | None,
        error: str,
    ) -> None: ...

    def pending_notifications(self) -> list[PendingNotification]: ...

    def notifications_after(
        self, notification_id: int
    ) -> list[tuple[int, str, tuple[str, ...]]]: ...

    def record_delivery(
        self,
        url: str,
        group_key: str,
        status: str,
        outcome: str,
        attempts: int,
        http_status: int | None,
        error: str,
    ) -> None: ...


@dataclass
class WebhookStats:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0
    requeued: int = 0


@dataclass(frozen=True)
class _Queued:
    """One notification for one URL; ``log_id`` None when the log could not store it."""

    payload: dict[str, Any]
    log_id: int | None

    @property
    def fingerprints(self) -> list[str]:
        return [str(a.get("fingerprint", "")) for a in self.payload.get("alerts", [])]


#: Most of a receiver's answer body read (only its status matters).
_MAX_ANSWER_BYTES = 64 * 1024


def post_json(url: str, body: bytes, deadline_s: float) -> int:
    """POST ``body`` to ``url``; the HTTP status of the answer, within ``deadline_s`` in all.

    A socket timeout bounds each read, not the attempt: a receiver dripping its answer a
    byte at a time would hold it for as long as it likes. A watchdog shuts the socket down
    when the deadline passes, whatever the attempt is doing (connecting, the TLS handshake,
    sending, reading), and the attempt fails with ``TimeoutError``.
    """
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    connection = (http.client.HTTPSConnection if https else http.client.HTTPConnection)(
        parts.hostname or "", parts.port, timeout=deadline_s
    )
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(deadline_s, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.connect()
        if expired.is_set():
            raise TimeoutError
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request(
            "POST",
            target,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "chainmap"},
        )
        response = connection.getresponse()
        response.read(_MAX_ANSWER_BYTES)
        if expired.is_set():
            raise TimeoutError
        return int(response.status)
    except Exception as exc:
        if expired.is_set():
            raise TimeoutError(
                f"no complete answer within the {deadline_s:g}s deadline "
                "(CHAINMAP_ALERT_WEBHOOK_TIMEOUT)"
            ) from None
        raise exc
    finally:
        watchdog.cancel()
        connection.close()


class WebhookNotifier:
    """Delivers payloads to every URL, each from its own bounded queue and thread."""

    def __init__(
        self,
        urls: Sequence[str],
        log: NotificationLog | None = None,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        backoff_s: float = 1.0,
        queue_size: int = 256,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.urls = list(urls)
        self._log = log
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_age_s = max_age_s
        self._queues: dict[str, queue.Queue[_Queued | None]] = {
            url: queue.Queue(maxsize=queue_size) for url in self.urls
        }
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.stats = WebhookStats()
        self._lock = threading.Lock()
        #: Alert fingerprint -> notifications of it queued or being delivered.
        self._in_flight: dict[str, int] = {}
        #: Alert fingerprint -> when a notification of it was last delivered (this process).
        self._delivered_at: dict[str, datetime] = {}

    def start(self) -> None:
        """Re-queue what a previous run left pending, then start one worker per URL."""
        self._requeue()
        for i, url in enumerate(self.urls):
            thread = threading.Thread(
                target=self._work, args=(url,), name=f"chainmap-webhook-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the attempt in progress; what is left stays pending in the log."""
        self._stop.set()
        for q in self._queues.values():
            with contextlib.suppress(queue.Full):
                q.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout)
        left = self.queued()
        if left and self._log is not None:
            logger.info("%d alert notifications left pending for the next start", left)

    def notify(self, payload: dict[str, Any]) -> None:
        """Store ``payload`` as pending and queue it for every URL; never waits on a
        receiver (a full queue drops and counts). Called from the monitor's thread: the
        pending rows are written here, off every request path."""
        ids: dict[str, int] = {}
        if self._log is not None and self.urls:
            fingerprints = _Queued(payload, None).fingerprints
            try:
                ids = self._log.add_pending_notifications(self.urls, payload, fingerprints)
            except Exception as exc:
                logger.warning(
                    "the delivery log could not store an alert notification (%s); it is "
                    "queued in memory only and lost if serve stops before it is delivered",
                    exc,
                )
        for url in self.urls:
            self._enqueue(url, _Queued(payload, ids.get(url)), "queue full")

    def queued(self) -> int:
        """Notifications waiting in the queues (not the one being delivered)."""
        return sum(1 for q in self._queues.values() for item in list(q.queue) if item is not None)

    def in_flight(self, alert_fingerprint: str) -> bool:
        """Whether a notification about this alert waits in a queue or is being delivered."""
        with self._lock:
            return self._in_flight.get(alert_fingerprint, 0) > 0

    def delivered_at(self, alert_fingerprint: str) -> datetime | None:
        """When a notification about this alert was last delivered by this process."""
        with self._lock:
            return self._delivered_at.get(alert_fingerprint)

    def _track(self, item: _Queued, change: int) -> None:
        with self._lock:
            for alert_fingerprint in item.fingerprints:
                count = self._in_flight.get(alert_fingerprint, 0) + change
                if count > 0:
                    self._in_flight[alert_fingerprint] = count
                else:
                    self._in_flight.pop(alert_fingerprint, None)

    def _enqueue(self, url: str, item: _Queued, full_reason: str) -> bool:
        try:
            self._track(item, +1)
            self._queues[url].put_nowait(item)
            return True
        except queue.Full:
            self._track(item, -1)
            with self._lock:
                self.stats.dropped += 1
            logger.warning("alert webhook %s is not keeping up; a notification was dropped", url)
            self._record(url, item, "dropped", 0, None, full_reason)
            return False

    def _requeue(self) -> None:
        """Queue the notifications a previous run left pending (see the module docstring)."""
        if self._log is None:
            return
        try:
            pending = self._log.pending_notifications()
            later = self._log.notifications_after(pending[0].id) if pending else []
        except Exception as exc:
            logger.warning("pending alert notifications could not be read (%s)", exc)
            return
        for found in pending:
            item = _Queued(found.payload or {}, found.id)
            reason = self._stale(found, later)
            if reason:
                with self._lock:
                    self.stats.dropped += 1
                logger.info(
                    "pending alert notification %d to %s dropped: %s", found.id, found.url, reason
                )
                self._record(found.url, item, "dropped", 0, None, reason)
            elif self._enqueue(found.url, item, "queue full when serve started"):
                with self._lock:
                    self.stats.requeued += 1
        if self.stats.requeued:
            logger.info("re-queued %d pending alert notifications", self.stats.requeued)

    def _stale(
        self, found: PendingNotification, later: list[tuple[int, str, tuple[str, ...]]]
    ) -> str:
        """Why ``found`` must not be sent any more ('' when it must)."""
        if found.url not in self._queues:
            return "its URL is no longer in CHAINMAP_ALERT_WEBHOOK_URLS"
        if not found.payload:
            return "no payload stored"
        if found.age_s > self.max_age_s:
            return f"pending for {found.age_s:.0f}s, longer than the {self.max_age_s:.0f}s limit"
        covered: set[str] = set()
        newer: list[int] = []
        for other_id, url, fingerprints in later:
            if (
                other_id > found.id
                and url == found.url
                and set(fingerprints) & set(found.fingerprints)
            ):
                covered.update(fingerprints)
                newer.append(other_id)
        if found.fingerprints and covered >= set(found.fingerprints):
            return "superseded by the later notification " + ", ".join(f"#{i}" for i in newer)
        return ""

    # -- the workers -----------------------------------------------------------------

    def _work(self, url: str) -> None:
        q = self._queues[url]
        while not self._stop.is_set():
            item = q.get()
            if item is None:
                return
            try:
                self._deliver(url, item)
            finally:
                self._track(item, -1)

    def _deliver(self, url: str, item: _Queued) -> None:
        body = json.dumps(item.payload).encode()
        error, status = "", None
        for attempt in range(1, self.max_attempts + 1):
            with self._lock:
                self.stats.attempts += 1
            try:
                status = post_json(url, body, self.timeout_s)
                if 200 <= status < 300:
                    delivered = datetime.now(tz=UTC)
                    with self._lock:
                        self.stats.delivered += 1
                        for alert_fingerprint in item.fingerprints:
                            self._delivered_at[alert_fingerprint] = delivered
                    self._record(url, item, "delivered", attempt, status, "")
                    return
                error = f"HTTP {status}"
            except Exception as exc:  # deadlines, refused connections, DNS: all retried
                status, error = None, f"{type(exc).__name__}: {exc}"
            if attempt < self.max_attempts and self._stop.wait(self.backoff_s * 2 ** (attempt - 1)):
                # Stopping between retries: the notification stays pending for the next start.
                self._record(url, item, "pending", attempt, status, error)
                return
        with self._lock:
            self.stats.failed += 1
        logger.warning("alert webhook %s failed after %d attempts: %s", url, attempt, error)
        self._record(url, item, "failed", attempt, status, error)

    def _record(
        self,
        url: str,
        item: _Queued,
        outcome: str,
        attempts: int,
        status: int | None,
        error: str,
    ) -> None:
        if self._log is None:
            return
        try:
            if item.log_id is not None:
                self._log.finish_notification(item.log_id, outcome, attempts, status, error)
            elif outcome != "pending":
                self._log.record_delivery(
                    url,
                    str(item.payload.get("groupKey", "")),
                    str(item.payload.get("status", "")),
                    outcome,
                    attempts,
                    status,
                    error,
                )
        except Exception:
            logger.warning("the delivery log could not record a %s notification", outcome)
