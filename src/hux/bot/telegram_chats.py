"""The chats ``bot.telegram_user.chats`` may name, and how each form is recognised.

Kept apart from the source (which needs Telethon) so the settings validate
them without loading it: ``@username`` or ``username``, ``https://t.me/username``,
an invite link ``https://t.me/+HASH`` or ``https://t.me/joinchat/HASH``, or a
numeric id (``-100…`` for channels and supergroups).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_USERNAME = r"[A-Za-z][A-Za-z0-9_]{3,31}"
_CHAT_FORMS = (
    ("invite", re.compile(r"(?:https?://)?(?:t\.me|telegram\.me)/(?:\+|joinchat/)(?P<hash>[A-Za-z0-9_-]{8,64})/?")),
    ("username", re.compile(rf"(?:https?://)?(?:t\.me|telegram\.me)/(?P<name>{_USERNAME})/?")),
    ("username", re.compile(rf"@?(?P<name>{_USERNAME})")),
    ("id", re.compile(r"(?P<id>-?[0-9]{1,19})")),
)


class ChatSpecError(ValueError):
    """A ``bot.telegram_user.chats`` entry that names no chat."""


@dataclass(frozen=True, slots=True)
class ChatSpec:
    """One configured chat: how it was written and what it names."""

    text: str
    kind: str           # "username" | "invite" | "id"
    value: str | int    # the username (no @), the invite hash, or the marked id


def parse_chat(entry: Any) -> ChatSpec:
    """One ``chats`` entry → ``ChatSpec``; ``ChatSpecError`` saying which forms are accepted."""
    if isinstance(entry, bool) or not isinstance(entry, (str, int)):
        raise ChatSpecError(f"{entry!r} is not a chat: write \"@username\", \"https://t.me/+INVITE\" or an id (-100…)")
    text = str(entry).strip()
    for kind, pattern in _CHAT_FORMS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        if kind == "id":
            number = int(match["id"])
            if not -(2**63) <= number < 2**63 or number == 0:
                break
            return ChatSpec(text, kind, number)
        return ChatSpec(text, kind, match["hash"] if kind == "invite" else match["name"])
    shown = text[:60]
    raise ChatSpecError(f"{shown!r} is not a chat: write \"@username\" (5-32 letters, digits, _), "
                        "\"https://t.me/username\", an invite link \"https://t.me/+HASH\" or a numeric id (-100…)")


def parse_chats(entries: Sequence[Any]) -> list[ChatSpec]:
    """Every entry parsed; one ``ChatSpecError`` naming each bad entry by position."""
    specs: list[ChatSpec] = []
    problems: list[str] = []
    for index, entry in enumerate(entries, 1):
        try:
            specs.append(parse_chat(entry))
        except ChatSpecError as exc:
            problems.append(f"chat {index}: {exc}")
    if problems:
        raise ChatSpecError("; ".join(problems))
    return specs


