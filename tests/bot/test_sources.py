"""Sources: JSONL replay (bad lines, pacing, checkpoint) and Telegram long polling (ack only after durable accept)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from hux.bot.clients.telegram import TelegramBotApi
from hux.bot.intake import Intake, IntakeQueue
from hux.bot.metrics import BotMetrics
from hux.bot.persistence import Persistence
from hux.bot.sources.replay import ReplaySource
from hux.bot.sources.telegram import TelegramSource
from hux.bot.store import Store
from hux.doubles.market import start_doubles
from tests.bot.conftest import metric_value, write_feed
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(60)

MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
TOKEN = "987654321:source-test-token-not-real-0001"


async def make_intake(tmp_path: Path, metrics: BotMetrics, *, url: str | None = None, spool: Path | None = None,
                      capacity: int = 1000) -> tuple[Intake, Persistence]:
    store = Store(url or f"sqlite:///{tmp_path / 'bot.db'}")
    persistence = Persistence(store, metrics, spool_path=spool or tmp_path / "spool" / "intake.jsonl", probe_interval=0.3, retry_max=0.5)
    await persistence.start(attempts=1)
    return Intake(IntakeQueue(capacity, metrics), persistence, metrics), persistence


def drain(queue: IntakeQueue) -> list:
    out = []
    while len(queue):
        out.append(queue.get_nowait())
    return out


async def play(source: ReplaySource, intake: Intake) -> None:
    stop = asyncio.Event()
    await asyncio.wait_for(source.run(intake, stop), 20)


async def test_replay_refuses_bad_lines_and_keeps_going(tmp_path: Path) -> None:
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)
    feed = write_feed(tmp_path / "feed.jsonl", [
        {"ts": "2025-01-10T14:00:00Z", "group": "G1", "text": f"first {MINT}"},
        b"{not json",                                                        # malformed
        {"ts": 1736517601, "group": "G1", "text": "   "},                     # empty
        {"ts": 1736517602, "group": "G2", "text": "x" * 1_048_576},           # huge (1 MB)
        {"ts": 1736517603, "group": "G2", "text": "y" * 200_000},             # over max_message_bytes
        b'{"ts": 1736517604, "group": "G2", "text": "caf\xe9 latin-1"}',     # not UTF-8
        b'{"ts": 1736517605, "group": "G2", "text": "lone \\ud800 surrogate"}',  # not storable text
        json.dumps(["an", "array"]),                                          # malformed
        {"ts": 1736517606, "group": "G3"},                                    # malformed: no text
        {"ts": True, "group": "G3", "text": "bool ts"},                       # malformed: wrong type
        {"ts": 1736517607, "group": {"nested": 1}, "text": "odd group"},      # malformed: wrong type
        "",                                                                   # blank line: layout
        {"ts": 1736517608, "group": "G3", "text": "last one \x00 with a NUL"},
    ])
    source = ReplaySource(feed, speed=1000, loop=False, checkpoint_dir=tmp_path)
    await play(source, intake)
    rejected = {r: metric_value(metrics.registry, "hux_messages_rejected_total", source="replay", reason=r)
                for r in ("malformed", "empty", "too_large", "decode_error")}
    assert rejected == {"malformed": 5, "empty": 1, "too_large": 2, "decode_error": 2}
    accepted = drain(intake.queue)
    assert [m.text for m in accepted] == [f"first {MINT}", "last one \ufffd with a NUL"]
    assert (await asyncio.to_thread(persistence.store.counts))["inbox"] == 2
    await persistence.close(2)


async def test_replay_paces_by_timestamps_and_caps_gaps(tmp_path: Path) -> None:
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)
    feed = write_feed(tmp_path / "feed.jsonl", [
        {"ts": 1000 + 10 * i, "group": "G", "text": f"m{i}"} for i in range(5)
    ] + [{"ts": 100_000, "group": "G", "text": "after a long night"}])
    started = time.monotonic()
    # 10 s gaps at speed 50 -> 0.2 s each; the 27 h gap is capped at max_gap_seconds.
    await play(ReplaySource(feed, speed=50, loop=False, max_gap_seconds=0.3), intake)
    elapsed = time.monotonic() - started
    assert 0.8 <= elapsed < 5.0
    assert [m.text for m in drain(intake.queue)][-1] == "after a long night"
    await persistence.close(2)


async def test_replay_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)
    feed = write_feed(tmp_path / "feed.jsonl", [{"ts": i, "group": "G", "text": f"m{i}"} for i in range(10)])
    await play(ReplaySource(feed, speed=1000, loop=False, checkpoint_dir=tmp_path), intake)
    assert len(drain(intake.queue)) == 10
    # A restart finds nothing new...
    await play(ReplaySource(feed, speed=1000, loop=False, checkpoint_dir=tmp_path), intake)
    assert drain(intake.queue) == []
    # ...and picks up exactly what was appended since.
    with open(feed, "a", encoding="utf-8") as fh:
        for i in range(10, 13):
            fh.write(json.dumps({"ts": i, "group": "G", "text": f"m{i}"}) + "\n")
    await play(ReplaySource(feed, speed=1000, loop=False, checkpoint_dir=tmp_path), intake)
    assert [m.text for m in drain(intake.queue)] == ["m10", "m11", "m12"]
    assert (await asyncio.to_thread(persistence.store.counts))["inbox"] == 13
    await persistence.close(2)


async def test_replay_loops_with_new_keys(tmp_path: Path) -> None:
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)
    feed = write_feed(tmp_path / "feed.jsonl", [{"ts": i, "group": "G", "text": f"m{i}"} for i in range(3)])
    stop = asyncio.Event()
    task = asyncio.create_task(ReplaySource(feed, speed=1000, loop=True, checkpoint_dir=tmp_path).run(intake, stop))
    deadline = time.monotonic() + 10
    while len(intake.queue) < 9 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    keys = [m.key for m in drain(intake.queue)]
    assert len(keys) >= 9 and len(set(keys)) == len(keys)
    await persistence.close(2)


@pytest.fixture
async def doubles():
    running = await start_doubles("127.0.0.1", 0, seed=11)
    yield running
    await running.stop()


def telegram_api(doubles, metrics: BotMetrics) -> TelegramBotApi:
    return TelegramBotApi.create(TOKEN, metrics, doubles.url("telegram"), timeout=2.0, max_retries=0, backoff_base=0.01)


async def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_telegram_messages_are_accepted_then_confirmed(tmp_path: Path, doubles) -> None:
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)
    api = telegram_api(doubles, metrics)
    state = doubles.telegram
    for i in range(5):
        state.inject_message(f"call {i} {MINT}", chat_title="Alpha Hunters")
    state.inject_message("", chat_title="Alpha Hunters")                   # empty
    state.inject_message("z" * 1_048_576, chat_title="Degen Trenches")     # huge
    source = TelegramSource(api, poll_timeout=1, max_message_bytes=65536)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(intake, stop))
    assert await wait_for(lambda: len(intake.queue) == 5)
    # The next poll confirms them: the double forgets what was acknowledged.
    assert await wait_for(lambda: len(state.pending) == 0)
    assert source.offset is not None and source.offset > 0
    assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="empty") == 1
    assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="too_large") == 1
    assert metric_value(metrics.registry, "hux_messages_received_total", source="telegram", group="Alpha Hunters") == 5
    stop.set()
    await asyncio.wait_for(task, 5)
    await api.aclose()
    await persistence.close(2)


async def test_telegram_offset_waits_for_a_durable_accept(tmp_path: Path, doubles) -> None:
    """Database unreachable and spool unwritable: nothing is acknowledged until the spool works again."""
    metrics = BotMetrics(process_metrics=False)
    blocker = tmp_path / "spool-blocker"
    blocker.write_text("a file where the spool directory should be")
    unreachable = f"postgresql+psycopg://root@127.0.0.1:{free_port()}/nothing"
    intake, persistence = await make_intake(tmp_path, metrics, url=unreachable, spool=blocker / "intake.jsonl")
    assert not persistence.database_up
    api = telegram_api(doubles, metrics)
    state = doubles.telegram
    for i in range(3):
        state.inject_message(f"durable {i}", chat_title="Alpha Hunters")
    source = TelegramSource(api, poll_timeout=1)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(intake, stop))
    await asyncio.sleep(1.5)
    assert source.offset is None and len(state.pending) == 3 and len(intake.queue) == 0
    assert metric_value(metrics.registry, "hux_pipeline_stage_total", stage="intake", outcome="failure") >= 3
    blocker.unlink()  # the spool can be written again
    assert await wait_for(lambda: len(intake.queue) == 3, 10)
    assert await wait_for(lambda: len(state.pending) == 0, 10)
    assert len(persistence.spool.read()) == 3  # held locally until the database is back
    stop.set()
    await asyncio.wait_for(task, 5)
    await api.aclose()
    await persistence.close(1)
