"""How sizes and ages read in every message and report: one formatter each.

``human_bytes(123456789)`` → ``"117.7 MiB"``; ``ago(5400)`` → ``"90 min"`` (``"90m"`` in a table cell).
Health checks, backup/restore output, progress lines and the maintenance
reports all use these, so the same quantity reads the same everywhere.
"""

from __future__ import annotations

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(value: float) -> str:
    """Binary units, one decimal (whole bytes below 1 KiB); TiB is the largest unit."""
    for unit in _BYTE_UNITS:
        if abs(value) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


#: (below this many seconds, divide by, decimals, unit, compact unit): a unit is used up to twice its size
#: before the next takes over, so "90 min" rather than "1.5 h" and "36 h" reads as "36.0 h"
_AGE_SCALE = ((120, 1, 0, "s", "s"), (7200, 60, 0, "min", "m"), (172800, 3600, 1, "h", "h"),
              (float("inf"), 86400, 1, "d", "d"))


def ago(seconds: float | None, *, compact: bool = False) -> str:
    """A duration the way people say it: ``45 s``, ``90 min``, ``5.5 h``, ``3.0 d``; ``—`` for unknown.

    ``compact`` (table cells): ``45s``, ``90m``, ``5.5h``, ``3.0d``, same scale.
    """
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    for below, size, decimals, unit, short in _AGE_SCALE:
        if seconds < below:
            value = f"{seconds / size:.{decimals}f}"
            return f"{value}{short}" if compact else f"{value} {unit}"
    raise AssertionError("unreachable")


__all__ = ["ago", "human_bytes"]
