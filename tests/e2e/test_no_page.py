"""Faults that must not page: a supervised restart of the bot, one lost scrape, a slow scrape.

The bot job runs on the production fast path (scraped every 5 s with a 3 s timeout, its rule group every
2 s, ``bot_down_for`` 12 s, critical group wait 3 s): a restart takes real seconds, which a scaled-down
interval could not keep in proportion. Everything else keeps the test profile. Each scenario lines its
fault up with the bot's next scrape (read from Prometheus), proves that Prometheus saw the fault, waits
the longest a page could take (the model's bound, docs/benchmarks.md "Page latency") and asserts that
no notification came and ServiceDown never fired.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import pytest

from hux.monitoring.durations import duration_seconds
from hux.stack.plan import RestartPolicy
from tests.e2e.conftest import running_stack
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import Bot, E2EStack

pytestmark = pytest.mark.e2e

#: the production fast path (src/hux/defaults/monitoring.toml), not scaled
FAST_PATH = {"bot_scrape_interval": "5s", "bot_scrape_timeout": "3s", "fast_evaluation_interval": "2s"}
#: a fault starts this long before the scrape it must hit (the scrape ticks are read from Prometheus)
LEAD_S = 0.3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers) -> Iterator[E2EStack]:
    with running_stack(tmp_path_factory, receivers, bots=[Bot("main")], prometheus=FAST_PATH,
                       alerts={"bot_down_for": "12s"}, alertmanager={"critical_group_wait": "3s"}) as running:
        yield running


def _seconds(stack: E2EStack, key: str) -> float:
    return duration_seconds(getattr(stack.settings.prometheus, key))


def _page_bound(stack: E2EStack) -> float:
    """The latest a page about a fault that started now could arrive (scrape + timeout + eval + for + wait)."""
    return (_seconds(stack, "bot_scrape_interval") + _seconds(stack, "bot_scrape_timeout")
            + _seconds(stack, "fast_evaluation_interval") + duration_seconds(stack.settings.alerts.bot_down_for)
            + duration_seconds(stack.settings.alertmanager.critical_group_wait))


def _sleep_until_just_before_next_scrape(stack: E2EStack, bot: Bot) -> float:
    """Prometheus scrapes a target on a fixed tick: the last scrape's timestamp gives the next ones."""
    interval = _seconds(stack, "bot_scrape_interval")
    last = stack.prom.value(f'timestamp(up{{instance="{bot.instance}"}})')
    assert last is not None, f"Prometheus has no sample of {bot.instance}"
    tick = last + interval
    while tick - time.time() < 1.0:
        tick += interval
    time.sleep(max(0.0, tick - LEAD_S - time.time()))
    return tick


def _since(wall: float) -> str:
    """A range selector reaching back to just before ``wall`` (this scenario only, not the one before)."""
    return f"[{max(1, round(time.time() - wall + 2))}s]"


def _failed_scrapes(stack: E2EStack, bot: Bot, since: float) -> float:
    sel, window = f'instance="{bot.instance}"', _since(since)
    value = stack.prom.value(f"count_over_time(up{{{sel}}}{window}) - sum_over_time(up{{{sel}}}{window})")
    return value or 0.0


def _alert_seen(stack: E2EStack, bot: Bot, state: str, since: float) -> bool:
    expr = (f'max_over_time(ALERTS{{alertname="ServiceDown",alertstate="{state}",instance="{bot.instance}"}}'
            f"{_since(since)})")
    return stack.prom.value(expr) is not None


def _assert_no_page(scenario: Scenario, stack: E2EStack, bot: Bot, fault_wall: float) -> None:
    # One scrape and one evaluation more than the bound, so a page that was coming would be here.
    deadline = fault_wall + _page_bound(stack) + _seconds(stack, "bot_scrape_interval")
    time.sleep(max(0.0, deadline - time.time()))
    assert not _alert_seen(stack, bot, "firing", fault_wall), "ServiceDown fired for the bot"
    scenario.assert_nothing_else(set())


def test_a_supervised_restart_of_the_bot_does_not_page(scenario: Scenario, stack: E2EStack) -> None:
    bot = stack.bot
    tick = _sleep_until_just_before_next_scrape(stack, bot)
    fault_wall = time.time()
    scenario.fault(stack.kill_bot(bot))
    # What the supervisor does after a crash: wait its first backoff, start the bot again.
    time.sleep(RestartPolicy().initial_backoff)
    stack.start_bot(bot)
    restart_s = time.time() - fault_wall
    print(f"restart: /ready {restart_s:.2f}s after kill -9 ({tick - fault_wall:.2f}s before the scrape)")
    # bot_down_for outlasts two failed scrapes: a restart longer than two scrape intervals is an outage.
    assert restart_s < 2 * _seconds(stack, "bot_scrape_interval"), (
        f"the bot took {restart_s:.1f}s to restart (about 3 s on an idle machine: 1 s backoff, ~2 s CPU to ready); "
        "the machine is too loaded for this scenario to mean anything (check `uptime`)")
    _assert_no_page(scenario, stack, bot, fault_wall)
    assert _failed_scrapes(stack, bot, fault_wall) >= 1, "no scrape fell inside the restart: the scenario proved nothing"
    assert _alert_seen(stack, bot, "pending", fault_wall), "ServiceDown never went pending: `for` was not what held it"


def test_one_lost_scrape_of_the_bot_does_not_page(scenario: Scenario, stack: E2EStack) -> None:
    bot = stack.bot
    assert bot.child is not None
    tick = _sleep_until_just_before_next_scrape(stack, bot)
    fault_wall = time.time()
    # Frozen across exactly one scrape until its timeout passes: that scrape fails, the next one answers.
    os.kill(bot.child.pid, signal.SIGSTOP)
    scenario.fault()
    try:
        time.sleep(max(0.0, tick + _seconds(stack, "bot_scrape_timeout") + 0.5 - time.time()))
    finally:
        os.kill(bot.child.pid, signal.SIGCONT)
    _assert_no_page(scenario, stack, bot, fault_wall)
    assert _failed_scrapes(stack, bot, fault_wall) == 1, "exactly one scrape was to fail"
    assert _alert_seen(stack, bot, "pending", fault_wall), "ServiceDown never went pending: `for` was not what held it"


def test_a_slow_scrape_of_the_bot_does_not_page(scenario: Scenario, stack: E2EStack) -> None:
    bot = stack.bot
    assert bot.child is not None
    timeout = _seconds(stack, "bot_scrape_timeout")
    tick = _sleep_until_just_before_next_scrape(stack, bot)
    fault_wall = time.time()
    # Frozen for half the scrape timeout around a scrape: it answers late but in time.
    os.kill(bot.child.pid, signal.SIGSTOP)
    scenario.fault()
    try:
        time.sleep(max(0.0, tick + timeout / 2 - time.time()))
    finally:
        os.kill(bot.child.pid, signal.SIGCONT)
    _assert_no_page(scenario, stack, bot, fault_wall)
    slowest = stack.prom.value(f'max_over_time(scrape_duration_seconds{{instance="{bot.instance}"}}{_since(fault_wall)})')
    assert slowest is not None and slowest >= timeout / 3, f"no slow scrape was recorded (slowest {slowest}s)"
    assert _failed_scrapes(stack, bot, fault_wall) == 0, "the slow scrape was to succeed"
    assert not _alert_seen(stack, bot, "pending", fault_wall)
