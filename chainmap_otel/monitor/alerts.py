"""Burn-rate alerts: one state machine per chain x environment x objective x rule, kept in
PostgreSQL (the environment in the ``environment`` label: absent for data that names none).

States follow Prometheus' alerting rules: ``inactive`` -> ``pending`` when the rule's
long and short burn rates are both above its threshold -> ``firing`` once that has held
for ``for_seconds`` -> ``resolved`` when the condition clears (a pending alert whose
condition clears goes back to ``inactive``). Every transition is stored as an event;
the state row is what a restarted ``chainmap serve`` resumes from, so a firing alert is
never lost and never announced as new twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chainmap_otel.analysis.health import ALERT_RULES
from chainmap_otel.registry.postgres import RegistryDatabase

__all__ = [
    "ALERT_NAME",
    "RULES",
    "Alert",
    "AlertStore",
    "PendingNotification",
    "Rule",
    "advance",
]

ALERT_NAME = "ChainErrorBudgetBurn"


@dataclass(frozen=True)
class Rule:
    """One multi-window burn-rate rule of ``analysis.health`` and its alert severity."""

    long: str
    short: str
    threshold: float
    severity: str  # page | ticket

    @property
    def name(self) -> str:
        return f"{self.long}/{self.short}"


#: The health rules as alert rules: ``critical`` pages, ``degraded`` opens a ticket.
RULES: tuple[Rule, ...] = tuple(
    Rule(long, short, threshold, "page" if status == "critical" else "ticket")
    for long, short, threshold, status in ALERT_RULES
)


@dataclass(frozen=True)
class Alert:
    """Where one alert's state machine is."""

    chain_id: str
    objective: str
    rule: str
    severity: str
    state: str = "inactive"
    active_since: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    #: The ``deployment.environment.name`` evaluated (``""``: the data naming none).
    environment: str = ""

    @property
    def key(self) -> str:
        """Unique per state machine; alerts of data without an environment keep the key they
        had before alerts were per environment, so a restart resumes them."""
        base = f"{self.chain_id}|{self.objective}|{self.rule}"
        return f"{base}|{self.environment}" if self.environment else base

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "chain_id": self.chain_id,
            "environment": self.environment,
            "objective": self.objective,
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state,
            "active_since": _iso(self.active_since),
            "fired_at": _iso(self.fired_at),
            "resolved_at": _iso(self.resolved_at),
            "labels": self.labels,
            "annotations": self.annotations,
        }


@dataclass(frozen=True)
class PendingNotification:
    """A notification of the delivery log not yet delivered, failed or dropped."""

    id: int
    url: str
    payload: dict[str, Any] | None
    fingerprints: tuple[str, ...]
    age_s: float


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def advance(alert: Alert, condition: bool, now: datetime, for_seconds: float) -> Alert:
    """The alert after one evaluation (``condition``: the rule holds now)."""
    held = timedelta(seconds=for_seconds)
    if condition:
        if alert.state in ("inactive", "resolved"):
            pending = replace(
                alert, state="pending", active_since=now, fired_at=None, resolved_at=None
            )
            return replace(pending, state="firing", fired_at=now) if for_seconds <= 0 else pending
        if alert.state == "pending":
            since = alert.active_since or now
            if now - since >= held:
                return replace(alert, state="firing", fired_at=now)
        return alert
    if alert.state == "pending":
        return replace(alert, state="inactive", active_since=None)
    if alert.state == "firing":
        return replace(alert, state="resolved", resolved_at=now)
    return alert


_COLUMNS = (
    "chain_id, objective, rule, severity, state, active_since, fired_at, resolved_at, "
    "labels, annotations"
)


def _alert(row: tuple[Any, ...]) -> Alert:
    return Alert(
        chain_id=row[0],
        objective=row[1],
        rule=row[2],
        severity=row[3],
        state=row[4],
        active_since=row[5],
        fired_at=row[6],
        resolved_at=row[7],
        labels=dict(row[8] or {}),
        annotations=dict(row[9] or {}),
        environment=str((row[8] or {}).get("environment", "")),
    )


class AlertStore:
    """Alert states and their history in the registry database."""

    def __init__(self, database: RegistryDatabase) -> None:
        self.database = database

    def load(self) -> dict[str, Alert]:
        with self.database.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM chainmap_alert_state").fetchall()
        alerts = [_alert(r) for r in rows]
        return {a.key: a for a in alerts}

    def save(self, alerts: list[Alert], transitions: list[Alert]) -> None:
        """Upsert ``alerts`` and record ``transitions`` as events, in one transaction."""
        from psycopg.types.json import Jsonb

        if not alerts and not transitions:
            return
        with self.database.connection() as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO chainmap_alert_state (alert_key, {_COLUMNS}, evaluated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now()) "
                    "ON CONFLICT (alert_key) DO UPDATE SET state = EXCLUDED.state, "
                    "severity = EXCLUDED.severity, active_since = EXCLUDED.active_since, "
                    "fired_at = EXCLUDED.fired_at, resolved_at = EXCLUDED.resolved_at, "
                    "labels = EXCLUDED.labels, annotations = EXCLUDED.annotations, "
                    "evaluated_at = now()",
                    [
                        (
                            a.key,
                            a.chain_id,
                            a.objective,
                            a.rule,
                            a.severity,
                            a.state,
                            a.active_since,
                            a.fired_at,
                            a.resolved_at,
                            Jsonb(a.labels),
                            Jsonb(a.annotations),
                        )
                        for a in alerts
                    ],
                )
                cur.executemany(
                    "INSERT INTO chainmap_alert_events "
                    "(alert_key, chain_id, state, labels, annotations) VALUES (%s, %s, %s, %s, %s)",
                    [
                        (a.key, a.chain_id, a.state, Jsonb(a.labels), Jsonb(a.annotations))
                        for a in transitions
                    ],
                )

    def history(self, seconds: float, limit: int = 1000) -> list[dict[str, Any]]:
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT alert_key, chain_id, state, at, labels, annotations "
                "FROM chainmap_alert_events WHERE at >= now() - make_interval(secs => %s) "
                "ORDER BY id DESC LIMIT %s",
                (seconds, limit),
            ).fetchall()
        return [
            {
                "key": r[0],
                "chain_id": r[1],
                "environment": str((r[4] or {}).get("environment", "")),
                "state": r[2],
                "at": _iso(r[3]),
                "labels": r[4],
                "annotations": r[5],
            }
            for r in rows
        ]

    # -- the delivery log: the webhook queue's durable copy ------------------------------

    def add_pending_notifications(
        self, urls: list[str], payload: dict[str, Any], fingerprints: list[str]
    ) -> dict[str, int]:
        """Store ``payload`` as pending for each URL (one transaction); url -> its row id."""
        from psycopg.types.json import Jsonb

        ids: dict[str, int] = {}
        with self.database.connection() as conn:
            for url in urls:
                row = conn.execute(
                    "INSERT INTO chainmap_notification_deliveries "
                    "(url, group_key, status, outcome, attempts, payload, fingerprints) "
                    "VALUES (%s, %s, %s, 'pending', 0, %s, %s) RETURNING id",
                    (
                        url,
                        str(payload.get("groupKey", "")),
                        str(payload.get("status", "")),
                        Jsonb(payload),
                        fingerprints,
                    ),
                ).fetchone()
                ids[url] = int(row[0])
        return ids

    def finish_notification(
        self,
        notification_id: int,
        outcome: str,
        attempts: int,
        http_status: int | None,
        error: str,
    ) -> None:
        """Record how a pending notification ended (``pending`` again: attempts so far)."""
        with self.database.connection() as conn:
            conn.execute(
                "UPDATE chainmap_notification_deliveries SET outcome = %s, attempts = %s, "
                "http_status = %s, error = %s, updated_at = now() "
                "WHERE id = %s AND outcome = 'pending'",
                (outcome, attempts, http_status, error[:1000], notification_id),
            )

    def pending_notifications(self) -> list[PendingNotification]:
        """Every pending notification, oldest first, with its age by the database's clock."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT id, url, payload, fingerprints, "
                "extract(epoch FROM now() - created_at)::float8 "
                "FROM chainmap_notification_deliveries WHERE outcome = 'pending' ORDER BY id"
            ).fetchall()
        return [
            PendingNotification(int(r[0]), r[1], r[2], tuple(r[3] or ()), float(r[4])) for r in rows
        ]

    def delivered_ages(self, fingerprints: list[str]) -> dict[str, float]:
        """Per alert fingerprint: seconds since a notification about it was last delivered,
        by the database's clock (fingerprints never delivered are left out)."""
        if not fingerprints:
            return {}
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT fp, extract(epoch FROM now() - max(d.updated_at))::float8 "
                "FROM chainmap_notification_deliveries AS d, unnest(d.fingerprints) AS fp "
                "WHERE d.outcome = 'delivered' AND d.fingerprints && %s::text[] "
                "AND fp = ANY(%s::text[]) GROUP BY fp",
                (fingerprints, fingerprints),
            ).fetchall()
        return {str(r[0]): max(0.0, float(r[1])) for r in rows}

    def notifications_after(self, notification_id: int) -> list[tuple[int, str, tuple[str, ...]]]:
        """(id, url, alert fingerprints) of every notification stored after ``notification_id``."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT id, url, fingerprints FROM chainmap_notification_deliveries "
                "WHERE id > %s ORDER BY id",
                (notification_id,),
            ).fetchall()
        return [(int(r[0]), r[1], tuple(r[2] or ())) for r in rows]

    def record_delivery(
        self,
        url: str,
        group_key: str,
        status: str,
        outcome: str,
        attempts: int,
        http_status: int | None,
        error: str,
    ) -> None:
        """A finished notification that was never stored as pending (the log was down)."""
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO chainmap_notification_deliveries "
                "(url, group_key, status, outcome, attempts, http_status, error) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (url, group_key, status, outcome, attempts, http_status, error[:1000]),
            )

    def deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The delivery log, newest first: ``at`` when queued, ``updated_at`` when it ended."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT id, url, group_key, status, outcome, attempts, http_status, error, "
                "created_at, updated_at "
                "FROM chainmap_notification_deliveries ORDER BY id DESC LIMIT %s",
                (limit,),
            ).fetchall()
        keys = ("id", "url", "group_key", "status", "outcome", "attempts", "http_status", "error")
        return [
            {**dict(zip(keys, r[:8], strict=True)), "at": _iso(r[8]), "updated_at": _iso(r[9])}
            for r in rows
        ]
