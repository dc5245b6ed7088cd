"""The whole pipeline in-process against the market doubles over loopback HTTP."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from hux.bot import samplefeed
from tests.bot.conftest import bot_config, metric_value, running_bot, wait_until, write_feed

pytestmark = pytest.mark.timeout(90)


def token_feed(path: Path, count: int, *, gap: float = 1.0, tokens: int = 12, seed: int = 5) -> Path:
    """``count`` messages, each naming one of ``tokens`` tokens (several groups mention the same ones)."""
    rng = random.Random(seed)
    pool = [samplefeed.solana_mint(rng) for _ in range(tokens // 2)] + [samplefeed.evm_address(rng) for _ in range(tokens - tokens // 2)]
    records = [{"ts": 1_736_500_000 + gap * i, "group": samplefeed.GROUPS[i % 10], "text": f"ca {pool[i % tokens]} 🚀"}
               for i in range(count)]
    return write_feed(path, records)


async def all_persisted(app, count: int, timeout: float = 30) -> bool:
    """Every message's result written (queue empty is not enough: workers may hold the last few)."""
    reg = app.metrics.registry
    return await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success") >= count
                            and app.persistence.pending == 0, timeout)


async def inbox_counts(app) -> dict[str, int]:
    return await asyncio.to_thread(app.persistence.store.counts)


async def test_every_message_is_decided_and_persisted(hux_home: Path) -> None:
    feed = token_feed(hux_home / "feed.jsonl", 60, gap=0.5)
    cfg = bot_config(alert_threshold=0.0, replay={"path": str(feed), "loop": False, "speed": 100.0})
    async with running_bot(cfg) as app:
        reg = app.metrics.registry
        assert await wait_until(lambda: app.sources[0].finished.is_set(), 30)
        assert await all_persisted(app, 60)
        counts = await inbox_counts(app)
        assert counts["inbox"] == 60 and counts["inbox_pending"] == 0 and counts["mentions"] == 60
        decided = sum(metric_value(reg, "hux_tokens_processed_total", outcome=o)
                      for o in ("alerted", "below_threshold", "no_market_data", "cooldown", "failed"))
        assert decided == 60
        assert metric_value(reg, "hux_tokens_processed_total", outcome="alerted") >= 1
        assert metric_value(reg, "hux_message_decision_latency_seconds_count") == 60
        assert metric_value(reg, "hux_alerts_sent_total", channel="telegram", outcome="success") >= 1
        sent = app.profile.doubles.telegram.sent
        assert sent and "score" in str(sent[-1]).lower()


async def test_an_output_that_rejects_everything_blocks_nothing(hux_home: Path) -> None:
    feed = token_feed(hux_home / "feed.jsonl", 30, gap=0.5)
    cfg = bot_config(alert_threshold=0.0, cooldown_seconds=0, replay={"path": str(feed), "loop": False, "speed": 50.0},
                     webhook={"timeout_seconds": 1.0})
    async with running_bot(cfg) as app:
        async with httpx.AsyncClient() as http:
            r = await http.put(f"{app.profile.doubles.base_url}/_double/faults", json={"webhook": {"error_rate": 1.0, "error_status": 500}})
            assert r.status_code == 200
        reg = app.metrics.registry
        assert await wait_until(lambda: app.sources[0].finished.is_set(), 40)
        assert await all_persisted(app, 30, 40)
        assert metric_value(reg, "hux_alerts_sent_total", channel="webhook", outcome="failure") >= 1
        assert metric_value(reg, "hux_alerts_sent_total", channel="webhook", outcome="success") == 0
        # the Telegram channel keeps delivering, and every message is still persisted
        assert metric_value(reg, "hux_alerts_sent_total", channel="telegram", outcome="success") >= 1
        assert (await inbox_counts(app))["inbox_pending"] == 0
        assert metric_value(reg, "hux_pipeline_stage_total", stage="notify", outcome="success") >= 1


async def test_a_full_queue_applies_back_pressure_and_drops_nothing(hux_home: Path) -> None:
    feed = token_feed(hux_home / "feed.jsonl", 40, gap=0.0, tokens=40)
    cfg = bot_config(queue_capacity=2, workers=1, cooldown_seconds=0, replay={"path": str(feed), "loop": False, "speed": 1000.0},
                     rugcheck={"rate_limit_per_minute": 60_000.0})
    async with running_bot(cfg) as app:
        async with httpx.AsyncClient() as http:  # slow market data so the single worker falls behind
            await http.put(f"{app.profile.doubles.base_url}/_double/faults", json={"dexscreener": {"latency_seconds": 0.05}})
        reg = app.metrics.registry
        assert await wait_until(lambda: app.sources[0].finished.is_set(), 40)
        assert await all_persisted(app, 40)
        assert metric_value(reg, "hux_queue_blocked_seconds_total") > 0
        assert metric_value(reg, "hux_queue_capacity") == 2
        received = metric_value(reg, "hux_messages_received_total", source="replay", group="Solana Alpha Calls")
        assert received == 4  # 40 messages over 10 groups
        assert (await inbox_counts(app))["inbox"] == 40


async def test_market_api_failures_are_decided_as_failed_and_retried_later(hux_home: Path) -> None:
    feed = token_feed(hux_home / "feed.jsonl", 20, gap=0.2, tokens=4)
    cfg = bot_config(replay={"path": str(feed), "loop": False, "speed": 20.0},
                     dexscreener={"max_retries": 0, "timeout_seconds": 1.0})
    async with running_bot(cfg) as app:
        async with httpx.AsyncClient() as http:
            await http.put(f"{app.profile.doubles.base_url}/_double/faults", json={"dexscreener": {"error_rate": 1.0, "error_status": 503}})
        reg = app.metrics.registry
        assert await wait_until(lambda: app.sources[0].finished.is_set(), 30)
        assert await all_persisted(app, 20)
        failed = metric_value(reg, "hux_tokens_processed_total", outcome="failed")
        # no cooldown after a failure: later mentions of the same tokens are tried again
        assert failed > 4
        assert metric_value(reg, "hux_pipeline_stage_total", stage="enrich", outcome="failure") == failed
        assert (await inbox_counts(app))["inbox_pending"] == 0


async def test_work_accepted_before_a_crash_is_processed_after_restart(hux_home: Path) -> None:
    """Inbox rows left pending and a spool left behind (database was down) are picked up at start."""
    from hux.bot.messages import ChatMessage
    from hux.bot.persistence import Spool
    from hux.bot.store import Store

    cfg = bot_config(replay={"path": str(write_feed(hux_home / "empty.jsonl", [])), "loop": False})
    mints = [samplefeed.solana_mint(random.Random(i)) for i in range(8)]
    store = Store(cfg.resolved_database_url())
    store.migrate()
    store.inbox_add([ChatMessage(f"telegram:-100:{i}", "telegram", "Alpha Hunters", f"ca {mints[i]}", 1.7e9) for i in range(5)])
    store.dispose()
    Spool(cfg.state_dir() / "spool" / "intake.jsonl").append(
        [ChatMessage(f"telegram:-100:{i}", "telegram", "Alpha Hunters", f"ca {mints[i]}", 1.7e9) for i in range(5, 8)])

    async with running_bot(cfg) as app:
        assert await all_persisted(app, 8)
        counts = await inbox_counts(app)
        assert counts["inbox"] == 8 and counts["inbox_pending"] == 0 and counts["mentions"] == 8
        assert not app.persistence.spool


async def test_spools_of_bots_no_longer_running_are_drained_and_a_running_ones_is_left_alone(hux_home: Path) -> None:
    """bot.instances went from 3 to 1: the spools of the instances gone are this bot's work now.

    Bots sharing a home keep a spool each (intake-<port>.jsonl) and hold its lock while they run;
    a spool whose lock is free is taken over at start, one still held is not touched.
    """
    import fcntl

    from hux.bot.messages import ChatMessage
    from hux.bot.persistence import Spool

    cfg = bot_config(replay={"path": str(write_feed(hux_home / "empty.jsonl", [])), "loop": False})
    spool_dir = cfg.state_dir() / "spool"
    mints = [samplefeed.solana_mint(random.Random(i)) for i in range(6)]
    def msgs(indexes: range) -> list[ChatMessage]:
        return [ChatMessage(f"telegram:-100:{i}", "telegram", "Alpha Hunters", f"ca {mints[i]}", 1.7e9) for i in indexes]
    Spool(spool_dir / "intake-8001.jsonl").append(msgs(range(0, 2)))       # instance 2, gone
    Spool(spool_dir / "intake-8002.jsonl").append(msgs(range(2, 3)))       # instance 3, gone mid-drain:
    (spool_dir / "intake-8002.jsonl").rename(spool_dir / "intake-8002.17.draining")
    Spool(spool_dir / "intake-8002.jsonl").append(msgs(range(3, 4)))       # ... and appended again after
    Spool(spool_dir / "intake-8009.jsonl").append(msgs(range(4, 6)))       # a bot still running on 8009
    with open(spool_dir / "intake-8009.lock", "w") as running:
        fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)
        async with running_bot(cfg) as app:
            assert await all_persisted(app, 4)
            assert (await inbox_counts(app))["inbox"] == 4
            assert not app.persistence.spool
            assert sorted(p.name for p in spool_dir.glob("*.jsonl")) == ["intake-8009.jsonl"]
            assert not list(spool_dir.glob("intake-8002.*.draining"))


def test_a_spool_is_taken_over_only_when_its_bot_is_not_running(tmp_path: Path) -> None:
    """bot.instances went from 1 to 2: intake.jsonl is drained by whichever new instance starts first."""
    from hux.bot.messages import ChatMessage
    from hux.bot.persistence import Spool

    old = Spool(tmp_path / "intake.jsonl")
    old.hold()
    old.append([ChatMessage("telegram:1:1", "telegram", "A", "ca x", 1.7e9)])
    first, second = Spool(tmp_path / "intake-8000.jsonl"), Spool(tmp_path / "intake-8001.jsonl")
    first.hold()
    second.hold()
    assert first.adopt_orphans() == 0 and old.read()        # the old bot still runs
    old.release()
    assert second.adopt_orphans() == 1 and first.adopt_orphans() == 0
    assert [m.key for m in second.read()] == ["telegram:1:1"] and not old.read() and not first.read()
    # a running instance's spool is never taken, whatever its name
    assert first.adopt_orphans() == 0 and [m.key for m in second.read()] == ["telegram:1:1"]
    second.release()
    assert first.adopt_orphans() == 1 and [m.key for m in first.read()] == ["telegram:1:1"]
