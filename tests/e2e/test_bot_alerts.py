"""Bot alerts end to end: a crash, a slow market API, a hung market API.

Two demo bots share the stack: ``main`` (many workers, so a slow API shows as
latency rather than as a backlog) and ``narrow`` (two workers, so a hung API
stalls the pipeline and fills the queue within seconds).
"""

from __future__ import annotations

import re
import time
from typing import Iterator

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.procs import sum_samples, wait_until
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import BOT, Bot, E2EStack

pytestmark = pytest.mark.e2e

SLOW_API_SECONDS = 12.0  # above the production threshold (alerts.latency_seconds = 10), which the suite keeps


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers) -> Iterator[E2EStack]:
    # main: every token is looked up (no cooldown, no cache), so a slow API slows every decision; its 64 workers
    # may all serve one chat (a chat's message can cost two slow calls: a pair link, then its token), so a slow
    # API shows as latency, not as a backlog.
    main = Bot("main", {"workers": 64, "demo": {"cooldown_seconds": 0}, "dexscreener": {"cache_ttl_seconds": 0},
                        "fairness": {"chat_max_in_flight": 16}})
    bots = [main, Bot("narrow", {"workers": 2})]
    with running_stack(tmp_path_factory, receivers, bots=bots) as running:
        yield running


def test_bot_killed_pages_service_down(scenario: Scenario, stack: E2EStack) -> None:
    bot = stack.bots["main"]
    timing = stack.timing("ServiceDown", for_key="service_down_for")
    scenario.fault(stack.kill_bot(bot))
    scenario.expect_firing("ServiceDown", timing=timing, severity="critical", instance=bot.instance,
                           value=re.escape(bot.instance), labels={"job": "bot"})
    stack.start_bot(bot)
    scenario.expect_resolved("ServiceDown", severity="critical", timeout=20)
    scenario.assert_exactly_once("ServiceDown", severity="critical", settle=4)
    scenario.assert_nothing_else({"ServiceDown"})


def test_slow_market_api_warns_high_latency(scenario: Scenario, stack: E2EStack) -> None:
    bot = stack.bots["main"]
    threshold = stack.settings.alerts.latency_seconds
    assert SLOW_API_SECONDS > threshold
    # A slow decision is observed only once its slow call returns; then slow ones must be more than
    # 1 - quantile of the decisions in the rate window.
    quantile_share = (1 - stack.settings.alerts.latency_quantile) * stack.seconds("rate_window")
    timing = stack.timing("BotHighLatency", for_key="latency_for",
                          window_s=SLOW_API_SECONDS + quantile_share,
                          window_note=f"the {SLOW_API_SECONDS:.0f}s call returns, slow decisions pass 5% of the "
                                      f"window ({quantile_share:.0f}s)")
    scenario.fault(bot.faults("dexscreener", latency_seconds=SLOW_API_SECONDS))
    scenario.expect_firing("BotHighLatency", timing=timing, severity="warning", instance=bot.instance,
                           value=r"\b([1-9]\d)(\.\d+)?s\b")
    bot.clear_faults()
    # Calls already waiting finish their 12 s, then the slow decisions must leave the rate window.
    scenario.expect_resolved("BotHighLatency", severity="warning",
                             timeout=SLOW_API_SECONDS + stack.seconds("rate_window") + 20)
    scenario.assert_exactly_once("BotHighLatency", severity="warning", settle=4)
    scenario.assert_nothing_else({"BotHighLatency"})


def test_hung_market_api_stalls_pipeline_and_fills_queue(scenario: Scenario, stack: E2EStack) -> None:
    bot = stack.bots["narrow"]
    received_rate = stack.prom.value(f'sum(rate(hux_messages_received_total{{instance="{bot.instance}"}}[20s]))')
    assert received_rate and received_rate > 0.5, f"the demo feed keeps messages coming ({received_rate})"
    fault_wall = time.time()
    scenario.fault(bot.faults("dexscreener", hang=True))
    workers = bot.settings["workers"]

    # Both clocks start inside the bot: the workers go on finishing messages that need no API call
    # until each has picked one that hangs; the queue grows from then on at the feed's pace. The stall
    # clock runs from the last finished message, the backlog from the moment the queue passes its
    # threshold. Read those moments from the bot itself: the rest is the monitoring pipeline's part.
    def all_blocked() -> float | None:
        busy = sum_samples(bot.metrics_text(), "hux_workers_busy", {})
        return time.time() if busy >= workers else None

    blocked = wait_until(all_blocked, 20, f"all {workers} workers blocked on the hung API", interval=0.1) - fault_wall
    capacity = bot.settings.get("queue_capacity", BOT["queue_capacity"])
    ratio = stack.settings.alerts.queue_backlog_ratio

    def backed_up() -> float | None:
        length = sum_samples(bot.metrics_text(), "hux_queue_length", {})
        return time.time() if length / capacity > ratio else None

    full = wait_until(backed_up, 30, f"the queue past {ratio:.0%} of {capacity}", interval=0.1) - fault_wall
    stack.wait_alert_state("BotPipelineStalled", ("pending", "firing"), timeout=30, instance=bot.instance)
    last_done = float(sum_samples(bot.metrics_text(), "hux_last_message_processed_timestamp_seconds", {}))
    drain = max(0.0, last_done - fault_wall)
    stall_after = stack.seconds("pipeline_stall_after")
    stall = stack.timing("BotPipelineStalled", for_key="pipeline_stall_for", window_s=stall_after + drain,
                         window_note=f"stall_after {stall_after:.0f}s from the last finished message "
                                     f"({drain:.1f}s after the fault)")
    backlog = stack.timing("BotQueueBacklog", for_key="queue_backlog_for", window_s=full,
                           window_note=f"workers all blocked {blocked:.1f}s after the fault, queue past "
                                       f"{ratio:.0%} of {capacity} at {full:.1f}s ({received_rate:.1f} msg/s in)")
    scenario.expect_firing("BotPipelineStalled", timing=stall, severity="critical", instance=bot.instance,
                           value=r"\b\d+(\.\d+)?s\b")
    scenario.expect_firing("BotQueueBacklog", timing=backlog, severity="warning", instance=bot.instance,
                           value=r"\b\d+(\.\d+)?%")
    bot.clear_faults()
    scenario.expect_resolved("BotPipelineStalled", severity="critical", timeout=30)
    scenario.expect_resolved("BotQueueBacklog", severity="warning", timeout=30)
    # The messages held during the stall are decided late once it clears: their intake-to-decision
    # time is the stall itself, so BotHighLatency rightly follows (once) and clears with its window.
    stack.wait_quiet(timeout=stack.seconds("rate_window") + 30)
    time.sleep(4)
    scenario.assert_exactly_once("BotPipelineStalled", severity="critical")
    scenario.assert_exactly_once("BotQueueBacklog", severity="warning")
    if scenario.delivered("BotHighLatency"):
        scenario.assert_exactly_once("BotHighLatency", severity="warning")
    scenario.assert_nothing_else({"BotPipelineStalled", "BotQueueBacklog", "BotHighLatency"})
