"""Burn-rate pages for the bot's decision-success SLO end to end, and the time to page before and after.

Two busy demo bots (one per scenario, so each starts with a clean error budget
history) behind the real stack, with the SLO rules on. The windows keep the
production proportions at 1/15 (rate window 5m -> 20s, page windows 1h/5m ->
4m/20s, the threshold page's `for` 2m -> 8s); the slow-burn page and the
tickets get short windows of their own so that each scenario ends quiet
within a minute (the tickets clear before the page, as they must not be
notified after recovery). Every threshold is the production one: 99.9 %
decision success, pages at 14.4x and 6x the budget, BotHighErrorRate at 10 %.

"Before" is what the spec's threshold alert BotHighErrorRate would take: the
moment it reaches Alertmanager (where the page now mutes it) plus the
critical group wait.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.latency import LatencyRecord
from tests.e2e.procs import wait_until
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import Bot, E2EStack, Timing

pytestmark = pytest.mark.e2e

#: 1.5x the demo's pace without cooldown or cache: a decision or two a second, light enough that two bots on
#: a small CI machine decide within the latency SLO (a backlog would burn that one).
BUSY = {
    "queue_capacity": 1000,
    # Call re-checks out of the way (+1 h): they share the DexScreener client, so they would take turns in the
    # double's evenly spread failures and thin the decisions' share, delaying the page behind the ticket.
    "demo": {"replay_speed": 45.0, "cooldown_seconds": 0, "call_horizon_scale": 1.0},
    "dexscreener": {"cache_ttl_seconds": 0, "rate_limit_per_minute": 3000},
    "rugcheck": {"cache_ttl_seconds": 0, "rate_limit_per_minute": 3000},
    "goplus": {"cache_ttl_seconds": 0, "rate_limit_per_minute": 3000},
}
ALERTS = {
    "slo_alerts": True,
    "error_rate_critical_for": "8s",
    "slo_page_long_window": "4m",
    "slo_page_short_window": "20s",
    "slo_page_slow_long_window": "6m",
    "slo_page_slow_short_window": "30s",
    "slo_ticket_long_window": "3m",
    "slo_ticket_short_window": "10s",
    "slo_ticket_slow_long_window": "5m",
    "slo_ticket_slow_short_window": "10s",
    # At these scaled windows the 1x ticket crosses its line within seconds of a fast burn, before the page
    # can inhibit it (and the page's share of failures now varies with pair lookups and call re-checks taking
    # turns in the double's failures): the ticket waits until the page has had time to fire.
    "slo_ticket_for": "30s",
}
SUCCESS = {"slo": "decision_success"}
API = {"component": "api", "api": "dexscreener"}
#: the client's retries of a 5xx before a decision fails (backoff 0.5 + 1 + 2 s), then its breaker opens
RETRIES_S = 3.5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers) -> Iterator[E2EStack]:
    with running_stack(tmp_path_factory, receivers, bots=[Bot("outage", BUSY), Bot("partial", BUSY)],
                       alerts=ALERTS) as running:
        yield running


def _decision_rate(stack: E2EStack, bot: Bot) -> float:
    rate = stack.prom.value(f'sum(rate(hux_tokens_processed_total{{instance="{bot.instance}",outcome!="cooldown"}}[10s]))')
    # every ratio needs error_rate_min_events in its shortest window; ask for twice that
    floor = 2 * stack.settings.alerts.error_rate_min_events / stack.seconds("slo_page_short_window")
    assert rate and rate >= floor, f"the bot decides at least {floor:g} tokens a second ({rate})"
    return rate


def _page_timing(stack: E2EStack, share: float, extra_s: float, note: str) -> Timing:
    a = stack.settings.alerts
    limit = a.slo_page_burn_rate * (1 - a.slo_decision_success)
    window = stack.seconds("slo_page_long_window") * limit / share + extra_s
    return stack.timing("BotErrorBudgetBurning", for_key="slo_page_for", window_s=window,
                        window_note=f"{share:.0%} failed decisions pass {limit:.2%} of the {a.slo_page_long_window} "
                                    f"window{note}")


def _threshold_before(scenario: Scenario, stack: E2EStack, bot: Bot, share: float) -> None:
    """Time the spec's BotHighErrorRate to Alertmanager, where the page mutes it; record it as "before"."""
    a = stack.settings.alerts
    timing = stack.timing("BotHighErrorRate", for_key="error_rate_critical_for",
                          window_s=stack.seconds("rate_window") * a.error_rate_critical / share,
                          window_note=f"before: {share:.0%} failures pass {a.error_rate_critical:.0%} of the "
                                      f"{a.rate_window} window; muted by the page")

    def muted() -> dict | None:
        # The first of the bot's BotHighErrorRate alerts: the enrich stage's, or the API's (which a total
        # outage may never raise: once the circuit breaker is open, too few requests are made to count).
        for alert in stack.am.alerts(alertname="BotHighErrorRate"):
            if alert["labels"].get("instance") == bot.instance:
                return alert
        return None

    alert = wait_until(muted, timing.bound + 15, "BotHighErrorRate to reach Alertmanager", interval=0.1)
    would_page = time.monotonic() - scenario.fault_at + timing.group_wait_s
    assert alert["status"]["state"] == "suppressed" and alert["status"]["inhibitedBy"], alert["status"]
    record = LatencyRecord(scenario=scenario.name, alertname="BotHighErrorRate", severity="critical",
                           receiver="muted (would page)", floor_s=timing.floor, bound_s=timing.bound,
                           measured_s=round(would_page, 2), window_s=timing.window_s, window_note=timing.window_note)
    scenario.log.add(record)
    # A measurement of the old path, not a promise: its ratio counts stage executions, which batching
    # spreads a little differently from decisions, so only the floor is certain.
    assert would_page >= timing.floor, f"BotHighErrorRate would have paged after {would_page:.1f}s, before its floor"


def _recover(scenario: Scenario, stack: E2EStack, bot: Bot) -> None:
    bot.clear_faults()
    scenario.expect_resolved("BotErrorBudgetBurning", severity="critical",
                             timeout=stack.seconds("slo_page_slow_short_window") + 30)
    stack.wait_quiet(timeout=stack.seconds("slo_page_slow_short_window") + 30)
    time.sleep(4)
    # Pages of both bots share one notification group (alertname, severity, job): the other bot's page,
    # resolved in the previous scenario, may still be in it, and Alertmanager then notifies the group
    # once more. What the page notifications held is printed.
    held = sorted({(a["labels"].get("instance"), a["labels"].get("slo"), a.get("status"))
                   for n in scenario.delivered("BotErrorBudgetBurning", kinds=("webhook",)) for a in n.alerts})
    print(f"{scenario.name}: page notifications held {held}")
    assert (bot.instance, "decision_success", "firing") in held
    scenario.assert_exactly_once("BotErrorBudgetBurning", severity="critical", alerts_in_group=2)
    # One incident, one page: the threshold alerts and the ticket never reached anybody.
    extra = [f"{n.kind} {n.status}: {n.text[:300]}" for n in scenario.delivered()
             if set(n.alertnames) - {"BotErrorBudgetBurning"}]
    assert not extra, f"{scenario.name}: notified besides the page: {extra}"


def test_total_api_outage_pages_once_by_burn_rate(scenario: Scenario, stack: E2EStack) -> None:
    bot = stack.bots["outage"]
    _decision_rate(stack, bot)
    timing = _page_timing(stack, 1.0, RETRIES_S, f", after the client's retries ({RETRIES_S:g}s)")
    scenario.fault(bot.faults("dexscreener", error_rate=1.0, error_status=503))
    scenario.expect_firing("BotErrorBudgetBurning", timing=timing, severity="critical", instance=bot.instance,
                           value=r"\b\d+(\.\d+)?% of token decisions ended with a failed stage", labels=SUCCESS)
    _threshold_before(scenario, stack, bot, 1.0)
    time.sleep(4)  # a few group intervals while both fire: nothing may leak
    assert scenario.delivered("BotHighErrorRate") == [] and scenario.delivered("BotErrorRateIncreased") == []
    _recover(scenario, stack, bot)


def test_20_percent_failed_decisions_page_once_by_burn_rate(scenario: Scenario, stack: E2EStack) -> None:
    bot = stack.bots["partial"]
    _decision_rate(stack, bot)
    share = 0.2
    timing = _page_timing(stack, share, 0.0, " (malformed answers are not retried)")
    scenario.fault(bot.faults("dexscreener", malformed_rate=share, even=True))
    scenario.expect_firing("BotErrorBudgetBurning", timing=timing, severity="critical", instance=bot.instance,
                           value=r"\b\d+(\.\d+)?% of token decisions ended with a failed stage", labels=SUCCESS)
    _threshold_before(scenario, stack, bot, share)
    time.sleep(4)
    assert scenario.delivered("BotHighErrorRate") == [] and scenario.delivered("BotErrorRateIncreased") == []
    _recover(scenario, stack, bot)
