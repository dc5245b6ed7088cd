"""Chat messages as the pipeline sees them, and the checks every source applies.

A source turns whatever it reads (a Telegram update, a JSONL line) into a
``ChatMessage`` with ``make_message``; input that cannot become one raises
``Rejected`` with a reason from ``metrics.REJECT_REASONS`` and a message that
says what was wrong. Nothing here raises anything else on bad input.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from hux.bot.metric_names import CountedError


class Rejected(CountedError, ValueError):
    """Input that is not a usable chat message; ``reason`` (REJECT_REASONS) is the label it is counted under."""


@dataclass(slots=True)
class ChatMessage:
    key: str                  # unique per source message: redeliveries share it
    source: str               # "telegram" or "replay" (metric label)
    group: str                # chat title; capped on metrics, stored in full (<= 128 chars)
    text: str
    sent_at: float            # unix time the source says it was sent
    accepted_at: float = 0.0  # time.monotonic() when durably accepted (latency start)
    accepted_wall: float = field(default_factory=time.time)

    def to_record(self) -> dict[str, Any]:
        return {"key": self.key, "source": self.source, "group": self.group, "text": self.text, "sent_at": self.sent_at}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "ChatMessage":
        return cls(record["key"], record["source"], record["group"], record["text"], float(record["sent_at"]))


#: Sources whose message keys carry Telegram's chat id.
TELEGRAM_SOURCES = frozenset({"telegram", "telegram_user"})


def chat_of(message: ChatMessage) -> str:
    """The chat a message belongs to, for fairness: Telegram's chat id, else source and group name.

    Telegram keys are ``telegram:<chat id>:<message id>`` (the Bot API source and
    the user account's alike); two chats with the same title are still two chats
    (a hostile group cannot share another's budget by copying its name).
    """
    if message.source in TELEGRAM_SOURCES and message.key.startswith("telegram:"):
        chat = message.key.split(":", 2)[1]
        if chat:
            return f"telegram:{chat}"
    return f"{message.source}:{message.group}"


GROUP_MAX_CHARS = 128
#: 9999-12-31T23:59:59Z: the last second Python's datetime, SQLite and PostgreSQL all hold.
MAX_TIMESTAMP = 253_402_300_799
INT64_MAX = 2**63 - 1


def check_timestamp(value: Any, what: str = "timestamp") -> float:
    """Unix seconds as a finite float within 0..MAX_TIMESTAMP; ``Rejected`` otherwise (never OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected("malformed", f"{what} must be a number (unix seconds), got {type(value).__name__}")
    if isinstance(value, int):
        if not 0 <= value <= MAX_TIMESTAMP:
            raise Rejected("out_of_range", f"{what} is outside 0..{MAX_TIMESTAMP} (year 9999)")
        return float(value)
    if not math.isfinite(value) or not 0 <= value <= MAX_TIMESTAMP:
        raise Rejected("out_of_range", f"{what} {value!r} is not a time between 1970 and the year 9999")
    seconds: float = value
    return seconds


def check_int64(value: Any, what: str, *, minimum: int = -INT64_MAX - 1) -> int:
    """An integer (not a bool) that fits a signed 64-bit column; ``Rejected`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected("malformed", f"{what} must be an integer, got {type(value).__name__}")
    if not minimum <= value <= INT64_MAX:
        raise Rejected("out_of_range", f"{what} is outside {minimum}..{INT64_MAX}")
    checked: int = value
    return checked


def clean_text(text: Any, *, max_bytes: int) -> str:
    """Validated message text: a non-empty str, valid UTF-8, at most ``max_bytes``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected("decode_error", f"message text is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not isinstance(text, str):
        raise Rejected("malformed", f"message text must be a string, got {type(text).__name__}")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        # Lone surrogates (e.g. "\ud800" in JSON) are not text any database can store.
        raise Rejected("decode_error", "message text holds invalid unicode (lone surrogates)") from None
    if size > max_bytes:
        raise Rejected("too_large", f"message is {size} bytes, over max_message_bytes={max_bytes}")
    if not text.strip():
        raise Rejected("empty", "message has no text")
    # PostgreSQL text cannot hold NUL; keep the rest of the message.
    return text.replace("\x00", "\ufffd")


def clean_group(group: Any) -> str:
    if group is None or group == "":
        return "unknown"
    if isinstance(group, bool) or not isinstance(group, (str, int)):
        raise Rejected("malformed", f"group must be a name or id, got {type(group).__name__}")
    if isinstance(group, int):
        check_int64(group, "group id")  # str() of a huge int is slow, then refused (4300 digits)
    text = str(group).replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected("decode_error", "group name holds invalid unicode") from None
    return text[:GROUP_MAX_CHARS] or "unknown"


def make_message(*, key: str, source: str, group: Any, text: Any, sent_at: Any, max_bytes: int) -> ChatMessage:
    sent = check_timestamp(sent_at, "message date")
    return ChatMessage(key=key, source=source, group=clean_group(group), text=clean_text(text, max_bytes=max_bytes), sent_at=sent)
