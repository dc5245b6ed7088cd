"""Alertmanager silences: export the active and pending ones, re-import them idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from hux.ops.clients import Alertmanager
from hux.ops.errors import ApiError

_KEEP = ("matchers", "startsAt", "endsAt", "createdBy", "comment")
MAX_SILENCES = 10_000  # a saved file with more is cut short (each one is a request to Alertmanager)


def export(am: Alertmanager) -> list[dict[str, Any]]:
    """Active and pending silences, as Alertmanager's v2 API returns them."""
    return sorted(am.silences(("active", "pending")), key=lambda s: (s.get("startsAt", ""), s.get("id", "")))


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _key(silence: dict[str, Any]) -> tuple[tuple[tuple[str, str, bool, bool], ...], str, str, datetime]:
    matchers = tuple(sorted(
        (str(m.get("name")), str(m.get("value")), bool(m.get("isRegex")), bool(m.get("isEqual", True)))
        for m in silence.get("matchers", [])
    ))
    return matchers, str(silence.get("createdBy")), str(silence.get("comment")), _parse_time(silence["endsAt"])


@dataclass
class ImportResult:
    added: list[str] = field(default_factory=list)
    already_present: int = 0
    expired: int = 0
    failed: list[str] = field(default_factory=list)


def import_silences(am: Alertmanager, silences: list[dict[str, Any]], *, now: datetime | None = None) -> ImportResult:
    """Re-create silences that are still in the future and not already there (by matchers, author, comment, end).

    New silences get new ids (Alertmanager refuses unknown ids); silences that
    already ended are skipped.
    """
    now = now or datetime.now(timezone.utc)
    result = ImportResult()
    present = set()
    for current in am.silences(("active", "pending")):
        try:
            present.add(_key(current))
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
    if not isinstance(silences, list):
        result.failed.append(f"the saved silences are a {type(silences).__name__}, not a list: none re-imported")
        return result
    for silence in silences[:MAX_SILENCES]:
        if not isinstance(silence, dict):
            result.failed.append("a saved silence is not an object: skipped")
            continue
        try:
            ends = _parse_time(silence["endsAt"])
            key = _key(silence)
        except (KeyError, ValueError, TypeError, AttributeError):
            result.failed.append(f"silence {str(silence.get('id', '?'))[:64]}: no valid endsAt or matchers")
            continue
        if ends <= now:
            result.expired += 1
            continue
        if key in present:
            result.already_present += 1
            continue
        body = {key: silence[key] for key in _KEEP if key in silence}
        try:
            result.added.append(am.add_silence(body))
        except ApiError as exc:
            result.failed.append(f"silence {str(silence.get('id', '?'))[:64]}: {exc}")
    return result
