"""Host alerts end to end, plus what Alertmanager does around them: grouping, silences, failing receivers.

Memory and disk come from node_exporter's textfile collector (the test-only
source, see ``tests.e2e.stack.HostSource``); everything after the scrape is
the real stack.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Iterator

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.procs import wait_until
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import GIB, HUX, E2EStack, Filesystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers) -> Iterator[E2EStack]:
    with running_stack(tmp_path_factory, receivers) as running:
        yield running


def _memory_timing(stack: E2EStack):
    # HostMemoryHigh reads the memory-utilisation recording rule, recorded just before it in the same group.
    return stack.timing("HostMemoryHigh", for_key="memory_for")


def test_memory_above_90_percent_pages_every_receiver(scenario: Scenario, stack: E2EStack) -> None:
    scenario.fault()
    stack.host.memory(0.95)
    scenario.expect_firing("HostMemoryHigh", timing=_memory_timing(stack), severity="critical",
                           instance=stack.node_instance, value=r"\b95(\.\d+)?%")
    stack.host.memory(0.40)
    scenario.expect_resolved("HostMemoryHigh", severity="critical", timeout=20)
    scenario.assert_exactly_once("HostMemoryHigh", severity="critical", settle=4)
    scenario.assert_nothing_else({"HostMemoryHigh"})


def test_memory_just_under_90_percent_stays_quiet(scenario: Scenario, stack: E2EStack) -> None:
    stack.host.memory(0.89)
    time.sleep(_memory_timing(stack).bound + 4)
    assert stack.prom.alert_states("HostMemoryHigh") == []
    scenario.assert_nothing_else(set())


def test_low_disk_space_warns_on_slack(scenario: Scenario, stack: E2EStack) -> None:
    timing = stack.timing("HostDiskSpaceLow", for_key="disk_for")
    scenario.fault()
    stack.host.filesystems([Filesystem("/", avail_bytes=5 * GIB), Filesystem("/var/lib/hux")])
    found = scenario.expect_firing("HostDiskSpaceLow", timing=timing, severity="warning",
                                   instance=stack.node_instance, value=r"\b5(\.\d+)?%")
    assert "/var/lib/hux" not in found["slack"].text, "only the full filesystem is reported"
    stack.host.healthy()
    scenario.expect_resolved("HostDiskSpaceLow", severity="warning", timeout=20)
    scenario.assert_exactly_once("HostDiskSpaceLow", severity="warning", settle=4)
    scenario.assert_nothing_else({"HostDiskSpaceLow"})


def test_grouping_collapses_many_filesystems_into_one_message(scenario: Scenario, stack: E2EStack) -> None:
    mounts = ["/", "/var/lib/hux", "/srv/archive", "/srv/cache"]
    timing = stack.timing("HostDiskSpaceLow", for_key="disk_for")
    scenario.fault()
    stack.host.filesystems([Filesystem(m, avail_bytes=4 * GIB, device=f"/dev/vd{i}") for i, m in enumerate(mounts)])
    found = scenario.expect_firing("HostDiskSpaceLow", timing=timing, severity="warning",
                                   instance=stack.node_instance, value=r"\b4(\.\d+)?%")
    firing = [a for a in stack.prom.alerts()
              if a["labels"]["alertname"] == "HostDiskSpaceLow" and a["state"] == "firing"]
    assert {a["labels"]["mountpoint"] for a in firing} == set(mounts)
    message = found["slack"]
    count = re.search(r"\[FIRING:(\d+)\]", message.text)
    assert count and int(count.group(1)) == len(firing), (
        f"one message carries all {len(firing)} firing alerts: {message.text[:300]!r}")
    for mount in mounts:
        assert f"mountpoint=`{mount}`" in message.text
    stack.host.healthy()
    scenario.expect_resolved("HostDiskSpaceLow", severity="warning", timeout=20)
    scenario.assert_exactly_once("HostDiskSpaceLow", severity="warning", settle=4)


def test_stale_backup_warns_backup_too_old(scenario: Scenario, stack: E2EStack) -> None:
    from hux.ops.textfile import BackupRun, record_run  # the backup tool's own writer of these series

    max_age = stack.settings.backup.max_age
    age = stack.seconds_of(max_age) + 3600
    timing = stack.timing("BackupTooOld", for_key="backup_too_old_for")
    now = time.time()
    scenario.fault()
    record_run(stack.host.directory, BackupRun("prometheus", started_at=now - age - 60, duration_seconds=60,
                                               success=True, finished_at=now - age))
    scenario.expect_firing("BackupTooOld", timing=timing, severity="warning", instance=stack.node_instance,
                           value=r"\b1d 3h", labels={"kind": "prometheus"})
    record_run(stack.host.directory, BackupRun("prometheus", started_at=time.time() - 60, duration_seconds=60,
                                               success=True, finished_at=time.time()))
    scenario.expect_resolved("BackupTooOld", severity="warning", timeout=20)
    scenario.assert_exactly_once("BackupTooOld", severity="warning", settle=4)
    scenario.assert_nothing_else({"BackupTooOld"})


def test_silence_suppresses_until_it_expires(scenario: Scenario, stack: E2EStack) -> None:
    silence_seconds = 12.0
    silence_id = stack.am.silence({"alertname": "HostMemoryHigh", "instance": stack.node_instance},
                                  silence_seconds, "e2e: maintenance window")
    silence_ends = time.monotonic() + silence_seconds
    scenario.fault()
    stack.host.memory(0.96)
    stack.wait_alert_state("HostMemoryHigh", "firing", timeout=15)

    def suppressed() -> dict | None:
        for alert in stack.am.alerts(alertname="HostMemoryHigh"):
            if alert["status"]["state"] == "suppressed":
                return alert
        return None

    alert = wait_until(suppressed, 10, "Alertmanager to hold HostMemoryHigh as suppressed")
    assert alert["status"]["silencedBy"] == [silence_id]
    assert time.monotonic() < silence_ends - 1, "the alert must fire well inside the silence for this test to mean anything"
    assert scenario.delivered("HostMemoryHigh") == [], "a silenced alert is not notified"

    found = scenario.receivers.wait_all("HostMemoryHigh", "firing", silence_seconds + 15, since=scenario.started)
    assert all(found.values()), f"after the silence expired every receiver is notified: {found}"
    for kind, notification in found.items():
        assert notification is not None
        assert notification.received_at >= silence_ends - 0.5, f"{kind} was notified before the silence expired"
    stack.host.memory(0.40)
    scenario.expect_resolved("HostMemoryHigh", severity="critical", timeout=20)
    scenario.assert_exactly_once("HostMemoryHigh", severity="critical", settle=4)


def test_failing_receivers_are_visible_and_catch_up(scenario: Scenario, stack: E2EStack) -> None:
    receivers, am = scenario.receivers, stack.am
    failed_before = {i: am.metric("alertmanager_notifications_failed_total", integration=i) for i in ("email", "webhook")}
    receivers.email.go_down()          # SMTP port closed: connection refused
    receivers.webhook.fail_with(500)   # webhook answers 500

    scenario.fault()
    stack.host.memory(0.95)
    # Slack is healthy: it is paged on time.
    scenario.expect_firing("HostMemoryHigh", timing=_memory_timing(stack), severity="critical",
                           instance=stack.node_instance, value=r"\b95(\.\d+)?%", kinds=("slack",))

    # Alertmanager gives up a flush after its notify timeout and counts the failure per integration.
    def failures_counted() -> float | None:
        now = {i: am.metric("alertmanager_notifications_failed_total", integration=i) for i in failed_before}
        return time.monotonic() if all(now[i] > failed_before[i] for i in now) else None

    failed_at = wait_until(failures_counted, 30, "alertmanager_notifications_failed_total to rise", interval=0.2)
    assert receivers.webhook.notifications and not any(n.delivered for n in receivers.webhook.notifications)
    assert receivers.email.delivered() == []

    failing = scenario.receivers.slack.wait_for(
        lambda n: n.mentions("AlertmanagerNotificationsFailing") and n.status == "firing", 20, since=scenario.started)
    assert failing is not None, "AlertmanagerNotificationsFailing reaches the receiver that still works"
    assert "integration=`email`" in failing.text and "integration=`webhook`" in failing.text, failing.text
    timing = stack.timing("AlertmanagerNotificationsFailing", for_key="notifications_failing_for")
    scenario.log.add(_record(scenario, "AlertmanagerNotificationsFailing", failing.received_at - failed_at, timing))

    receivers.email.restore()
    receivers.webhook.restore()
    caught_up = receivers.wait_all("HostMemoryHigh", "firing", 25, kinds=("email", "webhook"), since=scenario.started)
    assert all(caught_up.values()), f"delivery resumes once the receivers are back: {caught_up}"

    stack.host.memory(0.40)
    scenario.expect_resolved("HostMemoryHigh", severity="critical", timeout=25)
    scenario.expect_resolved("AlertmanagerNotificationsFailing", severity="critical",
                             timeout=stack.seconds("rate_window") + 25)
    scenario.assert_exactly_once("HostMemoryHigh", severity="critical", settle=4)
    # One alert per failing integration (email, webhook), grouped into one notification.
    scenario.assert_exactly_once("AlertmanagerNotificationsFailing", severity="critical", alerts_in_group=2)
    scenario.assert_nothing_else({"HostMemoryHigh", "AlertmanagerNotificationsFailing"})


def test_notify_test_reaches_all_three_receivers(scenario: Scenario, stack: E2EStack) -> None:
    from hux.ops.notify import TEST_ALERTNAME

    critical, warning = f"{TEST_ALERTNAME}Critical", f"{TEST_ALERTNAME}Warning"
    done = subprocess.run([str(HUX), "--config", str(stack.config_file), "notify-test", "--timeout", "30"],
                          env=stack.child_env(), cwd=stack.home, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"hux notify-test failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    for integration in ("email", "slack", "webhook"):
        assert re.search(rf"^\s*{integration}\s+DELIVERED\b", done.stdout, re.M), done.stdout
    # The command's report is backed by what actually arrived: the critical test alert at all three,
    # the warning one on Slack (the production routes), then both resolved.
    firing = scenario.receivers.wait_all(critical, "firing", 10, since=scenario.started)
    assert all(firing.values()), f"critical test alert at every receiver: {firing}"
    assert scenario.receivers.slack.wait_for(lambda n: n.mentions(warning) and n.status == "firing", 10,
                                             since=scenario.started)
    scenario.expect_resolved(critical, severity="critical", timeout=20)
    scenario.expect_resolved(warning, severity="warning", timeout=20)
    scenario.assert_exactly_once(critical, severity="critical", settle=4)
    scenario.assert_exactly_once(warning, severity="warning")
    scenario.assert_nothing_else({critical, warning})


def _record(scenario: Scenario, alertname: str, measured: float, timing):
    from tests.e2e.latency import LatencyRecord

    record = LatencyRecord(scenario=scenario.name, alertname=alertname, severity="critical", receiver="slack",
                           floor_s=timing.floor, bound_s=timing.bound, measured_s=round(measured, 2),
                           window_s=timing.window_s, window_note="fault = first failed flush")
    assert record.within, f"{alertname} took {measured:.1f}s, outside [{timing.floor}, {timing.bound} + 2]"
    return record
