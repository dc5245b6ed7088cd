"""Telegram updates that do not fit the Bot API's shapes, the chat allowlist, and rows the database refuses.

Over real HTTP (the Telegram double) into a real intake (SQLite; PostgreSQL
for what only PostgreSQL refuses): every hostile update ends as a counted
rejection, the offset moves past it, the source keeps running, and the
database stays "up" — a row it refuses is one rejected message, not an outage.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from hux.bot.config import BotConfig
from hux.bot.messages import MAX_TIMESTAMP, ChatMessage, Rejected
from hux.bot.metrics import REJECT_REASONS, BotMetrics
from hux.bot.sources.telegram import TelegramSource, parse_update, update_to_message
from tests.bot.conftest import metric_value
from tests.bot.test_sources import doubles, make_intake, telegram_api, wait_for  # noqa: F401 - doubles is a fixture

pytestmark = pytest.mark.timeout(60)

MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
NOW = 1_736_517_600
GROUP = {"id": -1001234567890, "title": "Alpha Hunters", "type": "supergroup"}


def msg(**fields: Any) -> dict:
    base: dict[str, Any] = {"message_id": 7, "chat": dict(GROUP), "date": NOW, "text": f"call {MINT}"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def rejected(metrics: BotMetrics, reason: str) -> float:
    return metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason=reason)


# --------------------------------------------------------------------------- one update, every field
HOSTILE_UPDATES: list[tuple[str, dict, str]] = [
    ("date beyond any timestamp", {"update_id": 1, "message": msg(date=10**400)}, "out_of_range"),
    ("date NaN", {"update_id": 1, "message": msg(date=math.nan)}, "out_of_range"),
    ("date infinite", {"update_id": 1, "message": msg(date=math.inf)}, "out_of_range"),
    ("date negative", {"update_id": 1, "message": msg(date=-5)}, "out_of_range"),
    ("date past year 9999", {"update_id": 1, "message": msg(date=MAX_TIMESTAMP + 1)}, "out_of_range"),
    ("date a string", {"update_id": 1, "message": msg(date="yesterday")}, "malformed"),
    ("date a float", {"update_id": 1, "message": msg(date=1.5)}, "malformed"),
    ("date a bool", {"update_id": 1, "message": msg(date=True)}, "malformed"),
    ("date missing", {"update_id": 1, "message": msg(date=_DROP)}, "malformed"),
    ("message a list", {"update_id": 1, "message": [1, 2]}, "malformed"),
    ("chat missing", {"update_id": 1, "message": msg(chat=_DROP)}, "malformed"),
    ("chat a string", {"update_id": 1, "message": msg(chat="Alpha")}, "malformed"),
    ("chat id a string", {"update_id": 1, "message": msg(chat={**GROUP, "id": "-100123"})}, "malformed"),
    ("chat id beyond int64", {"update_id": 1, "message": msg(chat={**GROUP, "id": -(2**70)})}, "out_of_range"),
    ("chat id a bool", {"update_id": 1, "message": msg(chat={**GROUP, "id": False})}, "malformed"),
    ("chat type unknown", {"update_id": 1, "message": msg(chat={**GROUP, "type": "secret"})}, "malformed"),
    ("chat type missing", {"update_id": 1, "message": msg(chat={"id": -100, "title": "x"})}, "malformed"),
    ("chat title an object", {"update_id": 1, "message": msg(chat={**GROUP, "title": {"a": 1}})}, "malformed"),
    ("message_id huge string", {"update_id": 1, "message": msg(message_id="9" * 5000)}, "malformed"),
    ("message_id beyond int64", {"update_id": 1, "message": msg(message_id=2**64)}, "out_of_range"),
    ("message_id missing", {"update_id": 1, "message": msg(message_id=_DROP)}, "malformed"),
    ("text a list", {"update_id": 1, "message": msg(text=["a"])}, "malformed"),
    ("caption a number", {"update_id": 1, "message": msg(text=_DROP, caption=12)}, "malformed"),
    ("text lone surrogate", {"update_id": 1, "message": msg(text="x \ud800")}, "decode_error"),
    ("text too large", {"update_id": 1, "message": msg(text="y" * 70_000)}, "too_large"),
    ("text blank", {"update_id": 1, "message": msg(text="   ")}, "empty"),
    ("edited message a number", {"update_id": 1, "edited_message": 5}, "malformed"),
    ("update_id beyond int64", {"update_id": 2**63, "message": msg()}, "out_of_range"),
    ("update_id negative", {"update_id": -1, "message": msg()}, "out_of_range"),
]


@pytest.mark.parametrize("update,reason", [(u, r) for _, u, r in HOSTILE_UPDATES], ids=[n for n, _, _ in HOSTILE_UPDATES])
def test_a_hostile_update_is_rejected_with_a_reason(update: dict, reason: str) -> None:
    assert reason in REJECT_REASONS
    with pytest.raises(Rejected) as caught:
        update_to_message(update, max_bytes=65536)
    assert caught.value.reason == reason
    assert str(caught.value)  # says what was wrong


@pytest.mark.parametrize("update", [
    {"update_id": 1, "poll": {"id": "p"}},                                   # no chat text: not a message
    {"update_id": 1, "message": msg(text=_DROP)},                            # a sticker, a join
    {"update_id": 1, "my_chat_member": {"chat": GROUP}},
])
def test_updates_without_chat_text_are_skipped(update: dict) -> None:
    assert update_to_message(update, max_bytes=65536) is None


def test_a_well_formed_update_becomes_a_message() -> None:
    message = update_to_message({"update_id": 5, "edited_channel_post": msg(chat={"id": -1009, "title": "News", "type": "channel"})},
                                max_bytes=65536)
    assert isinstance(message, ChatMessage)
    assert message.key == "telegram:-1009:7e" and message.group == "News" and message.sent_at == NOW


# --------------------------------------------------------------------------- over HTTP, into the database
async def test_hostile_updates_are_counted_and_the_offset_moves_past_them(tmp_path: Path, doubles) -> None:  # noqa: F811
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)
    api = telegram_api(doubles, metrics)
    state = doubles.telegram
    state.inject_message(f"first {MINT}")
    hostile = [msg(date=10**400), msg(date=math.nan), msg(date="yesterday"), msg(chat={**GROUP, "id": 2**70}),
               msg(message_id="9" * 5000), [1, 2, 3]]
    for body in hostile:
        state.inject_update({"message": body})
    state.inject_update({"poll": {"id": "1"}})
    last = state.inject_message(f"last {MINT}")
    source = TelegramSource(api, poll_timeout=1)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(intake, stop))
    try:
        assert await wait_for(lambda: len(intake.queue) == 2, 10)
        assert await wait_for(lambda: source.offset == last["update_id"] + 1, 10)
        assert await wait_for(lambda: len(state.pending) == 0, 10), "every update is confirmed, hostile ones too"
        assert not task.done(), "a hostile update never ends the source"
        assert rejected(metrics, "out_of_range") == 3
        assert rejected(metrics, "malformed") == 3
        assert metric_value(metrics.registry, "hux_database_up") == 1
        assert metric_value(metrics.registry, "hux_database_errors_total", operation="intake") == 0
        counts = await asyncio.to_thread(persistence.store.counts)
        assert counts["inbox"] == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await api.aclose()
        await persistence.close(2)


async def _run_chats(tmp_path: Path, doubles, allowed: tuple) -> tuple[BotMetrics, list[str]]:  # noqa: F811
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)
    api = telegram_api(doubles, metrics)
    state = doubles.telegram
    state.inject_message("in a private chat", chat_type="private", user_id=5551)
    state.inject_message("in another private chat", chat_type="private", user_id=5552)
    state.inject_message("in a group", chat_type="group", chat_title="Old Group", chat_id=-4001)
    state.inject_message("in a supergroup", chat_type="supergroup", chat_title="Alpha Hunters", chat_id=-1004002)
    state.inject_message("in a channel", chat_type="channel", chat_title="Calls Channel", chat_id=-1004003)
    last = state.inject_message("in an unlisted supergroup", chat_type="supergroup", chat_title="Elsewhere", chat_id=-1004004)
    source = TelegramSource(api, poll_timeout=1, allowed_chats=allowed)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(intake, stop))
    try:
        assert await wait_for(lambda: source.offset == last["update_id"] + 1, 10)
        texts = []
        while len(intake.queue):
            texts.append(intake.queue.get_nowait().text)
        return metrics, texts
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await api.aclose()
        await persistence.close(2)


async def test_private_chats_are_refused_when_no_chat_is_listed(tmp_path: Path, doubles) -> None:  # noqa: F811
    metrics, texts = await _run_chats(tmp_path, doubles, ())
    assert texts == ["in a group", "in a supergroup", "in a channel", "in an unlisted supergroup"]
    assert rejected(metrics, "private_chat") == 2
    assert rejected(metrics, "chat_not_allowed") == 0


async def test_allowed_chats_admits_only_the_listed_chats(tmp_path: Path, doubles) -> None:  # noqa: F811
    metrics, texts = await _run_chats(tmp_path, doubles, (5551, -4001, -1004002, -1004003))
    assert texts == ["in a private chat", "in a group", "in a supergroup", "in a channel"]
    assert rejected(metrics, "private_chat") == 1
    assert rejected(metrics, "chat_not_allowed") == 1


def test_allowed_chats_setting() -> None:
    assert BotConfig().telegram.allowed_chats == ()
    config = BotConfig.model_validate({"telegram": {"allowed_chats": [-1001234, 42, "@alpha_calls"]}})
    assert config.telegram.allowed_chats == (-1001234, 42, "@alpha_calls")
    with pytest.raises(Exception, match="allowed_chats"):
        BotConfig.model_validate({"telegram": {"allowed_chats": [1.5]}})
    with pytest.raises(Exception, match="allowed_chats"):
        BotConfig.model_validate({"telegram": {"allowed_chats": ["alpha calls"]}})


def test_a_channel_is_matched_by_its_public_username() -> None:
    update = {"update_id": 1, "channel_post": msg(chat={"id": -1009, "title": "C", "type": "channel", "username": "alpha_calls"})}
    parsed = parse_update(update, max_bytes=100)
    assert parsed is not None
    chat, _ = parsed
    assert TelegramSource(api=None, allowed_chats=("@Alpha_Calls",)).admit(chat) is None  # type: ignore[arg-type]
    refusal = TelegramSource(api=None, allowed_chats=(-1,)).admit(chat)  # type: ignore[arg-type]
    assert refusal is not None and refusal.reason == "chat_not_allowed"


# --------------------------------------------------------------------------- rows the database refuses
def message(key: str, text_: str = f"call {MINT}", **fields: Any) -> ChatMessage:
    return ChatMessage(key=key, source="telegram", group=fields.pop("group", "G"), text=text_,
                       sent_at=fields.pop("sent_at", float(NOW)), **fields)


async def test_a_row_the_database_refuses_is_a_rejected_message_not_an_outage(tmp_path: Path) -> None:
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)

    def refuse_poison() -> None:
        with persistence.store.engine.begin() as conn:
            conn.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT ON inbox WHEN NEW.text LIKE '%poison%' "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))

    await asyncio.to_thread(refuse_poison)
    batch = [message("telegram:1:1"), message("telegram:1:2", "poison"), message("telegram:1:3")]
    assert await intake.accept(batch) == 2
    assert sorted(intake.queue.get_nowait().key for _ in range(2)) == ["telegram:1:1", "telegram:1:3"]
    assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="unstorable") == 1
    assert metric_value(metrics.registry, "hux_database_up") == 1
    assert persistence.database_up and not persistence.spool
    assert (await asyncio.to_thread(persistence.store.counts))["inbox"] == 2
    await persistence.close(2)


async def test_values_no_column_can_hold_never_reach_the_database(tmp_path: Path) -> None:
    """The store's last line: NaN, infinities and over-long keys are refused before the INSERT."""
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)
    batch = [message("telegram:2:1", sent_at=math.nan), message("telegram:2:2", sent_at=math.inf),
             message("k" * 201), message("telegram:2:4", group="g" * 129), message("telegram:2:5")]
    assert await intake.accept(batch) == 1
    assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="unstorable") == 4
    assert metric_value(metrics.registry, "hux_database_up") == 1
    assert metric_value(metrics.registry, "hux_database_errors_total", operation="intake") == 0
    await persistence.close(2)


async def test_a_spooled_message_the_database_refuses_does_not_block_the_drain(tmp_path: Path) -> None:
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)
    # Accepted while the database was away (written straight to the spool), refused once it is back.
    persistence.spool.append([message("telegram:3:1"), message("telegram:3:2", "poison"), message("telegram:3:3")])

    def refuse_poison() -> None:
        with persistence.store.engine.begin() as conn:
            conn.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT ON inbox WHEN NEW.text LIKE '%poison%' "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))

    await asyncio.to_thread(refuse_poison)
    assert await wait_for(lambda: not persistence.spool, 10), "the spool drains past the refused message"
    assert (await asyncio.to_thread(persistence.store.counts))["inbox"] == 2
    assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="unstorable") == 1
    assert metric_value(metrics.registry, "hux_database_up") == 1
    await persistence.close(2)


async def test_postgresql_refusing_a_row_rejects_that_message_only(tmp_path: Path, pg_database) -> None:
    """PostgreSQL refuses text with NUL bytes and strings longer than the column (DataError)."""
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics, url=pg_database())
    assert persistence.database_up
    raw = message("telegram:4:2", "nul \x00 inside")  # make_message replaces NUL; this one skipped it
    assert await intake.accept([message("telegram:4:1"), raw, message("telegram:4:3")]) == 2
    assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="unstorable") == 1
    assert metric_value(metrics.registry, "hux_database_up") == 1 and persistence.database_up
    assert (await asyncio.to_thread(persistence.store.counts))["inbox"] == 2
    await persistence.close(2)


async def test_a_result_the_database_refuses_is_rejected_and_the_rest_are_written(tmp_path: Path) -> None:
    """One poisoned result must not hold every later write back (the batch is retried row by row)."""
    from hux.bot.store import MessageResult, TokenResult

    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)

    def refuse_poison() -> None:
        with persistence.store.engine.begin() as conn:
            conn.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT ON mentions WHEN NEW.message_key LIKE '%poison%' "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))

    await asyncio.to_thread(refuse_poison)
    keys = ["telegram:5:1", "telegram:5:poison", "telegram:5:3"]
    assert await intake.accept([message(k) for k in keys]) == 3
    for key in keys:
        token = TokenResult(key=MINT, address=MINT, chain="solana", kind="solana", outcome="below_threshold",
                            decided_at=float(NOW), score=10.0)
        await persistence.submit(MessageResult(message(key), [token], processed_at=float(NOW)))
    assert await wait_for(lambda: persistence.pending == 0, 10), "the refused result does not hold the others back"
    # Its message ends rejected, with why, not pending: no restart processes it again.
    assert await wait_for(lambda: persistence.store.counts()["inbox_rejected"] == 1, 10)
    counts = await asyncio.to_thread(persistence.store.counts)
    assert counts["mentions"] == 2 and counts["inbox_pending"] == 0
    assert metric_value(metrics.registry, "hux_pipeline_stage_total", stage="persist", outcome="success") == 2
    assert metric_value(metrics.registry, "hux_pipeline_stage_total", stage="persist", outcome="failure") == 1
    assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="unstorable") == 1
    assert metric_value(metrics.registry, "hux_database_up") == 1
    await persistence.close(2)

    # The next start: nothing to recover, nothing refused again.
    again = BotMetrics(process_metrics=False)
    _, restarted = await make_intake(tmp_path, again)
    try:
        assert await restarted.recover() == []
        with restarted.store.engine.connect() as conn:
            reason = conn.execute(text("SELECT reason FROM inbox WHERE key = 'telegram:5:poison'")).scalar_one()
        assert "refused by the test" in reason
    finally:
        await restarted.close(2)


async def test_a_rejection_the_database_will_not_record_is_retried_a_bounded_number_of_times(tmp_path: Path, caplog) -> None:
    """Even marking the message rejected is refused: a few attempts, then one line that says what happens."""
    from hux.bot.persistence import MARK_ATTEMPTS
    from hux.bot.store import MessageResult, TokenResult

    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics)

    def refuse() -> None:
        with persistence.store.engine.begin() as conn:
            conn.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT ON mentions WHEN NEW.message_key LIKE '%poison%' "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
            conn.execute(text("CREATE TRIGGER refuse_rejected BEFORE UPDATE ON inbox WHEN NEW.status = 'rejected' "
                              "BEGIN SELECT RAISE(ABORT, 'no rejections here'); END"))

    await asyncio.to_thread(refuse)
    keys = ["telegram:6:1", "telegram:6:poison"]
    assert await intake.accept([message(k) for k in keys]) == 2
    errors_before = metric_value(metrics.registry, "hux_database_errors_total", operation="write")
    for key in keys:
        token = TokenResult(key=MINT, address=MINT, chain="solana", kind="solana", outcome="below_threshold",
                            decided_at=float(NOW), score=10.0)
        await persistence.submit(MessageResult(message(key), [token], processed_at=float(NOW)))
    with caplog.at_level("ERROR", logger="hux.bot.store"):
        assert await wait_for(lambda: any("could not be marked rejected" in r.getMessage() for r in caplog.records), 20)
    assert persistence.pending == 0 and persistence.unmarked == 0, "given up on, not retried forever"
    line = next(r.getMessage() for r in caplog.records if "could not be marked rejected" in r.getMessage())
    assert f"after {MARK_ATTEMPTS} attempts" in line and "processed again at the next start" in line
    assert metric_value(metrics.registry, "hux_database_errors_total", operation="write") - errors_before == MARK_ATTEMPTS
    assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="unstorable") == 1
    assert metric_value(metrics.registry, "hux_database_up") == 1
    await asyncio.sleep(1.0)  # nothing more is tried
    assert metric_value(metrics.registry, "hux_database_errors_total", operation="write") - errors_before == MARK_ATTEMPTS
    counts = await asyncio.to_thread(persistence.store.counts)
    assert counts["inbox_pending"] == 1 and counts["mentions"] == 1
    await persistence.close(2)


async def test_a_spooled_message_the_database_refuses_is_not_recovered(tmp_path: Path) -> None:
    """Recovery drains the spool first: a message the inbox refused there is counted once, never processed."""
    from hux.bot.persistence import Spool
    from hux.bot.store import Store

    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT ON inbox WHEN NEW.text LIKE '%poison%' "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
    store.dispose()
    Spool(tmp_path / "spool" / "intake.jsonl").append([message("telegram:7:1"), message("telegram:7:2", "poison")])
    metrics = BotMetrics(process_metrics=False)
    _, persistence = await make_intake(tmp_path, metrics)
    try:
        assert [m.key for m in await persistence.recover()] == ["telegram:7:1"]
        assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="unstorable") == 1
    finally:
        await persistence.close(2)


async def test_a_database_that_answers_but_refuses_intake_is_not_down(tmp_path: Path, pg_database, caplog) -> None:
    """PostgreSQL turned read-only (SQLSTATE 25006) answers every probe: intake is spooled and counted, not an outage."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = pg_database()
    metrics = BotMetrics(process_metrics=False)
    intake, persistence = await make_intake(tmp_path, metrics, url=url)
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def read_only(on: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}'))
        persistence.store.engine.dispose()  # new sessions take the setting

    try:
        await asyncio.to_thread(read_only, True)
        with caplog.at_level("ERROR", logger="hux.bot.store"):
            assert await intake.accept([message("telegram:8:1")]) == 1
        assert persistence.spool, "kept in the spool until the database takes writes again"
        assert metric_value(metrics.registry, "hux_database_errors_total", operation="intake") >= 1
        said = [r.getMessage() for r in caplog.records]
        assert not any("database unreachable" in line for line in said), said
        assert any("refused intake" in line and "privileges" in line for line in said), said
        assert metric_value(metrics.registry, "hux_messages_rejected_total", source="telegram", reason="unstorable") == 0

        await asyncio.to_thread(read_only, False)
        assert await wait_for(lambda: not persistence.spool, 10)
        assert (await asyncio.to_thread(persistence.store.counts))["inbox"] == 1
    finally:
        await persistence.close(2)
        admin.dispose()
