"""One fault-in, notification-out scenario: inject, wait, check content, latency and counts.

A ``Scenario`` only looks at notifications that arrived after it started, so
scenarios sharing one stack stay independent. Its assertions are the issue's
definition of done:

* each expected receiver gets the firing notification, with the alert name,
  severity, instance, the rule's summary and the live value;
* the detection latency lies in [floor, bound + 2 s] (``tests.e2e.latency``);
* after the fault is removed each receiver gets the resolved notification;
* exactly one firing and one resolved notification per receiver, and nothing
  for the receivers the route does not name.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Iterable

from tests.e2e.latency import SLACK_S, LatencyLog, LatencyRecord
from tests.e2e.receivers import KINDS, Notification, Receivers
from tests.e2e.stack import E2EStack, Timing

#: Where Alertmanager sends each severity under the production routing (alertmanager.critical_receivers /
#: warning_receivers defaults), which the suite keeps.
ROUTES = {"critical": ("email", "slack", "webhook"), "warning": ("slack",)}


@dataclass
class Scenario:
    name: str
    stack: E2EStack
    receivers: Receivers
    log: LatencyLog
    started: float = field(default_factory=time.monotonic)
    fault_at: float | None = None

    def fault(self, at: float | None = None) -> float:
        """Mark the moment the fault went in (defaults to now)."""
        self.fault_at = time.monotonic() if at is None else at
        return self.fault_at

    # ------------------------------------------------------------------ firing

    def expect_firing(self, alertname: str, *, timing: Timing, severity: str, instance: str,
                      value: str, kinds: Iterable[str] | None = None, grace: float = 20.0,
                      labels: dict[str, str] | None = None) -> dict[str, Notification]:
        """Wait for the firing notification on every routed receiver; check content and latency.

        ``value`` is a regular expression the live value must match in every message (e.g. ``r"9\\d%"``).
        """
        assert self.fault_at is not None, "call fault() when the fault goes in"
        kinds = tuple(kinds or ROUTES[severity])
        deadline = self.fault_at + timing.bound + SLACK_S + grace
        found = self.receivers.wait_all(alertname, "firing", max(0.0, deadline - time.monotonic()),
                                        kinds=kinds, since=self.started)
        missing = [kind for kind, n in found.items() if n is None]
        assert not missing, (
            f"{self.name}: no firing {alertname} notification at {missing} within "
            f"{deadline - self.fault_at:.0f}s of the fault; Prometheus alerts: {self._alert_states()}; "
            f"{self._receiver_summary()}"
        )
        prom_alert = self._prometheus_alert(alertname, instance, labels or {})
        for kind, notification in found.items():
            assert notification is not None
            self._check_content(notification, alertname, severity, instance, value, prom_alert, labels or {})
            measured = notification.received_at - self.fault_at
            record = LatencyRecord(
                scenario=self.name, alertname=alertname, severity=severity, receiver=kind,
                floor_s=timing.floor, bound_s=timing.bound, measured_s=round(measured, 2),
                window_s=timing.window_s, window_note=timing.window_note,
            )
            self.log.add(record)
            assert record.within, (
                f"{self.name}: {alertname} reached {kind} {measured:.1f}s after the fault, outside "
                f"[floor {timing.floor:.1f}s, bound {timing.bound:.1f}s + {SLACK_S:.0f}s]"
            )
        return {k: n for k, n in found.items() if n is not None}

    def expect_resolved(self, alertname: str, *, severity: str, timeout: float,
                        kinds: Iterable[str] | None = None) -> dict[str, Notification]:
        kinds = tuple(kinds or ROUTES[severity])
        found = self.receivers.wait_all(alertname, "resolved", timeout, kinds=kinds, since=self.started)
        missing = [kind for kind, n in found.items() if n is None]
        assert not missing, (
            f"{self.name}: no resolved {alertname} notification at {missing} within {timeout:.0f}s; "
            f"Prometheus alerts: {self._alert_states()}; {self._receiver_summary()}"
        )
        return {k: n for k, n in found.items() if n is not None}

    # ------------------------------------------------------------------ counting

    def delivered(self, alertname: str | None = None, kinds: Iterable[str] = KINDS) -> list[Notification]:
        out = []
        for kind in kinds:
            for n in self.receivers.by_kind(kind).delivered():
                if n.received_at >= self.started and (alertname is None or n.mentions(alertname)):
                    out.append(n)
        return out

    def assert_exactly_once(self, alertname: str, *, severity: str, settle: float = 0.0,
                            alerts_in_group: int = 1) -> None:
        """One firing and one resolved per routed receiver; nothing for the others.

        ``settle`` waits that long first so that a late duplicate would be counted.

        ``alerts_in_group`` > 1 is for a rule that fires several alerts grouped into one
        notification (e.g. one per integration). Alertmanager rightly notifies such a group
        again when an alert joins it or resolves before the others, so a receiver may get up
        to ``2 * alerts_in_group - 1`` firing messages; it still gets exactly one resolved
        message, the last, and never the same content twice in a row.
        """
        if settle:
            time.sleep(settle)
        routed = ROUTES[severity]
        most_firing = 2 * alerts_in_group - 1
        for kind in KINDS:
            mine = sorted(self.delivered(alertname, kinds=(kind,)), key=lambda n: n.received_at)
            statuses = [n.status or "?" for n in mine]
            where = (f"{self.name}: {kind} got {statuses or 'nothing'} for {alertname}"
                     f" (route for {severity}: {', '.join(routed)})")
            if kind not in routed:
                assert statuses == [], f"{where}, expected nothing"
                continue
            firing = statuses.count("firing")
            assert statuses and statuses[-1] == "resolved" and statuses.count("resolved") == 1, (
                f"{where}, expected exactly one resolved message, last")
            assert 1 <= firing <= most_firing and firing + 1 == len(statuses), (
                f"{where}, expected 1..{most_firing} firing messages before it")
            if kind == "webhook":
                contents = [_alert_states(n, alertname) for n in mine]
                repeats = [c for a, c in itertools.pairwise(contents) if a == c]
                assert not repeats, f"{where}: the same alerts were notified twice in a row: {repeats}"

    def assert_nothing_else(self, allowed: Iterable[str]) -> None:
        """No notification in this scenario about any alert outside ``allowed`` (no storms)."""
        allowed = set(allowed)
        extra = sorted({
            (n.kind, name, n.status or "?")
            for n in self.delivered()
            for name in n.alertnames
            if name not in allowed
        })
        assert not extra, f"{self.name}: unexpected notifications {extra}"

    # ------------------------------------------------------------------ helpers

    def _check_content(self, n: Notification, alertname: str, severity: str, instance: str, value: str,
                       prom_alert: dict | None, labels: dict[str, str]) -> None:
        where = f"{self.name}: {n.kind} message for {alertname}"
        if n.kind == "webhook":
            mine = [a for a in n.alerts if a["labels"].get("alertname") == alertname
                    and a["labels"].get("instance") == instance
                    and all(a["labels"].get(k) == v for k, v in labels.items())]
            assert mine, f"{where}: no alert for instance {instance}{labels or ''} in {n.alerts}"
            alert = mine[0]
            assert alert["status"] == "firing"
            assert alert["labels"].get("severity") == severity, f"{where}: labels {alert['labels']}"
            assert alert["annotations"].get("summary"), f"{where}: no summary in {alert['annotations']}"
            assert alert["annotations"].get("runbook_url"), f"{where}: no runbook_url"
            assert re.search(value, alert["annotations"].get("description", "")), (
                f"{where}: description {alert['annotations'].get('description')!r} lacks the live value /{value}/"
            )
            if prom_alert:
                assert _shape(alert["annotations"]["summary"]) == _shape(prom_alert["annotations"]["summary"])
            return
        text = n.text
        if n.kind == "slack":   # Slack escapes & < > (hux.tmpl), so a summary with ">" reads as "&gt;" there
            text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        assert alertname in text, f"{where}: alert name missing in {text!r}"
        assert severity.lower() in text.lower(), f"{where}: severity {severity} missing in {text!r}"
        assert instance in text, f"{where}: instance {instance} missing in {text!r}"
        summary = prom_alert["annotations"].get("summary", "") if prom_alert else ""
        if prom_alert:
            assert summary and _shape(summary) in _shape(text), f"{where}: summary {summary!r} missing in {text!r}"
        if n.kind == "slack" and prom_alert and not re.search(value, summary):
            # Slack shows the summary, which carries the live value when the alert has one; the description
            # (where this scenario's value is) stays in the e-mail and the webhook's annotations
            description = prom_alert["annotations"].get("description", "")
            assert re.search(value, description), f"{where}: live value /{value}/ missing in {description!r}"
        else:
            assert re.search(value, text), f"{where}: live value /{value}/ missing in {text!r}"

    def _prometheus_alert(self, alertname: str, instance: str, labels: dict[str, str]) -> dict | None:
        for alert in self.stack.prom.alerts():
            lab = alert["labels"]
            if lab.get("alertname") == alertname and lab.get("instance") == instance and all(
                lab.get(k) == v for k, v in labels.items()
            ):
                return alert
        return None

    def _alert_states(self) -> list[tuple[str, str, str]]:
        try:
            return sorted((a["labels"]["alertname"], a["labels"].get("instance", ""), a["state"])
                          for a in self.stack.prom.alerts())
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return [("?", "?", str(exc))]

    def _receiver_summary(self) -> str:
        parts = []
        for kind in KINDS:
            got = [(sorted(n.alertnames), n.status, n.delivered) for n in self.receivers.by_kind(kind).notifications
                   if n.received_at >= self.started]
            parts.append(f"{kind}: {got}")
        return "received " + "; ".join(parts)


def _alert_states(n: Notification, alertname: str) -> frozenset[tuple[str, str]]:
    """What a webhook notification says about ``alertname``: (fingerprint, status) per alert."""
    return frozenset((a.get("fingerprint", ""), a.get("status", "")) for a in n.alerts
                     if a.get("labels", {}).get("alertname") == alertname)


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _shape(text: str) -> str:
    """A summary without its numbers: it carries the live value, which moves between the notification and now."""
    return _NUMBER.sub("#", text)
