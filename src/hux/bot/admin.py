"""Managing the bot from Telegram: admin commands in the alert chat.

The Telegram source hands over every update that is a command (``/word``) in
the alert chat, and every pressed inline button (``callback_query``); they
never reach the intake. A command is obeyed only when its sender's user id is
in ``bot.telegram.admin_user_ids`` and that admin is within
``admin_commands_per_minute``; anyone else gets no reply at all. Every
command is audited (one log line: command, user id, outcome) and counted in
``hux_admin_commands_total{command,outcome}``.

``/status``               queue, database, threshold, sources; the stack's firing alerts when reachable
``/top [24h]``            best-scored tokens of the window, with links and a "why" button each
``/why ADDRESS``          the latest score breakdown, with mute buttons
``/mute ADDRESS [24h]``   no alert for that token until then (persisted; 1 minute to 30 days)
``/threshold N``          the alert threshold, 0-100 (persisted: survives restarts; ``hux_alert_score_threshold``)
``/sources``              groups read, messages in the last hour, last seen
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from hux.bot.clients.telegram import TelegramBotApi
from hux.bot.metric_names import ADMIN_COMMANDS, ADMIN_OUTCOMES, OTHER
from hux.bot.metrics import BotMetrics
from hux.bot.persistence import Persistence
from hux.config import ConfigError

log = logging.getLogger("hux.bot.admin")

#: ``/mute`` durations: a number and a unit; the bounds of a mute.
_DURATION_RE = re.compile(r"(\d{1,6})([mhd])")
_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0}
MUTE_DEFAULT, MUTE_MIN, MUTE_MAX = 86400.0, 60.0, 30 * 86400.0
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32,44}")
#: Commands handled at once; more wait (an admin typing fast must not spawn tasks without bound).
MAX_PENDING = 32
THRESHOLD_SETTING = "alert_threshold"


@dataclass(frozen=True)
class StatusView:
    """What ``/status`` reports about this bot (read from the running app)."""

    mode: str
    database_up: bool
    queue_length: int
    queue_capacity: int
    sources: list[str]


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: tuple[tuple[tuple[str, str], ...], ...] = ()  # rows of (label, callback data)

    def markup(self) -> dict[str, Any] | None:
        if not self.buttons:
            return None
        return {"inline_keyboard": [[{"text": label, "callback_data": data} for label, data in row] for row in self.buttons]}


class CommandError(Exception):
    """A command an admin mistyped: the reply says what to type."""


def stored_threshold(value: str | None) -> float | None:
    """The threshold an admin set (``bot_settings``), or None when there is none or it is no score."""
    try:
        threshold = float(value) if value is not None else None
    except ValueError:
        return None
    return threshold if threshold is not None and 0 <= threshold <= 100 else None


def parse_duration(text: str) -> float:
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None:
        raise CommandError(f"{html.escape(text[:20])} is not a duration: write 30m, 6h or 2d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not MUTE_MIN <= seconds <= MUTE_MAX:
        raise CommandError("a mute lasts from 1m to 30d")
    return seconds


def _address(text: str) -> str:
    address = text.strip()
    if not _ADDRESS_RE.fullmatch(address):
        raise CommandError(f"{html.escape(address[:50])} is not a token address (a Solana mint or 0x + 40 hex digits)")
    return address.lower() if address.startswith("0x") else address


class Mutes:
    """Tokens muted by an admin: read by the pipeline before it alerts, kept in the database."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def load(self, active: dict[str, float]) -> None:
        self._until = dict(active)

    def mute(self, key: str, until: float) -> None:
        self._until[key] = until

    def muted(self, key: str, now: float | None = None) -> bool:
        until = self._until.get(key)
        return until is not None and until > (now if now is not None else time.time())


async def follow_admin_changes(persistence: Persistence, mutes: Mutes, set_threshold: Callable[[float], None],
                               threshold: Callable[[], float], stop: asyncio.Event, interval: float) -> None:
    """Several instances: read what admins set (through the leader, which polls Telegram) every ``interval``
    seconds, so every instance's pipeline obeys a new /mute or /threshold within that time."""
    while not stop.is_set():
        try:
            async with asyncio.timeout(interval):
                await stop.wait()
            return
        except TimeoutError:
            pass
        active = await persistence.store_call("admin", persistence.store.active_mutes, time.time())
        if active is not None:
            mutes.load(active)
        stored = stored_threshold(await persistence.store_call("admin", persistence.store.setting, THRESHOLD_SETTING))
        if stored is not None and stored != threshold():
            log.info("alert threshold %g set by an admin (/threshold) through another instance", stored)
            set_threshold(stored)


class AdminCommands:
    def __init__(self, api: TelegramBotApi, persistence: Persistence, metrics: BotMetrics, *, alert_chat: str,
                 admin_ids: Sequence[int], per_minute: float, mutes: Mutes, set_threshold: Callable[[float], None],
                 threshold: Callable[[], float], status: Callable[[], StatusView], alertmanager_url: str = "",
                 alertmanager_credentials: Callable[[], tuple[str, str] | None] = lambda: None) -> None:
        self.api = api
        self.persistence = persistence
        self.metrics = metrics
        self.alert_chat = str(alert_chat)
        self.admin_ids = frozenset(admin_ids)
        self.per_minute = per_minute
        self.mutes = mutes
        self.set_threshold = set_threshold
        self.threshold = threshold
        self.status = status
        self.alertmanager_url = alertmanager_url.rstrip("/")
        self.alertmanager_credentials = alertmanager_credentials
        self._recent: dict[int, deque[float]] = {}
        self._slots = asyncio.Semaphore(MAX_PENDING)
        self._tasks: set[asyncio.Task[None]] = set()
        for command in (*ADMIN_COMMANDS, OTHER):
            for outcome in ADMIN_OUTCOMES:
                metrics.admin_commands.labels(command=command, outcome=outcome)

    # -- the source's side -----------------------------------------------------------------
    def claims(self, update: Any) -> bool:
        """True for a command in the alert chat or a pressed button: this update is the admin's, not the intake's."""
        if not isinstance(update, dict):
            return False
        if isinstance(update.get("callback_query"), dict):
            return True
        message = update.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("text"), str):
            return False
        chat = message.get("chat")
        return (isinstance(chat, dict) and str(chat.get("id")) == self.alert_chat
                and message["text"].startswith("/"))

    def submit(self, update: dict[str, Any]) -> None:
        """Handle ``update`` in the background (the source goes on polling)."""
        task = asyncio.create_task(self._guarded(update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _guarded(self, update: dict[str, Any]) -> None:
        async with self._slots:
            try:
                await self.handle(update)
            except asyncio.CancelledError:
                raise
            except Exception:  # one command's failure must not reach the source
                log.exception("admin command failed")

    # -- one update --------------------------------------------------------------------------
    async def handle(self, update: dict[str, Any]) -> Reply | None:
        """Obey one command or button press; returns the reply sent (None: nothing sent)."""
        query = update.get("callback_query")
        if isinstance(query, dict):
            sender, text, chat = query.get("from"), query.get("data"), (query.get("message") or {}).get("chat")
            text = "/" + text.replace(":", " ") if isinstance(text, str) else None
        else:
            message = update["message"]
            sender, text, chat = message.get("from"), message.get("text"), message.get("chat")
        user = sender.get("id") if isinstance(sender, dict) else None
        if not isinstance(text, str) or not isinstance(chat, dict) or str(chat.get("id")) != self.alert_chat:
            return None
        words = text[:500].split()
        command = words[0][1:].split("@", 1)[0].lower() if words else ""
        label = command if command in ADMIN_COMMANDS else OTHER
        if not isinstance(user, int) or isinstance(user, bool) or user not in self.admin_ids:
            self._audit(label, user, "refused")  # a non-admin gets nothing, not even "no"
            return None
        if not self._within_rate(user):
            self._audit(label, user, "rate_limited")
            return None
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            try:
                await self.api.answer_callback_query(query["id"])
            except Exception as exc:  # noqa: BLE001 - the spinner stays; the command still runs
                log.warning("answerCallbackQuery failed: %s", exc)
        try:
            if label == OTHER:
                raise CommandError("commands: /status, /top [24h], /why ADDRESS, /mute ADDRESS [24h], /threshold N, /sources")
            reply: Reply = await getattr(self, f"_{command}")(words[1:], user)
            outcome = "done"
        except CommandError as exc:
            reply, outcome = Reply(f"⚠️ {exc}"), "invalid"
        self._audit(label, user, outcome, " ".join(words[1:3])[:120])
        await self.api.send_message(chat["id"], reply.text, parse_mode="HTML", reply_markup=reply.markup())
        return reply

    def _within_rate(self, user: int) -> bool:
        now = time.monotonic()
        recent = self._recent.setdefault(user, deque())
        while recent and now - recent[0] > 60.0:
            recent.popleft()
        if len(recent) >= self.per_minute:
            return False
        recent.append(now)
        return True

    def _audit(self, command: str, user: Any, outcome: str, args: str = "") -> None:
        self.metrics.admin_commands.labels(command=command, outcome=outcome).inc()
        log.info("admin command /%s by user %s: %s", command, user, outcome,
                 extra={"audit": "admin_command", "command": command, "user_id": user, "outcome": outcome, "arguments": args})

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        result = await self.persistence.store_call("admin", fn, *args)
        if result is None and not self.persistence.database_up:
            raise CommandError("the database is not reachable right now; try again in a minute")
        return result

    # -- the commands ------------------------------------------------------------------------
    async def _status(self, args: list[str], user: int) -> Reply:
        view = self.status()
        lines = [f"<b>Bot</b> ({html.escape(view.mode)}): database {'up' if view.database_up else '<b>DOWN</b>'}, "
                 f"queue {view.queue_length}/{view.queue_capacity}, alert threshold {self.threshold():g}",
                 f"Sources: {html.escape(', '.join(view.sources) or 'none')}"]
        lines.append(await self._firing())
        return Reply("\n".join(lines))

    async def _firing(self) -> str:
        """One line on the stack's firing alerts, or why they could not be asked and what to check."""
        if not self.alertmanager_url:
            return "Stack alerts: not asked (bot.telegram.status_alertmanager_url is empty)"
        where = html.escape(_origin(self.alertmanager_url))
        try:
            credentials = self.alertmanager_credentials()
        except ConfigError as exc:
            log.warning("/status: no Alertmanager credentials: %s", exc)
            return f"Stack alerts: not asked ({html.escape(str(exc))}; check bot.telegram.status_alertmanager_password_file)"
        try:
            async with httpx.AsyncClient(timeout=3.0, auth=credentials, follow_redirects=False) as client:
                reply = await client.get(f"{self.alertmanager_url}/api/v2/alerts",
                                         params={"active": "true", "silenced": "false", "inhibited": "false"})
        except httpx.HTTPError as exc:
            return (f"Stack alerts: Alertmanager not reachable at {where} ({html.escape(type(exc).__name__)}); "
                    "check that it runs (`hux status`) and bot.telegram.status_alertmanager_url")
        if reply.status_code in (401, 403):
            fix = ("bot.telegram.status_alertmanager_user and status_alertmanager_password_file (natively `hux up` "
                   "sets them to the stack's data/auth/password: `hux restart bot` after a new password)"
                   if credentials else "it wants a login: set bot.telegram.status_alertmanager_user and "
                   "status_alertmanager_password_file")
            return f"Stack alerts: Alertmanager refused the credentials (HTTP {reply.status_code}); check {fix}"
        try:
            reply.raise_for_status()
            alerts = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            return (f"Stack alerts: Alertmanager at {where} answered HTTP {reply.status_code} without its alert list "
                    f"({html.escape(type(exc).__name__)}); check `hux health`")
        names = sorted({str(a.get("labels", {}).get("alertname", "?"))[:60] for a in alerts if isinstance(a, dict)}
                       - {"Watchdog"}) if isinstance(alerts, list) else []
        return "Stack alerts firing: " + (html.escape(", ".join(names[:15])) if names else "none")

    async def _top(self, args: list[str], user: int) -> Reply:
        window = parse_duration(args[0]) if args else 86400.0
        rows = await self._db(self.persistence.store.top_tokens, time.time() - window, 10) or []
        if not rows:
            return Reply("No token scored in that window.")
        lines, buttons = [f"<b>Top tokens</b> (last {html.escape(args[0] if args else '24h')})"], []
        for i, row in enumerate(rows, 1):
            symbol, address = html.escape(row["symbol"] or "?"), row["address"]
            link = f"https://dexscreener.com/{html.escape(row['chain'] or 'solana')}/{html.escape(address)}"
            lines.append(f'{i}. <b>{symbol}</b> {row["score"]:.0f} · <a href="{link}">chart</a> · <code>{html.escape(address)}</code>')
            buttons.append(((f"Why {row['symbol'] or '?'}"[:30], f"why:{address}"),))
        return Reply("\n".join(lines), tuple(buttons[:5]))

    async def _why(self, args: list[str], user: int) -> Reply:
        if not args:
            raise CommandError("usage: /why ADDRESS")
        address = _address(args[0])
        token = await self._db(self.persistence.store.token_detail, address)
        if token is None:
            return Reply(f"Not seen: <code>{html.escape(address)}</code>")
        latest = token["decisions"][0] if token["decisions"] else None
        lines = [f"<b>{html.escape(token['symbol'] or '?')}</b> on {html.escape(token['chain'])} · "
                 f"{token['mentions']} mention(s)", f"<code>{html.escape(token['address'])}</code>"]
        if latest is not None:
            score = "n/a" if latest["score"] is None else f"{latest['score']:.1f}"
            lines.append(f"Latest: {html.escape(latest['outcome'])}, score <b>{score}</b> "
                         f"(threshold {self.threshold():g}), risk {html.escape(latest['risk_level'] or 'unknown')}")
            lines += [f"• {html.escape(reason)}" for reason in latest["reasons"][:10]]
        checks = [c for c in token["calls"] if c["status"] != "pending"]
        if checks:
            lines.append("Call: " + ", ".join(
                f"+{c['horizon']} {'rugged' if c['rugged'] else 'n/a' if c['multiple'] is None else format(c['multiple'], '.2f') + 'x'}"
                for c in checks))
        if self.mutes.muted(address):
            lines.append("Muted.")
        return Reply("\n".join(lines), (((("Mute 24h", f"mute:{address}:24h")), ("Mute 7d", f"mute:{address}:7d")),))

    async def _mute(self, args: list[str], user: int) -> Reply:
        if not args:
            raise CommandError("usage: /mute ADDRESS [duration: 30m, 6h, 2d; default 24h]")
        address = _address(args[0])
        seconds = parse_duration(args[1]) if len(args) > 1 else MUTE_DEFAULT
        until = time.time() + seconds
        if await self.persistence.store_call("admin", self.persistence.store.set_mute, address, until, str(user)) is not True:
            raise CommandError("the database did not take it (unreachable or refusing); the mute was not kept, try again")
        self.mutes.mute(address, until)
        shown = args[1] if len(args) > 1 else "24h"
        return Reply(f"Muted <code>{html.escape(address)}</code> for {html.escape(shown)}: no alert for it until then.")

    async def _threshold(self, args: list[str], user: int) -> Reply:
        try:
            value = float(args[0]) if len(args) == 1 else float("nan")
        except ValueError:
            value = float("nan")
        if not 0 <= value <= 100:  # NaN fails too
            raise CommandError("usage: /threshold N, N a score from 0 to 100")
        if await self.persistence.store_call("admin", self.persistence.store.set_setting, THRESHOLD_SETTING,
                                             repr(value), str(user)) is not True:
            raise CommandError("the database did not take it (unreachable or refusing); the threshold was not changed")
        old = self.threshold()
        self.set_threshold(value)
        return Reply(f"Alert threshold {old:g} → <b>{value:g}</b> (kept across restarts).")

    async def _sources(self, args: list[str], user: int) -> Reply:
        rows = await self._db(self.persistence.store.source_activity, time.time() - 3600, 20) or []
        if not rows:
            return Reply("No messages read in the last day.")
        now = time.time()
        lines = ["<b>Sources</b> (messages in the last hour · last seen)"]
        lines += [f"{html.escape(r['source'])} · {html.escape(str(r['group'])[:60])}: {r['messages']}/h · "
                  f"{(now - r['last_seen']) / 60:.0f} min ago" for r in rows]
        return Reply("\n".join(lines))


def _origin(url: str) -> str:
    """Scheme, host and port of a URL: what a reply may show of it (a path or login could carry a secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
