"""The shared inbox of several instances stays within its bound while nothing drains, and loses nothing.

Three in-process instances on one PostgreSQL poll the Telegram double; DexScreener
hangs, so every worker of every instance waits and no message is decided. A
flood of ``FLOOD`` messages from one chat and ``QUIET`` from each of four others
arrives: the inbox stops at exactly ``BOUND`` pending rows, the flooding chat's
messages beyond ``PER_CHAT`` are refused (``chat_backlog``, exact), and the rest
stay at Telegram (the offset is not moved past them). The leader is stopped
while it waits, and stops promptly; another one takes over. Once DexScreener
answers again every accepted message is decided exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from hux.bot import samplefeed
from hux.bot.app import BotApp
from hux.bot.metrics import BotMetrics
from hux.bot.profile import resolve_profile
from hux.doubles.faults import FaultSettings
from hux.doubles.market import RunningDoubles, start_doubles
from tests.bot.conftest import bot_config, metric_value, wait_until
from tests.bot.test_cluster_drill import db_counts
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(180)

TOKEN = "424242424:AAH-fake-token-for-the-inbox-bound"
PER_CHAT, BOUND = 20, 50
FLOOD, QUIET, QUIET_CHATS, POLL_LIMIT = 100, 15, 4, 10


def _config(url: str, doubles: RunningDoubles):
    return bot_config(
        database_url=url, port=free_port(), instances=3, workers=2, queue_capacity=BOUND, cooldown_seconds=0.0,
        fairness={"chat_queue_capacity": PER_CHAT, "chat_rate_per_minute": 100_000.0},
        cluster={"claim_ttl_seconds": 3.0, "leader_lease_seconds": 2.0, "claim_poll_seconds": 0.1, "claim_ahead": 2},
        telegram={"api_base": doubles.url("telegram"), "poll_timeout_seconds": 1, "poll_limit": POLL_LIMIT},
        # A hung request waits for the double, not for a client timeout: nothing is decided until it answers.
        dexscreener={"base_url": doubles.url("dexscreener"), "cache_ttl_seconds": 0.0, "timeout_seconds": 120.0,
                     "max_retries": 0, "batch_size": 1, "rate_limit_per_minute": 60_000.0},
        rugcheck={"base_url": doubles.url("rugcheck"), "rate_limit_per_minute": 60_000.0},
        goplus={"base_url": doubles.url("goplus"), "rate_limit_per_minute": 60_000.0},
    )


async def test_a_flood_while_nothing_drains_stops_at_the_bound_and_every_accepted_message_is_decided_once(
        hux_home: Path, pg_database) -> None:
    url = pg_database()
    doubles = await start_doubles(seed=5)
    rng = random.Random(5)
    # One token per message: a message whose token another instance is deciding would be done at once.
    for _ in range(FLOOD):
        doubles.telegram.inject_message(f"ape {samplefeed.solana_mint(rng)} now", chat_title="Flood")
    for i in range(QUIET * QUIET_CHATS):
        doubles.telegram.inject_message(f"ca {samplefeed.solana_mint(rng)}", chat_title=f"Quiet {i % QUIET_CHATS}")
    dex = doubles.faults["dexscreener"]
    dex.set(FaultSettings(hang=True))
    apps: list[BotApp] = []
    running: list[BotApp] = []
    try:
        for _ in range(3):
            cfg = _config(url, doubles)
            profile = await resolve_profile(cfg, TOKEN, demo=False)
            app = BotApp(cfg, profile, metrics=BotMetrics(group_label_limit=cfg.group_label_limit, mode=profile.mode))
            apps.append(app)
            await app.start()
            running.append(app)

        def refused() -> float:
            return sum(metric_value(a.metrics.registry, "hux_messages_rejected_total", source="telegram",
                                    reason="chat_backlog") for a in apps)

        accepted_at_stall = PER_CHAT + (BOUND - PER_CHAT)
        assert await wait_until(lambda: db_counts(url)["pending"] >= BOUND and refused() >= FLOOD - PER_CHAT, timeout=60)
        await asyncio.sleep(2.0)  # nothing drains: a bound that leaks would show here
        counts = db_counts(url)
        assert counts["pending"] == counts["inbox"] == BOUND == accepted_at_stall and counts["done"] == 0
        assert refused() == FLOOD - PER_CHAT
        # The rest stayed at Telegram: the last polled batch onwards is unconfirmed.
        waiting = QUIET * QUIET_CHATS - (BOUND - PER_CHAT)
        assert len(doubles.telegram.pending) == waiting
        [leader] = [a for a in running if a.cluster is not None and a.cluster.leader]
        assert metric_value(leader.metrics.registry, "hux_queue_blocked_seconds_total") > 1.0
        assert await wait_until(lambda: all(metric_value(a.metrics.registry, "hux_bot_inbox_pending") == BOUND
                                            for a in running), timeout=10)

        # The leader stops while its sources wait for room: promptly, acknowledging nothing more.
        started = time.monotonic()
        running.remove(leader)
        await leader.stop()
        assert time.monotonic() - started < 15.0
        assert await wait_until(lambda: any(a.cluster is not None and a.cluster.leader for a in running), timeout=15)
        await asyncio.sleep(1.0)
        assert db_counts(url)["inbox"] == BOUND and len(doubles.telegram.pending) == waiting

        dex.reset()  # DexScreener answers again: the instances decide, the inbox drains, the rest comes in
        accepted = BOUND + waiting
        assert await wait_until(lambda: db_counts(url)["done"] >= accepted, timeout=90)
        await asyncio.sleep(2.0)  # a late duplicate would show by now
        counts = db_counts(url)
        assert counts["inbox"] == counts["done"] == accepted and counts["pending"] == 0
        assert counts["mentions"] == counts["mentioned_messages"] == accepted
        assert counts["decisions"] == counts["decided_tokens"] == accepted
        assert refused() == FLOOD - PER_CHAT                      # nothing more was refused: every other message came in
        assert await wait_until(lambda: len(doubles.telegram.pending) == 0, timeout=10)
        print(f"\ninbox bound: {BOUND} pending at the stall, {refused():.0f} refused, {waiting} left at Telegram "
              f"and accepted after the recovery; {accepted} decided once")
    finally:
        for app in running:
            await app.stop()
        await doubles.stop()
