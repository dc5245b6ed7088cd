"""One chat must not starve the others: the per-message address cap, the fair intake queue, recovery order."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from hux.bot import samplefeed
from hux.bot.config import FairnessSettings
from hux.bot.extract import extract, extract_capped
from hux.bot.intake import Intake, IntakeQueue, interleave_by_chat
from hux.bot.messages import ChatMessage, chat_of
from hux.bot.metrics import REJECT_REASONS, BotMetrics
from hux.bot.persistence import Persistence
from hux.bot.store import Store, inbox
from hux.doubles import rugcheck as rugcheck_double
from hux.doubles.dexscreener import Market
from tests.bot.conftest import bot_config, metric_value, running_bot, wait_until, write_feed

pytestmark = pytest.mark.timeout(120)

RNG = random.Random(7)
MINTS = [samplefeed.solana_mint(RNG) for _ in range(400)]
EVMS = [samplefeed.evm_address(RNG) for _ in range(40)]


def msg(chat: str, n: int, text: str = "gm", source: str = "telegram") -> ChatMessage:
    key = f"telegram:{chat}:{n}" if source == "telegram" else f"replay:f:0:{chat}-{n}"
    return ChatMessage(key, source, f"group {chat}", text, 1.7e9)


def fair(**kw) -> FairnessSettings:
    return FairnessSettings(**{"chat_queue_capacity": 100, "chat_max_in_flight": 1, "chat_rate_per_minute": 60.0,
                               "chat_burst": 20, **kw})


# -- the cap ---------------------------------------------------------------------------------------
def test_the_cap_keeps_the_first_addresses_and_counts_the_rest() -> None:
    text = " ".join(MINTS[:50]) + " " + MINTS[0]  # a repeat of a taken address is not "over the cap"
    taken, over = extract_capped(text, 20)
    assert [c.address for c in taken] == MINTS[:20]
    assert over == 30
    assert extract_capped(text, None) == (extract(text), 0)


@given(st.lists(st.sampled_from(MINTS[:60] + EVMS[:20]), max_size=80), st.integers(min_value=1, max_value=40))
@example([MINTS[0], MINTS[1], MINTS[1]], 1)  # a repeat after the cap is one address, not two
def test_capped_extraction_is_a_prefix_of_full_extraction(addresses: list[str], cap: int) -> None:
    text = " ".join(addresses)
    full = extract(text)
    taken, over = extract_capped(text, cap)
    assert taken == full[:cap]
    assert over == max(0, len(full) - cap)


async def test_a_message_with_1400_addresses_is_capped_and_the_rest_counted(hux_home: Path) -> None:
    rng = random.Random(11)
    text = " ".join(samplefeed.solana_mint(rng) for _ in range(1400))
    assert len(text.encode()) < 65536
    feed = write_feed(hux_home / "feed.jsonl", [{"ts": 1_736_500_000, "group": "Flooders", "text": text}])
    cfg = bot_config(max_addresses_per_message=20, replay={"path": str(feed), "loop": False, "speed": 100.0},
                     rugcheck={"rate_limit_per_minute": 60_000.0})
    async with running_bot(cfg) as app:
        reg = app.metrics.registry
        assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success") >= 1, 60)
        decided = sum(metric_value(reg, "hux_tokens_processed_total", outcome=o)
                      for o in ("alerted", "below_threshold", "no_market_data", "cooldown", "failed"))
        assert decided == 20
        assert metric_value(reg, "hux_token_candidates_total", kind="solana") == 20
        assert metric_value(reg, "hux_token_candidates_skipped_total", reason="over_message_cap") == 1380


# -- the fair queue ----------------------------------------------------------------------------------
async def test_chats_are_served_in_turn_not_in_arrival_order() -> None:
    q = IntakeQueue(1000, BotMetrics.noop(), fair(chat_max_in_flight=4))
    for i in range(50):
        await q.put(msg("-100", i))
    for i in range(3):
        await q.put(msg("-200", i))
    served = [chat_of(await q.get()) for _ in range(6)]
    assert served == ["telegram:-100", "telegram:-200"] * 3


async def test_a_chat_occupies_at_most_its_in_flight_limit() -> None:
    q = IntakeQueue(1000, BotMetrics.noop(), fair(chat_max_in_flight=1))
    for i in range(5):
        await q.put(msg("-100", i))
    first = await q.get()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await q.get()  # the chat's one worker slot is taken
    await q.put(msg("-200", 0))
    other = await q.get()
    assert chat_of(other) == "telegram:-200"  # another chat gets a worker at once
    q.task_done(first)
    assert chat_of(await q.get()) == "telegram:-100"


async def test_a_lone_busy_chat_uses_the_idle_workers_but_one() -> None:
    """Work-conserving: a bot reading one busy chat is not held to one worker; one stays free for others."""
    q = IntakeQueue(1000, BotMetrics.noop(), fair(chat_max_in_flight=1), workers=4)
    for i in range(10):
        await q.put(msg("-100", i))
    taken = [await q.get() for _ in range(3)]           # 3 of 4 workers: nobody else waits
    assert [chat_of(m) for m in taken] == ["telegram:-100"] * 3
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await q.get()                                 # the last worker stays free ...
    await q.put(msg("-200", 0))
    assert chat_of(await q.get()) == "telegram:-200"      # ... for the next chat, served at once
    q.task_done(taken[0])
    await q.put(msg("-300", 0))
    assert chat_of(await q.get()) == "telegram:-300"      # a chat under its limit goes before the busy one


async def test_a_chat_over_its_rate_is_served_after_the_others_and_counted() -> None:
    metrics = BotMetrics.noop()
    now = [0.0]
    q = IntakeQueue(1000, metrics, fair(chat_max_in_flight=10, chat_burst=2, chat_rate_per_minute=6.0), clock=lambda: now[0])
    for i in range(4):  # 2 within the burst, 2 over the rate
        await q.put(msg("-100", i))
    await q.put(msg("-200", 0))
    assert metric_value(metrics.registry, "hux_chat_throttled_total", reason="over_rate") == 2
    order = [(await q.get()).key for _ in range(5)]
    # -100's two in-rate messages and -200 come first; -100's over-rate ones wait for them.
    assert order.index("telegram:-200:0") < order.index("telegram:-100:2")
    assert order[-2:] == ["telegram:-100:2", "telegram:-100:3"]


async def test_the_shared_queue_still_applies_back_pressure() -> None:
    metrics = BotMetrics.noop()
    q = IntakeQueue(4, metrics, fair(chat_max_in_flight=8))
    for i in range(4):
        await q.put(msg(str(i), 0))
    blocked = asyncio.create_task(q.put(msg("9", 0)))
    await asyncio.sleep(0.1)
    assert not blocked.done() and len(q) == 4 and q.saturated
    taken = await q.get()
    await asyncio.wait_for(blocked, 2)
    assert len(q) == 4
    q.task_done(taken)
    assert metric_value(metrics.registry, "hux_queue_blocked_seconds_total") > 0


async def test_join_waits_for_work_in_flight() -> None:
    q = IntakeQueue(10, BotMetrics.noop())
    await q.put(msg("-1", 0))
    taken = await q.get()
    joined = asyncio.create_task(q.join())
    await asyncio.sleep(0.05)
    assert not joined.done()
    q.task_done(taken)
    await asyncio.wait_for(joined, 2)


def test_chat_identity_is_the_telegram_chat_id_not_its_title() -> None:
    a = ChatMessage("telegram:-1001:5", "telegram", "Solana Alpha Calls", "x", 0.0)
    b = ChatMessage("telegram:-1002:5", "telegram", "Solana Alpha Calls", "x", 0.0)
    assert chat_of(a) != chat_of(b)
    assert chat_of(ChatMessage("replay:f:0:3", "replay", "Degen Trenches", "x", 0.0)) == "replay:Degen Trenches"


def test_recovered_messages_take_turns_by_chat() -> None:
    pending = [msg("-100", i) for i in range(5)] + [msg("-200", i) for i in range(2)]
    order = [m.key for m in interleave_by_chat(pending)]
    assert order[:4] == ["telegram:-100:0", "telegram:-200:0", "telegram:-100:1", "telegram:-200:1"]
    assert order[4:] == ["telegram:-100:2", "telegram:-100:3", "telegram:-100:4"]


# -- intake: a chat's backlog is bounded before anything is written ------------------------------------
async def make_intake(tmp_path: Path, metrics: BotMetrics, fairness: FairnessSettings, capacity: int = 1000):
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    persistence = Persistence(store, metrics, spool_path=tmp_path / "spool" / "intake.jsonl", probe_interval=0.3, retry_max=0.5)
    await persistence.start(attempts=1)
    return Intake(IntakeQueue(capacity, metrics, fairness), persistence, metrics), persistence


async def test_a_flooding_chat_is_refused_beyond_its_backlog_and_the_others_are_not(tmp_path: Path) -> None:
    metrics = BotMetrics.noop()
    intake, persistence = await make_intake(tmp_path, metrics, fair(chat_queue_capacity=30))
    try:
        flood = [msg("-666", i) for i in range(50)]
        calm = [msg("-1", i) for i in range(3)]
        assert await intake.accept(flood[:25] + calm + flood[25:]) == 33
        assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="chat_backlog") == 20
        assert "chat_backlog" in REJECT_REASONS
        rows = await asyncio.to_thread(lambda: persistence.store.counts())
        assert rows["inbox"] == 33 and rows["inbox_pending"] == 33  # refused ones were never written
        # the calm chat's messages are served on its first turns, not after the flood
        served = [chat_of(await intake.queue.get()) for _ in range(2)]
        assert served == ["telegram:-666", "telegram:-1"]
        # as the flood chat's backlog drains, it is accepted again (one taken: room for one)
        assert await intake.accept([msg("-666", 100), msg("-666", 101)]) == 1
        assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="chat_backlog") == 21
    finally:
        await persistence.close(2)


async def test_recovery_does_not_let_one_chats_pile_fill_the_queue(tmp_path: Path) -> None:
    metrics = BotMetrics.noop()
    intake, persistence = await make_intake(tmp_path, metrics, fair(chat_queue_capacity=10, chat_max_in_flight=4), capacity=40)
    try:
        pending = [msg("-666", i) for i in range(100)] + [msg(str(c), 0) for c in range(1, 6)]
        task = asyncio.create_task(intake.requeue(pending))
        assert await wait_until(lambda: len(intake.queue) == 15, 5)
        assert intake.queue.waiting_for("telegram:-666") == 10
        assert all(intake.queue.waiting_for(f"telegram:{c}") == 1 for c in range(1, 6))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await persistence.close(2)


# -- the whole bot: an ordinary chat is decided while a flood is still queued --------------------------
async def test_an_ordinary_chat_is_decided_while_a_flooding_chat_waits(hux_home: Path) -> None:
    rng = random.Random(3)
    # The flood names tokens the market does not know: each flood message is one DexScreener batch
    # (slowed by the latency fault below) and nothing more. With known tokens every flood message
    # also made ~18 RugCheck lookups and ~5 alerts on two channels, ~1,200 HTTP exchanges on the
    # event loop the doubles share with the bot: 32-37 s on a loaded machine, for nothing this
    # test asserts (RugCheck fairness has its own test below).
    unknown = (m for m in (samplefeed.solana_mint(rng) for _ in range(20_000)) if not Market().token(m).known)
    flood = [{"ts": 1_736_500_000, "group": "Flood", "text": " ".join(next(unknown) for _ in range(40))}
             for _ in range(40)]
    calm = [{"ts": 1_736_500_000, "group": f"Calm {i}", "text": f"ca {samplefeed.solana_mint(rng)}"} for i in range(4)]
    feed = write_feed(hux_home / "feed.jsonl", flood + calm)
    # The flooding chat has one message in flight (chat_max_in_flight=1), so its 800 lookups go out
    # lookups_per_message at a time. With 2 at a time that was 400 DexScreener requests, and at
    # DexScreener's 300/min (5/s) the flood alone took 80 s however fast the machine. One batch per
    # message (20 lookups at once) and a limit the test does not exercise: 40 requests, a few seconds.
    cfg = bot_config(workers=2, cooldown_seconds=0, lookups_per_message=20,
                     replay={"path": str(feed), "loop": False, "speed": 1000.0},
                     dexscreener={"rate_limit_per_minute": 60_000.0},
                     rugcheck={"rate_limit_per_minute": 60_000.0})
    async with running_bot(cfg) as app:
        async with httpx.AsyncClient() as http:  # every lookup takes a while, so the flood is slow to work off
            await http.put(f"{app.profile.doubles.base_url}/_double/faults", json={"dexscreener": {"latency_seconds": 0.1}})
        reg = app.metrics.registry
        assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success") >= 44
                                and app.persistence.pending == 0, 60)

        def processed() -> list[tuple[str, float]]:
            with app.persistence.store.engine.connect() as conn:
                return [(r.group_name, r.processed_at) for r in conn.execute(select(inbox.c.group_name, inbox.c.processed_at))]

        rows = await asyncio.to_thread(processed)
        calm_done = max(at for group, at in rows if group.startswith("Calm"))
        flood_before = sum(1 for group, at in rows if group == "Flood" and at < calm_done)
        # In arrival order all 40 flood messages would come first; taking turns, at most a handful do.
        assert flood_before <= 6, flood_before
        assert metric_value(reg, "hux_token_candidates_skipped_total", reason="over_message_cap") == 40 * 20


async def test_a_calm_chats_risk_lookup_goes_ahead_of_a_flooding_chats_queued_ones(hux_home: Path) -> None:
    """The chat travels from the pipeline to RugCheck's limiter, which serves chats in turn.

    The flood's 20 lookups all wait at RugCheck (2 a second) with no per-chat budget to hold them
    back; the calm chat's lookup arrives a second later. In arrival order it would be decided
    after the whole flood message; taking turns, it goes out on the next token (the flood is
    busy, so it never empties the bucket: the calm chat finds the reserved token at once).
    """
    rng = random.Random(5)

    def known(mint: str) -> bool:  # the doubles answer this mint with a market and a risk report
        return Market().token(mint).known and rugcheck_double.summary(mint) is not None

    mints = [m for m in (samplefeed.solana_mint(rng) for _ in range(200)) if known(m)]
    flood = {"ts": 1_736_500_000, "group": "Flood", "text": " ".join(mints[:20])}
    calm = {"ts": 1_736_500_001, "group": "Calm", "text": f"ca {mints[20]}"}
    feed = write_feed(hux_home / "feed.jsonl", [flood, calm])
    cfg = bot_config(workers=2, cooldown_seconds=0, lookups_per_message=20,
                     replay={"path": str(feed), "loop": False, "speed": 1.0},
                     rugcheck={"rate_limit_per_minute": 120.0})
    async with running_bot(cfg) as app:
        order: list[tuple[str, float, str | None]] = []
        original = app.persistence.submit

        async def submit(result) -> None:  # a tap on the writer: which message was decided when
            reg = app.metrics.registry
            calls = metric_value(reg, "hux_api_requests_total", api="rugcheck", endpoint="report_summary", outcome="success")
            order.append((result.message.group, calls, result.tokens[0].risk_level if result.tokens else None))
            await original(result)

        app.persistence.submit = submit
        assert await wait_until(lambda: len(order) >= 2, 60), order
    (first, calls_before_calm, calm_risk), (second, _, _) = order
    assert (first, second) == ("Calm", "Flood"), order
    assert calm_risk is not None, "the calm token must have been looked up on RugCheck for this test to mean anything"
    assert calls_before_calm < 15, calls_before_calm  # most of the flood's lookups were still waiting
    assert calls_before_calm >= 3  # ... and the flood had taken RugCheck's burst before the calm message came
