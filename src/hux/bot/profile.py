"""The run profile: what differs between a live run and the demo, decided once at start-up.

``BotApp`` is handed a ``RunProfile`` and reads every run-dependent value from
it: where the market APIs and Telegram are, which Telegram token, whether
Telegram is polled for messages, which feed is replayed and how fast, where
alerts go and how they are paced, the cooldown and the alert threshold. It
never asks which mode it is in beyond the ``mode`` label it reports.

``resolve_profile`` is the one place that decides:

* **live** (``live_profile``): the configured endpoints, the operator's token,
  Telegram polled, ``bot.replay.path`` replayed when set; refused (with the
  fix) when there is neither a token nor a feed;
* **demo** (``demo_profile``): the market doubles (DexScreener, RugCheck,
  Telegram, webhook) start in-process on ``bot.demo.doubles_port`` and every
  client points at them over real HTTP; the sample feed replays in a loop at
  ``bot.demo.replay_speed`` (or ``bot.replay.path`` as configured), with the
  demo's cooldown and alert threshold, so every metric moves. The doubles
  belong to the profile and stop with it (``aclose``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from hux.bot.config import BotConfig
from hux.config import ConfigError
from hux.doubles.dexscreener import Market
from hux.doubles.market import RunningDoubles, start_doubles

#: Shaped like a Bot API token so the Telegram double accepts it; it opens nothing anywhere.
DEMO_TELEGRAM_TOKEN = "1000000001:demo-token-for-the-local-double"
DEMO_ALERT_CHAT = "@hux_demo_alerts"


def sample_feed_path() -> Path:
    return Path(str(resources.files("hux.bot") / "data" / "sample_feed.jsonl"))


@dataclass(frozen=True, slots=True)
class Feed:
    """A JSONL feed to replay: where, how fast (1.0: at the recorded pace), and whether to start over."""

    path: Path
    speed: float
    loop: bool


@dataclass(frozen=True)
class RunProfile:
    """Every value that depends on how the bot runs. See the module docstring."""

    mode: Literal["live", "demo"]
    dexscreener_url: str
    rugcheck_url: str
    goplus_url: str
    telegram_api: str
    telegram_token: str | None       # None: no Telegram client at all
    poll_telegram: bool              # read chat messages from Telegram (getUpdates)
    alert_chat: str                  # "": no Telegram alerts
    alert_rate_limit_per_minute: float | None  # Telegram alerts per minute (None: unpaced)
    webhook_url: str                 # "": no webhook alerts
    cooldown_seconds: float
    alert_threshold: float
    feed: Feed | None                # a replayed feed, if any
    call_horizon_scale: float = 1.0  # call re-check horizons times this (demo: minutes, not a day)
    notice: str = ""                 # said once at WARNING when the bot is ready
    doubles: RunningDoubles | None = None  # started for this run (demo); stopped by ``aclose``

    async def aclose(self) -> None:
        """Stop what the profile started (the demo's doubles)."""
        if self.doubles is not None:
            await self.doubles.stop()


def _configured_feed(cfg: BotConfig) -> Feed | None:
    return Feed(Path(cfg.replay.path), cfg.replay.speed, cfg.replay.loop) if cfg.replay.path else None


def live_profile(cfg: BotConfig, token: str | None) -> RunProfile:
    """The configured APIs and the operator's token; ``ConfigError`` when there is nothing to read."""
    if not token and not cfg.replay.path and not cfg.telegram_user.enabled:
        raise ConfigError(
            f"live mode needs a Telegram bot token (set ${cfg.telegram.token_env} or bot.telegram.token_file), "
            "a user account (bot.telegram_user, `hux bot login`) or a feed (bot.replay.path); "
            "or run the demo: bot.demo.enabled = \"auto\""
        )
    return RunProfile(
        mode="live",
        dexscreener_url=cfg.dexscreener.base_url,
        rugcheck_url=cfg.rugcheck.base_url,
        goplus_url=cfg.goplus.base_url,
        telegram_api=cfg.telegram.api_base,
        telegram_token=token or None,
        poll_telegram=bool(token),
        alert_chat=cfg.telegram.alert_chat_id,
        alert_rate_limit_per_minute=cfg.telegram.alert_rate_limit_per_minute,
        webhook_url=cfg.webhook.url,
        cooldown_seconds=cfg.cooldown_seconds,
        alert_threshold=cfg.alert_threshold,
        feed=_configured_feed(cfg),
    )


async def demo_profile(cfg: BotConfig) -> RunProfile:
    """Start the market doubles on ``bot.demo.doubles_host:doubles_port`` and point everything at them."""
    try:
        # Some demo tokens rug after their first lookup, so call tracking has rug follow-ups to show.
        market = Market(rug_share=cfg.demo.rug_share, rug_after_seconds=cfg.demo.rug_after_seconds,
                        pump_share=cfg.demo.pump_share, pump_period_seconds=cfg.demo.pump_period_seconds)
        doubles = await start_doubles(cfg.demo.doubles_host, cfg.demo.doubles_port, market=market)
    except OSError as exc:
        raise ConfigError(f"{exc} (bot.demo.doubles_port; 0 picks a free port)") from None
    return RunProfile(
        mode="demo",
        dexscreener_url=doubles.url("dexscreener"),
        rugcheck_url=doubles.url("rugcheck"),
        goplus_url=doubles.url("goplus"),
        telegram_api=doubles.url("telegram"),
        telegram_token=DEMO_TELEGRAM_TOKEN,
        poll_telegram=False,  # the demo's messages come from the sample feed
        alert_chat=DEMO_ALERT_CHAT,
        alert_rate_limit_per_minute=None,  # the double does not throttle per group; live Telegram does (about 20/min)
        webhook_url=cfg.webhook.url or f"{doubles.url('webhook')}/hooks/alerts",
        cooldown_seconds=cfg.demo.cooldown_seconds,
        alert_threshold=cfg.demo.alert_threshold,
        feed=_configured_feed(cfg) or Feed(sample_feed_path(), cfg.demo.replay_speed, True),
        call_horizon_scale=cfg.demo.call_horizon_scale,
        notice=(
            f"DEMO MODE: no Telegram token configured, so the bot replays its sample feed against local market "
            f"doubles at {doubles.base_url} (faults: PUT {doubles.base_url}/_double/faults). "
            f"Set ${cfg.telegram.token_env} for live mode."
        ),
        doubles=doubles,
    )


async def resolve_profile(cfg: BotConfig, token: str | None, *, demo: bool) -> RunProfile:
    """The demo profile (doubles started) when ``demo``, else the live one (``bot.demo.enabled``
    and the token decide ``demo``: ``BotConfig.demo_active``)."""
    return await demo_profile(cfg) if demo else live_profile(cfg, token)
