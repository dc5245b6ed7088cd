"""Prometheus durations (``"30s"``, ``"1h30m"``, ``"2w"``): the one parser of the project.

The settings check every duration with :func:`duration_seconds` (strict: a
malformed one is refused with the fix); what Prometheus or Alertmanager report
about their own configuration is read with :func:`duration_or`, which falls back
to a default instead of reading half of a value it does not understand.
"""

from __future__ import annotations

import re
from typing import TypeVar

# used with fullmatch: units in Prometheus's order, each at most once ("$" would also accept a trailing newline)
_DURATION_RE = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)

Default = TypeVar("Default")


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as ``"1h30m"``; ValueError when malformed."""
    match = _DURATION_RE.fullmatch(text) if isinstance(text, str) else None
    if not text or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: use a Prometheus duration such as \"30s\", \"5m\", \"1h\", \"1d\"")
    return sum(int(g) * unit for g, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if g)


def duration_or(text: object, default: Default) -> float | Default:
    """Seconds in ``text`` when it is a duration, else ``default`` (absent, not a string or malformed)."""
    if not isinstance(text, str):
        return default
    try:
        return duration_seconds(text)
    except ValueError:
        return default
