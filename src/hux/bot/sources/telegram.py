"""Telegram Bot API long polling (``getUpdates``).

The bot must be a member of the groups it watches (with privacy mode off to
see every message). Each poll returns up to ``limit`` updates; their messages
are made durable through ``Intake.accept`` and only then is the offset moved
past them. Telegram keeps unconfirmed updates (24 h), so a crash between
polling and accepting means the next start receives them again, and the inbox
recognises any it already had.

With several instances (``offsets``: ``hux.bot.cluster.Cluster``) only the
leader polls; it starts from the offset stored in the database and stores it
after every accepted batch, so the next leader resumes where this one
stopped: an update already in the inbox that comes again is recognised there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hux.bot.clients.telegram import TelegramBotApi
from hux.bot.intake import Intake, IntakeStopped
from hux.bot.messages import ChatMessage, Rejected, check_int64, check_timestamp, make_message
from hux.bot.sources import sleep_or_stop

log = logging.getLogger("hux.bot.sources.telegram")

MESSAGE_FIELDS = ("message", "channel_post", "edited_message", "edited_channel_post")
#: The Bot API's Chat.type values.
CHAT_TYPES = ("private", "group", "supergroup", "channel")


class Commands(Protocol):
    """Who takes the updates that are commands to the bot, not chat content (``hux.bot.admin``)."""

    def claims(self, update: Any) -> bool: ...

    def submit(self, update: dict[str, Any]) -> None: ...


class OffsetStore(Protocol):
    """Where the update offset survives this process (the database, shared by the instances)."""

    async def load_offset(self, source: str) -> int | None: ...

    async def save_offset(self, source: str, value: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Chat:
    """The fields of a Bot API Chat the bot decides on."""

    id: int
    type: str
    username: str | None = None


def _optional_str(obj: dict[str, Any], key: str, where: str, limit: int = 256) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected("malformed", f"{where}: '{key}' must be a string, got {type(value).__name__}")
    return value[:limit]


def _chat(raw: Any, where: str) -> Chat:
    if not isinstance(raw, dict):
        raise Rejected("malformed", f"{where}: 'chat' must be an object, got {type(raw).__name__}")
    chat_id = check_int64(raw.get("id"), f"{where}: chat.id")
    kind = raw.get("type")
    if kind not in CHAT_TYPES:
        shown = repr(kind)[:40] if isinstance(kind, str) else type(kind).__name__
        raise Rejected("malformed", f"{where}: chat.type must be one of {', '.join(CHAT_TYPES)}, got {shown}")
    return Chat(chat_id, kind, _optional_str(raw, "username", f"{where}: chat", 64))


def parse_update(update: Any, *, max_bytes: int) -> tuple[Chat, ChatMessage] | None:
    """The chat and message of one update; None for updates without chat text (joins, stickers, polls).

    Every field the bot reads is checked against the Bot API's types and
    against what the bot can store: ``update_id``, ``message_id`` and
    ``chat.id`` integers within int64, ``chat.type`` one of ``CHAT_TYPES``,
    ``date`` whole unix seconds up to the year 9999, the text a string within
    ``max_bytes``. Anything else raises ``Rejected`` (reason ``malformed``,
    ``out_of_range``, ``empty``, ``too_large`` or ``decode_error``), never
    another exception.
    """
    if not isinstance(update, dict):
        raise Rejected("malformed", f"an update must be an object, got {type(update).__name__}")
    update_id = check_int64(update.get("update_id"), "update_id", minimum=0)
    where = f"update {update_id}"
    for field in MESSAGE_FIELDS:
        msg = update.get(field)
        if msg is not None:
            break
    else:
        return None
    if not isinstance(msg, dict):
        raise Rejected("malformed", f"{where}: '{field}' is not an object")
    text = msg.get("text")
    if text is None:
        text = msg.get("caption")
    if text is None:
        return None
    chat = _chat(msg.get("chat"), where)
    message_id = check_int64(msg.get("message_id"), f"{where}: message_id", minimum=1)
    date = msg.get("date")
    sent_at = check_timestamp(date, f"{where}: date")
    if not isinstance(date, int):
        raise Rejected("malformed", f"{where}: date must be whole unix seconds, got {date!r}")
    group = _optional_str(msg["chat"], "title", f"{where}: chat") or (f"@{chat.username}" if chat.username else chat.id)
    edit = "e" if field.startswith("edited") else ""
    message = make_message(key=f"telegram:{chat.id}:{message_id}{edit}", source="telegram", group=group, text=text,
                           sent_at=sent_at, max_bytes=max_bytes)
    return chat, message


def update_to_message(update: Any, *, max_bytes: int) -> ChatMessage | None:
    """The ChatMessage of one update (see ``parse_update``); None for updates without chat text."""
    parsed = parse_update(update, max_bytes=max_bytes)
    return None if parsed is None else parsed[1]


def _update_id(update: Any) -> int | None:
    """The update's id when it is one the offset can move past, else None."""
    value = update.get("update_id") if isinstance(update, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63 - 1:
        return value
    return None


class TelegramSource:
    name = "telegram"

    def __init__(self, api: TelegramBotApi, *, poll_timeout: int = 25, limit: int = 100, max_message_bytes: int = 65536,
                 backoff_max: float = 30.0, allowed_chats: Sequence[int | str] = (),
                 offsets: OffsetStore | None = None, commands: Commands | None = None) -> None:
        self.api = api
        self.offsets = offsets
        self.commands = commands
        self.poll_timeout = poll_timeout
        self.limit = limit
        self.max_bytes = max_message_bytes
        self.backoff_max = backoff_max
        self.offset: int | None = None
        self.allowed_ids = frozenset(c for c in allowed_chats if isinstance(c, int) and not isinstance(c, bool))
        self.allowed_names = frozenset(c.lstrip("@").lower() for c in allowed_chats if isinstance(c, str))

    def admit(self, chat: Chat) -> Rejected | None:
        """None when messages from ``chat`` are wanted, else why not (``bot.telegram.allowed_chats``).

        Empty list: every group, supergroup and channel the bot is in, no
        private chat. Otherwise exactly the listed chats (id, or ``@username``).
        """
        if chat.id in self.allowed_ids or (chat.username and chat.username.lower() in self.allowed_names):
            return None
        if chat.type == "private":
            return Rejected("private_chat", f"private chat {chat.id} is not listed: add its id to "
                                            "bot.telegram.allowed_chats to accept messages from it")
        if self.allowed_ids or self.allowed_names:
            return Rejected("chat_not_allowed", f"{chat.type} {chat.id} is not listed in bot.telegram.allowed_chats: "
                                                "add its id to accept messages from it")
        return None

    def _messages(self, updates: list[Any], intake: Intake) -> list[ChatMessage]:
        """The wanted messages of a batch; every other update with chat text is counted as a rejection."""
        messages = []
        for update in updates:
            where = f"update {_update_id(update)}"
            if self.commands is not None and self.commands.claims(update):
                self.commands.submit(update)  # an admin command or a pressed button: not chat content
                continue
            try:
                parsed = parse_update(update, max_bytes=self.max_bytes)
                if parsed is None:
                    continue
                chat, message = parsed
                refusal = self.admit(chat)
                if refusal is not None:
                    raise refusal
            except Rejected as exc:
                intake.reject(self.name, exc, where)
                continue
            except Exception as exc:  # a parser bug must not stall the offset: count it, keep going
                log.exception("update could not be read; refused it (a bug: please report it)")
                intake.reject(self.name, Rejected("malformed", f"unreadable update ({type(exc).__name__})"), where)
                continue
            messages.append(message)
        return messages

    async def run(self, intake: Intake, stop: asyncio.Event) -> None:
        failures = 0
        if self.offsets is not None:
            while self.offset is None and not stop.is_set():
                try:
                    self.offset = await self.offsets.load_offset(self.name)
                    break
                except Exception as exc:  # noqa: BLE001 - polling without it could hand out updates twice
                    log.warning("the stored Telegram offset could not be read (%s); asking again in 2 s", exc)
                    if await sleep_or_stop(stop, 2.0):
                        return
            if self.offset is not None:
                log.info("resuming Telegram polling at the stored offset %d", self.offset)
        while not stop.is_set():
            try:
                updates = await self._poll(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - ApiError: the client already retried; wait and poll again
                failures += 1
                delay = min(self.backoff_max, 2.0 ** min(failures, 6))
                log.warning("getUpdates failed (%s); polling again in %.0f s", exc, delay)
                if await sleep_or_stop(stop, delay):
                    return
                continue
            if updates is None:
                return
            failures = 0
            if not updates:
                continue
            messages = self._messages(updates, intake)
            while True:
                try:
                    await intake.accept(messages, stop=stop)
                    break
                except IntakeStopped:
                    return  # stopped while the shared inbox was full: unconfirmed, Telegram keeps them
                except Exception as exc:  # noqa: BLE001 - neither DB nor spool took them: keep the offset, retry
                    log.error("could not accept %d Telegram messages (%s); retrying before confirming them", len(messages), exc)
                    if await sleep_or_stop(stop, 2.0):
                        return
            # Durable: now confirm them (the refused ones too) to Telegram with the next poll's offset.
            ids = [i for i in map(_update_id, updates) if i is not None]
            if ids:
                self.offset = max(ids) + 1
                await self._save_offset()

    async def _save_offset(self) -> None:
        if self.offsets is None or self.offset is None:
            return
        try:
            await self.offsets.save_offset(self.name, self.offset)
        except Exception as exc:  # noqa: BLE001 - the next leader then sees some updates again; the inbox knows them
            log.warning("the Telegram offset could not be stored (%s); a new leader would see a few updates again", exc)

    async def _poll(self, stop: asyncio.Event) -> list[Any] | None:
        poll = asyncio.ensure_future(self.api.get_updates(self.offset, timeout=self.poll_timeout, limit=self.limit))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({poll, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if poll not in done:
            poll.cancel()  # shutting down mid long-poll: nothing was accepted, nothing is lost
            await asyncio.gather(poll, return_exceptions=True)
            return None
        return poll.result()
