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


def alerts_of(payloads: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((a["fingerprint"], a["startsAt"]) for p in payloads for a in p["alerts"])


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


def start(serve: OpsServe, repeat: str) -> None:
    """Serve with this repeat interval, and fresh failing traffic that keeps CK firing."""
    serve.env["CHAINMAP_ALERT_REPEAT_INTERVAL"] = repeat
    serve.start()
    Traffic(serve).send(10, failing=True)


def evaluations(serve: OpsServe) -> int:
    status = serve.detailed()["chain_mapping"]["monitoring_status"]
    return int(status.get("evaluations", 0))


def test_a_firing_alert_is_repeated_and_a_restart_does_not_repeat_it_at_once() -> None:
    root = Path(tempfile.mkdtemp(prefix="chainmap-ops-test-"))
    receiver = WebhookReceiver()
    serve = OpsServe(root, [receiver.url])
    try:
        # The alert fires and its notification is delivered; no repeat is due for an hour.
        start(serve, LONG)
        first = wait_until(lambda: firing_ck(receiver), "CK firing")[0][1]
        wait_until(
            lambda: [d for d in deliveries(serve) if d["outcome"] == "delivered"],
            "the first notification delivered in the log",
        )
        serve.stop()
        logged = deliveries(serve)
        assert {d["outcome"] for d in logged} == {"delivered"}, logged

        # A restart within the interval of the last delivery sends nothing, however many
        # times the resumed monitor evaluates (it decides before queueing, and every
        # notification it queues is in the log first).
        start(serve, LONG)
        wait_until(lambda: evaluations(serve) >= 4, "four evaluations after the restart")
        serve.stop()
        assert len(deliveries(serve)) == len(logged)
        assert len(firing_ck(receiver)) == 1

        # Two hours later (the log's delivery times moved back while serve is down) the
        # restarted serve sends the alert again at once, not an interval after its start.
        moved = subprocess.run(
            [str(BIN / "python"), "-c", BACKDATE], env=serve.env, capture_output=True, text=True
        )
        assert moved.returncode == 0, moved.stderr
        start(serve, LONG)
        repeated = wait_until(lambda: firing_ck(receiver)[1:], "CK firing sent again")[0][1]
        assert alerts_of([repeated]) == alerts_of([first])  # the same alerts, same start
        assert repeated["status"] == "firing"
        serve.stop()

        # With a short interval: sent again and again, never sooner than the interval after
        # the previous delivery, across the restart too.
        start(serve, f"{SHORT_S:g}s")
        wait_until(lambda: len(firing_ck(receiver)) >= 4, "two more repeats", timeout=120)
        times = [at for at, _ in firing_ck(receiver)][1:]  # from the repeat before the restart
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert gaps and min(gaps) >= SHORT_S - 0.1, gaps
        assert alerts_of([p for _, p in firing_ck(receiver)][-1:]) == alerts_of([first])
    finally:
        serve.stop()
        receiver.close()
        shutil.rmtree(root, ignore_errors=True)
