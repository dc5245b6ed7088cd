"""Maintenance reports: one small model, rendered as terminal tables or one self-contained HTML file.

A ``Report`` holds ``Section``s; a section holds tables, notes and charts. The
terminal rendering uses aligned columns (trimmed to the terminal's width) and
sparklines for charts; the HTML rendering inlines its CSS and draws charts as
inline SVG (line charts with :mod:`hux.monitoring.svgchart`, the dashboard snapshot's drawing), so the file can
be mailed or archived without external assets. Values read through :mod:`hux.units`, as on the dashboards.
"""

from __future__ import annotations

import html
import math
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence, Union

from hux import units
from hux.monitoring.status import FAIL, INFO, PASS, WARN, worst
from hux.monitoring.svgchart import Line, Threshold, time_series, usual_gap
from hux.units import format_value, human_bytes

#: a report's "nothing to act on": the shared ``pass`` (one vocabulary, one ``worst``), shown as "OK" (``word``)
OK = PASS
_PALETTE = ("#2f6fdf", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4", "#6c8893", "#bf399e")
_ALERT_RED = "#d9363e"


def word(status: str) -> str:
    """How a report shows a status: "ok" for ``pass`` (the word operators and their scripts have always read
    in these reports, upper-cased on a badge), the others as they are."""
    return "ok" if status == PASS else status


@dataclass
class Note:
    text: str
    status: str = INFO


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    #: per-row status (ok/warn/fail) shown as colour in HTML and a marker in the terminal
    row_status: list[str] | None = None
    empty: str = "none"


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]  # (x, y); x is a unix time unless the chart says otherwise


@dataclass
class LineChart:
    title: str
    series: list[Series]
    unit: str = ""                   # "", "ratio", "seconds", "bytes", "per_second"
    x_is_time: bool = True
    x_label: str = ""
    thresholds: list[tuple[str, float]] = field(default_factory=list)
    x_range: tuple[float, float] | None = None  # fixed x domain, e.g. (0, 7) days


@dataclass
class RangeRow:
    label: str
    quantiles: dict[str, float | None]  # e.g. {"p50": .., "p90": .., "p99": .., "max": ..}
    threshold: float | None
    op: str = ">"
    detail: str = ""  # shown on hover (e.g. the compared expression)


@dataclass
class RangeChart:
    """Each row: the observed distribution of a value (quantile band) beside its alert threshold."""

    title: str
    rows: list[RangeRow]


Item = Union[Note, Table, LineChart, RangeChart]


@dataclass
class Section:
    title: str
    items: list[Item] = field(default_factory=list)
    status: str = OK

    def add(self, item: Item) -> Item:
        self.items.append(item)
        if isinstance(item, Note) and item.status in (WARN, FAIL):
            self.status = worst([self.status, item.status])
        return item

    def note(self, text: str, status: str = INFO) -> None:
        self.add(Note(text, status))


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return worst(s.status for s in self.sections)

    def section(self, title: str) -> Section:
        section = Section(title)
        self.sections.append(section)
        return section


# --- value formatting -------------------------------------------------------------------------


#: the report's units as the shared formatter's (unit, decimals): percentages keep the one decimal and counts
#: the grouped thousands they always had
_UNITS: dict[str, tuple[str, int | None]] = {"": ("locale", None), "ratio": ("percentunit", 1), "seconds": ("s", None),
                                             "bytes": ("bytes", None), "per_second": ("suffix:/s", None)}


def fmt_value(value: Any, unit: str = "") -> str:
    """A table cell in one of the report's units ("", "ratio", "seconds", "bytes", "per_second"): read as the
    dashboards read it (:func:`hux.units.format_value`); sizes as every message writes them (``human_bytes``)."""
    if value is None:
        return "—"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    if unit == "bytes" and math.isfinite(value):
        return human_bytes(value)
    return format_value(float(value), *_UNITS.get(unit, _UNITS[""]))


def ago(seconds: float | None) -> str:
    """A duration in a table cell: the shared formatter, compact (``90m``, ``3.0d``)."""
    return units.ago(seconds, compact=True)


# --- terminal ------------------------------------------------------------------------------------

_MARK = {OK: " ", INFO: " ", WARN: "!", FAIL: "✗"}
_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 40) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return ""
    if len(values) > width:  # bucket by mean
        size = len(values) / width
        values = [sum(values[int(i * size):max(int((i + 1) * size), int(i * size) + 1)])
                  / len(values[int(i * size):max(int((i + 1) * size), int(i * size) + 1)]) for i in range(width)]
    lo, hi = min(values), max(values)
    if hi == lo:
        return _SPARK[3] * len(values)
    return "".join(_SPARK[min(7, int((v - lo) / (hi - lo) * 8))] for v in values)


def _cell(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else "—"


def render_table_text(table: Table, width: int) -> list[str]:
    lines = [f"  {table.title}" + (f" ({len(table.rows)})" if table.rows else "")]
    if not table.rows:
        lines.append(f"    {table.empty}")
        return lines
    cells = [[_cell(c) for c in row] for row in table.rows]
    widths = [len(c) for c in table.columns]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    budget = max(40, width - 6 - 2 * (len(widths) - 1))
    if sum(widths) > budget * 1.2:  # too wide to read as columns: one block per row instead
        return lines + _vertical(table, cells)
    while sum(widths) > budget and max(widths) > 12:  # shrink the widest column first
        widths[widths.index(max(widths))] -= 1

    def fit(text: str, w: int) -> str:
        return text if len(text) <= w else text[: max(1, w - 1)] + "…"

    lines.append("    " + "  ".join(fit(c, w).ljust(w) for c, w in zip(table.columns, widths, strict=True)).rstrip())
    lines.append("    " + "  ".join("-" * w for w in widths))
    for index, row in enumerate(cells):
        status = (table.row_status or [])[index] if table.row_status and index < len(table.row_status) else OK
        lines.append(f"  {_MARK.get(status, ' ')} " + "  ".join(fit(c, w).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    return lines


def _vertical(table: Table, cells: list[list[str]]) -> list[str]:
    label_width = max(len(c) for c in table.columns[1:]) if len(table.columns) > 1 else 0
    lines = []
    for index, row in enumerate(cells):
        status = table.row_status[index] if table.row_status and index < len(table.row_status) else OK
        lines.append(f"  {_MARK.get(status, ' ')} {row[0]}")
        for name, cell in zip(table.columns[1:], row[1:], strict=False):  # a row may be short
            if cell not in ("", "—"):
                lines.append(f"      {name.ljust(label_width)}  {cell}")
    return lines


def render_text(report: Report, width: int | None = None) -> str:
    width = width or min(shutil.get_terminal_size((120, 24)).columns, 160)
    out = [f"{report.title} — {report.generated_at:%Y-%m-%d %H:%M} UTC — overall: {word(report.status).upper()}"]
    for name, url in report.sources.items():
        out.append(f"  {name}: {url}")
    for section in report.sections:
        out.append("")
        out.append(f"== {section.title} [{word(section.status).upper()}]")
        for item in section.items:
            if isinstance(item, Note):
                prefix = {WARN: "  ! ", FAIL: "  ✗ "}.get(item.status, "  ")
                out.append(prefix + item.text)
            elif isinstance(item, Table):
                out.extend(render_table_text(item, width))
            elif isinstance(item, LineChart):
                out.append(f"  {item.title}")
                for series in item.series:
                    ys = [p[1] for p in series.points]
                    finite = [y for y in ys if math.isfinite(y)]
                    if not finite:
                        out.append(f"    {series.name}: no data")
                        continue
                    out.append(f"    {series.name[:28]:28s} {sparkline(ys)}  "
                               f"{fmt_value(min(finite), item.unit)} .. {fmt_value(max(finite), item.unit)}")
            elif isinstance(item, RangeChart):
                continue  # the matching table carries the numbers in the terminal
            out.append("")
        while out and out[-1] == "":
            out.pop()
    return "\n".join(out) + "\n"


# --- HTML ----------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1d2733;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
h3{font-size:14px;margin:14px 0 6px} .meta{color:#5b6670;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:4px 0 12px} th,td{border:1px solid #d8dee4;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f7} tr.warn td{background:#fff6dd} tr.fail td{background:#fde6e6}
.badge{display:inline-block;border-radius:3px;padding:1px 6px;font-size:12px;color:#fff;margin-left:6px}
.ok{background:#19a979} .warn{background:#d89b00} .fail{background:#d9363e} .info{background:#6c8893}
p.note{margin:4px 0;font-size:13px} p.note.warn{color:#8a6100} p.note.fail{color:#b3141c}
svg{display:block;max-width:100%;height:auto;margin:4px 0 2px} svg text{font-size:11px;fill:#3c4650}
svg .plot{fill:#fafbfc;stroke:#d8dee4} svg .grid{stroke:#e6eaee} .empty{color:#6c8893;font-size:13px}
.legend{list-style:none;margin:0 0 14px;padding:0;font-size:12px;display:flex;flex-wrap:wrap;gap:0 14px;max-width:760px}
.legend i{display:inline-block;width:10px;height:10px;margin:0 4px -1px 0}
"""


def _esc(value: Any) -> str:
    return html.escape(_cell(value))


def _table_html(table: Table) -> str:
    parts = [f"<h3>{_esc(table.title)}</h3>"]
    if not table.rows:
        return parts[0] + f'<p class="empty">{_esc(table.empty)}</p>'
    parts.append("<table><thead><tr>" + "".join(f"<th>{_esc(c)}</th>" for c in table.columns) + "</tr></thead><tbody>")
    for index, row in enumerate(table.rows):
        status = table.row_status[index] if table.row_status and index < len(table.row_status) else ""
        css = f' class="{status}"' if status in (WARN, FAIL) else ""
        parts.append(f"<tr{css}>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def line_chart_svg(chart: LineChart, width: int = 760, height: int = 200) -> str:
    lines = [Line(series.name, series.points, _PALETTE[index % len(_PALETTE)], usual_gap(series.points))
             for index, series in enumerate(chart.series)]
    finite_x = [x for line in lines for x, y in line.points if math.isfinite(y)]
    if not finite_x:
        return f'<p class="empty">{_esc(chart.title)}: no data in this period</p>'
    unit, decimals = _UNITS.get(chart.unit, _UNITS[""])
    drawn = time_series(lines, (width, height), chart.x_range or (min(finite_x), max(finite_x)), unit=unit,
                        decimals=decimals, thresholds=[Threshold(value, _ALERT_RED, caption=name)
                                                       for name, value in chart.thresholds],
                        fit_thresholds=True, line_width=2, x_is_time=chart.x_is_time, x_caption=chart.x_label,
                        label=chart.title, sized=True)
    return f"<h3>{_esc(chart.title)}</h3>" + drawn


def range_chart_svg(chart: RangeChart, width: int = 760) -> str:
    rows = [r for r in chart.rows if any(v is not None for v in r.quantiles.values()) or r.threshold is not None]
    if not rows:
        return f'<p class="empty">{_esc(chart.title)}: no data</p>'
    label_w, row_h, top = 260, 26, 24
    plot_w = width - label_w - 24
    height = top + row_h * len(rows) + 10
    parts = [f'<h3>{_esc(chart.title)}</h3><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{_esc(chart.title)}">',
             f'<text x="{label_w}" y="14">0</text><text x="{label_w + plot_w}" y="14" text-anchor="end">'
             'scale: each row from 0 to the larger of its max and threshold (×1.1)</text>']
    for index, row in enumerate(rows):
        y = top + index * row_h
        values = [v for v in row.quantiles.values() if v is not None and math.isfinite(v)]
        scale_max = max(values + ([row.threshold] if row.threshold is not None else []) + [1e-12]) * 1.1
        lo = min(values + [0.0]) if values and min(values) < 0 else 0.0

        def sx(v: float, lo: float = lo, top: float = scale_max) -> float:
            return label_w + (v - lo) / (top - lo) * plot_w

        label = row.label if len(row.label) <= 36 else row.label[:35] + "…"
        parts.append(f'<text x="4" y="{y + 16}">{_esc(label)}<title>{_esc(row.detail or row.label)}</title></text>')
        parts.append(f'<line x1="{label_w}" x2="{label_w + plot_w}" y1="{y + 12}" y2="{y + 12}" stroke="#e6eaee"/>')
        p50, p90, p99, peak = (row.quantiles.get(k) for k in ("p50", "p90", "p99", "max"))
        if p50 is not None and p99 is not None:
            parts.append(f'<rect x="{sx(p50):.1f}" y="{y + 5}" width="{max(1.5, sx(p99) - sx(p50)):.1f}" '
                         f'height="14" fill="#2f6fdf" opacity="0.35"><title>p50..p99</title></rect>')
        if p90 is not None:
            parts.append(f'<line x1="{sx(p90):.1f}" x2="{sx(p90):.1f}" y1="{y + 4}" y2="{y + 20}" '
                         f'stroke="#2f6fdf" stroke-width="2"><title>p90</title></line>')
        if peak is not None:
            parts.append(f'<circle cx="{sx(peak):.1f}" cy="{y + 12}" r="3.5" fill="#1d2733"><title>max</title></circle>')
        if row.threshold is not None:
            x = sx(row.threshold)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 1}" y2="{y + 23}" stroke="#d9363e" '
                         f'stroke-width="2.5"><title>{_esc(f"threshold {row.op} {row.threshold:g}")}</title></line>')
    parts.append("</svg><p class=\"note\">band: p50–p99 of the observed value; tick: p90; dot: max; "
                 "red line: the alert threshold.</p>")
    return "".join(parts)


def render_html(report: Report) -> str:
    body = [f"<h1>{_esc(report.title)} <span class=\"badge {word(report.status)}\">{word(report.status).upper()}</span></h1>",
            f'<p class="meta">generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC'
            + "".join(f" · {_esc(k)}: {_esc(v)}" for k, v in report.sources.items()) + "</p>"]
    for section in report.sections:
        body.append(f'<h2>{_esc(section.title)} <span class="badge {word(section.status)}">{word(section.status).upper()}</span></h2>')
        for item in section.items:
            if isinstance(item, Note):
                body.append(f'<p class="note {item.status}">{_esc(item.text)}</p>')
            elif isinstance(item, Table):
                body.append(_table_html(item))
            elif isinstance(item, LineChart):
                body.append(line_chart_svg(item))
            elif isinstance(item, RangeChart):
                body.append(range_chart_svg(item))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(report.title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
