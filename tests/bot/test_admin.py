"""Admin commands from Telegram: a live-mode bot polling the Telegram double, on real SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hux.bot import samplefeed
from hux.bot.admin import CommandError, parse_duration, stored_threshold
from hux.doubles.market import RunningDoubles, start_doubles
from tests.bot.conftest import bot_config, metric_value, running_bot, wait_until
from tests.bot.test_run import known_mint

TOKEN = "1000000001:demo-token-for-the-local-double"
ALERT_CHAT = -1001234567890
ADMIN, OTHER_ADMIN, STRANGER = 111, 222, 999


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path, pg_database) -> str:
    return f"sqlite:///{tmp_path / 'admin.db'}" if request.param == "sqlite" else pg_database()


def _config(doubles: RunningDoubles, database_url: str) -> Any:
    return bot_config(
        database_url=database_url, alert_threshold=90.0, cooldown_seconds=0.0,
        telegram={"api_base": doubles.url("telegram"), "alert_chat_id": str(ALERT_CHAT), "poll_timeout_seconds": 1,
                  "admin_user_ids": [ADMIN, OTHER_ADMIN], "admin_commands_per_minute": 8.0},
        dexscreener={"base_url": doubles.url("dexscreener"), "cache_ttl_seconds": 0.0},
        rugcheck={"base_url": doubles.url("rugcheck")},
    )


async def _known_mint(doubles: RunningDoubles) -> str:
    async with httpx.AsyncClient() as http:
        return await known_mint(http, doubles.url("dexscreener"))


def _command(doubles: RunningDoubles, text: str, user: int = ADMIN) -> None:
    doubles.telegram.inject_message(text, chat_id=ALERT_CHAT, chat_title="Hux alerts", user_id=user)


async def _reply(doubles: RunningDoubles, count: int) -> dict[str, Any]:
    """The ``count``-th message the bot sent to the alert chat."""
    def sent() -> list[dict[str, Any]]:
        return [m for m in doubles.telegram.sent if str(m["chat_id"]) == str(ALERT_CHAT)]
    assert await wait_until(lambda: len(sent()) >= count, timeout=15), [m["text"] for m in sent()]
    return sent()[count - 1]


async def test_admins_manage_the_bot_from_the_alert_chat_and_what_they_set_survives_a_restart(
        hux_home: Path, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hux.bot.admin")
    doubles = await start_doubles()
    try:
        mint = await _known_mint(doubles)
        config = _config(doubles, database_url)
        async with running_bot(config, token=TOKEN, demo=False) as app:
            registry = app.metrics.registry
            # a stranger's command in the alert chat: nothing at all, counted
            _command(doubles, "/threshold 1", user=STRANGER)
            assert await wait_until(lambda: metric_value(registry, "hux_admin_commands_total", command="threshold",
                                                         outcome="refused") == 1)
            assert app.pipeline.settings.alert_threshold == 90.0

            _command(doubles, "/status")
            status = await _reply(doubles, 1)
            assert "database up" in status["text"] and "alert threshold 90" in status["text"] and "telegram" in status["text"]

            _command(doubles, "/threshold 5")  # low enough that the token below would be alerted
            assert "90 → <b>5</b>" in (await _reply(doubles, 2))["text"]
            assert app.pipeline.settings.alert_threshold == 5.0
            assert metric_value(registry, "hux_alert_score_threshold") == 5.0

            _command(doubles, f"/mute {mint} 2h")
            assert "no alert for it" in (await _reply(doubles, 3))["text"]
            doubles.telegram.inject_message(f"aping {mint}", chat_title="Alpha Hunters")
            assert await wait_until(lambda: metric_value(registry, "hux_tokens_processed_total", outcome="muted") == 1)
            assert metric_value(registry, "hux_alerts_sent_total", channel="telegram", outcome="success") == 0
            assert await wait_until(lambda: app.persistence.store.token_detail(mint) is not None)  # written

            _command(doubles, f"/why {mint}")
            why = await _reply(doubles, 4)
            assert mint in why["text"] and "Latest: muted, score <b>" in why["text"] and "•" in why["text"]
            buttons = [b for row in why["reply_markup"]["inline_keyboard"] for b in row]
            assert [b["callback_data"] for b in buttons] == [f"mute:{mint}:24h", f"mute:{mint}:7d"]
            print("/why reply as sent:\n" + why["text"])

            # a button saves typing: the press is answered and obeyed like the command
            doubles.telegram.inject_callback(buttons[1]["callback_data"], user_id=ADMIN, chat_id=ALERT_CHAT)
            assert "for 7d" in (await _reply(doubles, 5))["text"]
            assert len(doubles.telegram.answered) == 1

            _command(doubles, "/top 24h")
            top = await _reply(doubles, 6)
            assert "Top tokens" in top["text"] or "No token scored" in top["text"]
            _command(doubles, "/sources")
            assert "Alpha Hunters" in (await _reply(doubles, 7))["text"]

            _command(doubles, "/mute not-an-address")
            assert "is not a token address" in (await _reply(doubles, 8))["text"]
            assert metric_value(registry, "hux_admin_commands_total", command="mute", outcome="invalid") == 1

            # rate limit per admin: 8 a minute, the 9th is ignored
            for _ in range(9):
                _command(doubles, "/status", user=OTHER_ADMIN)
            assert await wait_until(lambda: metric_value(registry, "hux_admin_commands_total", command="status",
                                                         outcome="rate_limited") == 1)
            await _reply(doubles, 16)
            assert metric_value(registry, "hux_admin_commands_total", command="status", outcome="done") == 9
        audit = [r.getMessage() for r in caplog.records if r.name == "hux.bot.admin"]
        assert "admin command /threshold by user 999: refused" in audit
        assert "admin command /threshold by user 111: done" in audit

        # restart on the same database: the threshold and the mute are still in force
        async with running_bot(config, token=TOKEN, demo=False) as app:
            assert app.pipeline.settings.alert_threshold == 5.0
            assert metric_value(app.metrics.registry, "hux_alert_score_threshold") == 5.0
            assert app.pipeline.mutes.muted(mint) and not app.pipeline.mutes.muted(mint, now=time.time() + 8 * 86400)
    finally:
        await doubles.stop()


def test_command_arguments_are_checked() -> None:
    assert parse_duration("30m") == 1800 and parse_duration("2D") == 172800
    for bad in ("0m", "31d", "1w", "-1h", "1e9h", "h", ""):
        with pytest.raises(CommandError):
            parse_duration(bad)
    assert stored_threshold("55.0") == 55.0
    assert stored_threshold("nan") is None and stored_threshold("101") is None and stored_threshold("x") is None
    assert stored_threshold(None) is None


async def test_the_telegram_double_checks_inline_keyboards_and_callback_answers_as_telegram_does() -> None:
    doubles = await start_doubles()
    base = f"{doubles.url('telegram')}/bot{TOKEN}"
    try:
        async with httpx.AsyncClient() as http:
            def markup(data: str) -> dict[str, Any]:
                return {"inline_keyboard": [[{"text": "Why", "callback_data": data}]]}
            ok = await http.post(f"{base}/sendMessage", json={"chat_id": ALERT_CHAT, "text": "hi", "reply_markup": markup("why:x")})
            assert ok.json()["result"]["reply_markup"] == markup("why:x")
            too_long = await http.post(f"{base}/sendMessage", json={"chat_id": ALERT_CHAT, "text": "hi",
                                                                   "reply_markup": markup("x" * 65)})
            assert too_long.status_code == 400 and too_long.json()["description"] == "Bad Request: BUTTON_DATA_INVALID"
            not_rows = await http.post(f"{base}/sendMessage", json={"chat_id": ALERT_CHAT, "text": "hi",
                                                                    "reply_markup": {"inline_keyboard": [{"text": "x"}]}})
            assert not_rows.status_code == 400
            update = doubles.telegram.inject_callback("why:x", user_id=ADMIN, chat_id=ALERT_CHAT)
            query = update["callback_query"]
            assert query["from"]["id"] == ADMIN and query["message"]["chat"]["id"] == ALERT_CHAT and query["data"] == "why:x"
            first = await http.post(f"{base}/answerCallbackQuery", json={"callback_query_id": query["id"]})
            again = await http.post(f"{base}/answerCallbackQuery", json={"callback_query_id": query["id"]})
            assert first.json() == {"ok": True, "result": True} and again.status_code == 400
    finally:
        await doubles.stop()


async def test_each_group_has_its_own_threshold_mute_and_outputs(hux_home: Path, database_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    doubles = await start_doubles()
    monkeypatch.setenv("HUX_TEST_PARTNER_HOOK", f"{doubles.url('webhook')}/hooks/partner")
    try:
        rng, mints = random.Random(7), []
        while len(mints) < 3:
            mint = samplefeed.solana_mint(rng)
            if doubles.market.pairs(mint):
                mints.append(mint)
        config = bot_config(
            database_url=database_url, alert_threshold=100.0, cooldown_seconds=0.0,
            telegram={"api_base": doubles.url("telegram"), "alert_chat_id": str(ALERT_CHAT), "poll_timeout_seconds": 1},
            dexscreener={"base_url": doubles.url("dexscreener")}, rugcheck={"base_url": doubles.url("rugcheck")},
            outputs=[{"name": "vip", "type": "telegram", "chat_id": "-100555", "rate_limit_per_minute": 60.0},
                     {"name": "partner", "type": "webhook", "url_env": "HUX_TEST_PARTNER_HOOK"}],
            groups=[{"group": "Alpha Hunters", "alert_threshold": 0.0, "outputs": ["vip", "partner"]},
                    {"group": "Muted Group", "alert_threshold": 0.0, "muted": True}],
        )
        async with running_bot(config, token=TOKEN, demo=False) as app:
            registry = app.metrics.registry
            doubles.telegram.inject_message(f"gem {mints[0]}", chat_title="Alpha Hunters")
            assert await wait_until(lambda: metric_value(registry, "hux_alerts_sent_total", channel="partner",
                                                         outcome="success") == 1)
            assert metric_value(registry, "hux_alerts_sent_total", channel="vip", outcome="success") == 1
            assert metric_value(registry, "hux_alerts_sent_total", channel="telegram", outcome="success") == 0
            assert [str(m["chat_id"]) for m in doubles.telegram.sent] == ["-100555"]
            assert [r["name"] for r in doubles.webhook_received] == ["partner"]

            doubles.telegram.inject_message(f"gem {mints[1]}", chat_title="Muted Group")
            doubles.telegram.inject_message(f"gem {mints[2]}", chat_title="Elsewhere")
            assert await wait_until(lambda: metric_value(registry, "hux_tokens_processed_total", outcome="muted") == 1
                                    and metric_value(registry, "hux_tokens_processed_total", outcome="below_threshold") == 1)
            assert len(doubles.telegram.sent) == 1 and len(doubles.webhook_received) == 1
    finally:
        await doubles.stop()


def test_group_routes_name_outputs_that_exist() -> None:
    from hux.bot.config import BotConfig

    with pytest.raises(ValueError, match="routes to unknown output"):
        BotConfig.model_validate({"groups": [{"group": "g", "outputs": ["vip"]}]})
    with pytest.raises(ValueError, match="needs url_env"):
        BotConfig.model_validate({"outputs": [{"name": "w", "type": "webhook"}]})
    with pytest.raises(ValueError, match="not telegram or webhook"):
        BotConfig.model_validate({"outputs": [{"name": "telegram", "type": "telegram", "chat_id": "1"}]})
    with pytest.raises(ValueError, match="listed twice"):
        BotConfig.model_validate({"groups": [{"group": "g"}, {"group": "g"}]})


async def test_each_output_keeps_its_own_pace() -> None:
    from hux.bot.metrics import BotMetrics
    from hux.bot.outputs import TokenAlert, WebhookOutput, deliver

    doubles = await start_doubles()
    metrics = BotMetrics(process_metrics=False)
    slow = WebhookOutput.create(f"{doubles.url('webhook')}/hooks/slow", metrics, name="slow", rate_limit_per_minute=60.0)
    fast = WebhookOutput.create(f"{doubles.url('webhook')}/hooks/fast", metrics, name="fast")
    alert = TokenAlert("So11111111111111111111111111111111111111112", "solana", "AAA", 80.0, 1.0, 1e5, 1e5, 1.0, None,
                       ("g",), "https://dexscreener.com/solana/x", ("r",))
    try:
        started = time.monotonic()
        for _ in range(4):  # a burst of 3, then one a second
            await deliver(alert, [fast], metrics)
        fast_took = time.monotonic() - started
        started = time.monotonic()
        for _ in range(4):
            await deliver(alert, [slow], metrics)
        slow_took = time.monotonic() - started
        assert fast_took < 0.5 <= 0.8 <= slow_took
        assert metric_value(metrics.registry, "hux_alerts_sent_total", channel="slow", outcome="success") == 4
        assert metric_value(metrics.registry, "hux_alerts_sent_total", channel="fast", outcome="success") == 4
    finally:
        await slow.aclose()
        await fast.aclose()
        await doubles.stop()


async def test_every_instance_obeys_what_an_admin_sets_through_the_leader(hux_home: Path, pg_database) -> None:
    doubles = await start_doubles()
    try:
        config = _config(doubles, pg_database())
        config = config.model_copy(update={"telegram": config.telegram.model_copy(update={"admin_sync_seconds": 0.2})})
        mint = "So11111111111111111111111111111111111111112"
        async with running_bot(config, token=TOKEN, demo=False) as first, \
                running_bot(config, token=TOKEN, demo=False) as second:
            _command(doubles, "/threshold 42")
            _command(doubles, f"/mute {mint} 1h")
            await _reply(doubles, 2)
            for app in (first, second):
                assert await wait_until(lambda app=app: app.pipeline.settings.alert_threshold == 42.0
                                        and app.pipeline.mutes.muted(mint), timeout=10)
                assert metric_value(app.metrics.registry, "hux_alert_score_threshold") == 42.0
    finally:
        await doubles.stop()
