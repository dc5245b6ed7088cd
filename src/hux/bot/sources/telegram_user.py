"""Telegram as a user account (MTProto, Telethon): read the groups and channels the account is in.

Most alpha groups admit no bots, so the Bot API source cannot read them. This
source logs in once as a person (``hux bot login``: phone, code, optional 2FA
password; the session file ``data/bot/telegram_user/telegram_user.session`` is kept 0600 and
never logged) and reads the chats listed in ``bot.telegram_user.chats``:
public usernames (``@name`` or ``https://t.me/name``), invite links
(``https://t.me/+HASH``, ``t.me/joinchat/HASH``: the account must already be a
member) or numeric ids (``-100…``).

* **Start**: each listed chat is resolved; a chat that cannot be (no such
  username, an expired invite, a chat the account is not in) is logged with
  what to do and counted (``hux_telegram_user_chats{state="unresolved"}``); the
  others are read. None readable: the source waits and tries again.
* **Messages** of those chats (new and edited) become ``ChatMessage`` with the
  Bot API source's key, ``telegram:<chat id>:<message id>``: a message both
  sources see is one inbox row, and fairness serves each chat by its id. They go
  through the same ``Intake`` (caps, fairness, allowlist: only listed chats).
* **Catch-up**: the last message id accepted per chat is kept in
  ``data/bot/telegram_user/telegram_user.state.json`` (written after ``Intake.accept``); after
  a restart or a reconnect the messages since then are read, at most
  ``catch_up_messages`` per chat (the newest; older ones are counted as
  skipped), so a long outage does not flood the pipeline.
* **FloodWait**: Telegram's "wait N seconds" is waited out (up to
  ``flood_wait_max_seconds``; longer ones too, in steps, but logged as an
  error) and counted in ``hux_telegram_flood_waits_total`` /
  ``hux_telegram_flood_wait_seconds_total``.
* **Quiet chats**: the date of each chat's newest message read is kept in
  ``hux_telegram_user_last_message_timestamp_seconds{group}``: the Token
  Monitoring dashboard shows its age per chat.
* **Disconnects**: Telethon reconnects by itself; when it gives up, the source
  connects again with backoff (``hux_source_reconnects_total``), then catches up.

The Telethon client is made by a factory, so the tests drive this source with
Telethon's own message, event and error objects and a client double; nothing
here was exercised against Telegram's servers (docs/operations.md says what).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from telethon import errors, events, utils
from telethon.tl import types
from telethon.tl.functions.messages import CheckChatInviteRequest

from hux.bot.intake import Intake, IntakeStopped
from hux.bot.messages import ChatMessage, Rejected, make_message
from hux.bot.metrics import BotMetrics
from hux.bot.sources import sleep_or_stop
from hux.bot.telegram_chats import ChatSpec

log = logging.getLogger("hux.bot.sources.telegram_user")

SOURCE = "telegram_user"
SESSION_NAME = "telegram_user"          # Telethon adds ".session"
STATE_FILE = "telegram_user.state.json"
#: A FloodWait is waited out in steps of at most this, so a stop is never held up for long.
FLOOD_WAIT_STEP = 5.0

@dataclass(frozen=True, slots=True)
class ResolvedChat:
    id: int         # marked id (-100… for channels and supergroups), as the Bot API writes it
    title: str
    spec: ChatSpec
    entity: Any     # what Telethon reads the chat's history with


def message_of(message: Any, title: str, *, max_bytes: int, edited: bool = False) -> ChatMessage | None:
    """A Telethon ``Message`` → ``ChatMessage``; ``None`` for messages without text (service messages, media only).

    Raises ``Rejected`` for what cannot be stored (too large, not text, a date out of range).
    """
    if not isinstance(message, types.Message):
        return None
    text = message.message
    if not text:
        return None
    chat_id = utils.get_peer_id(message.peer_id)
    date = message.date
    if not isinstance(date, datetime):
        raise Rejected("malformed", f"message {message.id} of chat {chat_id} has no date")
    return make_message(key=f"telegram:{chat_id}:{message.id}{'e' if edited else ''}", source=SOURCE, group=title,
                        text=text, sent_at=date.timestamp(), max_bytes=max_bytes)


class CatchUpState:
    """The last message id accepted per chat, in a small JSON file (written atomically, 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: dict[int, int] = {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("the catch-up state %s cannot be read (%s): starting without it, no catch-up this time", path, exc)
            return
        if isinstance(raw, dict):
            for chat, last in raw.items():
                if isinstance(chat, str) and re.fullmatch(r"-?[0-9]{1,19}", chat) and isinstance(last, int) \
                        and not isinstance(last, bool) and 0 < last < 2**63:
                    self.last[int(chat)] = last

    def note(self, messages: Sequence[ChatMessage]) -> bool:
        """Remember the newest id of each chat in ``messages``; True when something moved."""
        moved = False
        for message in messages:
            _, chat, rest = message.key.split(":", 2)
            message_id = int(rest.rstrip("e"))
            if message_id > self.last.get(int(chat), 0):
                self.last[int(chat)] = message_id
                moved = True
        return moved

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({str(chat): last for chat, last in self.last.items()}, fh)
        os.replace(temporary, self.path)


class NotLoggedIn(RuntimeError):
    """The session file holds no authorised login."""


class TelegramUserSource:
    """Reads the configured chats as a user account; see the module docstring."""

    name = SOURCE

    def __init__(
        self,
        client_factory: Callable[[], Any],
        chats: Sequence[ChatSpec],
        metrics: BotMetrics,
        *,
        state_path: Path,
        max_message_bytes: int = 65536,
        catch_up_messages: int = 100,
        flood_wait_max_seconds: float = 600.0,
        reconnect_max_seconds: float = 60.0,
    ) -> None:
        self.client_factory = client_factory
        self.chats = tuple(chats)
        self.metrics = metrics
        self.state = CatchUpState(state_path)
        self.max_bytes = max_message_bytes
        self.catch_up_messages = catch_up_messages
        self.flood_wait_max = flood_wait_max_seconds
        self.reconnect_max = reconnect_max_seconds
        self.resolved: dict[int, ResolvedChat] = {}
        self.last_message: dict[str, float] = {}  # group label -> newest message date set on its gauge
        self.connected = asyncio.Event()  # set while reading (tests and /ready look at it)
        for kind in ("resolved", "unresolved"):
            metrics.telegram_user_chats.labels(state=kind).set(0)
        metrics.telegram_flood_waits.labels(source=SOURCE)
        metrics.telegram_flood_wait_seconds.labels(source=SOURCE)
        metrics.source_reconnects.labels(source=SOURCE)
        metrics.catch_up_messages.labels(source=SOURCE, result="read")
        metrics.catch_up_messages.labels(source=SOURCE, result="skipped")

    # -- the loop ------------------------------------------------------------------------------
    async def run(self, intake: Intake, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            client = self.client_factory()
            try:
                await self._session(client, intake, stop)
                failures = 0
            except asyncio.CancelledError:
                raise
            except errors.FloodWaitError as exc:
                if await self._flood_wait(exc, stop):
                    return
                continue
            except NotLoggedIn as exc:
                log.error("%s", exc)
                if await sleep_or_stop(stop, self.reconnect_max):
                    return
                continue
            except Exception as exc:  # noqa: BLE001 - network, Telegram errors: reconnect with backoff
                failures += 1
                delay = min(self.reconnect_max, 2.0 ** min(failures, 6))
                log.warning("Telegram (user account) connection lost or failed (%s: %s); connecting again in %.0f s",
                            type(exc).__name__, exc, delay)
                if await sleep_or_stop(stop, delay):
                    return
            finally:
                self.connected.clear()
                await self._disconnect(client)
            if not stop.is_set():
                self.metrics.source_reconnects.labels(source=SOURCE).inc()

    async def _session(self, client: Any, intake: Intake, stop: asyncio.Event) -> None:
        """One connection: connect, resolve, catch up, then read until stopped or disconnected."""
        await client.connect()
        if not await client.is_user_authorized():
            raise NotLoggedIn("the Telegram user account is not logged in (or its session was revoked): "
                              "run `hux bot login` once, then restart the bot")
        if not self.resolved:
            self.resolved = await self._resolve(client)
            if not self.resolved:
                raise RuntimeError("none of bot.telegram_user.chats can be read (see the errors above)")
        pending: asyncio.Queue[tuple[Any, bool]] = asyncio.Queue(maxsize=1000)

        async def on_message(event: Any) -> None:
            # Runs in Telethon's update loop: hand over and return (accepting waits on the database).
            await pending.put((event.message, isinstance(event, events.MessageEdited.Event)))

        chat_ids = list(self.resolved)
        client.add_event_handler(on_message, events.NewMessage(chats=chat_ids))
        client.add_event_handler(on_message, events.MessageEdited(chats=chat_ids))
        try:
            await self._catch_up(client, intake, stop)
            self.connected.set()
            log.info("reading %d Telegram chat(s) as a user account", len(self.resolved))
            stopped = asyncio.ensure_future(stop.wait())
            disconnected = asyncio.ensure_future(client.disconnected) if client.disconnected is not None else None
            try:
                while True:
                    getter = asyncio.ensure_future(pending.get())
                    waits = {getter, stopped} | ({disconnected} if disconnected is not None else set())
                    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        if stopped in done:
                            return
                        raise ConnectionError("Telethon gave up reconnecting")
                    batch = [getter.result()]
                    while not pending.empty() and len(batch) < 100:
                        batch.append(pending.get_nowait())
                    await self._accept(intake, [(m, e) for m, e in batch], stop)
            finally:
                stopped.cancel()
                if disconnected is not None:
                    disconnected.cancel()
        finally:
            client.remove_event_handler(on_message)

    async def _flood_wait(self, exc: errors.FloodWaitError, stop: asyncio.Event) -> bool:
        """Wait out Telegram's FloodWait (counted); True when stopped meanwhile."""
        seconds = float(max(0, int(getattr(exc, "seconds", 0) or 0)))
        self.metrics.telegram_flood_waits.labels(source=SOURCE).inc()
        level = logging.ERROR if seconds > self.flood_wait_max else logging.WARNING
        log.log(level, "Telegram asks the user account to wait %.0f s (FloodWait)%s", seconds,
                "; over bot.telegram_user.flood_wait_max_seconds: the account may be limited, read fewer chats"
                if seconds > self.flood_wait_max else "")
        waited = 0.0
        while waited < seconds:
            step = min(FLOOD_WAIT_STEP, seconds - waited)
            started = time.monotonic()
            stopped = await sleep_or_stop(stop, step)
            spent = time.monotonic() - started
            waited += spent
            self.metrics.telegram_flood_wait_seconds.labels(source=SOURCE).inc(spent)
            if stopped:
                return True
        return False

    # -- chats ---------------------------------------------------------------------------------
    async def _resolve(self, client: Any) -> dict[int, ResolvedChat]:
        resolved: dict[int, ResolvedChat] = {}
        unresolved = 0
        for index, spec in enumerate(self.chats, 1):
            try:
                chat = await self._resolve_one(client, spec)
            except errors.FloodWaitError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad chat must not stop the others
                unresolved += 1
                log.error("bot.telegram_user.chats entry %d (%s) cannot be read: %s", index, spec.text[:60], _why(exc, spec))
                continue
            resolved[chat.id] = chat
        self.metrics.telegram_user_chats.labels(state="resolved").set(len(resolved))
        self.metrics.telegram_user_chats.labels(state="unresolved").set(unresolved)
        return resolved

    async def _resolve_one(self, client: Any, spec: ChatSpec) -> ResolvedChat:
        if spec.kind == "invite":
            invite = await client(CheckChatInviteRequest(str(spec.value)))
            if not isinstance(invite, (types.ChatInviteAlready, types.ChatInvitePeek)):
                raise PermissionError("the account is not a member: open the invite link with it and join first")
            entity = invite.chat
        else:
            entity = await client.get_entity(spec.value)
        if isinstance(entity, types.User):
            raise PermissionError("that is a person, not a group or channel")
        if not isinstance(entity, (types.Channel, types.Chat)):
            raise PermissionError(f"that is a {type(entity).__name__}, not a group or channel")
        if getattr(entity, "left", False):
            raise PermissionError("the account has left this chat: join it again")
        title = entity.title or (f"@{entity.username}" if getattr(entity, "username", None) else str(entity.id))
        return ResolvedChat(utils.get_peer_id(entity), title, spec, entity)

    # -- messages ------------------------------------------------------------------------------
    async def _catch_up(self, client: Any, intake: Intake, stop: asyncio.Event) -> None:
        """Read what each chat said since the last accepted message (bounded), oldest first."""
        for chat in self.resolved.values():
            last = self.state.last.get(chat.id)
            if last is None or self.catch_up_messages <= 0:
                continue  # never read before: start from now, not from the chat's whole history
            found = [m async for m in client.iter_messages(chat.entity, min_id=last, limit=self.catch_up_messages)]
            found.sort(key=lambda m: m.id)
            self.metrics.catch_up_messages.labels(source=SOURCE, result="read").inc(len(found))
            if len(found) >= self.catch_up_messages and found and found[0].id > last + 1:
                skipped = found[0].id - last - 1  # ids are per chat and increase: an upper bound of what was missed
                self.metrics.catch_up_messages.labels(source=SOURCE, result="skipped").inc(skipped)
                log.warning("catching up %s: more than %d messages were missed, the oldest %d (at most) are skipped "
                            "(bot.telegram_user.catch_up_messages)", chat.title, self.catch_up_messages, skipped)
            if found:
                await self._accept(intake, [(m, False) for m in found], stop)

    async def _accept(self, intake: Intake, batch: Sequence[tuple[Any, bool]], stop: asyncio.Event) -> None:
        messages: list[ChatMessage] = []
        for raw, edited in batch:
            try:
                chat_id = utils.get_peer_id(raw.peer_id) if isinstance(raw, types.Message) else None
                chat = self.resolved.get(chat_id) if chat_id is not None else None
                if chat is None:  # Telethon filters by chat; this is the allowlist's second line
                    if isinstance(raw, types.Message) and raw.message:
                        raise Rejected("chat_not_allowed", f"chat {chat_id} is not listed in bot.telegram_user.chats")
                    continue
                message = message_of(raw, chat.title, max_bytes=self.max_bytes, edited=edited)
            except Rejected as exc:
                intake.reject(SOURCE, exc, f"message {getattr(raw, 'id', '?')}")
                continue
            if message is not None:
                messages.append(message)
        while messages:
            try:
                await intake.accept(messages, stop=stop)
                break
            except IntakeStopped:
                return  # stopped while the shared inbox was full: not noted, the next catch-up reads them again
            except Exception as exc:  # noqa: BLE001 - neither database nor spool took them: keep them, retry
                log.error("could not accept %d Telegram messages (%s); retrying", len(messages), exc)
                if await sleep_or_stop(stop, 2.0):
                    return
        self._note_last_message(messages)
        if messages and self.state.note(messages):
            try:
                self.state.save()
            except OSError as exc:
                log.warning("the catch-up state could not be written (%s): a restart may read some messages again "
                            "(the inbox recognises them)", exc)

    def _note_last_message(self, messages: Sequence[ChatMessage]) -> None:
        """Each chat's newest message date on its gauge (a quiet chat's age grows on the dashboard).

        The date is Telegram's; one ahead of this host's clock is taken as now, so an age is never negative."""
        now = time.time()
        for message in messages:
            group = self.metrics.group_label(message.group)
            newest = min(message.sent_at, now)
            if newest > self.last_message.get(group, 0.0):
                self.last_message[group] = newest
                self.metrics.telegram_user_last_message.labels(group=group).set(newest)

    async def _disconnect(self, client: Any) -> None:
        try:
            await client.disconnect()
        except Exception:  # noqa: BLE001 - already gone
            log.debug("disconnecting the Telegram client failed", exc_info=True)


def _why(exc: BaseException, spec: ChatSpec) -> str:
    """What went wrong with one chat, and what to do about it."""
    if isinstance(exc, (errors.UsernameNotOccupiedError, errors.UsernameInvalidError)):
        return f"no chat has the username @{spec.value}: check the spelling"
    if isinstance(exc, (errors.InviteHashExpiredError, errors.InviteHashInvalidError)):
        return "the invite link has expired or is invalid: ask for a new one"
    if isinstance(exc, (errors.ChannelPrivateError, errors.ChatAdminRequiredError)):
        return "the chat is private and the account is not in it: join it with the account first"
    if isinstance(exc, ValueError) and spec.kind == "id":
        return "the account has never seen a chat with this id: use its @username or invite link, or join it first"
    return f"{exc} ({type(exc).__name__})"


def user_dir(state_dir: Path) -> Path:
    """The user account's own directory under ``data/bot/`` (0700): its session and catch-up state."""
    return state_dir / "telegram_user"


def session_path(state_dir: Path) -> Path:
    """Where the login is kept (given with its suffix, Telethon adds none)."""
    return user_dir(state_dir) / f"{SESSION_NAME}.session"


def state_path(state_dir: Path) -> Path:
    return user_dir(state_dir) / STATE_FILE


def secure_session_file(path: Path) -> None:
    """The session's directory 0700 and the session file 0600, created empty when missing.

    The file is a login to a person's Telegram account: nobody else on the host may read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
