"""BotHighApiUsage from demand: chat traffic pushes DexScreener requests toward the configured limit.

Here the bot runs in live mode: its Telegram source long-polls the Telegram
double of a separate ``hux doubles serve`` process, so the test controls
demand by posting group messages (``POST /telegram/_double/updates``), each
naming a new token. At 90 % of the configured request rate the usage ratio
crosses the 80 % threshold without the bot's own rate limiter ever making a
message wait (so nothing else, e.g. latency, is disturbed).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Iterator

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import running_stack
from tests.e2e.procs import http
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import Bot, E2EStack

pytestmark = pytest.mark.e2e

#: a made-up Bot API token in the documented ``<digits>:<secret>`` shape; the double accepts any such
TOKEN = "123456789:e2e-token-for-the-local-double-only"
DEXSCREENER_PER_MINUTE = 60.0
DEMAND_SHARE = 0.9


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers) -> Iterator[E2EStack]:
    port = free_port()
    doubles = f"http://127.0.0.1:{port}"
    live = Bot("live", {
        "demo": {"enabled": False},
        "telegram": {"api_base": f"{doubles}/telegram", "poll_timeout_seconds": 5},
        "dexscreener": {"base_url": f"{doubles}/dexscreener", "rate_limit_per_minute": DEXSCREENER_PER_MINUTE,
                        "cache_ttl_seconds": 0},
        # Only DexScreener is under test: RugCheck's and GoPlus's limits stay far away.
        "rugcheck": {"base_url": f"{doubles}/rugcheck", "rate_limit_per_minute": 6000},
        "goplus": {"base_url": f"{doubles}/goplus", "rate_limit_per_minute": 6000},
    }, env={"HUX_TELEGRAM_TOKEN": TOKEN}, doubles_port=port)
    with running_stack(tmp_path_factory, receivers, bots=[live], doubles_server_port=port) as running:
        yield running


class ChatTraffic(threading.Thread):
    """Posts one group message naming a fresh EVM token every ``interval`` seconds until stopped."""

    def __init__(self, doubles_url: str, per_second: float) -> None:
        super().__init__(name="chat-traffic", daemon=True)
        self.url = f"{doubles_url}/telegram/_double/updates"
        self.interval = 1.0 / per_second
        self.sent = 0
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        due = time.monotonic()
        while not self._halt.is_set() and self.sent < 600:  # bounded: 600 messages at most
            address = "0x" + secrets.token_hex(20)
            status, body = http("POST", self.url, {"text": f"just launched {address} LP locked", "chat_title": "E2E Calls"})
            if status != 200:
                self.errors.append(f"{status} {body}")
            self.sent += 1
            due += self.interval
            self._halt.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def test_request_rate_near_the_limit_warns_high_api_usage(scenario: Scenario, stack: E2EStack) -> None:
    bot, a = stack.bot, stack.settings.alerts
    limit = DEXSCREENER_PER_MINUTE / 60
    assert stack.prom.value(f'hux_api_rate_limit_requests_per_second{{instance="{bot.instance}",api="dexscreener"}}') == limit
    # The ratio over the rate window climbs at DEMAND_SHARE per window; the first request only creates the
    # series (rate() ignores it).
    window = stack.seconds("rate_window") * a.api_usage_ratio / DEMAND_SHARE + 1 / (DEMAND_SHARE * limit)
    timing = stack.timing("BotHighApiUsage", for_key="api_usage_for", window_s=window,
                          window_note=f"requests at {DEMAND_SHARE:.0%} of the limit pass {a.api_usage_ratio:.0%} "
                                      f"of the {a.rate_window} window; +1 request")
    traffic = ChatTraffic(bot.doubles_url, per_second=DEMAND_SHARE * limit)
    scenario.fault()
    traffic.start()
    try:
        scenario.expect_firing("BotHighApiUsage", timing=timing, severity="warning", instance=bot.instance,
                               value=r"\b(8[1-9]|9\d|1\d\d)(\.\d+)?% of the provider's limit",
                               labels={"api": "dexscreener", "reason": "near_limit"})
    finally:
        traffic.stop()
    assert not traffic.errors, f"the Telegram double refused messages: {traffic.errors[:3]}"
    served = bot.double_stats()["dexscreener"]["total"]
    assert served >= traffic.sent * 0.8, f"each message was looked up: {served} DexScreener calls for {traffic.sent} messages"
    scenario.expect_resolved("BotHighApiUsage", severity="warning", timeout=stack.seconds("rate_window") + 20)
    time.sleep(4)
    scenario.assert_exactly_once("BotHighApiUsage", severity="warning")
    scenario.assert_nothing_else({"BotHighApiUsage"})
