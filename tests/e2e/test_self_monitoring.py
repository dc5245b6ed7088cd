"""Prometheus watching itself end to end: a Prometheus starved of CPU misses rule evaluations.

The fault is real: the harness stops the Prometheus process it started
(SIGSTOP) for a few seconds and lets it continue; every rule group then
counts the evaluations it missed (``prometheus_rule_group_iterations_missed_total``).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import E2EStack

pytestmark = pytest.mark.e2e

PAUSE_S = 3.0
#: the production threshold (any missed evaluation in the rate window); the `for` (15m) compressed
ALERTS = {"rule_group_missed_for": "2s"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers) -> Iterator[E2EStack]:
    with running_stack(tmp_path_factory, receivers, alerts=ALERTS) as running:
        yield running


def _prometheus_instance(stack: E2EStack) -> str:
    for target in stack.prom.targets():
        if target["labels"].get("job") == "prometheus":
            return target["labels"]["instance"]
    raise AssertionError(f"no prometheus target in {stack.prom.targets()}")


def test_prometheus_starved_of_cpu_warns_missing_rule_evaluations(scenario: Scenario, stack: E2EStack) -> None:
    instance = _prometheus_instance(stack)
    groups = {g for g in ("hux-bot", "hux-bot-fast", "hux-host", "hux-stack")}   # every group of the stack
    pid = stack.children["prometheus"].popen.pid
    # The missed evaluations are counted at the first tick after Prometheus runs again, scraped one
    # scrape interval later.
    timing = stack.timing("PrometheusMissingRuleEvaluations", for_key="rule_group_missed_for", window_s=stack.scrape_s,
                          window_note=f"fault = Prometheus continued after {PAUSE_S:.0f} s stopped; the next "
                                      "self-scrape carries the count")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_S)
    finally:
        os.kill(pid, signal.SIGCONT)
    scenario.fault()
    found = scenario.expect_firing("PrometheusMissingRuleEvaluations", timing=timing, severity="warning",
                                   instance=instance, value=r"missed \d+(\.\d+)? evaluations")
    firing = [a for a in stack.prom.alerts()
              if a["labels"]["alertname"] == "PrometheusMissingRuleEvaluations" and a["state"] == "firing"]
    assert {a["labels"]["rule_group"].rsplit(";", 1)[-1] for a in firing} == groups, firing
    assert "rule_group=`" in found["slack"].text
    # Nothing is missed any more: the count leaves the rate window and the alert resolves.
    scenario.expect_resolved("PrometheusMissingRuleEvaluations", severity="warning",
                             timeout=stack.seconds("rate_window") + 25)
    scenario.assert_exactly_once("PrometheusMissingRuleEvaluations", severity="warning", settle=4,
                                 alerts_in_group=len(groups))
    scenario.assert_nothing_else({"PrometheusMissingRuleEvaluations"})
