"""Host alerts at node-mixin parity end to end: OOM kills and inodes, fault in, notification out.

OOM kills and inode counts come from node_exporter's textfile collector (the
test-only source, ``tests.e2e.stack.HostSource``); everything after the scrape
is the real stack. ``for`` durations are compressed through settings only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.procs import wait_until
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import E2EStack, Filesystem

pytestmark = pytest.mark.e2e

#: production thresholds; the `for` of the inode alerts (1h in production) compressed like the others
ALERTS = {"inodes_for": "2s", "oom_kill_for": "0s"}


@dataclass
class InodeFilesystem(Filesystem):
    """A filesystem with a given number of free inodes (of 1 000 000)."""

    files_free: float = 900000

    def lines(self) -> list[str]:
        labels = f'device="{self.device}",fstype="{self.fstype}",mountpoint="{self.mountpoint}"'
        return [line if not line.startswith("node_filesystem_files_free{")
                else f"node_filesystem_files_free{{{labels}}} {self.files_free:.0f}" for line in super().lines()]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers) -> Iterator[E2EStack]:
    with running_stack(tmp_path_factory, receivers, alerts=ALERTS) as running:
        # The OOM counter is in Prometheus at 0 before any kill, so increase() sees the first one.
        running.host.oom_kills(0)
        wait_until(lambda: (running.prom.value("count_over_time(node_vmstat_oom_kill[10s])") or 0) >= 2, 20,
                   "node_vmstat_oom_kill at 0 in Prometheus", interval=0.5)
        yield running


def test_oom_kill_warns_on_slack(scenario: Scenario, stack: E2EStack) -> None:
    timing = stack.timing("HostOomKill", for_key="oom_kill_for")
    scenario.fault()
    stack.host.oom_kills(1)
    scenario.expect_firing("HostOomKill", timing=timing, severity="warning", instance=stack.node_instance,
                           value=r"\b1(\.\d+)? processes were OOM-killed")
    # The kill leaves the rate window, and the alert resolves by itself.
    scenario.expect_resolved("HostOomKill", severity="warning", timeout=stack.seconds("rate_window") + 20)
    scenario.assert_exactly_once("HostOomKill", severity="warning", settle=4)
    scenario.assert_nothing_else({"HostOomKill"})


def test_filesystem_almost_out_of_inodes_warns_on_slack(scenario: Scenario, stack: E2EStack) -> None:
    timing = stack.timing("HostInodesLow", for_key="inodes_for")
    scenario.fault()
    stack.host.filesystems([Filesystem("/"), InodeFilesystem("/var/lib/hux", files_free=40000)])
    found = scenario.expect_firing("HostInodesLow", timing=timing, severity="warning", instance=stack.node_instance,
                                   value=r"\b4(\.\d+)?% of the inodes", labels={"mountpoint": "/var/lib/hux"})
    assert "mountpoint=`/`" not in found["slack"].text, "only the filesystem short of inodes is reported"
    stack.host.healthy()
    scenario.expect_resolved("HostInodesLow", severity="warning", timeout=20)
    scenario.assert_exactly_once("HostInodesLow", severity="warning", settle=4)
    scenario.assert_nothing_else({"HostInodesLow"})


def test_filesystem_out_of_inodes_pages_and_mutes_the_warning(scenario: Scenario, stack: E2EStack) -> None:
    timing = stack.timing("HostInodesExhausted", for_key="inodes_for")
    scenario.fault()
    stack.host.filesystems([InodeFilesystem("/", files_free=10000), Filesystem("/var/lib/hux")])
    scenario.expect_firing("HostInodesExhausted", timing=timing, severity="critical", instance=stack.node_instance,
                           value=r"\b1(\.\d+)?% of the inodes", labels={"mountpoint": "/"})
    # HostInodesLow fires for the same filesystem too, and Alertmanager holds it back.
    stack.wait_alert_state("HostInodesLow", "firing", timeout=10, mountpoint="/")
    stack.host.healthy()
    scenario.expect_resolved("HostInodesExhausted", severity="critical", timeout=20)
    scenario.assert_exactly_once("HostInodesExhausted", severity="critical", settle=4)
    scenario.assert_nothing_else({"HostInodesExhausted"})
