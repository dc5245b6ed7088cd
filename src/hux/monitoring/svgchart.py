"""Time-series charts as inline SVG: the one drawing of the dashboard snapshot and the maintenance reports.

:func:`time_series` draws a frame, the y axis's round ticks (grid lines, labels in the chart's unit through
:func:`hux.units.format_value`), the x axis (times, or plain numbers with a caption), each series as a path
broken at gaps and at NaN, optional filled areas, threshold lines, and the legend as an HTML list under the
SVG. :class:`Canvas` holds the scales for other drawings on the same frame (the snapshot's heatmap).

Every text is escaped (:func:`esc`): series names are label values and chat names, hostile input. NaN and
infinite values are not drawn and do not stretch the axis; a chart with nothing finite draws nothing ("").
It lives in monitoring, below ops, so the snapshot (monitoring) and the reports (ops) both import it.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from hux.units import format_value

#: an error or label longer than this is cut
MAX_TEXT = 300

Point = tuple[float, float]


#: characters XML does not allow (C0 controls but tab and newlines, lone surrogates, U+FFFE/U+FFFF): a label
#: value may hold any of them, and one would make the SVG unreadable to an XML parser
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(_NOT_XML.sub("\ufffd", str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def esc(value: Any) -> str:
    """Text for HTML and SVG (element content and quoted attributes alike), on one line, cut at MAX_TEXT;
    a character XML does not allow reads as U+FFFD."""
    return html.escape(_clip(str(value)), quote=True)


def tick_step(low: float, high: float, count: int) -> float:
    """The round step (1, 2, 2.5 or 5 times a power of ten) that cuts ``low``..``high`` into about ``count``
    parts."""
    raw = (high - low) / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def ticks(low: float, high: float, count: int = 4) -> list[float]:
    """The round values within ``low``..``high`` (about ``count`` steps); just the ends when no round step fits."""
    if not high > low:
        high = low + (abs(low) or 1.0)
    if not math.isfinite(high - low) or high - low > 1e300 or (high - low) / count < 1e-300:
        return [low, high]          # beyond what round ticks can say
    step = tick_step(low, high, count)
    first = math.ceil(low / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(count + 2) if first + i * step <= high + 1e-9 * step]


def round_up(low: float, high: float, count: int = 4) -> float:
    """``high`` raised to the round tick at or above it (as Grafana's axis ends), so the top grid line is
    labelled and the highest point is not drawn on the frame; ``high`` itself when no round step fits."""
    if not high > low or not math.isfinite(high - low) or high - low > 1e300 or (high - low) / count < 1e-300:
        return high
    step = tick_step(low, high, count)
    return max(high, math.ceil(high / step - 1e-9) * step)


def runs(points: Iterable[Point], gap: float) -> list[list[Point]]:
    """The points in unbroken runs: a stretch longer than ``gap`` between two points, or a NaN, breaks a line."""
    out: list[list[Point]] = []
    current: list[Point] = []
    previous = None
    for at, value in points:
        if not math.isfinite(value) or (previous is not None and at - previous > gap):
            if current:
                out.append(current)
            current = []
        if math.isfinite(value):
            current.append((at, value))
        previous = at
    if current:
        out.append(current)
    return out


def usual_gap(points: Sequence[Point]) -> float:
    """A gap in the data: 2.5 times the median spacing of ``points`` (infinite with fewer than two)."""
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
    return 2.5 * gaps[len(gaps) // 2] if gaps else math.inf


def finite(points: Iterable[Point]) -> list[Point]:
    return [p for p in points if math.isfinite(p[1])]


def time_label(at: float, span: float) -> str:
    moment = datetime.fromtimestamp(at, timezone.utc)
    return moment.strftime("%H:%M:%S" if span <= 900 else "%H:%M" if span <= 86400 else "%m-%d %H:%M")


def _plain_label(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def path_data(run: Sequence[Point]) -> str:
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in run)


def svg(width: float, height: float, body: Iterable[str], label: str, *, sized: bool = False) -> str:
    """The ``<svg>`` element; ``sized``: at its nominal size (else it takes the width its box gives it)."""
    size = f'width="{width:.0f}" height="{height:.0f}" ' if sized else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" {size}viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="{esc(label)}">' + "".join(body) + "</svg>")


class Canvas:
    """Scales for one SVG chart of the nominal size ``width`` x ``height``: x from ``x0`` to ``x1``, y from
    ``low`` to ``high`` (values beyond are drawn at the edge); the left margin fits the widest y label."""

    RIGHT, TOP, BOTTOM = 8, 6, 18
    #: the x axis's caption takes this much more at the bottom
    CAPTION = 14
    #: the y axis's labels get about this many pixels per character (10.5 px text), within these bounds
    CHAR_PX, MIN_LEFT, MAX_LEFT = 6.2, 36, 150

    def __init__(self, width: float, height: float, x0: float, x1: float, low: float, high: float,
                 labels: Sequence[str] = (), *, caption: str = "") -> None:
        self.width, self.height, self.caption = width, height, caption
        self.x0, self.x1 = x0, (x1 if x1 > x0 else x0 + 1)
        self.low, self.high = low, (high if high > low else low + (abs(low) or 1.0))
        widest = max((len(label) for label in labels), default=0)
        self.left = min(self.MAX_LEFT, max(self.MIN_LEFT, 10 + widest * self.CHAR_PX))
        self.bottom = self.BOTTOM + (self.CAPTION if caption else 0)
        self.plot_w = max(10.0, width - self.left - self.RIGHT)
        self.plot_h = max(10.0, height - self.TOP - self.bottom)

    def x(self, at: float) -> float:
        return self.left + (at - self.x0) / (self.x1 - self.x0) * self.plot_w

    def y(self, value: float) -> float:
        clamped = min(max(value, self.low), self.high)
        return self.TOP + self.plot_h - (clamped - self.low) / (self.high - self.low) * self.plot_h

    def frame(self) -> str:
        return (f'<rect class="plot" x="{self.left:.0f}" y="{self.TOP}" width="{self.plot_w:.0f}" '
                f'height="{self.plot_h:.0f}"/>')

    def x_axis(self, *, is_time: bool = True) -> list[str]:
        """Labels under the frame (a time or a plain number), and the caption under them."""
        span = self.x1 - self.x0
        labels = max(2, min(7, int(self.plot_w // 110)))
        baseline = self.height - 4 - (self.CAPTION if self.caption else 0)
        out = []
        for index in range(labels):
            at = self.x0 + span * index / (labels - 1)
            anchor = "start" if index == 0 else "end" if index == labels - 1 else "middle"
            text = time_label(at, span) if is_time else _plain_label(at)
            out.append(f'<text x="{self.x(at):.1f}" y="{baseline:.1f}" text-anchor="{anchor}">{esc(text)}</text>')
        if self.caption:
            out.append(f'<text x="{self.left + self.plot_w / 2:.1f}" y="{self.height - 4:.1f}" '
                       f'text-anchor="middle">{esc(self.caption)}</text>')
        return out

    @staticmethod
    def tick_labels(low: float, high: float, unit: str, decimals: int | None) -> list[tuple[float, str]]:
        return [(tick, format_value(tick, unit, decimals)) for tick in ticks(low, high)]

    def axes(self, labelled: Sequence[tuple[float, str]], *, is_time: bool = True) -> list[str]:
        """The frame, a grid line and a label at each y tick, and the x axis."""
        out = [self.frame()]
        for tick, label in labelled:
            y = self.y(tick)
            out.append(f'<line class="grid" x1="{self.left:.0f}" x2="{self.left + self.plot_w:.0f}" y1="{y:.1f}" '
                       f'y2="{y:.1f}"/><text x="{self.left - 4:.0f}" y="{y + 3.5:.1f}" text-anchor="end">'
                       f"{esc(label)}</text>")
        return out + self.x_axis(is_time=is_time)

    def path(self, points: Sequence[Point], gap: float) -> list[list[Point]]:
        """Screen coordinates in runs (:func:`runs`)."""
        return [[(self.x(at), self.y(value)) for at, value in run] for run in runs(points, gap)]


@dataclass
class Line:
    """One series to draw: its name (the legend's, escaped when drawn), points and colour."""

    name: str
    points: list[Point]
    colour: str
    #: a longer stretch between two points is a gap in the data (not drawn across)
    gap: float = math.inf
    #: a stacked line's area fills down to this line (the running total under it), else to the axis
    base: list[Point] | None = None


@dataclass(frozen=True)
class Threshold:
    value: float
    colour: str
    dashed: bool = True
    #: written above the line at its right end (else only on hover)
    caption: str = ""


def legend(lines: Sequence[Line]) -> str:
    if not lines:
        return ""
    items = "".join(f'<li><i style="background:{line.colour}"></i>{esc(line.name)}</li>' for line in lines)
    return f'<ul class="legend">{items}</ul>'


def time_series(lines: Sequence[Line], size: tuple[float, float], x_range: tuple[float, float], *,
                unit: str = "", decimals: int | None = None, low: float | None = None, high: float | None = None,
                thresholds: Sequence[Threshold] = (), fit_thresholds: bool = False, fill: float = 0.0,
                line_width: int = 1, x_is_time: bool = True, x_caption: str = "", label: str = "",
                sized: bool = False) -> str:
    """The chart of ``lines`` over ``x_range`` and its legend; "" when no line has a finite value.

    The y axis runs from ``low`` (else the smallest value or 0) to ``high`` (else the largest value), in
    ``unit`` (a :func:`hux.units.format_value` unit) with ``decimals``; ``fit_thresholds`` stretches it to
    the thresholds too, otherwise one outside it is not drawn. ``fill``: the areas' opacity (0: none).
    """
    values = [v for line in lines for _, v in finite(line.points)]
    if not values:
        return ""
    if fit_thresholds:
        values += [t.value for t in thresholds if math.isfinite(t.value)]
    bottom = low if low is not None else min(min(values), 0.0)
    top = high if high is not None else max(values)
    if high is None:
        top = round_up(bottom, top)
    labelled = Canvas.tick_labels(bottom, top, unit, decimals)
    canvas = Canvas(size[0], size[1], x_range[0], x_range[1], bottom, top, [text for _, text in labelled],
                    caption=x_caption)
    body = canvas.axes(labelled, is_time=x_is_time)
    floor = canvas.y(max(bottom, 0.0) if bottom <= 0 <= top else bottom)
    for line in lines:
        drawn = canvas.path(line.points, line.gap)
        if fill > 0:
            base_runs = canvas.path(line.base, line.gap) if line.base is not None else []
            for index, run in enumerate(drawn):
                if len(run) < 2:
                    continue
                under = base_runs[index] if index < len(base_runs) else [(x, floor) for x, _ in run]
                polygon = run + list(reversed(under))
                body.append(f'<path class="area" d="{path_data(polygon)} Z" fill="{line.colour}" '
                            f'fill-opacity="{fill:.2f}"/>')
        for run in drawn:
            if len(run) == 1:
                body.append(f'<circle class="series" cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2" '
                            f'fill="{line.colour}"><title>{esc(line.name)}</title></circle>')
            else:
                body.append(f'<path class="series" d="{path_data(run)}" stroke="{line.colour}" '
                            f'stroke-width="{line_width}" fill="none"><title>{esc(line.name)}</title></path>')
    for threshold in thresholds:
        if math.isfinite(threshold.value) and canvas.low <= threshold.value <= canvas.high:
            body += _threshold(canvas, threshold, format_value(threshold.value, unit, decimals))
    return svg(size[0], size[1], body, label, sized=sized) + legend(lines)


def _threshold(canvas: Canvas, threshold: Threshold, value: str) -> list[str]:
    y = canvas.y(threshold.value)
    dash = ' stroke-dasharray="8 5"' if threshold.dashed else ""
    title = f"{threshold.caption}: {value}" if threshold.caption else f"threshold {value}"
    out = [f'<line class="threshold" x1="{canvas.left:.0f}" x2="{canvas.left + canvas.plot_w:.0f}" '
           f'y1="{y:.1f}" y2="{y:.1f}" stroke="{threshold.colour}"{dash}><title>{esc(title)}</title></line>']
    if threshold.caption:
        out.append(f'<text x="{canvas.left + canvas.plot_w - 4:.0f}" y="{y - 4:.1f}" text-anchor="end" '
                   f'style="fill:{threshold.colour}">{esc(threshold.caption)}</text>')
    return out


__all__ = ["Canvas", "Line", "MAX_TEXT", "Threshold", "esc", "finite", "legend", "path_data", "round_up", "runs",
           "svg", "tick_step", "ticks", "time_label", "time_series", "usual_gap"]
