"""The alert state machine: pending needs `for` to fire, a cleared pending never fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chainmap_otel.monitor.alerts import RULES, Alert, advance

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_rules_are_the_health_rules_with_their_severities() -> None:
    assert [(r.name, r.threshold, r.severity) for r in RULES] == [
        ("1h/5m", 14.4, "page"),
        ("6h/30m", 6.0, "page"),
        ("3d/6h", 1.0, "ticket"),
    ]


def test_pending_fires_only_after_for_and_resolves_when_the_condition_clears() -> None:
    alert = Alert("CK", "error_rate", "1h/5m", "page")
    pending = advance(alert, True, at(0), for_seconds=120)
    assert pending.state == "pending" and pending.active_since == at(0)
    assert advance(pending, True, at(119), 120).state == "pending"
    firing = advance(pending, True, at(120), 120)
    assert firing.state == "firing" and firing.fired_at == at(120)
    assert advance(firing, True, at(500), 120) == firing  # stays, nothing re-announced
    resolved = advance(firing, False, at(600), 120)
    assert resolved.state == "resolved" and resolved.resolved_at == at(600)
    again = advance(resolved, True, at(700), 120)
    assert again.state == "pending" and again.fired_at is None and again.resolved_at is None


def test_a_pending_alert_that_clears_never_fires() -> None:
    pending = advance(Alert("CK", "error_rate", "1h/5m", "page"), True, at(0), 120)
    assert advance(pending, False, at(60), 120).state == "inactive"


def test_zero_for_fires_at_once() -> None:
    assert advance(Alert("CK", "error_rate", "3d/6h", "ticket"), True, at(0), 0).state == "firing"
