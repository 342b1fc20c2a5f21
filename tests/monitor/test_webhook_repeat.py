"""A still-firing alert is sent again every CHAINMAP_ALERT_REPEAT_INTERVAL (Alertmanager's
repeat_interval) after its last delivery, with the same fingerprint and start, and a restart
resumes that clock from the delivery log: it neither sends the alert again before the
interval has passed since the last delivery nor waits a whole interval from its own start.
A real ``chainmap serve`` (embedded PostgreSQL, chDB) and a receiver of the test's own.

Nothing here depends on how fast the machine is: "not sent" is read from the delivery log
after the monitor has evaluated several times, the passing of hours is the log's delivery
times moved back while serve is stopped, and the gaps checked are lower bounds the product
guarantees (a loaded machine only makes them longer)."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.monitor.conftest import BIN, OpsServe, Traffic, WebhookReceiver, wait_until

pytestmark = pytest.mark.slow

#: Longer than any restart or wait of this test: an alert must never be repeated by timing.
LONG = "1h"
SHORT_S = 3.0

#: Moves every delivery of the log two hours back, as if serve had been down that long.
BACKDATE = """
from chainmap_otel.registry.postgres import open_registry_database
with open_registry_database() as database, database.connection() as conn:
    conn.execute(
        "UPDATE chainmap_notification_deliveries SET "
        "created_at = created_at - interval '2 hours', updated_at = updated_at - interval '2 hours'"
    )
"""


def alerts_of(payloads: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a["fingerprint"], a["startsAt"]) for p in payloads for a in p["alerts"]}


def deliveries(serve: OpsServe) -> list[dict[str, Any]]:
    result = serve.cli("alerts", "--deliveries", "--format", "json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)["deliveries"]
    return found


def firing_ck(receiver: WebhookReceiver) -> list[tuple[float, dict[str, Any]]]:
    return [
        (at, p)
        for at, p in list(receiver.arrivals)
        if p["groupLabels"].get("chain_id") == "CK" and p["status"] == "firing"
    ]


def arrivals_per_alert(receiver: WebhookReceiver) -> dict[str, list[float]]:
    """Per CK alert fingerprint: when each firing notification carrying it arrived."""
    times: dict[str, list[float]] = {}
    for at, payload in firing_ck(receiver):
        for alert in payload["alerts"]:
            times.setdefault(alert["fingerprint"], []).append(at)
    return times


def start(serve: OpsServe, repeat: str) -> None:
    """Serve with this repeat interval, and fresh failing traffic that keeps CK firing."""
    serve.env["CHAINMAP_ALERT_REPEAT_INTERVAL"] = repeat
    serve.start()
    Traffic(serve).send(10, failing=True)


def evaluations(serve: OpsServe) -> int:
    status = serve.detailed()["chain_mapping"]["monitoring_status"]
    return int(status.get("evaluations", 0))


def settled(serve: OpsServe) -> bool:
    """Every alert that fires has fired (none pending) and every notification is delivered."""
    alerts = serve.get("/api/v1/alerts").json()["alerts"]
    if not alerts or any(a["state"] != "firing" for a in alerts):
        return False
    webhooks = serve.detailed()["chain_mapping"]["monitoring_status"]["webhooks"]
    return bool(webhooks["queued"] == 0 and webhooks["delivered"] >= 1) and all(
        d["outcome"] == "delivered" for d in deliveries(serve)
    )


def test_a_firing_alert_is_repeated_and_a_restart_does_not_repeat_it_at_once() -> None:
    root = Path(tempfile.mkdtemp(prefix="chainmap-ops-test-"))
    receiver = WebhookReceiver()
    serve = OpsServe(root, [receiver.url])
    try:
        # The alerts fire and their notifications are delivered; no repeat is due for an hour.
        start(serve, LONG)
        wait_until(lambda: firing_ck(receiver), "CK firing")
        wait_until(lambda: settled(serve), "every alert firing and its notification delivered")
        serve.stop()
        logged = deliveries(serve)
        assert logged and {d["outcome"] for d in logged} == {"delivered"}, logged
        announced = alerts_of([p for _, p in firing_ck(receiver)])

        # A restart within the interval of the last delivery sends nothing, however many
        # times the resumed monitor evaluates (it decides before queueing, and every
        # notification it queues is in the log first).
        start(serve, LONG)
        wait_until(lambda: evaluations(serve) >= 4, "four evaluations after the restart")
        serve.stop()
        assert deliveries(serve) == logged
        assert alerts_of([p for _, p in firing_ck(receiver)]) == announced

        # Two hours later (the log's delivery times moved back while serve is down) the
        # restarted serve sends the alerts again at once, not an interval after its start.
        moved = subprocess.run(
            [str(BIN / "python"), "-c", BACKDATE], env=serve.env, capture_output=True, text=True
        )
        assert moved.returncode == 0, moved.stderr
        before = len(firing_ck(receiver))
        start(serve, LONG)
        wait_until(
            lambda: alerts_of([p for _, p in firing_ck(receiver)[before:]]) == announced,
            "every CK alert sent again",
        )
        repeats = [p for _, p in firing_ck(receiver)[before:]]
        assert all(p["status"] == "firing" for p in repeats)
        serve.stop()

        # With a short interval: sent again and again, never sooner than the interval after
        # the alert's previous delivery, across the restart too.
        counts = {f: len(t) for f, t in arrivals_per_alert(receiver).items()}
        start(serve, f"{SHORT_S:g}s")
        wait_until(
            lambda: all(len(t) >= counts[f] + 2 for f, t in arrivals_per_alert(receiver).items()),
            "two more repeats of every CK alert",
            timeout=120,
        )
        for alert_fingerprint, times in arrivals_per_alert(receiver).items():
            since = times[counts[alert_fingerprint] - 1 :]  # from its repeat before the restart
            gaps = [later - earlier for earlier, later in itertools.pairwise(since)]
            assert min(gaps) >= SHORT_S - 0.1, (alert_fingerprint, gaps)
        assert alerts_of([p for _, p in firing_ck(receiver)[-1:]]) <= announced
    finally:
        serve.stop()
        receiver.close()
        shutil.rmtree(root, ignore_errors=True)
