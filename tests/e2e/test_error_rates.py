"""Error-rate and API-usage alerts end to end, and inhibition between the two error-rate severities.

One busy demo bot (fast replay, no cooldown, no response cache) so the market
API sees several requests a second and a ratio over the rate window means
something. Faults use the doubles' ``even`` spacing: 30 % is exactly every
third-and-a-bit request, never two failures in a row, so the bot's circuit
breaker stays closed and the ratio is the injected one.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.procs import wait_until
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import Bot, E2EStack

pytestmark = pytest.mark.e2e

BUSY = {
    "queue_capacity": 1000,  # the production default: retries under faults must not look like a backlog
    "demo": {"replay_speed": 400.0, "cooldown_seconds": 0},
    "dexscreener": {"cache_ttl_seconds": 0, "rate_limit_per_minute": 3000},
    "rugcheck": {"cache_ttl_seconds": 0, "rate_limit_per_minute": 3000},
    "goplus": {"cache_ttl_seconds": 0, "rate_limit_per_minute": 3000},
}
API = {"component": "api", "api": "dexscreener"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers) -> Iterator[E2EStack]:
    with running_stack(tmp_path_factory, receivers, bots=[Bot("busy", BUSY)]) as running:
        yield running


def _request_rate(stack: E2EStack) -> float:
    rate = stack.prom.value(f'sum(rate(hux_api_requests_total{{instance="{stack.bot.instance}",api="dexscreener"}}[10s]))')
    assert rate and rate > 2, f"the busy bot calls DexScreener several times a second ({rate})"
    return rate


def _ratio_window(stack: E2EStack, share: float, threshold: float) -> float:
    """Seconds until a ratio over the rate window, fed ``share`` failures from now on, passes ``threshold``."""
    return stack.seconds("rate_window") * threshold / share


def _never_active(stack: E2EStack, alertname: str, since: float) -> None:
    seconds = max(1, int(time.monotonic() - since) + 1)
    seen = stack.prom.query(f'count_over_time(ALERTS{{alertname="{alertname}"}}[{seconds}s])')
    assert seen == [], f"{alertname} was pending or firing during the scenario: {seen}"


def _page_on_30_percent_5xx(scenario: Scenario, stack: E2EStack) -> None:
    """30 % of DexScreener calls fail: the critical pages, the warning of the same family is inhibited."""
    bot, a = stack.bot, stack.settings.alerts
    _request_rate(stack)
    share = 0.30
    window = _ratio_window(stack, share, a.error_rate_critical)
    timing = stack.timing("BotHighErrorRate", for_key="error_rate_critical_for", window_s=window,
                          window_note=f"{share:.0%} failures pass {a.error_rate_critical:.0%} of the "
                                      f"{a.rate_window} window")
    scenario.fault(bot.faults("dexscreener", error_rate=share, error_status=503, even=True))
    scenario.expect_firing("BotHighErrorRate", timing=timing, severity="critical", instance=bot.instance,
                           value=r"\b(1\d|2\d|30)(\.\d+)?%", labels=API)

    # The warning of the same family and instance fires too, and Alertmanager holds it back.
    stack.wait_alert_state("BotErrorRateIncreased", "firing", timeout=stack.seconds("error_rate_warning_for") + 15,
                           instance=bot.instance, **API)

    def inhibited() -> dict | None:
        for alert in stack.am.alerts(alertname="BotErrorRateIncreased"):
            if alert["status"]["state"] == "suppressed" and alert["status"]["inhibitedBy"]:
                return alert
        return None

    wait_until(inhibited, 10, "Alertmanager to mark BotErrorRateIncreased as inhibited")
    time.sleep(4)  # a few group intervals: nothing may leak while both fire
    assert scenario.delivered("BotErrorRateIncreased") == [], "the inhibited warning is not notified"

    bot.clear_faults()
    scenario.expect_resolved("BotHighErrorRate", severity="critical", timeout=stack.seconds("rate_window") + 20)
    stack.wait_quiet(timeout=stack.seconds("rate_window") + 30)
    time.sleep(4)
    scenario.assert_exactly_once("BotHighErrorRate", severity="critical")


def test_5xx_above_10_percent_pages_and_inhibits_the_warning(scenario: Scenario, stack: E2EStack) -> None:
    _page_on_30_percent_5xx(scenario, stack)
    # Nothing leaks after recovery: the warning stands down while the critical (keep_firing_for) still mutes it.
    assert scenario.delivered("BotErrorRateIncreased") == [], "BotErrorRateIncreased notified after recovery"
    scenario.assert_nothing_else({"BotHighErrorRate"})


def test_5xx_between_5_and_10_percent_warns_but_does_not_page(scenario: Scenario, stack: E2EStack) -> None:
    bot, a = stack.bot, stack.settings.alerts
    _request_rate(stack)
    share = 0.075
    timing = stack.timing("BotErrorRateIncreased", for_key="error_rate_warning_for",
                          window_s=_ratio_window(stack, share, a.error_rate_warning),
                          window_note=f"{share:.1%} failures pass {a.error_rate_warning:.0%} of the "
                                      f"{a.rate_window} window")
    scenario.fault(bot.faults("dexscreener", error_rate=share, error_status=503, even=True))
    scenario.expect_firing("BotErrorRateIncreased", timing=timing, severity="warning", instance=bot.instance,
                           value=r"\b([5-9]|10)(\.\d+)?%", labels=API)
    bot.clear_faults()
    scenario.expect_resolved("BotErrorRateIncreased", severity="warning", timeout=stack.seconds("rate_window") + 20)
    time.sleep(4)
    _never_active(stack, "BotHighErrorRate", scenario.started)
    scenario.assert_exactly_once("BotErrorRateIncreased", severity="warning")
    scenario.assert_nothing_else({"BotErrorRateIncreased"})


def test_429_answers_warn_high_api_usage(scenario: Scenario, stack: E2EStack) -> None:
    bot = stack.bot
    rate = _request_rate(stack)
    share = 0.5
    # The bot starts every outcome series at 0, so increase() sees the very first 429.
    first_429 = 1 / (share * rate)
    timing = stack.timing("BotHighApiUsage", for_key="api_usage_for", window_s=first_429,
                          window_note="the first 429 (its series exists at 0 from the start)")
    scenario.fault(bot.faults("dexscreener", rate_limit_status_rate=share, even=True))
    scenario.expect_firing("BotHighApiUsage", timing=timing, severity="warning", instance=bot.instance,
                           value=r"429 to about \d+", labels={"api": "dexscreener", "reason": "rate_limited"})
    bot.clear_faults()
    scenario.expect_resolved("BotHighApiUsage", severity="warning", timeout=stack.seconds("rate_window") + 20)
    time.sleep(4)
    scenario.assert_exactly_once("BotHighApiUsage", severity="warning")
    scenario.assert_nothing_else({"BotHighApiUsage"})
