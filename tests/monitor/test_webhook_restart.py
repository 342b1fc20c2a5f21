"""A notification survives a stop: a real ``chainmap serve`` (embedded PostgreSQL, chDB) fires
alerts while its webhook receiver is down, is stopped, and once the receiver is back up and
serve restarted the receiver gets each firing notification exactly once."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.monitor.conftest import OpsServe, Traffic, WebhookReceiver, wait_until
from tests.support.processes import free_port

pytestmark = pytest.mark.slow


def deliveries(serve: OpsServe) -> list[dict[str, Any]]:
    result = serve.cli("alerts", "--deliveries", "--format", "json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)["deliveries"]
    return found


def firing_chains(serve: OpsServe) -> set[str]:
    alerts = serve.get("/api/v1/alerts").json()["alerts"]
    return {a["chain_id"] for a in alerts if a["state"] == "firing"}


def test_a_notification_queued_while_the_receiver_is_down_is_delivered_after_a_restart() -> None:
    # Not under pytest's tmp_path: the embedded PostgreSQL must reach its directory as root.
    root = Path(tempfile.mkdtemp(prefix="chainmap-ops-test-"))
    port = free_port()  # the receiver's address; nothing listens there while it is down
    serve = OpsServe(root, [f"http://127.0.0.1:{port}/hook"])
    receiver: WebhookReceiver | None = None
    try:
        serve.start()
        sent = Traffic(serve).send(10, failing=True)
        assert all(r == SpanExportResult.SUCCESS for r in sent)
        wait_until(lambda: firing_chains(serve) >= {"CK", "PAY"}, "CK and PAY alerts firing")
        # Stopped while the first notification waits between its refused attempts (the last
        # retry is 7 s after the first) and the second waits in the queue behind it.
        serve.stop()
        held = deliveries(serve)
        assert sorted((d["group_key"], d["status"], d["outcome"]) for d in held) == [
            ('{}:{chain_id="CK"}', "firing", "pending"),
            ('{}:{chain_id="PAY"}', "firing", "pending"),
        ], held
        oldest, newest = sorted(held, key=lambda d: d["id"])
        assert oldest["attempts"] >= 1 and "refused" in oldest["error"].lower(), oldest
        assert (newest["attempts"], newest["error"]) == (0, ""), newest

        receiver = WebhookReceiver(port=port)  # the receiver is back up
        serve.start()
        wait_until(
            lambda: (
                receiver is not None
                and receiver.for_chain("CK", "firing")
                and receiver.for_chain("PAY", "firing")
            ),
            "the re-queued firing notifications at the receiver",
        )
        hooks = serve.detailed()["chain_mapping"]["monitoring_status"]["webhooks"]
        assert hooks["requeued"] == 2
        evaluations = serve.detailed()["chain_mapping"]["monitoring_status"]["evaluations"]
        wait_until(
            lambda: (
                serve.detailed()["chain_mapping"]["monitoring_status"]["evaluations"]
                >= evaluations + 4
            ),
            "four more evaluations",
        )
        # Exactly once: not sent again by the resumed monitor (the alerts were already
        # firing), nor twice from the log.
        assert len(receiver.for_chain("CK", "firing")) == 1
        assert len(receiver.for_chain("PAY", "firing")) == 1
        assert len(receiver.payloads) == 2
        firing = receiver.for_chain("CK", "firing")[0]
        assert {a["labels"]["window"] for a in firing["alerts"]} == {"1h/5m", "6h/30m", "3d/6h"}
        ids = {d["id"] for d in held}
        done = {d["id"]: d for d in deliveries(serve) if d["id"] in ids}
        assert {d["outcome"] for d in done.values()} == {"delivered"}, done
        assert len(done) == 2 and all(d["http_status"] == 200 for d in done.values())
    finally:
        serve.stop()
        if receiver is not None:
            receiver.close()
        shutil.rmtree(root, ignore_errors=True)
