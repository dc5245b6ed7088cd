"""The alert inbox end to end on README command one (the native stack under its supervisor).

The issue's "done when": `hux alerts` shows the last Watchdog heartbeat within a minute of start; after the
bot is stopped and started again (by the supervisor), a ServiceDown firing entry and then its resolved entry;
`hux up` and `hux health` name who is paged. And the inbox's own failure is alerted: with the inbox stopped,
Alertmanager cannot deliver to it and AlertmanagerNotificationsFailing (integration webhook) and ServiceDown
(job inbox) fire; once it is back, they reach it.

Intervals are short (1 s scrapes and evaluations, 1 s group waits, a 5 s heartbeat); thresholds are the
production ones.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import httpx
import pytest

from hux.stack.native import NativeStack
from tests.stack.conftest import StackUnderTest, start_stack, stop_stack, wait_for

pytestmark = pytest.mark.e2e

CONFIG = """
[alertmanager]
group_wait = "1s"
critical_group_wait = "1s"
group_interval = "2s"
heartbeat_interval = "5s"
[alerts]
service_down_for = "2s"
notifications_failing_for = "2s"
"""
NOBODY = ("No one is paged: alerts go only to the local inbox (hux alerts). To page a person, enable "
          "receivers.email or receivers.slack in hux.toml (README: Configuration).")


#: when README command one returned (every component ready)
READY_AT: dict[str, float] = {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    running = start_stack(tmp_path_factory.mktemp("inbox-stack"), config_extra=CONFIG)
    READY_AT["up"] = time.time()
    yield running
    stop_stack(running)


def alerts(stack: StackUnderTest, since: str = "1h") -> dict[str, Any]:
    result = stack.hux("alerts", "--json", "--since", since)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def entries(view: dict[str, Any], key: str, alertname: str, status: str | None = None,
            **labels: str) -> list[dict[str, Any]]:
    return [e for e in view[key] if e["alertname"] == alertname and status in (None, e["status"])
            and all(e["labels"].get(k) == v for k, v in labels.items())]


def firing_in_prometheus(stack: StackUnderTest, alertname: str, **labels: str) -> bool:
    matchers = ",".join([f'alertname="{alertname}"', 'alertstate="firing"', *(f'{k}="{v}"' for k, v in labels.items())])
    answer = httpx.get(stack.url("prometheus") + "/api/v1/query", params={"query": f"ALERTS{{{matchers}}}"},
                       auth=stack.credentials, timeout=5).json()
    return bool(answer["data"]["result"])


def test_up_names_who_is_paged_and_the_inbox_runs(stack: StackUnderTest) -> None:
    assert f"Alerts: {NOBODY}" in stack.up_output
    assert stack.url("inbox") in stack.up_output and "logs/alerts.log" in stack.up_output
    assert stack.component("inbox")["state"] == "running"
    status = stack.hux("status")
    assert f"alerts: {NOBODY}" in status.stdout, status.stdout


def test_the_watchdog_heartbeat_arrives_within_a_minute(stack: StackUnderTest) -> None:
    # Within a minute of `hux up` returning (Prometheus re-sends a firing alert to Alertmanager once a
    # minute, its --rules.alert.resend-delay, should its first batch meet an Alertmanager not yet listening).
    deadline = READY_AT["up"] + 60 - time.time()
    view = wait_for(lambda: (found := alerts(stack))["last_heartbeat"] and found, max(deadline, 1),
                    "a Watchdog heartbeat in the inbox within a minute of start")
    assert view["last_heartbeat"]["received_at"] <= READY_AT["up"] + 60
    text = stack.hux("alerts").stdout
    assert "Last Watchdog heartbeat: " in text and " ago)" in text
    health = {c.name: c for c in stack.health().checks}
    assert health["inbox ready"].status == "pass"
    assert health["alert heartbeat"].status == "pass"
    assert health["paging"].status == "warn" and f"{health['paging'].reason.split(' (from')[0]}. {health['paging'].fix}." == NOBODY


def test_a_stopped_bot_shows_service_down_firing_then_resolved(stack: StackUnderTest) -> None:
    bot_job = stack.settings().stack.bot_job
    control = NativeStack(stack.paths)
    control.request("stop", ["bot"])
    try:
        def down_firing() -> dict[str, Any] | None:
            view = alerts(stack)
            return view if entries(view, "firing", "ServiceDown", job=bot_job) else None

        view = wait_for(down_firing, 90, "ServiceDown of the bot firing in the inbox")
        [down] = entries(view, "firing", "ServiceDown", job=bot_job)
        assert down["first_steps"], down          # the runbook's first steps come with it
        text = stack.hux("alerts").stdout
        assert "Firing now (" in text and "ServiceDown [critical]" in text and "first steps:" in text
    finally:
        control.request("start", ["bot"])

    def down_resolved() -> dict[str, Any] | None:
        view = alerts(stack)
        done = entries(view, "history", "ServiceDown", job=bot_job, status="resolved")
        return view if done and not entries(view, "firing", "ServiceDown", job=bot_job) else None

    resolved = wait_for(down_resolved, 120, "ServiceDown of the bot resolved in the inbox")
    statuses = [e["status"] for e in entries(resolved, "history", "ServiceDown", job=bot_job)]
    assert statuses.index("firing") < statuses.index("resolved"), statuses
    # --since narrows the history to what arrived in that window
    assert len(alerts(stack, since="1s")["history"]) < len(resolved["history"])


def test_a_stopped_inbox_is_alerted(stack: StackUnderTest) -> None:
    control = NativeStack(stack.paths)
    control.request("stop", ["inbox"])
    try:
        wait_for(lambda: firing_in_prometheus(stack, "AlertmanagerNotificationsFailing", integration="webhook"), 120,
                 "AlertmanagerNotificationsFailing (webhook) while the inbox is stopped")
        wait_for(lambda: firing_in_prometheus(stack, "ServiceDown", job="inbox"), 60, "ServiceDown of the inbox")
        assert "inbox ready" in stack.health().failing()
    finally:
        control.request("start", ["inbox"])
    # back: Alertmanager delivers again, and the inbox holds the alert about its own outage
    wait_for(lambda: entries(alerts(stack), "history", "AlertmanagerNotificationsFailing", integration="webhook"),
             120, "AlertmanagerNotificationsFailing in the inbox once it is back")
