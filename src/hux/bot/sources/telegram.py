"""Telegram Bot API long polling (``getUpdates``).

The bot must be a member of the groups it watches (with privacy mode off to
see every message). Each poll returns up to ``limit`` updates; their messages
are made durable through ``Intake.accept`` and only then is the offset moved
past them. Telegram keeps unconfirmed updates (24 h), so a crash between
polling and accepting means the next start receives them again, and the inbox
recognises any it already had.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hux.bot.clients.telegram import TelegramBotApi
from hux.bot.intake import Intake
from hux.bot.messages import ChatMessage, Rejected, make_message
from hux.bot.sources import sleep_or_stop

log = logging.getLogger("hux.bot.sources.telegram")

MESSAGE_FIELDS = ("message", "channel_post", "edited_message", "edited_channel_post")


def update_to_message(update: dict[str, Any], *, max_bytes: int) -> ChatMessage | None:
    """A ChatMessage from one update; None for updates without chat text (joins, stickers, polls)."""
    for field in MESSAGE_FIELDS:
        msg = update.get(field)
        if msg is not None:
            break
    else:
        return None
    if not isinstance(msg, dict):
        raise Rejected("malformed", f"update {update.get('update_id')}: '{field}' is not an object")
    text = msg.get("text", msg.get("caption"))
    if text is None:
        return None
    chat = msg.get("chat")
    if not isinstance(chat, dict) or "id" not in chat:
        raise Rejected("malformed", f"update {update.get('update_id')}: message has no chat id")
    group = chat.get("title") or chat.get("username") or chat.get("id")
    edit = "e" if field.startswith("edited") else ""
    key = f"telegram:{chat['id']}:{msg.get('message_id')}{edit}"
    return make_message(key=key, source="telegram", group=group, text=text, sent_at=msg.get("date", 0), max_bytes=max_bytes)


class TelegramSource:
    name = "telegram"

    def __init__(self, api: TelegramBotApi, *, poll_timeout: int = 25, limit: int = 100, max_message_bytes: int = 65536,
                 backoff_max: float = 30.0) -> None:
        self.api = api
        self.poll_timeout = poll_timeout
        self.limit = limit
        self.max_bytes = max_message_bytes
        self.backoff_max = backoff_max
        self.offset: int | None = None

    async def run(self, intake: Intake, stop: asyncio.Event) -> None:
        failures = 0
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
            messages = []
            for update in updates:
                try:
                    message = update_to_message(update, max_bytes=self.max_bytes)
                except Rejected as exc:
                    intake.reject(self.name, exc, f"update {update.get('update_id')}")
                    continue
                if message is not None:
                    messages.append(message)
            while True:
                try:
                    await intake.accept(messages)
                    break
                except Exception as exc:  # noqa: BLE001 - neither DB nor spool took them: keep the offset, retry
                    log.error("could not accept %d Telegram messages (%s); retrying before confirming them", len(messages), exc)
                    if await sleep_or_stop(stop, 2.0):
                        return
            # Durable: now confirm them to Telegram with the next poll's offset.
            self.offset = max(u["update_id"] for u in updates) + 1

    async def _poll(self, stop: asyncio.Event) -> list[dict] | None:
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
