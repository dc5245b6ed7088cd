"""Output channels against the Telegram and webhook doubles over real loopback HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from hux.bot.clients.http import ApiError, RequestContext
from hux.bot.clients.resilience import RateLimiter
from hux.bot.clients.telegram import TelegramBotApi
from hux.bot.metrics import BotMetrics
from hux.bot.outputs import (
    TelegramOutput,
    TokenAlert,
    WebhookOutput,
    deliver,
    format_telegram,
    webhook_payload,
)
from hux.doubles.faults import FaultSettings
from hux.doubles.market import RunningDoubles, start_doubles
from hux.doubles.telegram import check_html
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(30)

TOKEN = "555000111:AAoutputOUTPUToutput_token_42"
CHAT = -1001234567890
FAST = {"backoff_base": 0.01, "backoff_max": 0.5, "timeout": 2.0, "max_retries": 2}

ALERT = TokenAlert(
    address="7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr",
    chain="solana",
    symbol="<b>PEPE&CO</b>",
    score=83.6,
    price_usd=0.000012345,
    liquidity_usd=125_000.0,
    volume_h24=980_000.0,
    price_change_h1=-4.25,
    risk_level="warn",
    groups=("Alpha <Hunters>", "Degen & Co", "g3", "g4", "g5", "g6"),
    url="https://dexscreener.com/solana/abc?x=1&y=<2>",
    reasons=("liquidity $125k", "momentum > 10%"),
)


@pytest.fixture
async def doubles():
    running = await start_doubles("127.0.0.1", 0, seed=3)
    yield running
    await running.stop()


@pytest.fixture
def metrics() -> BotMetrics:
    return BotMetrics(process_metrics=False)


@pytest.fixture
async def telegram_api(doubles: RunningDoubles, metrics: BotMetrics):
    api = TelegramBotApi.create(TOKEN, metrics, doubles.url("telegram"), **FAST)
    yield api
    await api.aclose()


@pytest.fixture
async def webhook(doubles: RunningDoubles, metrics: BotMetrics):
    output = WebhookOutput.create(f"{doubles.url('webhook')}/hooks/alerts", metrics, **FAST)
    yield output
    await output.aclose()


def sent(metrics: BotMetrics, channel: str, outcome: str) -> float:
    return metrics.registry.get_sample_value("hux_alerts_sent_total", {"channel": channel, "outcome": outcome}) or 0.0


async def test_alert_reaches_both_channels(doubles: RunningDoubles, metrics: BotMetrics, telegram_api, webhook) -> None:
    channels = [TelegramOutput(telegram_api, CHAT, rate_limit_per_minute=None), webhook]
    assert await deliver(ALERT, channels, metrics) == {"telegram": True, "webhook": True}
    assert sent(metrics, "telegram", "success") == 1 and sent(metrics, "webhook", "success") == 1

    message = doubles.telegram.sent[-1]
    assert message["chat_id"] == CHAT and message["parse_mode"] == "HTML"
    shown = message["message"]["text"]  # what a reader sees after Telegram parsed the HTML
    assert "<b>PEPE&CO</b> scored 84/100" in shown and ALERT.address in shown
    assert "Alpha <Hunters>" in shown and "+1 more" in shown and "-4.2%" in shown

    received = doubles.webhook_received[-1]
    assert received["name"] == "alerts"
    payload = received["payload"]
    assert payload["type"] == "token_alert" and payload["version"] == 1 and payload["sent_at"]
    assert payload["alert"]["address"] == ALERT.address and payload["alert"]["groups"] == list(ALERT.groups)
    assert payload["alert"]["score"] == 83.6 and payload["alert"]["risk_level"] == "warn"


def test_telegram_text_escapes_every_value() -> None:
    text = format_telegram(ALERT)
    assert check_html(text) is None, "Telegram would refuse it with can't parse entities"
    assert "&lt;b&gt;PEPE&amp;CO&lt;/b&gt;" in text and 'href="https://dexscreener.com/solana/abc?x=1&amp;y=&lt;2&gt;"' in text
    odd = TokenAlert("addr", "evm", "", 0.0, None, 0.0, 0.0, 0.0, None, (), "javascript:alert(1)", ())
    odd_text = format_telegram(odd)
    assert check_html(odd_text) is None and "javascript" not in odd_text and "n/a" in odd_text


def test_webhook_payload_is_plain_json() -> None:
    payload = webhook_payload(ALERT)
    assert payload["alert"]["reasons"] == ["liquidity $125k", "momentum > 10%"]
    assert set(payload) == {"type", "version", "sent_at", "alert"}


async def test_a_channel_rejecting_everything_does_not_stop_the_others(
    doubles: RunningDoubles, metrics: BotMetrics, telegram_api, webhook
) -> None:
    doubles.faults["webhook"].set(FaultSettings(error_rate=1.0, error_status=500))
    channels = [webhook, TelegramOutput(telegram_api, CHAT, rate_limit_per_minute=None)]
    for _ in range(3):
        assert await deliver(ALERT, channels, metrics) == {"webhook": False, "telegram": True}
    assert sent(metrics, "webhook", "failure") == 3 and sent(metrics, "webhook", "success") == 0
    assert sent(metrics, "telegram", "success") == 3
    assert len(doubles.telegram.sent) == 3
    # The first delivery was retried (1 + max_retries attempts); after 5 consecutive failures the
    # webhook's circuit opened and the later deliveries failed fast without hammering the receiver.
    assert doubles.faults["webhook"].stats["hook"]["500"] == 5
    retried = metrics.registry.get_sample_value("hux_api_retries_total", {"api": "webhook", "reason": "server_error"})
    assert retried >= FAST["max_retries"]
    assert metrics.registry.get_sample_value(
        "hux_api_requests_total", {"api": "webhook", "endpoint": "alert", "outcome": "circuit_open"}
    ) >= 1
    assert metrics.registry.get_sample_value("hux_api_circuit_state", {"api": "webhook"}) == 2


async def test_telegram_refusing_the_chat_is_a_counted_failure_without_retries(
    doubles: RunningDoubles, metrics: BotMetrics, telegram_api, webhook, caplog: pytest.LogCaptureFixture
) -> None:
    doubles.telegram.known_chats = {-1}  # the configured chat does not exist
    caplog.set_level(logging.WARNING, logger="hux.bot.outputs")
    result = await deliver(ALERT, [TelegramOutput(telegram_api, CHAT, rate_limit_per_minute=None), webhook], metrics)
    assert result == {"telegram": False, "webhook": True}
    assert sent(metrics, "telegram", "failure") == 1
    assert doubles.faults["telegram"].stats["sendMessage"] == {"400": 1}, "a 400 is not retried"
    assert "chat not found" in caplog.text and TOKEN.split(":")[1] not in caplog.text


async def test_rate_limited_telegram_is_retried_then_delivered(doubles: RunningDoubles, metrics: BotMetrics) -> None:
    injector = doubles.faults["telegram"]
    injector.set(FaultSettings(rate_limit_status_rate=1.0, retry_after=1))
    patient = TelegramBotApi.create(TOKEN, metrics, doubles.url("telegram"), **{**FAST, "backoff_max": 2.0})
    output = TelegramOutput(patient, CHAT, rate_limit_per_minute=None)
    delivery = asyncio.create_task(deliver(ALERT, [output], metrics))
    for _ in range(200):  # until the first 429 went out
        if injector.stats["sendMessage"].get("429"):
            break
        await asyncio.sleep(0.01)
    injector.reset()
    assert await asyncio.wait_for(delivery, 10) == {"telegram": True}
    await patient.aclose()
    assert metrics.registry.get_sample_value(
        "hux_api_requests_total", {"api": "telegram", "endpoint": "sendMessage", "outcome": "rate_limited"}
    ) >= 1
    assert sent(metrics, "telegram", "success") == 1


async def test_unreachable_webhook_and_broken_channel_never_raise(metrics: BotMetrics, caplog: pytest.LogCaptureFixture) -> None:
    class BrokenChannel:
        name = "webhook"

        async def send(self, alert: TokenAlert, *, context: RequestContext | None = None) -> None:
            raise RuntimeError(f"bug while sending to https://api.telegram.org/bot{TOKEN}/sendMessage")

    secret_path = "/hooks/T0001/B0002/s3cr3tWebhookKey"
    unreachable = WebhookOutput.create(f"http://127.0.0.1:{free_port()}{secret_path}", metrics, **FAST)
    result = await deliver(ALERT, [unreachable, BrokenChannel()], metrics)
    await unreachable.aclose()
    assert result == {"webhook": False}
    assert sent(metrics, "webhook", "failure") == 2
    assert "s3cr3tWebhookKey" not in caplog.text and TOKEN.split(":")[1] not in caplog.text
    assert "RuntimeError" in caplog.text and "connection_error" in caplog.text


async def test_telegram_output_paces_itself(doubles: RunningDoubles, metrics: BotMetrics, telegram_api) -> None:
    output = TelegramOutput(telegram_api, CHAT, rate_limit_per_minute=600, burst=1)  # 10 per second
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(output.send(ALERT) for _ in range(4)))
    assert loop.time() - started >= 3 / 10 * 0.9
    assert len(doubles.telegram.sent) == 4


def test_channel_constructors_refuse_bad_settings(metrics: BotMetrics) -> None:
    with pytest.raises(ValueError, match="alert_chat_id"):
        TelegramOutput(None, "")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[bot.webhook\] url"):
        WebhookOutput.create("ftp://example.org/hook", metrics)


async def test_send_raises_api_error_for_the_caller(doubles: RunningDoubles, metrics: BotMetrics, webhook) -> None:
    doubles.faults["webhook"].set(FaultSettings(error_rate=1.0, error_status=403))
    with pytest.raises(ApiError) as caught:
        await webhook.send(ALERT)
    assert caught.value.outcome == "client_error" and caught.value.status == 403


async def test_a_calm_chats_alert_goes_ahead_of_a_flooding_chats_queued_alerts(
    doubles: RunningDoubles, metrics: BotMetrics, telegram_api
) -> None:
    """The chat whose message found the token travels with the alert to the output's limiter, which
    serves chats in turn. A fake clock moved by whole tokens: release order, never speed."""
    now = [0.0]
    tick = 1 / 1024
    output = TelegramOutput(telegram_api, CHAT, rate_limit_per_minute=60, burst=1)
    output._limiter = RateLimiter(1024, burst=1, clock=lambda: now[0])  # the same limiter on a clock the test moves
    flood, calm = RequestContext(chat="telegram:-666"), RequestContext(chat="telegram:-1")

    def alert(symbol: str) -> TokenAlert:
        return dataclasses.replace(ALERT, symbol=symbol)

    async def settle(count: int) -> None:
        for _ in range(500):  # bounded: 5 s
            if len(doubles.telegram.sent) >= count:
                break
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(deliver(alert(f"flood{i}"), [output], metrics, context=flood)) for i in range(4)]
    await settle(1)  # flood0 took the one token; the rest of the flood waits
    tasks.append(asyncio.create_task(deliver(alert("calm"), [output], metrics, context=calm)))
    for expected in range(2, 6):
        await asyncio.sleep(0.01)
        now[0] += tick
        await settle(expected)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    order = [m["message"]["text"].split(" scored")[0].removeprefix("🚨 ") for m in doubles.telegram.sent]
    # In arrival order the calm chat's alert would wait behind the whole flood.
    assert order == ["flood0", "calm", "flood1", "flood2", "flood3"]
