"""The webhook queue kept in the registry's delivery log, on the real embedded PostgreSQL: a
stop leaves notifications pending, the next start re-queues them (oldest first, bounded)
and drops, with the reason, the ones too old, superseded or for a URL no longer configured."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chainmap_otel.monitor.alerts import Alert, AlertStore
from chainmap_otel.monitor.webhook import WebhookNotifier, alertmanager_payload
from chainmap_otel.registry.postgres import RegistryDatabase
from tests.monitor.conftest import WebhookReceiver, wait_until
from tests.support.processes import free_port

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def payload(chain_id: str, state: str, *rules: str) -> dict[str, Any]:
    alerts = [
        Alert(
            chain_id,
            "error_rate",
            rule,
            "page",
            state=state,
            fired_at=NOW,
            resolved_at=NOW if state == "resolved" else None,
            labels={"alertname": "ChainErrorBudgetBurn", "chain_id": chain_id, "window": rule},
        )
        for rule in rules
    ]
    return alertmanager_payload(alerts, "http://chainmap", lambda a: "http://chainmap/chains")


def pending(store: AlertStore, url: str, body: dict[str, Any]) -> int:
    """A notification a previous run stored as pending and never got to deliver."""
    fingerprints = [a["fingerprint"] for a in body["alerts"]]
    return store.add_pending_notifications([url], body, fingerprints)[url]


def log(store: AlertStore) -> dict[int, dict[str, Any]]:
    return {d["id"]: d for d in store.deliveries()}


def test_a_stop_between_retries_leaves_it_pending_and_the_next_start_delivers_it(
    registry_db: RegistryDatabase,
) -> None:
    store = AlertStore(registry_db)
    port = free_port()  # nothing listens there yet: the receiver is down
    url = f"http://127.0.0.1:{port}/hook"
    first = WebhookNotifier([url], store, backoff_s=30.0)
    first.start()
    body = payload("CK", "firing", "1h/5m", "3d/6h")
    first.notify(body)
    wait_until(lambda: first.stats.attempts >= 1, "a first, refused attempt")
    first.stop()  # while it waits to retry
    (row,) = store.deliveries()
    assert (row["outcome"], row["attempts"]) == ("pending", 1), row
    assert "refused" in row["error"].lower()
    assert first.stats.failed == 0

    receiver = WebhookReceiver(port=port)  # the receiver is back
    try:
        second = WebhookNotifier([url], store)
        second.start()
        wait_until(lambda: log(store)[row["id"]]["outcome"] == "delivered", "the delivery")
        second.stop()
        assert receiver.payloads == [body]
        assert second.stats.requeued == 1 and second.stats.delivered == 1
        assert log(store)[row["id"]]["attempts"] == 1
    finally:
        receiver.close()


def test_the_next_start_drops_old_superseded_and_unconfigured_ones_and_stays_bounded(
    registry_db: RegistryDatabase,
) -> None:
    store = AlertStore(registry_db)
    receiver = WebhookReceiver()
    gone = "http://127.0.0.1:9/no-longer-configured"
    try:
        old = pending(store, receiver.url, payload("OLD", "firing", "1h/5m"))
        with registry_db.connection() as conn:
            conn.execute(
                "UPDATE chainmap_notification_deliveries "
                "SET created_at = now() - interval '2 days' WHERE id = %s",
                (old,),
            )
        ck_firing = pending(store, receiver.url, payload("CK", "firing", "1h/5m", "3d/6h"))
        pay_firing = pending(store, receiver.url, payload("PAY", "firing", "1h/5m"))
        ck_resolved = pending(store, receiver.url, payload("CK", "resolved", "1h/5m", "3d/6h"))
        elsewhere = pending(store, gone, payload("PAY", "firing", "3d/6h"))
        refund = pending(store, receiver.url, payload("REFUND", "firing", "1h/5m"))

        notifier = WebhookNotifier([receiver.url], store, queue_size=2, max_age_s=3600)
        notifier.start()
        wait_until(lambda: len(receiver.payloads) == 2, "the two re-queued notifications")
        wait_until(lambda: log(store)[ck_resolved]["outcome"] == "delivered", "the second delivery")
        notifier.stop()
        # Oldest first: PAY's firing, then CK's resolved (which superseded CK's firing).
        assert [(p["groupLabels"]["chain_id"], p["status"]) for p in receiver.payloads] == [
            ("PAY", "firing"),
            ("CK", "resolved"),
        ]
        rows = log(store)
        assert {i: rows[i]["outcome"] for i in rows} == {
            old: "dropped",
            ck_firing: "dropped",
            pay_firing: "delivered",
            ck_resolved: "delivered",
            elsewhere: "dropped",
            refund: "dropped",
        }
        assert "longer than the 3600s limit" in rows[old]["error"]
        assert rows[ck_firing]["error"] == f"superseded by the later notification #{ck_resolved}"
        assert "no longer in CHAINMAP_ALERT_WEBHOOK_URLS" in rows[elsewhere]["error"]
        assert rows[refund]["error"] == "queue full when serve started"
        assert (notifier.stats.requeued, notifier.stats.dropped) == (2, 4)
    finally:
        receiver.close()


def test_a_notification_is_pending_in_the_log_before_it_is_delivered(
    registry_db: RegistryDatabase,
) -> None:
    store = AlertStore(registry_db)
    receiver = WebhookReceiver(hang=True)  # holds each request until released
    try:
        notifier = WebhookNotifier([receiver.url], store, timeout_s=30.0)
        notifier.start()
        notifier.notify(payload("CK", "firing", "1h/5m"))
        wait_until(lambda: receiver.payloads, "the receiver to be called")
        (row,) = store.deliveries()
        assert row["outcome"] == "pending" and row["status"] == "firing"
        receiver.release.set()
        wait_until(lambda: store.deliveries()[0]["outcome"] == "delivered", "the delivery")
        notifier.stop()
    finally:
        receiver.close()
