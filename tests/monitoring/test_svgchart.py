"""The one time-series SVG drawing (hux.monitoring.svgchart) that the dashboard snapshot and the maintenance
reports share: axis ticks, the frame, gaps, thresholds, the legend, hostile labels and values that are not
numbers. Each chart is parsed as XML (it is inlined as is in both pages)."""

from __future__ import annotations

import math
import re
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hux.monitoring.dashboards import snapshot_html
from hux.monitoring.svgchart import Canvas, Line, Threshold, round_up, runs, ticks, time_series, usual_gap
from hux.ops.maintenance import report
from hux.units import format_value, human_bytes

SVG = "{http://www.w3.org/2000/svg}"
START = 1_800_000_000.0


def _line(name: str, values: list[float], step: float = 60.0, colour: str = "#123456") -> Line:
    return Line(name, [(START + i * step, v) for i, v in enumerate(values)], colour, gap=1.5 * step)


def _parse(chart: str) -> tuple[ElementTree.Element, str]:
    """(the SVG element, the legend's HTML after it)."""
    match = re.fullmatch(r"(<svg .*?</svg>)(.*)", chart, re.S)
    assert match, chart[:200]
    return ElementTree.fromstring(match.group(1)), match.group(2)


def _y_labels(svg: ElementTree.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "end" and t.text
            and float(t.get("x", 0)) < 160]


@pytest.mark.parametrize("low, high, expected", [
    (0, 100, [0, 25, 50, 75, 100]),
    (0, 1, [0, 0.25, 0.5, 0.75, 1]),
    (0, 7.3, [0, 2, 4, 6]),
    (-3, 3, [-2, 0, 2]),
    (0.001, 0.0042, [0.001, 0.002, 0.003, 0.004]),
    (5, 5, [6, 8, 10]),                             # nothing to span: the axis goes on as far again
    (0, 1.797693134862315e308, [0, 1.797693134862315e308]),  # no round step says it: just the ends
])
def test_ticks_are_round_values_within_the_range(low: float, high: float, expected: list[float]) -> None:
    assert ticks(low, high) == pytest.approx(expected)


def test_the_axis_reads_in_the_charts_unit_and_spans_the_data() -> None:
    chart = time_series([_line("used", [0.2, 0.4, 0.8])], (600, 200), (START, START + 120), unit="percentunit",
                        decimals=1)
    svg, legend = _parse(chart)
    assert _y_labels(svg) == ["0.0%", "20.0%", "40.0%", "60.0%", "80.0%"]
    assert len(list(svg.iter(f"{SVG}line"))) == 5                  # one grid line per tick
    [frame] = [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "plot"]
    assert float(frame.get("width", 0)) > 500
    assert "used" in legend and 'style="background:#123456"' in legend


@pytest.mark.parametrize("values, top", [([0.1, 0.7], "0.8"), ([3, 7.3], "8"), ([9_701_078], "10000000"),
                                         ([-4, -1.5], "-1"), ([2, 2], "2")])
def test_the_axis_ends_at_the_round_tick_above_the_data(values: list[float], top: str) -> None:
    svg, _ = _parse(time_series([_line("x", values)], (600, 200), (START, START + 60)))
    assert _y_labels(svg)[-1] == top


def test_a_fixed_top_or_one_beyond_round_ticks_stays() -> None:
    fixed = time_series([_line("x", [0.1, 0.7])], (600, 200), (START, START + 60), low=0, high=0.75)
    assert _y_labels(_parse(fixed)[0]) == ["0", "0.2", "0.4", "0.6"]
    assert round_up(0, 1.797693134862315e308) == 1.797693134862315e308 and round_up(3, 3) == 3


def test_time_and_plain_x_axes() -> None:
    hour = time_series([_line("a", [1, 2])], (600, 200), (START, START + 3600))
    assert "08:00" in hour and "09:00" in hour                      # START is 2027-01-15 08:00 UTC
    week = time_series([Line("this week", [(0.0, 1.0), (7.0, 2.0)], "#000")], (600, 200), (0.0, 7.0),
                       x_is_time=False, x_caption="days into the week")
    svg, _ = _parse(week)
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "0" in texts and "7" in texts and texts[-1] == "days into the week"


def test_a_gap_or_a_nan_breaks_the_line_and_a_lone_point_is_a_dot() -> None:
    values = [1.0, 2.0, math.nan, 3.0, 4.0, math.inf, 5.0]
    svg, _ = _parse(time_series([_line("x", values)], (600, 200), (START, START + 360)))
    paths = [p for p in svg.iter(f"{SVG}path") if p.get("class") == "series"]
    dots = [c for c in svg.iter(f"{SVG}circle") if c.get("class") == "series"]
    assert len(paths) == 2 and len(dots) == 1                       # 1-2, 3-4, and 5 alone
    assert runs([(0, 1), (1, 1), (10, 1), (11, 1)], gap=2) == [[(0, 1), (1, 1)], [(10, 1), (11, 1)]]
    assert usual_gap([(0, 0), (60, 0), (120, 0), (900, 0)]) == 150 and usual_gap([(0, 0)]) == math.inf


def test_nothing_finite_draws_nothing() -> None:
    assert time_series([], (600, 200), (START, START + 60)) == ""
    assert time_series([_line("x", [math.nan, math.inf, -math.inf])], (600, 200), (START, START + 60)) == ""
    assert time_series([_line("x", [])], (600, 200), (START, START + 60)) == ""


def test_infinite_values_do_not_stretch_the_axis() -> None:
    svg, _ = _parse(time_series([_line("x", [1.0, math.inf, 3.0, -math.inf])], (600, 200), (START, START + 180)))
    assert _y_labels(svg) == ["0", "1", "2", "3"]


def test_thresholds_fitted_with_a_caption_or_left_out_beyond_the_axis() -> None:
    alert = Threshold(0.9, "#d9363e", caption="memory alert")
    fitted = time_series([_line("m", [0.2, 0.3])], (600, 200), (START, START + 60), unit="percentunit",
                         decimals=1, thresholds=[alert], fit_thresholds=True)
    svg, _ = _parse(fitted)
    [line] = [x for x in svg.iter(f"{SVG}line") if x.get("class") == "threshold"]
    assert line.get("stroke") == "#d9363e" and line.get("stroke-dasharray") == "8 5"
    assert line.findtext(f"{SVG}title") == "memory alert: 90.0%"
    assert "memory alert" in [t.text for t in svg.iter(f"{SVG}text")]
    assert _y_labels(svg)[-1] == "100.0%"                            # the axis reaches past the threshold
    beyond = time_series([_line("m", [0.2, 0.3])], (600, 200), (START, START + 60), thresholds=[alert])
    assert 'class="threshold"' not in beyond
    solid = time_series([_line("m", [1, 2])], (600, 200), (START, START + 60), thresholds=[Threshold(1.5, "red", False)])
    assert "stroke-dasharray" not in solid and "<title>threshold 1.5</title>" in solid


HOSTILE = ['<script>alert(1)</script>', 'a & b', '"quoted" \'single\'', "</svg><img src=x onerror=alert(1)>",
           "line\nbreak", "]]><!--", "bell\x07 nul\x00 esc\x1b"]


@pytest.mark.parametrize("name", HOSTILE)
def test_series_names_thresholds_and_titles_are_escaped(name: str) -> None:
    chart = time_series([_line(name, [1, 2, 3])], (600, 200), (START, START + 120), label=name,
                        thresholds=[Threshold(2, "#f00", caption=name)], x_is_time=False, x_caption=name)
    svg, legend = _parse(chart)                                      # well-formed: nothing broke out
    shown = " ".join(re.sub(r"[\x00-\x08\x1b]", "\ufffd", name).split())
    assert svg.get("aria-label") == shown
    assert [p.findtext(f"{SVG}title") for p in svg.iter(f"{SVG}path")] == [shown]
    assert "<script" not in chart and "<img" not in chart and "<!--" not in chart
    items = re.findall(r"<li>(.*?)</li>", legend)
    assert len(items) == 1 and "<" not in re.sub(r"<i [^>]*></i>", "", items[0])


def test_a_long_name_is_cut_and_a_wide_label_widens_the_margin() -> None:
    chart = time_series([_line("n" * 1000, [1e9, 2e9])], (600, 200), (START, START + 60), unit="bytes")
    assert "n" * 300 not in chart and "n" * 299 + "…" in chart
    narrow = Canvas(600, 200, 0, 1, 0, 1, ["1"])
    wide = Canvas(600, 200, 0, 1, 0, 1, ["1.86 GiB"])
    assert narrow.left < wide.left and narrow.plot_w > wide.plot_w
    assert Canvas(600, 200, 5, 5, 2, 2).x(5) == Canvas.MIN_LEFT      # an empty span or range does not divide by 0


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=40), st.text(max_size=40),
       st.sampled_from(["", "percentunit", "s", "bytes", "short"]))
def test_any_values_and_names_draw_well_formed_svg(values: list[float], name: str, unit: str) -> None:
    chart = time_series([_line(name, values)], (400, 150), (START, START + 60 * max(1, len(values))), unit=unit,
                        thresholds=[Threshold(1.0, "#f00", caption=name)], fit_thresholds=True)
    if not any(math.isfinite(v) for v in values):
        assert chart == ""
        return
    svg, legend = _parse(chart)
    assert all(math.isfinite(float(v)) for p in svg.iter(f"{SVG}path")
               for v in re.findall(r"-?[\d.]+(?:e[-+]?\d+)?", p.get("d", "")))
    assert "<" not in re.sub(r"<[^<>]*>", "", legend)


def test_one_formatter_by_unit_for_both_pages() -> None:
    """The snapshot and the reports read values through hux.units, sizes with its byte scale."""
    assert snapshot_html.format_value is format_value
    assert format_value(3 * 1024 ** 2, "bytes") == "3 MiB" and human_bytes(3 * 1024 ** 2) == "3.0 MiB"
    assert format_value(0.25, "s") == "250 ms" == report.fmt_value(0.25, "seconds")
    assert format_value(0.5, "percentunit", 1) == "50.0%" == report.fmt_value(0.5, "ratio")
    assert report.fmt_value(1536, "bytes") == "1.5 KiB" and report.fmt_value(512, "bytes") == "512 B"
    assert report.fmt_value(2.5, "per_second") == "2.5 /s" and report.fmt_value(22.5) == "22.5"
    assert [report.fmt_value(v) for v in (1234567, -1234.5, 7, 0.12345)] == ["1,234,567", "-1,234", "7", "0.123"]
    assert format_value(1234.5, "locale", 2) == "1,234.50" and format_value(1234.5) == "1234"
    assert [report.fmt_value(v) for v in (None, "n/a", math.nan, -math.inf)] == ["—", "n/a", "NaN", "-Inf"]
    assert format_value(2.0e6, "ops") == "2 Mil ops/s" and format_value(12, "reqps") == "12 req/s"


def test_the_report_chart_is_the_shared_drawing() -> None:
    chart = report.LineChart("CPU <busy>", [report.Series("cpu & mem", [(START, 0.5), (START + 300, 0.7)])],
                             unit="ratio", thresholds=[("memory alert", 0.9)])
    page = report.line_chart_svg(chart)
    assert page.startswith("<h3>CPU &lt;busy&gt;</h3><svg ")
    svg, legend = _parse(page[len("<h3>CPU &lt;busy&gt;</h3>"):])
    assert svg.get("width") == "760" and _y_labels(svg)[-1] == "100.0%" and "cpu &amp; mem" in legend
    assert [x.findtext(f"{SVG}title") for x in svg.iter(f"{SVG}line") if x.get("class") == "threshold"] == [
        "memory alert: 90.0%"]
    empty = report.line_chart_svg(report.LineChart("idle", [report.Series("x", [(START, math.nan)])]))
    assert empty == '<p class="empty">idle: no data in this period</p>'
