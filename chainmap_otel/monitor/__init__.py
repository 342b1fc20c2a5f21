"""The SLO monitor: burn-rate alert state machines, their PostgreSQL state and history, and
notifications in the Alertmanager webhook format."""

from __future__ import annotations

from chainmap_otel.monitor.alerts import ALERT_NAME, RULES, Alert, AlertStore, Rule, advance
from chainmap_otel.monitor.monitor import ChainMonitor
from chainmap_otel.monitor.webhook import WebhookNotifier, WebhookStats, alertmanager_payload

__all__ = [
    "ALERT_NAME",
    "RULES",
    "Alert",
    "AlertStore",
    "ChainMonitor",
    "Rule",
    "WebhookNotifier",
    "WebhookStats",
    "advance",
    "alertmanager_payload",
]
