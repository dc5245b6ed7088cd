"""Chat messages as the pipeline sees them, and the checks every source applies.

A source turns whatever it reads (a Telegram update, a JSONL line) into a
``ChatMessage`` with ``make_message``; input that cannot become one raises
``Rejected`` with a reason from ``metrics.REJECT_REASONS`` and a message that
says what was wrong. Nothing here raises anything else on bad input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


class Rejected(ValueError):
    """Input that is not a usable chat message. ``reason`` is a metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


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


GROUP_MAX_CHARS = 128


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
    if not isinstance(group, (str, int)):
        raise Rejected("malformed", f"group must be a name or id, got {type(group).__name__}")
    text = str(group).replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected("decode_error", "group name holds invalid unicode") from None
    return text[:GROUP_MAX_CHARS] or "unknown"


def make_message(*, key: str, source: str, group: Any, text: Any, sent_at: Any, max_bytes: int) -> ChatMessage:
    if isinstance(sent_at, bool) or not isinstance(sent_at, (int, float)):
        raise Rejected("malformed", f"timestamp must be a number (unix seconds), got {type(sent_at).__name__}")
    return ChatMessage(key=key, source=source, group=clean_group(group), text=clean_text(text, max_bytes=max_bytes), sent_at=float(sent_at))
