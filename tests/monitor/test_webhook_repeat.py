"""A still-firing alert is sent again every CHAINMAP_ALERT_REPEAT_INTERVAL (Alertmanager's
repeat_interval), with the same fingerprint and start, and a restart does not send it at
once: a real ``chainmap serve`` (embedded PostgreSQL, chDB) and a receiver of the test's own."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.monitor.conftest import OpsServe, Traffic, WebhookReceiver, wait_until

pytestmark = pytest.mark.slow

REPEAT_S = 3.0


def alerts_of(payloads: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((a["fingerprint"], a["startsAt"]) for p in payloads for a in p["alerts"])


def test_a_firing_alert_is_repeated_and_a_restart_does_not_repeat_it_at_once() -> None:
    root = Path(tempfile.mkdtemp(prefix="chainmap-ops-test-"))
    receiver = WebhookReceiver()
    serve = OpsServe(root, [receiver.url])
    serve.env["CHAINMAP_ALERT_REPEAT_INTERVAL"] = f"{REPEAT_S:g}s"
    try:
        serve.start()
        Traffic(serve).send(10, failing=True)
        first = wait_until(lambda: receiver.for_chain("CK", "firing"), "CK firing")[0]
        sent_at = time.monotonic()
        repeats = wait_until(
            lambda: receiver.for_chain("CK", "firing")[1:], "CK firing sent again", timeout=60
        )
        assert time.monotonic() - sent_at >= REPEAT_S - 1  # not before the interval
        assert alerts_of(repeats[:1]) == alerts_of([first])  # the same alerts, same start
        assert repeats[0]["status"] == "firing"

        serve.stop()
        before = len(receiver.for_chain("CK", "firing"))
        serve.start()
        restarted = time.monotonic()
        wait_until(
            lambda: len(receiver.for_chain("CK", "firing")) > before, "a repeat after restart"
        )
        # Counted as sent when the monitor resumed: the next one an interval later.
        assert time.monotonic() - restarted >= REPEAT_S - 1
    finally:
        serve.stop()
        receiver.close()
        shutil.rmtree(root, ignore_errors=True)
