"""Output channels: where token alerts go (a Telegram chat, a generic JSON webhook).

Each channel retries through its ``ApiClient`` (429/5xx/timeouts, with
backoff) and raises ``ApiError`` when it gives up. ``deliver()`` sends one
alert to every channel at once, counts each outcome in
``hux_alerts_sent_total{channel,outcome}``, and never raises: one channel that
rejects everything does not stop the others, nor the pipeline. The chat whose
message found the token travels with the alert (``RequestContext``): the
Telegram output's pacing serves chats in turn, so one chat's flood of
alert-worthy tokens does not hold back another chat's alert (nor its
decision, which waits for delivery).

Delivery is at least once: a retry after a timeout may repeat a message the
provider did receive.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import httpx

from hux.bot.clients.http import NO_CONTEXT, ApiClient, ApiError, RequestContext
from hux.bot.clients.resilience import RateLimiter
from hux.bot.clients.telegram import GROUP_MESSAGES_PER_MINUTE, TelegramBotApi
from hux.bot.config import OUTPUT_NAME_RE
from hux.bot.logsetup import redact
from hux.bot.metrics import OTHER, BotMetrics

log = logging.getLogger("hux.bot.outputs")

#: Values of the ``channel`` label.
OUTPUT_CHANNELS = ("telegram", "webhook")
WEBHOOK_PAYLOAD_TYPE = "token_alert"
FOLLOW_UP_PAYLOAD_TYPE = "call_rugged"
WEBHOOK_PAYLOAD_VERSION = 1


@dataclass(frozen=True)
class TokenAlert:
    address: str
    chain: str
    symbol: str
    score: float
    price_usd: float | None
    liquidity_usd: float
    volume_h24: float
    price_change_h1: float
    risk_level: str | None
    groups: tuple[str, ...]
    url: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class CallFollowUp:
    """An alerted token rugged: what the follow-up to the alert's channel says."""

    address: str
    chain: str
    symbol: str
    horizon: str                  # the re-check that found it (metrics.CALL_HORIZON_LABELS)
    alerted_at: float             # Unix time of the alert
    price_multiple: float | None  # price now / price at the alert
    liquidity_at_alert_usd: float
    liquidity_now_usd: float


class OutputChannel(Protocol):
    name: str  # "telegram" | "webhook": the metric label

    async def send(self, alert: TokenAlert, *, context: RequestContext = NO_CONTEXT) -> None:
        """Deliver ``alert`` found in ``context.chat``; raise (ApiError) when the channel's own retries are exhausted."""
        ...

    async def send_follow_up(self, follow_up: CallFollowUp) -> None:
        """Deliver a follow-up about an earlier alert; raise (ApiError) when the channel gives up."""
        ...


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 1:
        return f"${value:,.2f}"
    if value <= 0:
        return "$0"
    return f"${value:.10f}".rstrip("0")


def format_telegram(alert: TokenAlert) -> str:
    """The alert as Telegram HTML (parse_mode=HTML): every value escaped, only b/code/a tags."""
    e = html.escape
    symbol = e(alert.symbol or "?")
    lines = [
        f"🚨 <b>{symbol}</b> scored <b>{alert.score:.0f}</b>/100",
        f"Chain: {e(alert.chain)} · Risk: {e(alert.risk_level or 'unknown')}",
        f"Price: {_money(alert.price_usd)} · Liquidity: {_money(alert.liquidity_usd)}",
        f"Volume 24h: {_money(alert.volume_h24)} · 1h change: {alert.price_change_h1:+.1f}%",
        f"<code>{e(alert.address)}</code>",
    ]
    if alert.groups:
        shown = ", ".join(alert.groups[:5]) + (f" +{len(alert.groups) - 5} more" if len(alert.groups) > 5 else "")
        lines.append(f"Mentioned in: {e(shown)}")
    if alert.reasons:
        lines.append("Why: " + e("; ".join(alert.reasons[:6])))
    if alert.url.startswith(("https://", "http://")):
        lines.append(f'<a href="{e(alert.url, quote=True)}">Chart</a>')
    return "\n".join(lines)


def format_follow_up_telegram(follow_up: CallFollowUp) -> str:
    """The rug follow-up as Telegram HTML, escaped like the alert."""
    e = html.escape
    alerted = datetime.fromtimestamp(follow_up.alerted_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    drop = 100.0 * (1.0 - follow_up.liquidity_now_usd / follow_up.liquidity_at_alert_usd) if follow_up.liquidity_at_alert_usd else 100.0
    multiple = "n/a" if follow_up.price_multiple is None else f"{follow_up.price_multiple:.2f}x"
    return "\n".join([
        f"⚠️ <b>{e(follow_up.symbol or '?')}</b> rugged: liquidity pulled {drop:.0f}% since the alert",
        f"Alerted {alerted} · checked at +{e(follow_up.horizon)}",
        f"Liquidity: {_money(follow_up.liquidity_at_alert_usd)} → {_money(follow_up.liquidity_now_usd)} · Price: {multiple}",
        f"<code>{e(follow_up.address)}</code>",
    ])


def follow_up_payload(follow_up: CallFollowUp) -> dict[str, Any]:
    """The JSON body of a rug follow-up on the webhook (documented in the README)."""
    return {
        "type": FOLLOW_UP_PAYLOAD_TYPE,
        "version": WEBHOOK_PAYLOAD_VERSION,
        "sent_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "follow_up": asdict(follow_up),
    }


def webhook_payload(alert: TokenAlert) -> dict[str, Any]:
    """The JSON body the webhook receives (documented in the README)."""
    body = asdict(alert)
    body["groups"] = list(alert.groups)
    body["reasons"] = list(alert.reasons)
    return {
        "type": WEBHOOK_PAYLOAD_TYPE,
        "version": WEBHOOK_PAYLOAD_VERSION,
        "sent_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "alert": body,
    }


class TelegramOutput:
    """Posts alerts to one chat with ``sendMessage``, at most ``rate_limit_per_minute`` per minute.

    Telegram asks bots to stay under about 20 messages per minute per group;
    the pacing here is the channel's own, so a ``TelegramBotApi`` shared with
    the long-polling source keeps its polls unthrottled. Waiting alerts are
    released by the chat they were found in, in turn (``RateLimiter``).
    """

    name = "telegram"

    def __init__(
        self,
        api: TelegramBotApi,
        chat_id: int | str,
        *,
        rate_limit_per_minute: float | None = GROUP_MESSAGES_PER_MINUTE,
        burst: int = 3,
        name: str = "telegram",
    ) -> None:
        if chat_id in (None, ""):
            raise ValueError("Telegram output needs a chat id: set alert_chat_id in [bot.telegram]")
        self.name = name  # "telegram", or a [[bot.outputs]] name
        self.api = api
        self.chat_id = chat_id
        self._limiter = RateLimiter(rate_limit_per_minute / 60.0, burst) if rate_limit_per_minute else None

    async def send(self, alert: TokenAlert, *, context: RequestContext = NO_CONTEXT) -> None:
        if self._limiter is not None:
            await self._limiter.acquire(context.chat)
        await self.api.send_message(self.chat_id, format_telegram(alert), parse_mode="HTML")

    async def send_follow_up(self, follow_up: CallFollowUp) -> None:
        if self._limiter is not None:
            await self._limiter.acquire(NO_CONTEXT.chat)
        await self.api.send_message(self.chat_id, format_follow_up_telegram(follow_up), parse_mode="HTML")


class WebhookOutput:
    """POSTs each alert as JSON to one URL; any 2xx answer counts as delivered."""

    name = "webhook"

    def __init__(self, http: ApiClient, path: str = "", *, name: str = "webhook",
                 rate_limit_per_minute: float | None = None) -> None:
        self.http = http
        self.path = path
        self.name = name  # "webhook", or a [[bot.outputs]] name
        self._limiter = RateLimiter(rate_limit_per_minute / 60.0, 3) if rate_limit_per_minute else None

    @classmethod
    def create(cls, url: str, metrics: BotMetrics, *, name: str = "webhook", rate_limit_per_minute: float | None = None,
               **http_options: Any) -> "WebhookOutput":
        """A webhook output for ``url``. The URL's path and query are treated as secrets (they often are tokens)."""
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"webhook url must be http(s)://host/path, got {redact(url)[:80]!r}: fix [bot.webhook] url")
        origin = str(parsed.copy_with(path="/", query=None, fragment=None)).rstrip("/")
        path = parsed.raw_path.decode("ascii") or "/"
        secrets = tuple(http_options.pop("secrets", ()))
        if path != "/":
            secrets += (path, parsed.path)
        http = ApiClient("webhook", origin, metrics, secrets=secrets, endpoints=("alert", "follow_up"), **http_options)
        return cls(http, path, name=name, rate_limit_per_minute=rate_limit_per_minute)

    async def send(self, alert: TokenAlert, *, context: RequestContext = NO_CONTEXT) -> None:
        if self._limiter is not None:
            await self._limiter.acquire(context.chat)
        await self.http.post_json("alert", self.path, webhook_payload(alert), expect_json=False, context=context)

    async def send_follow_up(self, follow_up: CallFollowUp) -> None:
        if self._limiter is not None:
            await self._limiter.acquire(NO_CONTEXT.chat)
        await self.http.post_json("follow_up", self.path, follow_up_payload(follow_up), expect_json=False)

    async def aclose(self) -> None:
        await self.http.aclose()


def channel_label(name: str) -> str:
    """The ``channel`` label: the default outputs' names and the configured outputs' (checked by the settings:
    at most 16, lower-case words), anything else ``other``."""
    return name if name in OUTPUT_CHANNELS or OUTPUT_NAME_RE.fullmatch(name) else OTHER


async def deliver(alert: TokenAlert, channels: Sequence[OutputChannel], metrics: BotMetrics, *,
                  context: RequestContext = NO_CONTEXT) -> dict[str, bool]:
    """Send ``alert`` to every channel concurrently; ``{channel name: delivered}``. Never raises (except cancellation).

    ``context``: the chat the alert's token was found in (channels that pace themselves serve chats in turn).
    """

    async def one(channel: OutputChannel) -> bool:
        try:
            await channel.send(alert, context=context)
            delivered = True
        except asyncio.CancelledError:
            raise
        except ApiError as exc:  # already redacted, names the API and what to do
            log.warning("alert not delivered to %s: %s", channel.name, exc)
            delivered = False
        except Exception as exc:  # noqa: BLE001 - a channel bug must not take the pipeline down
            log.error("alert not delivered to %s: unexpected %s: %s", channel.name, type(exc).__name__, redact(str(exc))[:300])
            delivered = False
        metrics.alerts_sent.labels(channel=channel_label(channel.name), outcome="success" if delivered else "failure").inc()
        return delivered

    results = await asyncio.gather(*(one(channel) for channel in channels))
    return {channel.name: ok for channel, ok in zip(channels, results, strict=True)}
