"""How quantities read in every message, report and page: one formatter each, one scale per unit.

``human_bytes(123456789)`` → ``"117.7 MiB"``; ``ago(5400)`` → ``"90 min"`` (``"90m"`` in a table cell);
``format_value(0.25, "s")`` → ``"250 ms"`` (a value in the unit a dashboard panel declares, read as Grafana
reads it). Health checks, backup/restore output, progress lines, the maintenance reports and the dashboard
snapshot all use these, so the same quantity reads the same everywhere. Nothing of ours is imported here:
every package may use it.
"""

from __future__ import annotations

import math
from typing import Sequence

#: (factor, suffix) steps of a unit: a value takes the largest factor it reaches (the first below that)
Scale = Sequence[tuple[float, str]]

BYTES: Scale = ((1, "B"), (1024, "KiB"), (1024 ** 2, "MiB"), (1024 ** 3, "GiB"), (1024 ** 4, "TiB"))
SECONDS: Scale = ((1e-3, "ms"), (1, "s"), (60, "min"), (3600, "hour"), (86400, "day"), (604800, "week"))
_SI: Scale = ((1, ""), (1e3, "K"), (1e6, "Mil"), (1e9, "Bil"), (1e12, "Tri"))
_BYTES_SI: Scale = ((1, "B/s"), (1e3, "kB/s"), (1e6, "MB/s"), (1e9, "GB/s"), (1e12, "TB/s"))
_RATES = {"ops": "ops/s", "reqps": "req/s"}


def _step(value: float, scale: Scale) -> tuple[float, str]:
    factor, suffix = scale[0]
    for size, name in scale:
        if abs(value) >= size:
            factor, suffix = size, name
    return factor, suffix


def number(value: float, decimals: int | None = None) -> str:
    """A plain number: ``decimals`` places, or Grafana's automatic ones (3 significant digits, none from 100 up,
    trailing zeros dropped)."""
    if decimals is not None:
        return f"{value:.{decimals}f}"
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def scaled(value: float, scale: Scale, decimals: int | None = None) -> str:
    """``value`` divided by the largest factor of ``scale`` it reaches, with that factor's suffix."""
    factor, suffix = _step(value, scale)
    return f"{number(value / factor, decimals)} {suffix}".rstrip()


def human_bytes(value: float) -> str:
    """Binary units, one decimal (whole bytes below 1 KiB); TiB is the largest unit."""
    factor, _ = _step(value, BYTES)
    return scaled(value, BYTES, 0 if factor == 1 else 1)


def format_value(value: float, unit: str = "", decimals: int | None = None) -> str:
    """A value in a Grafana unit id (the ones the boards use; any other reads as a plain number).

    ``percentunit`` (a ratio) and ``percent``, ``s``, ``bytes``, ``Bps``, ``short``, ``ops``, ``reqps``,
    ``locale`` and ``suffix:<text>``; NaN and the infinities read as Prometheus writes them.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    unit = unit or "none"
    if unit.startswith("suffix:"):
        return f"{number(value, decimals)} {unit[len('suffix:'):].strip()}".rstrip()
    if unit == "percentunit":
        return f"{number(value * 100, decimals)}%"
    if unit == "percent":
        return f"{number(value, decimals)}%"
    if unit == "s":
        return "0 s" if value == 0 else scaled(value, SECONDS, decimals)
    if unit == "bytes":
        return scaled(value, BYTES, decimals)
    if unit == "Bps":
        return scaled(value, _BYTES_SI, decimals)
    if unit == "short":
        return scaled(value, _SI, decimals)
    if unit in _RATES:
        return f"{scaled(value, _SI, decimals)} {_RATES[unit]}"
    if unit == "locale":    # Grafana's "Locale format": the thousands grouped
        if decimals is not None:
            return f"{value:,.{decimals}f}"
        return f"{value:,.0f}" if abs(value) >= 100 else number(value)
    return number(value, decimals)


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


__all__ = ["BYTES", "SECONDS", "ago", "format_value", "human_bytes", "number", "scaled"]
