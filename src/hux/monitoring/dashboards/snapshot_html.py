"""The dashboards as one self-contained HTML page: every panel of the Grafana JSON, drawn from query results.

``hux dashboards snapshot`` (``hux.ops.dashboard_snapshot``) asks Prometheus the
queries :func:`snapshot_queries` extracts from the same dashboard JSON Grafana
is provisioned with (through :mod:`hux.monitoring.dashboards.queries`, so there
is no second copy of a query), then hands the answers to :func:`render_snapshot`.
This module only draws: dashboard JSON + results -> an HTML string.

* layout: Grafana's grid (24 columns, ``gridPos``) as a CSS grid; rows as headings;
* timeseries: inline SVG lines (stacked and filled as configured), dashed threshold
  lines in the step colours, the legend from ``legendFormat`` (drawn by
  :mod:`hux.monitoring.svgchart`, as the maintenance reports' charts are);
* stat: the last non-null value per series, value mappings, coloured by the thresholds,
  with a sparkline; bargauge: bars coloured by the thresholds; table: label columns
  (the ``organize`` transformation's exclusions applied); heatmap: a grid of buckets;
* units and decimals from ``fieldConfig.defaults`` (the units the boards use, read by
  :func:`hux.units.format_value`);
* bounded: at most :data:`MAX_POINTS` points per line and :data:`MAX_SERIES` series per
  panel (``+N more``); label values are escaped (they come from chat names, among
  others); a Content-Security-Policy forbids scripts and any outside resource.

Each panel is a ``<section class="panel" data-state=...>``: ``data`` (something
drawn), ``nodata`` ("No data"), ``error`` ("query failed: ..." and nothing else
to show) or ``unsupported`` (a panel type this page does not draw).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping, Sequence

from hux.monitoring.dashboards.queries import board_variables, empty_unless, panel_targets, substitute
from hux.monitoring.svgchart import Canvas, Line, Threshold, esc, finite, path_data, svg, time_series
from hux.units import format_value

#: a line is downsampled to at most this many points (min and max of each bucket, so spikes stay)
MAX_POINTS = 300
#: at most this many series are drawn per panel; the rest are counted ("+N more series")
MAX_SERIES = 20
#: a range query asks for about this many points per series (a few less than MAX_POINTS: none is thinned)
TARGET_POINTS = 290

#: Grafana's named colours (the ones the boards use and their neighbours)
NAMED_COLOURS = {
    "green": "#73BF69", "red": "#F2495C", "yellow": "#FADE2A", "orange": "#FF9830", "blue": "#5794F2",
    "purple": "#B877D9", "dark-orange": "#FA6400", "dark-red": "#C4162A", "dark-green": "#37872D",
    "text": "#1d2733", "transparent": "transparent",
}
#: series colours in order (Grafana's classic palette)
PALETTE = ("#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
           "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477")
_COLOUR_RE = re.compile(r"#[0-9A-Fa-f]{3,8}")
_LEGEND_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

Key = tuple[str, str, str]   # (board uid, panel id, target refId)


# --- what is asked and what came back ------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotQuery:
    """One panel target, runnable: ``instant`` ones are asked at the end of the range, the others over it."""

    key: Key
    expr: str
    instant: bool


@dataclass
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]   # (unix time, value); an instant answer has one


@dataclass
class QueryResult:
    series: list[Series] = field(default_factory=list)
    error: str | None = None
    #: series Prometheus returned beyond what was kept
    dropped_series: int = 0
    #: samples that were not numbers (shown on the panel, never silently dropped)
    unreadable: int = 0


@dataclass(frozen=True)
class Window:
    """The time range and what Grafana would substitute for it."""

    start: float
    end: float
    step: float
    rate_interval: float
    scrape_interval: float

    @classmethod
    def over(cls, start: float, end: float, scrape_interval: float) -> "Window":
        """``step``: range/290 rounded up (about 300 points), never below the scrape interval;
        ``$__rate_interval`` as Grafana computes it for a datasource scraped every ``scrape_interval``:
        max(step + scrape, 4 x scrape)."""
        if not end > start:
            raise ValueError("the time range is empty: its end must come after its start")
        scrape = max(float(scrape_interval), 1.0)
        step = max(math.ceil((end - start) / TARGET_POINTS), scrape)
        return cls(start, end, step, max(step + scrape, 4 * scrape), scrape)

    def substitute(self, expr: str, variables: Mapping[str, str]) -> str:
        return substitute(expr, rate_interval=_dur(self.rate_interval), interval=_dur(self.step),
                          range_=_dur(self.end - self.start), variables=dict(variables))


def _dur(seconds: float) -> str:
    return f"{max(1, int(round(seconds)))}s"


def board_uid(board: Mapping[str, Any]) -> str:
    return str(board.get("uid") or board.get("title") or "board")


def _panel_id(panel: Mapping[str, Any]) -> str:
    return str(panel.get("id") if panel.get("id") is not None else panel.get("title") or "?")


def _target_key(board: Mapping[str, Any], panel: Mapping[str, Any], target: Mapping[str, Any], index: int) -> Key:
    return board_uid(board), _panel_id(panel), str(target.get("refId") or index)


#: an alert list panel's "query": Prometheus's own alerts in the states the panel shows (it has no PromQL target)
ALERTS_REF = "alerts"
_ALERT_STATES = ("firing", "pending")


def alert_states(panel: Mapping[str, Any]) -> list[str]:
    """The Prometheus alert states an ``alertlist`` panel shows (its ``stateFilter``; both when it names none)."""
    wanted = _dict(_dict(panel.get("options")).get("stateFilter"))
    return [state for state in _ALERT_STATES if wanted.get(state)] or list(_ALERT_STATES)


def _alert_lists(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels") or []:
        if isinstance(panel, dict):
            inner = [p for p in panel.get("panels") or [] if isinstance(p, dict)] if panel.get("type") == "row" else []
            for item in [panel, *inner]:
                if item.get("type") == "alertlist":
                    yield item


def snapshot_queries(boards: Iterable[Mapping[str, Any]], window: Window) -> list[SnapshotQuery]:
    """Every panel target of ``boards`` as Grafana would send it over ``window`` (variables at "All").

    An ``alertlist`` panel (alerts from the Alertmanager datasource, no PromQL of its own) asks for
    Prometheus's ``ALERTS`` in the states it shows, at the end of the range.
    """
    out = []
    for board in boards:
        for panel in _alert_lists(board):
            states = "|".join(alert_states(panel))
            out.append(SnapshotQuery((board_uid(board), _panel_id(panel), ALERTS_REF),
                                     f'ALERTS{{alertstate=~"{states}"}}', True))
        variables = board_variables(dict(board))
        per_panel: dict[str, int] = {}
        for panel, target in panel_targets(dict(board)):
            index = per_panel[_panel_id(panel)] = per_panel.get(_panel_id(panel), -1) + 1
            out.append(SnapshotQuery(_target_key(board, panel, target, index),
                                     window.substitute(str(target["expr"]), variables),
                                     bool(target.get("instant")) and not target.get("range")))
    return out


# --- values ------------------------------------------------------------------------------------


def colour(name: Any) -> str:
    """A Grafana colour (named or ``#rrggbb``) as CSS; anything else is the text colour."""
    text = str(name or "")
    if _COLOUR_RE.fullmatch(text):
        return text
    return NAMED_COLOURS.get(text, NAMED_COLOURS["text"])


def threshold_colour(value: float, thresholds: Any) -> str | None:
    """The colour of the last step at or below ``value`` (the first step starts at -Infinity)."""
    steps = (thresholds or {}).get("steps") if isinstance(thresholds, dict) else None
    if not isinstance(steps, list) or not steps:
        return None
    chosen = None
    for step in steps:
        if not isinstance(step, dict):
            continue
        bound = step.get("value")
        if bound is None or (isinstance(bound, (int, float)) and not math.isnan(value) and value >= bound):
            chosen = step.get("color")
    return colour(chosen) if chosen is not None else None


def mapped(value: float, mappings: Any) -> tuple[str, str | None] | None:
    """A value mapping's (text, colour) for ``value`` (``type: value`` mappings), None when none matches."""
    if not isinstance(mappings, list) or math.isnan(value) or math.isinf(value):
        return None
    value = float(value)
    key = str(int(value)) if value.is_integer() else repr(value)
    for mapping in mappings:
        options = mapping.get("options") if isinstance(mapping, dict) and mapping.get("type") == "value" else None
        result = options.get(key) if isinstance(options, dict) else None
        if isinstance(result, dict):
            return str(result.get("text", key)), (colour(result["color"]) if result.get("color") else None)
    return None


def legend(series: Series, legend_format: str, expr: str) -> str:
    """The series' name as Grafana shows it: ``legendFormat`` with ``{{label}}`` filled, else its labels."""
    if legend_format:
        return _LEGEND_RE.sub(lambda m: series.labels.get(m.group(1), ""), legend_format).strip() or legend_format
    name = series.labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(series.labels.items()) if k != "__name__")
    if rest:
        return f"{name}{{{rest}}}"
    return name or expr


def downsample(points: Sequence[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most ``limit`` points in time order: the first and the last (a stat shows the last), and between them
    the minimum and the maximum of each of ``(limit - 2) // 2`` stretches (so a spike stays)."""
    if len(points) <= limit:
        return list(points)
    inner = points[1:-1]
    buckets = max(1, (limit - 2) // 2)
    size = len(inner) / buckets
    out: list[tuple[float, float]] = [points[0]]
    for index in range(buckets):
        chunk = [p for p in inner[int(index * size):int((index + 1) * size)] if math.isfinite(p[1])]
        if not chunk:
            continue
        low = min(chunk, key=lambda p: p[1])
        high = max(chunk, key=lambda p: p[1])
        out.extend(sorted({low, high}))
    out.append(points[-1])
    return out


def _le(labels: Mapping[str, str]) -> float:
    try:
        return float(labels.get("le", "nan"))
    except ValueError:
        return math.nan


def buckets(series: Sequence[Series]) -> list[Series]:
    """Cumulative ``le`` buckets (``format: heatmap``) as counts per bucket, lowest bucket first."""
    ordered = sorted((s for s in series if not math.isnan(_le(s.labels))), key=lambda s: _le(s.labels))
    out: list[Series] = []
    previous: dict[float, float] = {}
    for item in ordered:
        values = dict(item.points)
        out.append(Series(item.labels, [(t, max(0.0, v - previous.get(t, 0.0)) if math.isfinite(v) else v)
                                        for t, v in item.points]))
        previous = values
    return out


# --- panels ------------------------------------------------------------------------------------


@dataclass
class _PanelData:
    series: list[Line]
    errors: list[str]
    notes: list[str]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _defaults(panel: Mapping[str, Any]) -> dict[str, Any]:
    config = panel.get("fieldConfig")
    defaults = config.get("defaults") if isinstance(config, dict) else None
    return defaults if isinstance(defaults, dict) else {}


def _int(value: Any, default: int, low: int, high: int) -> int:
    return min(high, max(low, int(value))) if isinstance(value, (int, float)) and math.isfinite(value) else default


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _bucket_width(points: Sequence[tuple[float, float]]) -> float:
    return (points[-1][0] - points[0][0]) / max(1, MAX_POINTS // 2) if points else 0.0


def _collect(board: Mapping[str, Any], panel: Mapping[str, Any], results: Mapping[Key, QueryResult],
             step: float, *, thin: bool = True) -> _PanelData:
    """The panel's series, named and coloured; ``thin``: lines cut to :data:`MAX_POINTS` (a heatmap bins
    every sample itself)."""
    drawn: list[Line] = []
    errors, notes = [], []
    dropped = unreadable = 0
    targets = [t for t in (panel.get("targets") or []) if isinstance(t, dict) and t.get("expr")]
    for index, target in enumerate(targets):
        result = results.get(_target_key(board, panel, target, index))
        if result is None:
            errors.append("query failed: not asked")
            continue
        if result.error:
            errors.append(f"query failed: {result.error}")
        series = result.series
        if target.get("format") == "heatmap":
            series = buckets(series)
        for item in series:
            name = legend(item, str(target.get("legendFormat") or ""), str(target["expr"]))
            points = downsample(item.points) if thin else list(item.points)
            # a downsampled line has up to two buckets between its points; otherwise a step
            gap = 1.5 * step if len(points) == len(item.points) else 2.5 * _bucket_width(item.points)
            drawn.append(Line(name, points, PALETTE[len(drawn) % len(PALETTE)], gap))
        dropped += result.dropped_series
        unreadable += result.unreadable
    if len(drawn) > MAX_SERIES:
        dropped += len(drawn) - MAX_SERIES
        drawn = drawn[:MAX_SERIES]
    if dropped:
        notes.append(f"+{dropped} more series")
    if unreadable:
        notes.append(f"{unreadable} samples were not numbers (left out)")
    return _PanelData(drawn, errors, notes)


def _stack(series: list[Line]) -> list[Line]:
    """Each series as the running total up to it (stacking ``normal``), filled down to the one under it."""
    below: dict[float, float] = {}
    out = []
    for item in series:
        base = [(t, below.get(t, 0.0)) for t, _ in item.points]
        top = []
        for t, v in item.points:
            total = below.get(t, 0.0) + (v if math.isfinite(v) else 0.0)
            below[t] = total
            top.append((t, total))
        out.append(Line(item.name, top, item.colour, item.gap, base))
    return out


_THRESHOLD_LINES = ("dashed", "line", "line+area", "dashed+area")


def _timeseries(panel: Mapping[str, Any], data: _PanelData, window: Window, size: tuple[float, float]) -> str:
    defaults = _defaults(panel)
    custom = _dict(defaults.get("custom"))
    stacked = isinstance(custom.get("stacking"), dict) and custom["stacking"].get("mode") == "normal"
    style = str(_dict(custom.get("thresholdsStyle")).get("mode") or "")
    steps = (defaults.get("thresholds") or {}).get("steps") or [] if style in _THRESHOLD_LINES else []
    thresholds = [Threshold(value, colour(step.get("color")), dashed=style.startswith("dashed"))
                  for step in steps if isinstance(step, dict) and (value := _float(step.get("value"))) is not None]
    return time_series(_stack(data.series) if stacked else data.series, size, (window.start, window.end),
                       unit=str(defaults.get("unit") or ""), decimals=_decimals(defaults),
                       low=_float(defaults.get("min")), high=_float(defaults.get("max")), thresholds=thresholds,
                       fill=_int(custom.get("fillOpacity"), 10, 0, 100) / 100,
                       line_width=_int(custom.get("lineWidth"), 1, 1, 10), label=str(panel.get("title") or ""))


def _decimals(defaults: Mapping[str, Any]) -> int | None:
    value = defaults.get("decimals")
    return _int(value, 0, 0, 10) if isinstance(value, (int, float)) else None


def _last(points: Sequence[tuple[float, float]]) -> float | None:
    for _, value in reversed(points):
        if not math.isnan(value):
            return value
    return None


def _display(value: float, defaults: Mapping[str, Any]) -> tuple[str, str | None]:
    """(text, colour) of one value: a value mapping first, else the unit and the thresholds' colour."""
    hit = mapped(value, defaults.get("mappings"))
    colour_ = threshold_colour(value, defaults.get("thresholds"))
    if hit is not None:
        return hit[0], hit[1] or colour_
    return format_value(value, str(defaults.get("unit") or ""), _decimals(defaults)), colour_


def _sparkline(points: Sequence[tuple[float, float]], window: Window, paint: str) -> str:
    shown = finite(points)
    if len(shown) < 2:
        return ""
    low, high = min(v for _, v in shown), max(v for _, v in shown)
    span = (high - low) or 1.0
    coords = [(100 * (t - window.start) / (window.end - window.start), 30 - 28 * (v - low) / span) for t, v in shown]
    area = path_data(coords) + f" L{coords[-1][0]:.1f},30 L{coords[0][0]:.1f},30 Z"
    return (f'<svg class="spark" viewBox="0 0 100 30" preserveAspectRatio="none" aria-hidden="true">'
            f'<path d="{area}" fill="{paint}" fill-opacity="0.18" stroke="none"/>'
            f'<path d="{path_data(coords)}" fill="none" stroke="{paint}" stroke-width="1" '
            'vector-effect="non-scaling-stroke"/></svg>')


#: a stat value's font size in px: as large as fits its cell, within these bounds
STAT_FONT = (12, 28)
STAT_CELL_PX = 110


def _stat(panel: Mapping[str, Any], data: _PanelData, window: Window, width: float) -> str:
    defaults = _defaults(panel)
    shown = [(item, value) for item in data.series if (value := _last(item.points)) is not None]
    per_row = max(1, min(len(shown), int(width // STAT_CELL_PX)))
    cell = width / per_row
    cells = []
    for item, value in shown:
        text, paint = _display(value, defaults)
        paint = paint or NAMED_COLOURS["text"]
        size = min(STAT_FONT[1], max(STAT_FONT[0], 1.7 * cell / max(1, len(text))))
        title = f'<span class="stat-name">{esc(item.name)}</span>' if len(data.series) > 1 else ""
        cells.append(f'<div class="stat">{_sparkline(item.points, window, paint)}{title}'
                     f'<span class="stat-value" style="color:{paint};font-size:{size:.0f}px">{esc(text)}</span></div>')
    return f'<div class="stats">{"".join(cells)}</div>' if cells else ""


def _bargauge(panel: Mapping[str, Any], data: _PanelData) -> str:
    defaults = _defaults(panel)
    rows = [(item, _last(item.points)) for item in data.series]
    values = [v for _, v in rows if v is not None and math.isfinite(v)]
    if not values:
        return ""
    low = _float(defaults.get("min")) or 0.0
    high = _float(defaults.get("max"))
    high = high if high is not None else max(values + [low + 1e-12])
    out = []
    for item, value in rows:
        if value is None or not math.isfinite(value):
            continue
        text, paint = _display(value, defaults)
        paint = paint or PALETTE[0]
        share = 0.0 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
        out.append(f'<div class="bar-row"><span class="bar-name">{esc(item.name)}</span>'
                   f'<span class="bar-track"><span class="bar" style="width:{share * 100:.1f}%;'
                   f'background:linear-gradient(90deg,{paint}55,{paint})"></span></span>'
                   f'<span class="bar-value" style="color:{paint}">{esc(text)}</span></div>')
    return f'<div class="bars">{"".join(out)}</div>'


def _excluded(panel: Mapping[str, Any]) -> set[str]:
    hidden: set[str] = set()
    for step in panel.get("transformations") or []:
        options = step.get("options") if isinstance(step, dict) and step.get("id") == "organize" else None
        names = options.get("excludeByName") if isinstance(options, dict) else None
        if isinstance(names, dict):
            hidden |= {str(k) for k, v in names.items() if v}
    return hidden


def _table(panel: Mapping[str, Any], board: Mapping[str, Any], results: Mapping[Key, QueryResult]) -> str:
    hidden = _excluded(panel)
    rows: list[tuple[dict[str, str], float | None]] = []
    targets = [t for t in (panel.get("targets") or []) if isinstance(t, dict) and t.get("expr")]
    for index, target in enumerate(targets):
        result = results.get(_target_key(board, panel, target, index))
        for item in (result.series if result else [])[:MAX_SERIES * 5]:
            rows.append((item.labels, _last(item.points)))
    if not rows:
        return ""
    columns = sorted({k for labels, _ in rows for k in labels} - hidden)
    show_value = "Value" not in hidden
    head = "".join(f"<th>{esc(c)}</th>" for c in columns) + ("<th>Value</th>" if show_value else "")
    body = []
    for labels, value in rows:
        cells = "".join(f"<td>{esc(labels.get(c, ''))}</td>" for c in columns)
        if show_value:
            cells += f"<td>{esc(format_value(value) if value is not None else '')}</td>"
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _heat(share: float) -> str:
    """Grafana's "Oranges" scheme, light to dark."""
    light, dark = (255, 245, 235), (127, 39, 4)
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(light, dark, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _heatmap(panel: Mapping[str, Any], data: _PanelData, window: Window, size: tuple[float, float]) -> str:
    rows = [s for s in data.series if finite(s.points)]
    if not rows:
        return ""
    options = _dict(panel.get("options"))
    scheme = _dict(options.get("color"))
    exponent = _float(scheme.get("exponent")) or 0.5
    columns = min(150, max(1, int((window.end - window.start) / window.step)))
    width = (window.end - window.start) / columns
    grid = [[0.0] * columns for _ in rows]
    for r, item in enumerate(rows):
        for at, value in finite(item.points):
            c = min(columns - 1, max(0, int((at - window.start) / width)))
            grid[r][c] += value
    top = max(max(row) for row in grid) or 1.0
    canvas = Canvas(size[0], size[1], window.start, window.end, 0, len(rows), [item.name for item in rows])
    body = [canvas.frame()]
    cell_h = canvas.plot_h / len(rows)
    cell_w = canvas.plot_w / columns
    for r, item in enumerate(rows):
        y = canvas.TOP + canvas.plot_h - (r + 1) * cell_h
        body.append(f'<text x="{canvas.left - 4:.0f}" y="{y + cell_h / 2 + 3.5:.1f}" text-anchor="end">'
                    f"{esc(item.name)}</text>")
        for c, value in enumerate(grid[r]):
            if value <= 0:
                continue
            body.append(f'<rect class="cell" x="{canvas.left + c * cell_w:.1f}" y="{y:.1f}" width="{max(cell_w - 1, 0.5):.1f}" '
                        f'height="{max(cell_h - 1, 0.5):.1f}" fill="{_heat((value / top) ** exponent)}">'
                        f"<title>{esc(item.name)}: {esc(format_value(value))}</title></rect>")
    body += canvas.x_axis()
    return svg(size[0], size[1], body, str(panel.get("title") or ""))


_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def _alertlist(board: Mapping[str, Any], panel: Mapping[str, Any], results: Mapping[Key, QueryResult]
               ) -> tuple[str, list[str]]:
    """(the list, errors): firing before pending, then by severity and name, at most ``maxItems``."""
    result = results.get((board_uid(board), _panel_id(panel), ALERTS_REF))
    if result is None:
        return "", ["query failed: not asked"]
    limit = _int(_dict(panel.get("options")).get("maxItems"), 20, 1, 100)
    alerts = sorted((s.labels for s in result.series),
                    key=lambda a: (a.get("alertstate") != "firing", _SEVERITY_RANK.get(a.get("severity", ""), 3),
                                   a.get("alertname", "")))
    items = []
    for labels in alerts[:limit]:
        state = labels.get("alertstate", "")
        paint = NAMED_COLOURS["red"] if state == "firing" else NAMED_COLOURS["orange"]
        rest = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())
                         if k not in ("__name__", "alertname", "alertstate", "severity"))
        items.append(f'<li class="alert"><span class="alert-state" style="background:{paint}">{esc(state)}</span>'
                     f'<b>{esc(labels.get("alertname", "?"))}</b> <span class="alert-severity">'
                     f'{esc(labels.get("severity", ""))}</span> <span class="alert-labels">{esc(rest)}</span></li>')
    more = f'<li class="note">+{len(alerts) - limit} more</li>' if len(alerts) > limit else ""
    errors = [f"query failed: {result.error}"] if result.error else []
    return (f'<ul class="alerts">{"".join(items)}{more}</ul>' if items else ""), errors


#: nominal pixels of one grid column and one grid row (Grafana: 24 columns, 30 px rows)
COLUMN_PX, ROW_PX, GAP_PX = 60, 30, 8


def _grid(panel: Mapping[str, Any]) -> tuple[int, int, int, int]:
    pos = _dict(panel.get("gridPos"))
    x = _int(pos.get("x"), 0, 0, 23)
    w = _int(pos.get("w"), 12, 1, 24 - x)
    return x, _int(pos.get("y"), 0, 0, 10_000), w, _int(pos.get("h"), 8, 1, 100)


def _panel_html(board: Mapping[str, Any], panel: Mapping[str, Any], results: Mapping[Key, QueryResult],
                window: Window) -> str:
    kind = str(panel.get("type") or "")
    x, y, w, h = _grid(panel)
    place = f"grid-column:{x + 1}/span {w};grid-row:{y + 1}/span {h}"
    title = str(panel.get("title") or "")
    if kind == "row":
        return f'<h3 class="row" style="grid-column:1/-1;grid-row:{y + 1}/span 1">{esc(title)}</h3>'
    data = _collect(board, panel, results, window.step, thin=kind != "heatmap")
    legend_rows = min(3, math.ceil(len(data.series) / max(1, w // 4))) if kind == "timeseries" else 0
    size = (w * COLUMN_PX - 16.0, max(40.0, h * (ROW_PX + GAP_PX) - 40 - 16 * legend_rows))
    if kind == "timeseries":
        body = _timeseries(panel, data, window, size) if any(finite(s.points) for s in data.series) else ""
    elif kind == "stat":
        body = _stat(panel, data, window, size[0])
    elif kind == "bargauge":
        body = _bargauge(panel, data)
    elif kind == "table":
        body = _table(panel, board, results)
    elif kind == "heatmap":
        body = _heatmap(panel, data, window, size)
    elif kind == "alertlist":
        body, data.errors = _alertlist(board, panel, results)
    else:
        body = None
    if body is None:
        state, body = "unsupported", (f'<p class="nodata">a {esc(kind or "?")} panel is not drawn here: '
                                      "open it in Grafana</p>")
    elif body:
        state = "data"
    elif data.errors:
        state, body = "error", ""
    elif (condition := empty_unless(panel)) is not None:   # a part of the bot that runs only when configured
        state, body = "nodata", f'<p class="nodata">No data. Empty unless {esc(condition[0])} is configured.</p>'
    else:
        state, body = "nodata", '<p class="nodata">No data</p>'
    notes = "".join(f'<p class="error">{esc(e)}</p>' for e in dict.fromkeys(data.errors))
    notes += "".join(f'<p class="note">{esc(n)}</p>' for n in data.notes)
    description = str(panel.get("description") or "")
    hint = f' title="{esc(description)}"' if description else ""
    return (f'<section class="panel {esc(kind)}" data-type="{esc(kind)}" data-state="{state}" style="{place}">'
            f'<h4{hint}>{esc(title)}</h4><div class="body">{body}</div>{notes}</section>')


_CSS = """
*{box-sizing:border-box}
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;padding:16px 20px;
color:#1d2733;background:#f4f5f5}
header h1{font-size:20px;margin:0 0 4px} header p{margin:2px 0;color:#5b6670;font-size:13px}
nav a{margin-right:14px;font-size:13px;color:#1f60c4}
h2{font-size:18px;margin:22px 0 8px}
.grid{display:grid;grid-template-columns:repeat(24,minmax(0,1fr));grid-auto-rows:30px;gap:8px;max-width:1480px}
h3.row{font-size:14px;margin:0;align-self:end;border-bottom:1px solid #d0d5da;padding-bottom:3px}
.panel{background:#fff;border:1px solid #dde1e5;border-radius:3px;padding:4px 8px;display:flex;
flex-direction:column;min-height:0;overflow:hidden}
.panel h4{font-size:12.5px;margin:0 0 2px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.body{flex:1 1 auto;min-height:0;display:flex;flex-direction:column}
.body>svg{flex:1 1 auto;min-height:0;width:100%}
svg text{font-size:10.5px;fill:#5b6670} svg .plot{fill:#fbfbfc;stroke:#e3e6e9} svg .grid{stroke:#eceef0}
.legend{list-style:none;margin:2px 0 0;padding:0;font-size:11px;max-height:46px;overflow-x:hidden;overflow-y:auto;
display:flex;flex-wrap:wrap;gap:0 12px}
.legend li{max-width:100%;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.legend i{display:inline-block;width:10px;height:3px;margin:0 4px 3px 0}
.stats{flex:1;display:flex;flex-wrap:wrap;gap:4px;align-items:stretch}
.stat{position:relative;flex:1 1 110px;display:flex;flex-direction:column;justify-content:center;align-items:center;
min-height:0;min-width:0}
.stat .spark{position:absolute;left:0;right:0;bottom:0;width:100%;height:45%}
.stat-name{font-size:11px;color:#5b6670;position:relative;text-align:center}
.stat-value{font-weight:600;position:relative;white-space:nowrap;max-width:100%;overflow:hidden;text-overflow:ellipsis}
.bars{display:flex;flex-direction:column;justify-content:space-around;flex:1;gap:2px}
.bar-row{display:grid;grid-template-columns:30% 1fr 80px;gap:6px;align-items:center;font-size:11.5px}
.bar-name{overflow:hidden;white-space:nowrap;text-overflow:ellipsis;text-align:right}
.bar-track{background:#eef0f2;height:12px;display:block} .bar{display:block;height:12px}
.bar-value{text-align:right;font-weight:600}
table.data{border-collapse:collapse;font-size:12px;width:100%} .data th,.data td{border-bottom:1px solid #e3e6e9;
padding:3px 6px;text-align:left} .data th{background:#f4f5f5}
.nodata{margin:auto;color:#8a949e;font-size:14px}
.error{margin:2px 0;color:#c4162a;font-size:11.5px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.note{margin:2px 0;color:#6c7680;font-size:11px}
.alerts{list-style:none;margin:0;padding:0;overflow:auto;font-size:12.5px}
.alert{padding:3px 0;border-bottom:1px solid #eceef0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.alert-state{color:#fff;border-radius:2px;padding:0 5px;margin-right:6px;font-size:11px}
.alert-severity{color:#5b6670} .alert-labels{color:#8a949e;font-size:11px}
"""
#: no script, no outside resource: the page works from a mail attachment or a ticket
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_snapshot(boards: Sequence[Mapping[str, Any]], results: Mapping[Key, QueryResult], window: Window, *,
                    source: str = "", generated_at: float | None = None) -> str:
    """The whole page: every panel of every board in ``boards`` drawn from ``results``."""
    generated = generated_at if generated_at is not None else datetime.now(timezone.utc).timestamp()
    nav = "".join(f'<a href="#{esc(board_uid(b))}">{esc(b.get("title") or board_uid(b))}</a>' for b in boards)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Mr Hux dashboards {esc(_when(window.start))} – {esc(_when(window.end))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>Mr Hux dashboards</h1>",
        f"<p>{esc(_when(window.start))} – {esc(_when(window.end))} · step {esc(_dur(window.step))}"
        f" · rate interval {esc(_dur(window.rate_interval))} · variables: All</p>",
        f"<p>generated {esc(_when(generated))}" + (f" from {esc(source)}" if source else "") + "</p>",
        f"<nav>{nav}</nav></header>",
    ]
    for board in boards:
        panels = []
        for panel in board.get("panels") or []:
            if not isinstance(panel, dict):
                continue
            panels.append(_panel_html(board, panel, results, window))
            for inner in panel.get("panels") or [] if panel.get("type") == "row" else []:
                if isinstance(inner, dict):
                    panels.append(_panel_html(board, inner, results, window))
        parts.append(f'<section class="board" id="{esc(board_uid(board))}"><h2>{esc(board.get("title") or "")}</h2>'
                     f'<div class="grid">{"".join(panels)}</div></section>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


__all__ = ["Key", "MAX_POINTS", "MAX_SERIES", "QueryResult", "Series", "SnapshotQuery", "Window", "board_uid",
           "buckets", "colour", "downsample", "format_value", "legend", "mapped", "render_snapshot",
           "snapshot_queries", "threshold_colour"]
