"""The SLO monitor of ``chainmap serve``: burn-rate rules evaluated into alerts, continuously.

Every ``interval_s`` the monitor reads each chain's health (``analysis.health``: the
per-minute aggregates only, so an evaluation costs one query per environment whatever the
windows, plus one read of the services' entry counts for all of them, which the burn
rates read where they cover a window) in every environment seen in the evaluation window,
each judged by its own objectives (``slo.environments``), runs the alert state machine of every chain x
environment x objective x rule, stores what changed and
queues Alertmanager-format notifications for alerts that start or stop firing. A firing
alert carries the chain's context: the services on its path, the ones failing and the
other chains that share them. It runs in its own daemon thread; an evaluation that fails
(store or registry unreachable) is logged and counted, and the next one tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from chainmap_otel.analysis.timewindow import UNNAMED_ENVIRONMENT, TimeWindow
from chainmap_otel.monitor.alerts import ALERT_NAME, RULES, Alert, AlertStore, Rule, advance
from chainmap_otel.monitor.webhook import WebhookNotifier, alertmanager_payload, fingerprint
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, ChainDefinition

logger = logging.getLogger(__name__)

__all__ = ["ChainMonitor"]

#: The main window of each evaluation (burn-rate windows reach back from its end).
EVALUATION_WINDOW_S = 300
#: The window the chain context (services, failing services, sharing chains) is read over.
CONTEXT_WINDOW_S = 3600


class ChainMonitor:
    """Evaluates every chain's burn-rate alerts every ``interval_s`` seconds."""

    def __init__(
        self,
        store: TraceStore,
        catalog: Callable[[], ChainCatalog],
        alerts: AlertStore,
        notifier: WebhookNotifier | None,
        *,
        interval_s: float,
        for_s: float,
        external_url: Callable[[], str],
        repeat_s: float = 0.0,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.alert_store = alerts
        self.notifier = notifier
        self.interval_s = interval_s
        self.for_s = for_s
        self.repeat_s = repeat_s
        self.external_url = external_url
        #: When each firing alert (by key) was last handed to the webhooks, or (after a
        #: restart) last delivered according to the delivery log.
        self._sent: dict[str, datetime] = {}
        self._alerts: dict[str, Alert] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.evaluations = 0
        self.failures = 0
        self.last_evaluation: datetime | None = None
        self.last_error = ""

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self.interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="chainmap-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate()
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("chain monitor evaluation failed (retrying): %s", self.last_error)
            self._stop.wait(self.interval_s)

    # -- reads -----------------------------------------------------------------------

    def active(self) -> list[Alert]:
        """Pending and firing alerts (the state a restart resumed included)."""
        with self._lock:
            alerts = self._alerts
        if alerts is None:
            alerts = self.alert_store.load()
        order = {"firing": 0, "pending": 1}
        found = [a for a in alerts.values() if a.state in order]
        return sorted(
            found, key=lambda a: (order[a.state], a.chain_id, a.environment, a.objective, a.rule)
        )

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "interval_seconds": self.interval_s,
            "for_seconds": self.for_s,
            "evaluations": self.evaluations,
            "failures": self.failures,
            "last_evaluation": self.last_evaluation.isoformat().replace("+00:00", "Z")
            if self.last_evaluation
            else None,
            "last_error": self.last_error,
        }

    # -- one evaluation ----------------------------------------------------------------

    def evaluate(self, now: datetime | None = None) -> list[Alert]:
        """Run every rule once; returns the alerts whose state changed."""
        from chainmap_otel.analysis.entry_counts import scope_counts
        from chainmap_otel.analysis.health import health, health_counts

        now = now or datetime.now(tz=UTC)
        catalog = self.catalog()
        with self._lock:
            resuming = self._alerts is None
            if self._alerts is None:
                self._alerts = self.alert_store.load()  # resume after a restart
            alerts = dict(self._alerts)
        if resuming:
            self._resume_repeats(alerts, now)
        window = TimeWindow.last(EVALUATION_WINDOW_S, now)
        context = _LazyContext(self.store, catalog, now)
        changed: list[Alert] = []
        transitions: list[Alert] = []
        seen: set[str] = set()
        environments = evaluated_environments(self.store, window)
        # The services' counts of every environment in one read, split below.
        counted = health_counts(self.store, catalog.ids, window) if environments else {}
        for environment in environments:
            # Beside named environments, the data naming none is judged on its own.
            scope = environment or (UNNAMED_ENVIRONMENT if len(environments) > 1 else "")
            entries = health(
                store=self.store,
                catalog=catalog,
                window=window.within(scope),
                counted=scope_counts(counted, scope),
            )
            for entry in entries:
                chain = catalog.get(entry["chain_id"])
                if chain is None or entry["slo"] is None:
                    continue
                for objective in entry["slo"]["objectives"]:
                    burns = objective["burn_rates"]
                    for rule in RULES:
                        fresh = Alert(
                            chain.id,
                            objective["objective"],
                            rule.name,
                            rule.severity,
                            environment=environment,
                        )
                        key = fresh.key
                        seen.add(key)
                        before = alerts.get(key) or fresh
                        holds = (
                            burns[rule.long] > rule.threshold and burns[rule.short] > rule.threshold
                        )
                        after = advance(before, holds, now, self.for_s)
                        labels = _labels(chain, objective["objective"], rule, environment)
                        if after.state == "firing" and before.state != "firing":
                            after = replace(
                                after,
                                labels=labels,
                                annotations=_annotations(
                                    chain, objective, rule, context, environment
                                ),
                            )
                        elif not after.labels:
                            after = replace(after, labels=labels)
                        if after != before and (after.state != "inactive" or key in alerts):
                            changed.append(after)
                            alerts[key] = after
                        if after.state != before.state:
                            transitions.append(after)
        for key, alert in list(alerts.items()):
            if key not in seen and alert.state in ("pending", "firing"):
                # The chain or its objective was removed: its alert ends with it.
                gone = advance(alert, False, now, self.for_s)
                changed.append(gone)
                transitions.append(gone)
                alerts[key] = gone
        self.alert_store.save(changed, transitions)
        with self._lock:
            self._alerts = alerts
        self.evaluations += 1
        self.last_evaluation = now
        self.last_error = ""
        announced = [t for t in transitions if t.state in ("firing", "resolved")]
        self._notify(announced + self._repeats(alerts, announced, now))
        return transitions

    def _resume_repeats(self, alerts: dict[str, Alert], now: datetime) -> None:
        """Start each firing alert's repeat clock at its last delivery in the delivery log,
        so a restart never sends it again before ``repeat_s`` has passed since then. An
        alert the log has no delivery of counts as sent now (a restart does not announce
        it twice)."""
        if self.repeat_s <= 0 or self.notifier is None:
            return
        firing = {fingerprint(a.labels): key for key, a in alerts.items() if a.state == "firing"}
        try:
            ages = self.alert_store.delivered_ages(sorted(firing))
        except Exception as exc:
            logger.warning(
                "the delivery log could not be read (%s): firing alerts count as sent now", exc
            )
            ages = {}
        for alert_fingerprint, key in firing.items():
            age = ages.get(alert_fingerprint)
            self._sent[key] = now if age is None else now - timedelta(seconds=age)

    def _repeats(
        self, alerts: dict[str, Alert], announced: list[Alert], now: datetime
    ) -> list[Alert]:
        """The firing alerts due again (Alertmanager's repeat_interval: a receiver that
        missed the first notification hears again): none of theirs is queued or being
        delivered, and ``repeat_s`` has passed since one was last delivered (or, when none
        was, handed to the webhooks). Repeats never pile up behind a slow receiver, and a
        restart resumes the clock from the delivery log (:meth:`_resume_repeats`)."""
        just_sent = {a.key for a in announced}
        due: list[Alert] = []
        notifier = self.notifier
        for key, alert in alerts.items():
            if alert.state != "firing":
                self._sent.pop(key, None)
                continue
            last = self._sent.setdefault(key, now)
            if key in just_sent:
                self._sent[key] = now
                continue
            if self.repeat_s <= 0 or notifier is None:
                continue
            alert_fingerprint = fingerprint(alert.labels)
            if notifier.in_flight(alert_fingerprint):
                continue
            delivered = notifier.delivered_at(alert_fingerprint)
            if delivered is not None and delivered > last:
                last = delivered
            if (now - last).total_seconds() >= self.repeat_s:
                self._sent[key] = now
                due.append(alert)
        return due

    def _notify(self, alerts: list[Alert]) -> None:
        if self.notifier is None or not alerts:
            return
        external = self.external_url().rstrip("/")
        groups: dict[tuple[str, str], list[Alert]] = {}
        for alert in alerts:
            groups.setdefault((alert.chain_id, alert.environment), []).append(alert)
        for group in groups.values():
            payload = alertmanager_payload(group, external, lambda a: chain_url(external, a))
            self.notifier.notify(payload)


def chain_url(external: str, alert: Alert) -> str:
    """The chain's page in the alert's environment (an alert's ``generatorURL``)."""
    query = f"?env={quote(alert.environment, safe='')}" if alert.environment else ""
    return f"{external}/chains/{quote(alert.chain_id, safe='')}{query}"


def evaluated_environments(store: TraceStore, window: TimeWindow) -> list[str]:
    """The environments the monitor judges separately: each one seen in ``window``, and
    ``""`` (the data naming no environment, read through
    :data:`~chainmap_otel.analysis.timewindow.UNNAMED_ENVIRONMENT` when named ones are seen
    too) when some is seen or nothing names one."""
    from chainmap_otel.analysis.by_environment import environment_names

    names = environment_names(store, window)
    return names if any(names) else [""]


def _labels(
    chain: ChainDefinition, objective: str, rule: Rule, environment: str = ""
) -> dict[str, str]:
    labels = {
        "alertname": ALERT_NAME,
        "chain_id": chain.id,
        "chain_name": chain.name,
        "severity": rule.severity,
        "objective": objective,
        "criticality": chain.criticality,
        "window": rule.name,
    }
    if environment:  # Alertmanager reads an empty label as an absent one
        labels["environment"] = environment
    return labels


def _annotations(
    chain: ChainDefinition,
    objective: dict[str, Any],
    rule: Rule,
    context: _LazyContext,
    environment: str = "",
) -> dict[str, str]:
    burns = objective["burn_rates"]
    services, failing, sharing = context.of(chain.id)
    where = f" in {environment}" if environment else ""
    return {
        "summary": (
            f"{chain.name} ({chain.id}){where} is burning its {objective['objective']} error budget "
            f"{burns[rule.long]:.1f}x over {rule.long} and {burns[rule.short]:.1f}x over "
            f"{rule.short} (threshold {rule.threshold:g}x)"
        ),
        "burn_rate_long": f"{burns[rule.long]:.3f}",
        "burn_rate_short": f"{burns[rule.short]:.3f}",
        "burn_rate_threshold": f"{rule.threshold:g}",
        "burn_rates": ", ".join(f"{k}={v:.3f}" for k, v in burns.items()),
        "services": ", ".join(services),
        "failing_services": ", ".join(failing),
        "affected_chains": ", ".join(sharing),
        "budget_remaining": f"{objective['budget_remaining']:.4f}",
    }


class _LazyContext:
    """Topologies of the last hour, read once per evaluation and only if an alert fires."""

    def __init__(self, store: TraceStore, catalog: ChainCatalog, now: datetime) -> None:
        self.store = store
        self.catalog = catalog
        self.now = now
        self._nodes: dict[str, dict[str, int]] | None = None

    def _load(self) -> dict[str, dict[str, int]]:
        if self._nodes is None:
            from chainmap_otel.analysis.topology import topologies

            try:
                found = topologies(
                    self.store,
                    self.catalog,
                    TimeWindow.last(CONTEXT_WINDOW_S, self.now),
                    include_all_traffic=False,
                )
                self._nodes = {
                    str(cid): {n.id: n.errors for n in topo.nodes if n.id != "user"}
                    for cid, topo in found.items()
                    if cid is not None
                }
            except Exception as exc:
                logger.warning("alert context (topology) unavailable: %s", exc)
                self._nodes = {}
        return self._nodes

    def of(self, chain_id: str) -> tuple[list[str], list[str], list[str]]:
        """(services on the path, failing services, other chains sharing a failing service)."""
        nodes = self._load()
        mine = nodes.get(chain_id, {})
        failing = sorted(n for n, errors in mine.items() if errors > 0)
        sharing = sorted(
            other
            for other, theirs in nodes.items()
            if other != chain_id and any(n in theirs for n in failing)
        )
        return sorted(mine), failing, sharing
