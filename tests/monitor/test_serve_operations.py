"""Operations end to end on one real ``chainmap serve`` (embedded PostgreSQL, chDB): the
registry's REST writes and hot reload, alerts firing from failing traffic into Alertmanager-
format webhooks and resolving, state across a restart, a hanging webhook, ``/metrics``."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SpanExportResult
from prometheus_client.parser import text_string_to_metric_families

from tests.monitor.conftest import (
    TOKEN,
    OpsServe,
    Traffic,
    WebhookReceiver,
    browser_dom,
    wait_until,
)
from tests.support.browser import CHROMIUM, chromium, open_tab

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def chain_body(serve: OpsServe, chain_id: str) -> tuple[dict[str, Any], str]:
    response = serve.get(f"/api/v1/chains/{chain_id}")
    assert response.status_code == 200, response.text
    chain = response.json()["chain"]
    definition = {
        "id": chain["id"],
        "name": chain["name"],
        "category": chain["category"],
        "criticality": chain["criticality"],
        "entry": chain["entry"],
        "slo": {"error_rate": chain["slo"]["error_rate"], "window": "1d"},
    }
    return definition, response.headers["ETag"]


def test_chains_come_from_the_registry_seeded_by_the_yaml(ops_serve: OpsServe) -> None:
    listed = ops_serve.get("/api/v1/chains").json()
    assert sorted(c["id"] for c in listed["chains"]) == ["CK", "PAY"]
    assert ops_serve.detailed()["catalog"]["ids"] == ["CK", "PAY"]  # the file's order
    ck = next(c for c in listed["chains"] if c["id"] == "CK")
    # The existing fields stay (no traffic yet: "no data").
    assert ck["health"]["status"] == ("healthy" if ck["health"]["traces"] else "no_data")
    assert ck["registry"]["version"] == 1 and ck["registry"]["author"] == "seed"
    assert listed["catalog"]["source"].startswith("registry postgresql://")
    assert ops_serve.get("/api/v1/chains/CK").headers["ETag"] == '"1"'


def test_writes_need_the_bearer_token(ops_serve: OpsServe) -> None:
    definition, etag = chain_body(ops_serve, "CK")
    url = ops_serve.url + "/api/v1/chains/CK"
    missing = httpx.put(url, json=definition, headers={"If-Match": etag})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = httpx.put(url, json=definition, headers={"If-Match": etag, "Authorization": "Bearer x"})
    assert wrong.status_code == 401 and "CHAINMAP_API_TOKEN" in wrong.json()["detail"]
    no_match = httpx.put(url, json=definition, headers=AUTH)
    assert no_match.status_code == 428 and "If-Match" in no_match.json()["detail"]
    invalid = httpx.post(
        ops_serve.url + "/api/v1/chains",
        json={**definition, "id": "BAD", "category": "nope"},
        headers=AUTH,
    )
    assert invalid.status_code == 422
    assert "category: unknown category 'nope'" in invalid.json()["detail"]


def test_concurrent_writers_one_gets_412(ops_serve: OpsServe) -> None:
    definition, etag = chain_body(ops_serve, "CK")
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def put(name: str) -> None:
        barrier.wait()
        response = httpx.put(
            ops_serve.url + "/api/v1/chains/CK",
            json={**definition, "name": name},
            headers={**AUTH, "If-Match": etag},
            timeout=30,
        )
        codes.append(response.status_code)

    threads = [threading.Thread(target=put, args=(n,)) for n in ("Checkout A", "Checkout B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [200, 412]
    after = ops_serve.get("/api/v1/chains/CK")
    assert after.headers["ETag"] == f'"{int(etag.strip(chr(34))) + 1}"'
    assert after.json()["chain"]["name"] in ("Checkout A", "Checkout B")


def test_a_registry_push_is_picked_up_by_serve_through_notify(ops_serve: OpsServe) -> None:
    reloads = ops_serve.detailed()["chain_mapping"]["registry"]["reloads"]
    extra = ops_serve.root / "more.yaml"
    extra.write_text(
        ops_serve.chains_file.read_text()
        + """  - id: REFUND
    name: Refunds
    category: trading
    entry:
      - service: payments
        kind: server
        route: /refund
"""
    )
    pushed = ops_serve.cli("registry", "push", str(extra), "-m", "refunds")
    assert pushed.returncode == 0, pushed.stderr
    assert "added: REFUND" in pushed.stdout
    started = time.monotonic()
    wait_until(
        lambda: ops_serve.get("/api/v1/chains/REFUND").status_code == 200,
        "the pushed chain in GET /api/v1/chains/REFUND",
    )
    elapsed = time.monotonic() - started
    # Reloaded by the LISTEN thread (the CLI is another process: no in-process reload).
    assert ops_serve.detailed()["chain_mapping"]["registry"]["reloads"] > reloads, elapsed
    history = ops_serve.cli("registry", "history", "CK", "--format", "json")
    assert history.returncode == 0, history.stderr
    assert '"comment": "refunds"' in history.stdout  # CK's API rename was replaced by the file


def alert_payloads(receiver: WebhookReceiver, chain_id: str, status: str) -> list[dict[str, Any]]:
    return receiver.for_chain(chain_id, status)


def test_alert_fires_survives_a_restart_and_resolves(
    ops_serve: OpsServe, traffic: Traffic, webhooks: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    fast, hanging = webhooks
    assert all(r == SpanExportResult.SUCCESS for r in traffic.send(10, failing=True))
    fired = wait_until(lambda: alert_payloads(fast, "CK", "firing"), "a firing webhook for CK")
    payload = fired[0]
    assert payload["version"] == "4" and payload["receiver"] == "chainmap"
    assert payload["groupKey"] == '{}:{chain_id="CK"}'
    assert payload["externalURL"] == ops_serve.url
    assert {a["labels"]["window"] for a in payload["alerts"]} == {"1h/5m", "6h/30m", "3d/6h"}
    page = next(a for a in payload["alerts"] if a["labels"]["window"] == "1h/5m")
    assert page["status"] == "firing" and page["endsAt"] == "0001-01-01T00:00:00Z"
    assert {k: page["labels"][k] for k in ("alertname", "chain_id", "severity", "objective")} == {
        "alertname": "ChainErrorBudgetBurn",
        "chain_id": "CK",
        "severity": "page",
        "objective": "error_rate",
    }
    assert page["labels"]["criticality"] == "high" and page["labels"]["chain_name"]
    assert page["generatorURL"] == f"{ops_serve.url}/chains/CK"
    assert len(page["fingerprint"]) == 16 and page["startsAt"].endswith("Z")
    annotations = page["annotations"]
    assert float(annotations["burn_rate_long"]) > 14.4
    assert {"checkout", "payments"} <= set(annotations["services"].split(", "))
    assert "payments" in annotations["failing_services"].split(", ")
    assert "PAY" in annotations["affected_chains"].split(", ")
    ticket = next(a for a in payload["alerts"] if a["labels"]["window"] == "3d/6h")
    assert ticket["labels"]["severity"] == "ticket"

    # The hanging receiver got the same notification and holds it: ingest is not slowed.
    wait_until(lambda: hanging.payloads, "the hanging webhook to be called")
    results = traffic.send(10, failing=True, per_export=2)
    assert results and all(r == SpanExportResult.SUCCESS for r in results)
    wait_until(
        lambda: ops_serve.get("/api/v1/chains/health?chain=CK").json()["chains"][0]["traces"] == 20,
        "all 20 checkout traces stored",
    )

    active = ops_serve.get("/api/v1/alerts").json()["alerts"]
    firing = {(a["chain_id"], a["rule"]) for a in active if a["state"] == "firing"}
    assert ("CK", "1h/5m") in firing and ("PAY", "1h/5m") in firing
    detailed = ops_serve.detailed()
    assert detailed["overall_status"] == "degraded"
    assert detailed["chain_mapping"]["enabled"] is True
    assert detailed["chain_mapping"]["statistics"]["total_chains"] == 3
    for path in ("/", "/chains/CK"):
        dom = browser_dom(ops_serve.url + path, ops_serve.root / f"browser{len(path)}")
        if dom is not None:  # the alerts banner of the web view, filled by static/alerts.js
            banner = dom.split('id="chain-alerts"', 1)[1].split("</section>", 1)[0]
            assert "firing alert" in banner and 'href="/chains/CK"' in banner, banner
            assert ('href="/chains/PAY"' in banner) == (path == "/"), banner
    alerts_page = ops_serve.get("/alerts").text
    firing_part = alerts_page.split('id="firing"', 1)[1].split("</section>", 1)[0]
    assert 'href="/chains/CK"' in firing_part and 'href="/chains/PAY"' in firing_part
    assert "chain=CK&amp;status=error&amp;order=duration&amp;since=1h" in firing_part
    via_serve = ops_serve.cli("alerts", "--server", ops_serve.url, "--format", "json")
    assert via_serve.returncode == 0, via_serve.stderr
    listed = json.loads(via_serve.stdout)["alerts"]
    assert {("CK", "1h/5m"), ("PAY", "1h/5m")} <= {
        (a["chain_id"], a["rule"]) for a in listed if a["state"] == "firing"
    }
    assert_the_banner_does_not_move_the_page(ops_serve)
    fired_at = {a["key"]: a["fired_at"] for a in active if a["state"] == "firing"}
    notifications_before = len(alert_payloads(fast, "CK", "firing"))

    ops_serve.restart()
    resumed = ops_serve.get("/api/v1/alerts").json()["alerts"]
    assert {a["key"]: a["fired_at"] for a in resumed if a["state"] == "firing"} == fired_at
    wait_until(
        lambda: ops_serve.detailed()["chain_mapping"]["monitoring_status"]["evaluations"] >= 4,
        "four evaluations after the restart",
    )
    assert len(alert_payloads(fast, "CK", "firing")) == notifications_before  # no new "firing"

    assert all(r == SpanExportResult.SUCCESS for r in traffic.send(500, failing=False))
    resolved = wait_until(
        lambda: alert_payloads(fast, "CK", "resolved"), "a resolved webhook for CK", 120
    )
    ended = resolved[0]["alerts"]
    assert {a["status"] for a in ended} == {"resolved"}
    assert all(a["endsAt"] != "0001-01-01T00:00:00Z" for a in ended)
    wait_until(
        lambda: (
            not [
                a for a in ops_serve.get("/api/v1/alerts").json()["alerts"] if a["chain_id"] == "CK"
            ]
        ),
        "no active CK alerts",
    )
    history = ops_serve.get("/api/v1/alerts?history=1h").json()["events"]
    states = {e["state"] for e in history if e["chain_id"] == "CK"}
    assert {"pending", "firing", "resolved"} <= states
    cli = ops_serve.cli("alerts", "--history", "1h", "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert '"state": "resolved"' in cli.stdout
    through_serve = ops_serve.cli(
        "alerts", "--history", "1h", "--server", ops_serve.url, "-f", "json"
    )
    assert through_serve.returncode == 0, through_serve.stderr
    assert {"pending", "firing", "resolved"} <= {
        e["state"] for e in json.loads(through_serve.stdout)["events"] if e["chain_id"] == "CK"
    }
    resolved_part = ops_serve.get("/alerts").text.split('id="resolved"', 1)[1]
    assert 'href="/chains/CK"' in resolved_part.split("</section>", 1)[0]
    bad = ops_serve.get("/api/v1/alerts?history=soon")
    assert bad.status_code == 400 and "history" in bad.json()["detail"]


def assert_the_banner_does_not_move_the_page(serve: OpsServe) -> None:
    """The firing-alerts banner floats in a corner: the page's content starts where it does
    on a page without the banner (in headless Chromium, when it is installed)."""
    if CHROMIUM is None:
        return
    top = "() => document.querySelector('main').getBoundingClientRect().top"
    with chromium() as browser, open_tab(browser, serve.url, serve.root) as tab:
        tab.open("/alerts")
        without = tab.page.evaluate(top)
        firing = tab.page.locator("section:has(#firing) a[href^='/chains/']").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        )
        assert {"/chains/CK", "/chains/PAY"} <= set(firing)
        tab.shot("web-view-alerts.png", full_page=True)
        tab.open("/")
        tab.page.wait_for_selector("#chain-alerts:not([hidden])", timeout=30_000)
        assert tab.page.evaluate(top) == without
        banner = tab.page.locator("#chain-alerts")
        assert banner.evaluate("b => getComputedStyle(b).position") == "fixed"
        assert banner.locator('a[href="/alerts"]').count() == 1
        assert tab.problems == []


def test_the_hanging_webhook_is_retried_and_logged_as_failed(ops_serve: OpsServe) -> None:
    def failed() -> int:
        hooks = ops_serve.detailed()["chain_mapping"]["monitoring_status"]["webhooks"]
        return int(hooks["failed"])

    wait_until(failed, "a failed delivery to the hanging webhook", 120)
    hooks = ops_serve.detailed()["chain_mapping"]["monitoring_status"]["webhooks"]
    assert hooks["delivered"] >= 1 and hooks["urls"] == 2
    log = ops_serve.cli("alerts", "--deliveries", "--format", "json")
    assert log.returncode == 0, log.stderr
    outcomes = {
        (d["url"].split(":")[-1], d["outcome"]) for d in json.loads(log.stdout)["deliveries"]
    }
    slow_port = ops_serve.env["CHAINMAP_ALERT_WEBHOOK_URLS"].split(",")[1].split(":")[-1]
    assert (slow_port, "failed") in outcomes
    through_serve = ops_serve.cli("alerts", "--deliveries", "--server", ops_serve.url, "-f", "json")
    assert (slow_port, "failed") in {
        (d["url"].split(":")[-1], d["outcome"])
        for d in json.loads(through_serve.stdout)["deliveries"]
    }
    deliveries_part = ops_serve.get("/alerts").text.split('id="deliveries"', 1)[1]
    assert '<span class="outcome failed">failed</span>' in deliveries_part
    failed = next(d for d in json.loads(log.stdout)["deliveries"] if d["outcome"] == "failed")
    # Cut at the attempt's deadline (TimeoutError naming it) or by a socket timeout before.
    error = failed["error"].lower()
    assert failed["attempts"] == 4 and ("timeouterror" in error or "timed out" in error), error


def test_metrics_equal_the_health_and_topology_json(ops_serve: OpsServe) -> None:
    health = {c["chain_id"]: c for c in ops_serve.get("/api/v1/chains/health").json()["chains"]}
    text = ops_serve.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {
        s.labels["chain_id"]: s.value
        for s in families["chainmap_chain_requests"].samples
        if s.name.endswith("_total")
    }
    errors = {
        s.labels["chain_id"]: s.value
        for s in families["chainmap_chain_errors"].samples
        if s.name.endswith("_total")
    }
    for chain_id in ("CK", "PAY"):
        assert requests[chain_id] == health[chain_id]["traces"] == 520
        assert errors[chain_id] == health[chain_id]["errors"] == 20
    latency = [
        s
        for s in families["chainmap_chain_request_duration_seconds"].samples
        if s.labels.get("chain_id") == "CK"
    ]
    count = next(s.value for s in latency if s.name.endswith("_count"))
    inf = next(s.value for s in latency if s.labels.get("le") == "+Inf")
    assert count == inf == 520

    topology = ops_serve.get("/api/v1/chains/CK/topology").json()
    edge = next(
        e for e in topology["edges"] if (e["source"], e["target"]) == ("checkout", "payments")
    )
    graph = {
        (s.labels["client"], s.labels["server"], s.labels["chain_id"]): s.value
        for s in families["traces_service_graph_request"].samples
        if s.name.endswith("_total")
    }
    failed = {
        (s.labels["client"], s.labels["server"], s.labels["chain_id"]): s.value
        for s in families["traces_service_graph_request_failed"].samples
        if s.name.endswith("_total")
    }
    assert graph[("checkout", "payments", "CK")] == edge["calls"] == 520
    assert failed[("checkout", "payments", "CK")] == edge["errors"] == 20
    # The connector's latency histograms: one observation per request on either side.
    for side in ("server", "client"):
        samples = [
            s
            for s in families[f"traces_service_graph_request_{side}_seconds"].samples
            if (s.labels["client"], s.labels["server"], s.labels["chain_id"])
            == ("checkout", "payments", "CK")
        ]
        count = next(s.value for s in samples if s.name.endswith("_count"))
        inf = next(s.value for s in samples if s.labels.get("le") == "+Inf")
        total = next(s.value for s in samples if s.name.endswith("_sum"))
        assert count == inf == edge["calls"] == 520, side
        assert total > 0, side
        for chain_edge in topology["edges"]:
            labels = (chain_edge["source"], chain_edge["target"], "CK")
            counts = [
                s.value
                for s in families[f"traces_service_graph_request_{side}_seconds"].samples
                if s.name.endswith("_count")
                and (s.labels["client"], s.labels["server"], s.labels["chain_id"]) == labels
            ]
            assert counts == [chain_edge["calls"]], (side, labels)
    assert any(s.value >= 1 for s in families["chainmap_alert_evaluations"].samples)
    stored = next(s.value for s in families["chainmap_spans_stored"].samples)
    assert stored > 0  # counted since the restart
