"""The bot's settings: section ``[bot]`` of the one settings source.

Defaults live in ``hux/defaults/bot.toml``; ``load_bot_config`` merges them with
the operator's file and ``HUX__BOT__*`` environment overrides and validates the
result strictly (unknown keys and wrong types are errors that name the key), so
a bad setting stops ``hux bot run`` before anything starts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hux import paths
from hux.bot.telegram_chats import ChatSpecError, parse_chats
from hux.config import ConfigError, env_name, load_raw, read_secret, single_line, validation_error

#: The read-only PostgreSQL role Grafana's "latest calls" table reads with (docker path): SELECT on these
#: tables only, never the inbox (chat texts). The docker tree's PostgreSQL init script creates it; the bot's
#: migration 7 grants it (``hux.bot.store.grant_reader``).
READER_ROLE = "hux_grafana"
READER_TABLES = ("tokens", "decisions", "call_checks")
_USERNAME_RE = re.compile(r"@[A-Za-z0-9_]{4,32}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _single_line(cls, value: Any) -> Any:
        return single_line(value)   # no setting string holds a newline or other control character


class TelegramSettings(_Section):
    token_env: str = "HUX_TELEGRAM_TOKEN"
    token_file: str = ""
    api_base: str = "https://api.telegram.org"
    alert_chat_id: str = ""
    poll_timeout_seconds: int = Field(25, ge=0, le=50)
    poll_limit: int = Field(100, ge=1, le=100)
    alert_rate_limit_per_minute: float = Field(20.0, gt=0)
    # Chats whose messages are read (ids, or "@username" of public chats). Empty: every group and
    # channel the bot is in, no private chat; otherwise exactly these (private chats included).
    allowed_chats: tuple[int | str, ...] = ()
    # Telegram user ids allowed to manage the bot from the alert chat (/status, /top, /why, /mute, /threshold,
    # /sources). Empty: no admin commands; anyone else's commands are ignored without a reply.
    admin_user_ids: tuple[int, ...] = ()
    admin_commands_per_minute: float = Field(10.0, gt=0)  # per admin; more are ignored (counted)
    # /status lists the stack's firing alerts from this Alertmanager (e.g. http://127.0.0.1:9093); empty: not asked.
    status_alertmanager_url: str = ""
    # Basic auth for that Alertmanager: a user and the file holding its password (first line, read at each
    # /status, never logged). Natively `hux up` sets both for the stack's own Alertmanager (data/auth/password).
    status_alertmanager_user: str = ""
    status_alertmanager_password_file: str = ""
    # Several instances: how often each one reads what admins set through the leader (/mute, /threshold).
    admin_sync_seconds: float = Field(10.0, gt=0)

    @field_validator("admin_user_ids", mode="before")
    @classmethod
    def _user_ids(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list of Telegram user ids (positive integers)")
        for user in value:
            if isinstance(user, bool) or not isinstance(user, int) or not 0 < user < 2**63:
                raise ValueError(f"{str(user)[:40]!r} is not a Telegram user id (a positive integer)")
        return tuple(value)

    @field_validator("allowed_chats", mode="before")
    @classmethod
    def _chat_list(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list of chat ids (-1001234567890) or public usernames (\"@name\")")
        for chat in value:
            if isinstance(chat, bool) or not isinstance(chat, (int, str)):
                raise ValueError(f"{chat!r} is not a chat id (an integer) or a public username (\"@name\")")
            if isinstance(chat, int) and not -(2**63) <= chat < 2**63:
                raise ValueError(f"chat id {chat} is outside the 64-bit range Telegram ids use")
            if isinstance(chat, str) and not _USERNAME_RE.fullmatch(chat):
                raise ValueError(f"{chat[:40]!r} is not a public username: write it as \"@name\" (4-32 letters, digits, _)")
        return tuple(value)

    @field_validator("alert_chat_id", mode="before")
    @classmethod
    def _chat_id_as_text(cls, value: Any) -> Any:
        # Chat ids are numbers (-100...) or @channel names; env overrides parse numbers as ints.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("token_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return env_name(value)

    @model_validator(mode="after")
    def _status_credentials(self) -> "TelegramSettings":
        if bool(self.status_alertmanager_user) != bool(self.status_alertmanager_password_file):
            raise ValueError("status_alertmanager_user and status_alertmanager_password_file go together: set both "
                             "(basic auth for status_alertmanager_url) or neither")
        return self

    def token(self) -> str | None:
        return read_secret(env=self.token_env or None, file=self.token_file or None)

    def status_alertmanager_credentials(self) -> tuple[str, str] | None:
        """(user, password) for status_alertmanager_url, read now (a rotated password is picked up); None: no
        auth. ConfigError when the file cannot be read or is empty, saying which file."""
        if not self.status_alertmanager_user:
            return None
        file = self.status_alertmanager_password_file
        password = read_secret(file=file)
        if password is None:
            raise ConfigError(f"the secret file {file} is empty; natively `hux up` writes data/auth/password")
        return self.status_alertmanager_user, password


class TelegramUserSettings(_Section):
    """Telegram as a user account (MTProto): ``hux bot login`` once, then these chats are read."""

    enabled: bool = False
    api_id: int = Field(0, ge=0, lt=2**31)       # from my.telegram.org (not a secret; the hash is)
    api_hash_env: str = "HUX_TELEGRAM_API_HASH"
    api_hash_file: str = ""
    chats: tuple[int | str, ...] = ()           # "@username", "https://t.me/+INVITE", or ids (-100…)
    catch_up_messages: int = Field(100, ge=0, le=10_000)  # per chat, after a restart or reconnect
    flood_wait_max_seconds: float = Field(600.0, gt=0)    # longer FloodWaits are still waited out, but logged as errors
    reconnect_max_seconds: float = Field(60.0, gt=0)

    @field_validator("api_hash_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return env_name(value)

    @field_validator("chats", mode="before")
    @classmethod
    def _chats(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list of chats: \"@username\", \"https://t.me/+INVITE\" or ids (-100…)")
        try:
            parse_chats(value)
        except ChatSpecError as exc:
            raise ValueError(str(exc)) from None
        return tuple(value)

    @model_validator(mode="after")
    def _complete(self) -> "TelegramUserSettings":
        if self.enabled and (not self.api_id or not self.chats):
            raise ValueError("enabled needs api_id (from my.telegram.org, with the api hash in "
                             f"${self.api_hash_env} or api_hash_file) and at least one entry in chats")
        return self

    def api_hash(self) -> str | None:
        return read_secret(env=self.api_hash_env or None, file=self.api_hash_file or None)


class ApiSettings(_Section):
    base_url: str
    rate_limit_per_minute: float = Field(gt=0)
    timeout_seconds: float = Field(5.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    cache_ttl_seconds: float = Field(0.0, ge=0)


class DexScreenerSettings(ApiSettings):
    base_url: str = "https://api.dexscreener.com"
    rate_limit_per_minute: float = Field(300.0, gt=0)
    cache_ttl_seconds: float = Field(30.0, ge=0)
    batch_size: int = Field(30, ge=1, le=30)
    batch_wait_seconds: float = Field(0.05, ge=0, le=5)


class RugCheckSettings(ApiSettings):
    base_url: str = "https://api.rugcheck.xyz"
    rate_limit_per_minute: float = Field(60.0, gt=0)
    cache_ttl_seconds: float = Field(300.0, ge=0)


class GoPlusSettings(ApiSettings):
    base_url: str = "https://api.gopluslabs.io"
    rate_limit_per_minute: float = Field(30.0, gt=0)
    cache_ttl_seconds: float = Field(300.0, ge=0)


class WebhookSettings(_Section):
    url: str = ""
    timeout_seconds: float = Field(5.0, gt=0)


class ReplaySettings(_Section):
    path: str = ""
    speed: float = Field(1.0, gt=0)
    loop: bool = True
    max_gap_seconds: float = Field(5.0, ge=0)


class DemoSettings(_Section):
    enabled: Literal["auto"] | bool = "auto"
    doubles_host: str = "127.0.0.1"
    doubles_port: int = Field(8010, ge=0, le=65535)
    replay_speed: float = Field(30.0, gt=0)
    cooldown_seconds: float = Field(30.0, ge=0)
    # Lower than live so the demo's first minute already shows alerts being sent.
    alert_threshold: float = Field(60.0, ge=0, le=100)
    # Call re-check horizons times this (0.0002: +0.7 s, +4.3 s, +17.3 s) so calls resolve within a minute.
    call_horizon_scale: float = Field(0.0002, gt=0, le=1)
    # Share of the demo market's tokens whose liquidity is pulled rug_after_seconds after their first lookup.
    rug_share: float = Field(0.2, ge=0, le=1)
    rug_after_seconds: float = Field(10.0, ge=0)
    # Share of its other tokens whose price triples and falls back every pump_period_seconds (calls that hit).
    pump_share: float = Field(0.75, ge=0, le=1)
    pump_period_seconds: float = Field(15.0, gt=0)


class CallSettings(_Section):
    """Calls tracked (``hux.bot.calls``): alerted tokens re-checked at +1 h, +6 h, +24 h."""

    check_interval_seconds: float = Field(30.0, gt=0)   # how often due re-checks are looked for
    checks_per_round: int = Field(30, ge=1, le=1000)     # due re-checks looked up per round (one DexScreener batch)


class FairnessSettings(_Section):
    """One chat must not starve the others (see ``hux.bot.intake``)."""

    chat_queue_capacity: int = Field(100, ge=1)
    chat_max_in_flight: int = Field(1, ge=1, le=256)
    chat_rate_per_minute: float = Field(60.0, gt=0)
    chat_burst: int = Field(20, ge=1)
    # True: while no other chat waits, a chat over chat_max_in_flight may use the idle workers but one
    # (for a bot that reads one or two busy chats). Off by default: it lets a flooding chat hold more
    # workers, and the flood benchmark's ordinary-chat p95 rose from 1.15x to 3.1x its clean value.
    lend_idle_workers: bool = False


def _as_tuple(value: Any, what: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be {what}")
    return tuple(value)


#: Names of the outputs besides the default ``telegram`` (bot.telegram.alert_chat_id) and ``webhook`` (bot.webhook.url).
OUTPUT_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,23}")
DEFAULT_OUTPUTS = ("telegram", "webhook")
MAX_OUTPUTS = 16


class OutputSettings(_Section):
    """One more place alerts go (``[[bot.outputs]]``), used by the groups that route to it."""

    name: str                                   # the ``channel`` label of its delivery metrics
    type: Literal["telegram", "webhook"]
    chat_id: str = ""                           # telegram: the chat (id or @channel) it posts to
    url_env: str = ""                           # webhook: the environment variable holding its URL (a secret)
    rate_limit_per_minute: float = Field(20.0, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not OUTPUT_NAME_RE.fullmatch(value) or value in DEFAULT_OUTPUTS:
            raise ValueError(f"{value[:40]!r}: an output name is 1-24 lower-case letters, digits or _, starting with a "
                             f"letter, and not {' or '.join(DEFAULT_OUTPUTS)} (those are the default outputs)")
        return value

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _target(self) -> "OutputSettings":
        if self.type == "telegram" and not self.chat_id:
            raise ValueError(f"output {self.name}: a telegram output needs chat_id")
        if self.type == "webhook":
            if not self.url_env:
                raise ValueError(f"output {self.name}: a webhook output needs url_env (the variable holding its URL)")
            env_name(self.url_env)
        return self


class GroupPolicy(_Section):
    """Per source group (``[[bot.groups]]``): its own alert threshold, a mute, where its alerts go."""

    group: str = Field(min_length=1, max_length=128)   # as messages name it: the chat title, "@username" or the id
    alert_threshold: float | None = Field(None, ge=0, le=100)  # None: bot.alert_threshold (or /threshold)
    muted: bool = False                                # True: its tokens are decided, never alerted
    outputs: tuple[str, ...] = ()                      # output names; empty: the default outputs

    @field_validator("outputs", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return _as_tuple(value, "a list of output names")


class ClusterSettings(_Section):
    """Several instances on one PostgreSQL database (see ``hux.bot.cluster``)."""

    # A claim of a stopped instance returns to the pool after this; the holder renews every third of it.
    claim_ttl_seconds: float = Field(20.0, ge=1, le=30)
    # The leader renews every third of this; another instance takes over within about 4/3 of it.
    leader_lease_seconds: float = Field(15.0, ge=1, le=22)
    # How often an idle instance looks for unclaimed work (it is also woken by its own intake).
    claim_poll_seconds: float = Field(0.2, gt=0, le=5)
    # Messages one instance claims ahead of its free workers (more: less polling, less even sharing).
    claim_ahead: int = Field(8, ge=1, le=1000)


class BotConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    database_url: str = ""
    queue_capacity: int = Field(1000, ge=1)
    workers: int = Field(4, ge=1, le=256)
    alert_threshold: float = Field(70.0, ge=0, le=100)
    cooldown_seconds: float = Field(900.0, ge=0)
    mention_window_seconds: float = Field(3600.0, gt=0)
    group_label_limit: int = Field(50, ge=1, le=1000)
    max_message_bytes: int = Field(65536, ge=1)
    max_addresses_per_message: int = Field(20, ge=1, le=1000)
    lookups_per_message: int = Field(2, ge=1, le=64)
    log_file: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    log_backups: int = Field(5, ge=0)
    db_probe_interval_seconds: float = Field(2.0, gt=0)
    db_retry_max_seconds: float = Field(10.0, gt=0)
    max_pending_writes: int = Field(20000, ge=1)
    inbox_retention_hours: float = Field(24.0, gt=0)
    # Tokens, mentions, decisions, alerts and call re-checks older than this are pruned (> 1 day: the last re-check).
    retention_days: float = Field(90.0, ge=2)
    prune_batch_rows: int = Field(1000, ge=1, le=100_000)
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    # Local instances `hux up` runs on consecutive ports from bot.port; more than 1 needs PostgreSQL.
    instances: int = Field(1, ge=1, le=32)
    cluster: ClusterSettings = ClusterSettings()
    telegram: TelegramSettings = TelegramSettings()
    dexscreener: DexScreenerSettings = DexScreenerSettings()
    rugcheck: RugCheckSettings = RugCheckSettings()
    goplus: GoPlusSettings = GoPlusSettings()
    telegram_user: TelegramUserSettings = TelegramUserSettings()
    webhook: WebhookSettings = WebhookSettings()
    replay: ReplaySettings = ReplaySettings()
    demo: DemoSettings = DemoSettings()
    fairness: FairnessSettings = FairnessSettings()
    calls: CallSettings = CallSettings()
    outputs: tuple[OutputSettings, ...] = Field((), max_length=MAX_OUTPUTS)
    groups: tuple[GroupPolicy, ...] = Field((), max_length=1000)

    @field_validator("outputs", "groups", mode="before")
    @classmethod
    def _tables(cls, value: Any) -> Any:
        return _as_tuple(value, "a list of tables ([[bot.outputs]], [[bot.groups]])")

    @model_validator(mode="after")
    def _routes_name_outputs(self) -> "BotConfig":
        names = [o.name for o in self.outputs]
        if len(set(names)) != len(names):
            raise ValueError("bot.outputs: two outputs have the same name")
        known = set(names) | set(DEFAULT_OUTPUTS)
        seen: set[str] = set()
        for policy in self.groups:
            if policy.group in seen:
                raise ValueError(f"bot.groups: group {policy.group[:60]!r} is listed twice")
            seen.add(policy.group)
            unknown = [name for name in policy.outputs if name not in known]
            if unknown:
                raise ValueError(f"bot.groups: group {policy.group[:60]!r} routes to unknown output(s) "
                                 f"{', '.join(n[:24] for n in unknown)}; known: {', '.join(sorted(known))}")
        return self

    @model_validator(mode="after")
    def _instances_need_postgresql(self) -> "BotConfig":
        if self.instances > 1 and not self.clustered():
            raise ValueError(f"instances = {self.instances} needs bot.database_url on PostgreSQL "
                             "(postgresql+psycopg://...): SQLite serves one instance")
        return self

    # --- derived values -------------------------------------------------------
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{paths.data_dir() / 'bot' / 'hux.db'}"

    def clustered(self) -> bool:
        """Several instances may share the database: PostgreSQL (SQLite serves one instance)."""
        return self.resolved_database_url().split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")

    def resolved_log_file(self) -> Path:
        return Path(self.log_file) if self.log_file else paths.log_dir() / "mr_hux_alpha_bot.log"

    def state_dir(self) -> Path:
        return paths.data_dir() / "bot"

    def demo_active(self, token: str | None) -> bool:
        """Demo when asked for, or (``auto``) when no Telegram token is configured."""
        if self.demo.enabled == "auto":
            return not token and not self.telegram_user.enabled
        return bool(self.demo.enabled)


def load_bot_config(path: str | os.PathLike[str] | None = None, *, environ: dict[str, str] | None = None) -> BotConfig:
    """The validated ``[bot]`` section; ``ConfigError`` naming every bad key otherwise."""
    raw = load_raw(path, environ=environ)
    section = raw.get("bot", {})
    if not isinstance(section, dict):
        raise ConfigError("config key 'bot' must be a table ([bot]); fix the settings file")
    try:
        return BotConfig.model_validate(section)
    except ValidationError as exc:
        raise validation_error(exc, section="bot", source=str(path or "settings")) from None


def redact_url(url: str) -> str:
    """A database URL fit for logs: the password, if any, replaced."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown by scheme only
        return url.split(":", 1)[0] + "://…"
