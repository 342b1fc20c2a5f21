"""The ``/alerts`` page's parts: each alert's links, every section, and a registry that cannot
answer shown in its section's place (the registry is replaced by a fake only to fail it)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import parse_qsl

from chainmap_otel.errors import RegistryError
from chainmap_otel.server.web.alerts import alerts_body


def alert(chain: str, state: str, rule: str = "1h/5m", **extra: Any) -> dict[str, Any]:
    return {
        "key": f"{chain}|error_rate|{rule}",
        "chain_id": chain,
        "objective": "error_rate",
        "rule": rule,
        "severity": "page" if rule == "1h/5m" else "ticket",
        "state": state,
        "active_since": "2026-12-07T10:00:00Z",
        "fired_at": "2026-12-07T10:01:00Z" if state != "pending" else None,
        "resolved_at": None,
        "labels": {"objective": "error_rate", "window": rule},
        "annotations": {"summary": f"{chain} burns its error budget"},
        **extra,
    }


class Operations:
    """What the page reads of serve's operations; ``broken`` parts raise like a down registry."""

    def __init__(self, broken: tuple[str, ...] = ()) -> None:
        self.broken = broken

    def _read(self, part: str, value: Any) -> Any:
        if part in self.broken:
            raise RegistryError("the registry is unavailable: embedded PostgreSQL restarting")
        return value

    def active_alerts(self) -> list[dict[str, Any]]:
        return [alert("CK/1", "firing"), alert("PAY", "pending", "6h/30m")]

    def monitoring_status(self) -> dict[str, Any]:
        return {"running": True, "interval_seconds": 15, "for_seconds": 60}

    def resolved_alerts(self, seconds: float) -> list[dict[str, Any]]:
        assert seconds == 24 * 3600
        done = alert("OLD", "resolved", "3d/6h", resolved_at="2026-12-07T09:00:00Z")
        return self._read("resolved", [done])

    def alert_history(self, seconds: float) -> list[dict[str, Any]]:
        event = {"at": "2026-12-07T10:01:00Z", "chain_id": "CK/1", "state": "firing"}
        return self._read("history", [{**event, "labels": {"objective": "error_rate"}}])

    def deliveries(self, limit: int) -> list[dict[str, Any]]:
        row = {"id": 1, "at": "2026-12-07T10:01:01Z", "url": "http://hooks/x", "status": "firing"}
        return self._read(
            "deliveries",
            [{**row, "outcome": "failed", "attempts": 4, "http_status": 503, "error": "x"}],
        )


def sections(html: str) -> dict[str, str]:
    """Heading text -> the section's text."""
    found = {}
    for part in re.findall(r"<section.*?</section>", html, re.S):
        heading = unescape(re.sub(r"<[^>]+>", " ", re.search(r"<h2.*?</h2>", part, re.S)[0]))
        found[" ".join(heading.split())] = " ".join(unescape(re.sub(r"<[^>]+>", " ", part)).split())
    return found


def test_every_part_with_links_to_the_chain_and_its_failing_traces() -> None:
    html = alerts_body(Operations())  # type: ignore[arg-type]
    parts = sections(html)
    assert list(parts) == [
        "Firing 1",
        "Pending 1",
        "Resolved, last 24 h 1",
        "Transitions, last 24 h 1",
        "Webhook deliveries 1",
    ]
    assert "CK/1 page error_rate 1h/5m 2026-12-07T10:01:00Z CK/1 burns" in parts["Firing 1"]
    assert "PAY ticket error_rate 6h/30m 2026-12-07T10:00:00Z" in parts["Pending 1"]
    assert "OLD ticket error_rate 3d/6h 2026-12-07T09:00:00Z" in parts["Resolved, last 24 h 1"]
    assert "failed 4 503" in parts["Webhook deliveries 1"]
    assert 'href="/chains/CK%2F1"' in html  # the chain id escaped as one path segment
    searches = [dict(parse_qsl(unescape(q))) for q in re.findall(r'href="/search\?([^"]+)"', html)]
    assert searches[0] == {"chain": "CK/1", "status": "error", "order": "duration", "since": "1h"}
    assert [s["since"] for s in searches] == ["1h", "6h", "3d"]  # each rule's long window


def test_a_registry_that_cannot_answer_is_shown_in_its_parts_place() -> None:
    html = alerts_body(Operations(broken=("history", "deliveries")))  # type: ignore[arg-type]
    parts = sections(html)
    assert "Firing 1" in parts and "Resolved, last 24 h 1" in parts
    for title in ("Transitions, last 24 h", "Webhook deliveries"):
        assert parts[title] == (
            f"{title} the chain registry cannot answer: the registry is unavailable: "
            "embedded PostgreSQL restarting"
        )
