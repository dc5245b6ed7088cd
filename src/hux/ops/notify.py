"""``hux notify-test``: send a synthetic alert through Alertmanager and report delivery per integration.

The last recovery step, "test alert notifications", and a routine check
that every receiver still works:

1. read Alertmanager's running config (``/api/v2/status``) and predict, with the
   same routing rules Alertmanager uses, which receivers each test alert reaches;
2. note ``alertmanager_notifications_total`` and ``..._failed_total`` per integration
   (email, slack, webhook, ...) from Alertmanager's own ``/metrics``;
3. post one test alert per severity (``/api/v2/alerts``) carrying a unique
   ``hux_test_id`` label, so nothing else is confused with it;
4. wait (group_wait plus delivery time) until each expected integration has
   delivered, or shown failed attempts, and report per integration from the
   deltas of ``alertmanager_notification_requests_total`` / ``..._failed_total``
   (single attempts) and ``alertmanager_notifications_total`` / ``..._failed_total``;
5. resolve the test alerts (``endsAt`` = now).

The local alert inbox (receiver ``inbox``) counts as reached, but it is not a
person: when no receiver that reaches one gets the test alerts
(``hux.monitoring.alertmanager.who_is_paged`` of the running config), the test
fails with the sentence that says how to enable one.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import yaml

from hux.monitoring.alertmanager import Paging, receiver_integrations, route_receivers, who_is_paged
from hux.monitoring.yamlout import load as yaml_load
from hux.ops.clients import Alertmanager
from hux.ops.errors import OpsError

TEST_ALERTNAME = "HuxNotificationTest"
_METRIC = re.compile(r'^alertmanager_(notifications|notifications_failed|notification_requests|notification_requests_failed)'
                     r'_total\{([^}]*)\}\s+(\S+)', re.M)
_COUNTERS = ("notifications", "notifications_failed", "notification_requests", "notification_requests_failed")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def read_counters(text: str) -> dict[str, dict[str, float]]:
    """Alertmanager's notification counters per integration, summed over any other labels.

    ``notifications`` counts notifications started and ``notifications_failed``
    those given up after every retry; ``notification_requests`` and
    ``..._failed`` count single attempts, so a failing receiver shows at once.
    """
    out: dict[str, dict[str, float]] = {}
    for name, labels, value in _METRIC.findall(text):
        integration = dict(_LABEL.findall(labels)).get("integration", "")
        slot = out.setdefault(integration, dict.fromkeys(_COUNTERS, 0.0))
        slot[name] += float(value)
    return out


@dataclass
class IntegrationResult:
    integration: str
    receivers: list[str]
    expected: int
    notifications: int = 0      # notifications started
    attempts: int = 0           # requests sent (with retries)
    failed: int = 0             # requests that failed
    given_up: int = 0           # notifications abandoned after all retries

    @property
    def delivered(self) -> int:
        return self.attempts - self.failed

    @property
    def status(self) -> str:
        if self.attempts == 0:
            return "no attempt"
        if self.delivered <= 0:
            return "failed"
        if self.failed or self.delivered < self.expected:
            return "partly failed"
        return "delivered"

    def settled(self) -> bool:
        """Every expected notification succeeded, or each one not yet delivered has a failed attempt."""
        return self.delivered >= self.expected or (self.notifications >= self.expected and self.failed > 0)


@dataclass
class NotifyTestResult:
    test_id: str
    alerts: list[dict[str, str]]
    routes: dict[str, list[str]]  # alertname -> receivers
    integrations: list[IntegrationResult] = field(default_factory=list)
    unreached: list[str] = field(default_factory=list)  # receivers with integrations no test alert reaches
    waited: float = 0.0
    resolved: bool = False
    in_alertmanager: int = 0
    paging: Paging = field(default_factory=lambda: Paging((), (), False))

    @property
    def ok(self) -> bool:
        """Every reached integration delivered, and a person is among the receivers."""
        return (bool(self.integrations) and all(i.status == "delivered" for i in self.integrations)
                and not self.paging.nobody)


def notify_test(
    alertmanager_url: str,
    *,
    severities: tuple[str, ...] = ("critical", "warning"),
    extra_labels: dict[str, str] | None = None,
    timeout: float | None = None,
    resolve: bool = True,
    poll: float = 1.0,
) -> NotifyTestResult:
    with Alertmanager(alertmanager_url) as am:
        status = am.status()
        try:
            config = yaml_load(status["config"]["original"]) or {}
        except (KeyError, TypeError, yaml.YAMLError):
            raise OpsError(f"Alertmanager at {alertmanager_url} did not return its configuration (/api/v2/status)") from None
        if not isinstance(config, dict):
            raise OpsError(f"Alertmanager at {alertmanager_url} returned a configuration that is not a mapping")
        receivers = {r["name"]: r for r in config.get("receivers") or []}
        route = config.get("route") or {}
        test_id = uuid.uuid4().hex[:12]
        now = datetime.now(timezone.utc)
        alerts: list[dict[str, Any]] = []
        routes: dict[str, list[str]] = {}
        expected: dict[str, IntegrationResult] = {}
        longest_wait = 0.0
        for severity in severities:
            labels = {"alertname": f"{TEST_ALERTNAME}{severity.capitalize()}", "severity": severity,
                      "hux_test_id": test_id, "job": "hux-notify-test", "instance": f"notify-test-{severity}",
                      **(extra_labels or {})}
            matched = route_receivers(route, labels)
            routes[labels["alertname"]] = [name for name, _ in matched]
            for name, group_wait in matched:
                longest_wait = max(longest_wait, group_wait)
                for integration, count in receiver_integrations(receivers.get(name, {})).items():
                    slot = expected.setdefault(integration, IntegrationResult(integration, [], 0))
                    slot.expected += count
                    if name not in slot.receivers:
                        slot.receivers.append(name)
            alerts.append({
                "labels": labels,
                "annotations": {"summary": f"Test notification ({severity}) from `hux notify-test`",
                                "description": f"Synthetic alert {test_id}: no action needed. It resolves by itself."},
                "startsAt": now.isoformat().replace("+00:00", "Z"),
                "endsAt": (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            })
        reached = {r for names in routes.values() for r in names}
        result = NotifyTestResult(test_id, [a["labels"] for a in alerts], routes,
                                  unreached=sorted(n for n, r in receivers.items()
                                                   if n not in reached and receiver_integrations(r)),
                                  paging=who_is_paged(config))
        before = read_counters(am.metrics_text())
        am.post_alerts(alerts)
        started = time.monotonic()
        timeout = timeout if timeout is not None else min(600.0, longest_wait + 45.0)
        while True:
            time.sleep(poll)
            after = read_counters(am.metrics_text())
            for integration, slot in expected.items():
                slot.notifications = int(_delta(before, after, integration, "notifications"))
                slot.attempts = int(_delta(before, after, integration, "notification_requests"))
                slot.failed = int(_delta(before, after, integration, "notification_requests_failed"))
                slot.given_up = int(_delta(before, after, integration, "notifications_failed"))
            if all(slot.settled() for slot in expected.values()) or time.monotonic() - started > timeout:
                break
        result.waited = time.monotonic() - started
        result.in_alertmanager = len(am.alerts(filters=[f'hux_test_id="{test_id}"']))
        result.integrations = [expected[name] for name in sorted(expected)]
        if resolve:
            ended = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
            am.post_alerts([dict(a, endsAt=ended) for a in alerts])
            result.resolved = True
    return result


def _delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], integration: str, key: str) -> float:
    return after.get(integration, {}).get(key, 0.0) - before.get(integration, {}).get(key, 0.0)
