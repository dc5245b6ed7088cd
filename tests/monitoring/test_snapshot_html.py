"""The dashboard snapshot's renderer: dashboard JSON + query results -> one HTML page, without a browser.

The page as a browser shows it is tested in test_snapshot_browser.py; here each
panel type, the thresholds' colours, units, escaping, "No data", failed queries
and the bounds on points and series.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hux.monitoring.dashboards import EMPTY_UNLESS, build_dashboards
from hux.monitoring.dashboards.snapshot_html import (
    MAX_POINTS,
    MAX_SERIES,
    NAMED_COLOURS,
    QueryResult,
    Series,
    Window,
    buckets,
    downsample,
    format_value,
    legend,
    render_snapshot,
    snapshot_queries,
    threshold_colour,
)

START, END = 1_800_000_000.0, 1_800_003_600.0
WINDOW = Window.over(START, END, 15)


def _board(*panels: dict[str, Any]) -> dict[str, Any]:
    return {"uid": "b", "title": "Board", "panels": list(panels),
            "templating": {"list": [{"name": "job", "allValue": ".*"}]}}


def _panel(kind: str, *, pid: int = 1, expr: str = "up", legend_format: str = "", instant: bool = False,
           defaults: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    target: dict[str, Any] = {"refId": "A", "expr": expr, "legendFormat": legend_format}
    if instant:
        target["instant"] = True
    panel = {"id": pid, "type": kind, "title": f"{kind} panel", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
             "targets": [target], "fieldConfig": {"defaults": defaults or {}, "overrides": []}}
    panel.update(extra)
    return panel


def _line(labels: dict[str, str], values: list[float], start: float = START) -> Series:
    return Series(labels, [(start + i * WINDOW.step, v) for i, v in enumerate(values)])


def _sections(page: str) -> list[tuple[str, str, str]]:
    """(type, state, inner HTML) of every panel section."""
    return re.findall(r'<section class="panel [^"]*" data-type="([^"]*)" data-state="(\w+)"[^>]*>(.*?)</section>',
                      page, re.S)


def _render(panel: dict[str, Any], result: QueryResult | None) -> tuple[str, str]:
    board = _board(panel)
    results = {("b", str(panel["id"]), "A"): result} if result is not None else {}
    [(_, state, inner)] = _sections(render_snapshot([board], results, WINDOW))
    return state, inner


def test_the_window_picks_a_step_from_the_range_and_rate_interval_like_grafana() -> None:
    assert (WINDOW.step, WINDOW.rate_interval) == (15, 60)          # 1 h / 290 = 12.4 s < the 15 s scrape
    day = Window.over(START, START + 86400, 15)
    assert (day.step, day.rate_interval) == (298, 313)              # range/290, rounded up; step + scrape
    assert 86400 / day.step + 1 <= MAX_POINTS                        # a day's lines are not thinned
    with pytest.raises(ValueError, match="end must come after"):
        Window.over(END, START, 15)


def test_queries_come_from_the_dashboard_json_with_grafana_variables_substituted(make_settings) -> None:
    boards = list(build_dashboards(make_settings()).values())
    queries = snapshot_queries(boards, WINDOW)
    targets = sum(len(p.get("targets") or []) for b in boards for p in b["panels"])
    alert_lists = [p for b in boards for p in b["panels"] if p["type"] == "alertlist"]
    assert len(queries) == targets + len(alert_lists) and targets >= 60
    assert not [q.expr for q in queries if "$" in q.expr]
    by_expr = {q.expr: q for q in queries}
    assert any("[60s]" in e for e in by_expr)                        # $__rate_interval
    assert any("[3600s]" in e for e in by_expr)                      # $__range
    instant = {q.key for q in queries if q.instant}
    assert instant == {(b["uid"], str(p["id"]), t.get("refId", "alerts")) for b in boards for p in b["panels"]
                       for t in (p.get("targets") or [{}]) if t.get("instant") or p["type"] == "alertlist"}
    assert len({q.key for q in queries}) == len(queries)


def test_an_alert_list_shows_prometheus_alerts_in_its_states_most_important_first() -> None:
    panel = {"id": 7, "type": "alertlist", "title": "Alerts", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 8},
             "options": {"maxItems": 2, "stateFilter": {"firing": True, "pending": False, "error": True}}}
    [query] = snapshot_queries([_board(panel)], WINDOW)
    assert (query.key, query.expr, query.instant) == (("b", "7", "alerts"), 'ALERTS{alertstate=~"firing"}', True)
    alerts = [Series({"alertname": name, "alertstate": "firing", "severity": severity, "instance": "a:1"}, [(END, 1)])
              for name, severity in (("Watchdog", "none"), ("BotDown", "critical"), ("Slow", "warning"))]
    [(_, state, inner)] = _sections(render_snapshot([_board(panel)], {query.key: QueryResult(alerts)}, WINDOW))
    assert state == "data"
    assert re.findall(r"<b>([^<]*)</b>", inner) == ["BotDown", "Slow"] and "+1 more" in inner
    [(_, state, _)] = _sections(render_snapshot([_board(panel)], {query.key: QueryResult([])}, WINDOW))
    assert state == "nodata"


def test_timeseries_draws_lines_legend_and_dashed_thresholds_in_their_colours() -> None:
    panel = _panel("timeseries", legend_format="{{instance}} load", defaults={
        "unit": "percentunit", "min": 0, "max": 1,
        "thresholds": {"mode": "absolute", "steps": [{"value": None, "color": "green"},
                                                     {"value": 0.9, "color": "red"}]},
        "custom": {"thresholdsStyle": {"mode": "dashed"}, "fillOpacity": 10}})
    state, inner = _render(panel, QueryResult([_line({"instance": "a:1"}, [0.2, 0.4, 0.5])]))
    assert state == "data"
    assert len(re.findall(r'<path class="series" d="M[^"]* L', inner)) == 1
    assert re.search(rf'class="threshold"[^>]*stroke="{NAMED_COLOURS["red"]}" stroke-dasharray', inner)
    assert "a:1 load" in inner and "100%" in inner            # legend, the fixed max as an axis label


def test_a_gap_in_the_data_breaks_the_line() -> None:
    points = [(START + i * WINDOW.step, 1.0) for i in range(10)] + [(START + i * WINDOW.step, 1.0)
                                                                     for i in range(30, 40)]
    _, inner = _render(_panel("timeseries"), QueryResult([Series({"job": "x"}, points)]))
    assert len(re.findall(r'<path class="series"', inner)) == 2


def test_stacked_series_are_drawn_on_top_of_each_other() -> None:
    panel = _panel("timeseries", defaults={"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 35}})
    _, inner = _render(panel, QueryResult([_line({"m": "a"}, [1, 1, 1]), _line({"m": "b"}, [2, 2, 2])]))
    lines = re.findall(r'<path class="series" d="([^"]*)"', inner)
    heights = [{float(p.split(",")[1]) for p in d[1:].split(" L")} for d in lines]
    assert len(heights) == 2 and all(len(h) == 1 for h in heights)
    assert heights[1].pop() < heights[0].pop()           # b (1 + 2 = 3) above a (1): smaller y is higher
    assert inner.count('class="area"') == 2


def test_stat_shows_the_last_value_in_its_unit_coloured_by_the_thresholds() -> None:
    thresholds = {"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 0.05, "color": "#EAB839"},
                                                {"value": 0.1, "color": "red"}]}
    panel = _panel("stat", defaults={"unit": "percentunit", "thresholds": thresholds})
    state, inner = _render(panel, QueryResult([_line({}, [0.01, 0.2, 0.07, math.nan])]))
    assert state == "data"
    assert re.search(r'class="stat-value" style="color:#EAB839;font-size:28px">7%<', inner)    # last non-null, yellow step
    assert '<svg class="spark"' in inner


def test_stat_value_mappings_name_each_series() -> None:
    mappings = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"},
                                              "1": {"text": "UP", "color": "green"}}}]
    panel = _panel("stat", legend_format="{{job}}", defaults={"unit": "none", "mappings": mappings})
    _, inner = _render(panel, QueryResult([_line({"job": "bot"}, [1, 0]), _line({"job": "node"}, [0, 1])]))
    assert re.search(rf'bot</span><span class="stat-value" style="color:{NAMED_COLOURS["red"]};[^"]*">DOWN<', inner)
    assert re.search(rf'node</span><span class="stat-value" style="color:{NAMED_COLOURS["green"]};[^"]*">UP<', inner)


def test_bargauge_of_heatmap_buckets_shows_counts_per_bucket() -> None:
    panel = _panel("bargauge", instant=True, legend_format="{{le}}",
                   defaults={"unit": "none", "min": 0,
                             "thresholds": {"steps": [{"value": None, "color": "blue"}]}})
    panel["targets"][0]["format"] = "heatmap"
    cumulative = [Series({"le": le}, [(END, v)]) for le, v in (("+Inf", 10), ("50", 7), ("20", 2))]
    _, inner = _render(panel, QueryResult(cumulative))
    rows = re.findall(r'bar-name">([^<]*)<.*?width:([\d.]+)%.*?bar-value[^>]*>([^<]*)<', inner)
    assert rows == [("20", "40.0", "2"), ("50", "100.0", "5"), ("+Inf", "60.0", "3")]
    assert NAMED_COLOURS["blue"] in inner


def test_table_shows_label_columns_less_the_excluded_ones() -> None:
    panel = _panel("table", instant=True, transformations=[
        {"id": "organize", "options": {"excludeByName": {"Value": True, "alertstate": True, "__name__": True}}}])
    _, inner = _render(panel, QueryResult([Series({"__name__": "ALERTS", "alertname": "Watchdog",
                                                   "alertstate": "firing", "severity": "none"}, [(END, 1)])]))
    assert re.findall(r"<th>([^<]*)</th>", inner) == ["alertname", "severity"]
    assert re.findall(r"<td>([^<]*)</td>", inner) == ["Watchdog", "none"]


def test_heatmap_draws_cells_per_bucket() -> None:
    panel = _panel("heatmap", legend_format="{{le}}")
    panel["targets"][0]["format"] = "heatmap"
    def spaced(le: str, values: list[float]) -> Series:    # far enough apart to fall in separate columns
        return Series({"le": le}, [(START + i * 600, v) for i, v in enumerate(values)])

    series = [spaced("10", [1, 0, 2]), spaced("+Inf", [3, 1, 2])]
    state, inner = _render(panel, QueryResult(series))
    assert state == "data"
    assert len(re.findall(r'<rect class="cell"', inner)) == 4       # the zero counts are not drawn


def test_no_data_failed_queries_and_unknown_panel_types_are_told_apart() -> None:
    assert _render(_panel("timeseries"), QueryResult([]))[0] == "nodata"
    assert "No data" in _render(_panel("stat"), QueryResult([Series({}, [])]))[1]
    # a panel of a part of the bot that runs only when configured says why it is empty (its marker, escaped)
    marked = _panel("stat", **{EMPTY_UNLESS: {"setting": "bot.<b>telegram_user</b>", "present": "up"}})
    state, inner = _render(marked, QueryResult([]))
    assert state == "nodata" and "No data. Empty unless bot.&lt;b&gt;telegram_user&lt;/b&gt; is configured." in inner
    state, inner = _render(_panel("timeseries"), QueryResult(error="bad_data: parse error at char 5"))
    assert state == "error" and "query failed: bad_data: parse error at char 5" in inner
    assert _render(_panel("timeseries"), None)[0] == "error"         # never asked
    state, inner = _render(_panel("piechart"), QueryResult([_line({}, [1])]))
    assert state == "unsupported" and "open it in Grafana" in inner


def test_a_partial_failure_keeps_what_did_answer() -> None:
    panel = _panel("timeseries")
    panel["targets"].append({"refId": "B", "expr": "broken(", "legendFormat": ""})
    results = {("b", "1", "A"): QueryResult([_line({"job": "x"}, [1, 2])]),
               ("b", "1", "B"): QueryResult(error="parse error")}
    [(_, state, inner)] = _sections(render_snapshot([_board(panel)], results, WINDOW))
    assert state == "data" and "query failed: parse error" in inner and 'class="series"' in inner


def test_huge_series_are_downsampled_and_extra_series_counted() -> None:
    many = [_line({"i": str(i)}, [float(i)] * 20) for i in range(MAX_SERIES + 7)]
    huge = Series({"i": "huge"}, [(START + i, float(i % 97)) for i in range(20_000)])
    state, inner = _render(_panel("timeseries"), QueryResult([huge, *many], dropped_series=3, unreadable=2))
    assert state == "data"
    paths = re.findall(r'<path class="series" d="([^"]*)"', inner)
    assert len(paths) == MAX_SERIES
    assert max(d.count(" L") + 1 for d in paths) <= MAX_POINTS
    assert "+11 more series" in inner and "2 samples were not numbers" in inner
    assert len(inner) < 200_000


def test_downsampling_keeps_the_spikes() -> None:
    points = [(float(i), 0.0) for i in range(10_000)]
    points[4321] = (4321.0, 99.0)
    out = downsample(points)
    assert len(out) <= MAX_POINTS and (4321.0, 99.0) in out and out == sorted(out)


def test_units_read_as_in_grafana() -> None:
    assert format_value(0.0712, "percentunit") == "7.12%" and format_value(1, "percentunit") == "100%"
    assert format_value(0.25, "s") == "250 ms" and format_value(93600, "s") == "1.08 day"
    assert format_value(3 * 1024 ** 2, "bytes") == "3 MiB"
    assert format_value(2500, "Bps") == "2.5 kB/s"
    assert format_value(1.5, "suffix: msg/s") == "1.5 msg/s"
    assert format_value(12345, "short") == "12.3 K"
    assert format_value(3.0, "none", 0) == "3" and format_value(math.inf) == "+Inf"


def test_threshold_colour_is_the_last_step_reached() -> None:
    steps = {"steps": [{"value": None, "color": "red"}, {"value": 0.1, "color": "green"}]}
    assert threshold_colour(0.05, steps) == NAMED_COLOURS["red"]
    assert threshold_colour(0.1, steps) == NAMED_COLOURS["green"]
    assert threshold_colour(1.0, {"steps": "nonsense"}) is None


def test_buckets_turn_cumulative_counts_into_counts_per_bucket() -> None:
    cumulative = [Series({"le": "+Inf"}, [(1.0, 9.0)]), Series({"le": "1"}, [(1.0, 4.0)]),
                  Series({"le": "nope"}, [(1.0, 1.0)])]
    assert [(s.labels["le"], s.points) for s in buckets(cumulative)] == [("1", [(1.0, 4.0)]), ("+Inf", [(1.0, 5.0)])]


def test_legend_fills_labels_and_falls_back_to_the_series() -> None:
    series = Series({"__name__": "up", "job": "bot"}, [])
    assert legend(series, "{{job}} / {{ missing }}", "up") == "bot /"
    assert legend(series, "", "up") == 'up{job="bot"}'
    assert legend(Series({}, []), "", "sum(up)") == "sum(up)"


HOSTILE = '<script>document.title="owned"</script><img src=x onerror=alert(1)>"\'&'


def test_hostile_label_values_and_titles_render_as_text() -> None:
    panel = _panel("timeseries", legend_format="{{group}}", title=HOSTILE, description=HOSTILE)
    table = _panel("table", pid=2, instant=True)
    results = {("b", "1", "A"): QueryResult([_line({"group": HOSTILE}, [1, 2])], error=HOSTILE),
               ("b", "2", "A"): QueryResult([Series({"group": HOSTILE}, [(END, 1)])])}
    page = render_snapshot([_board(panel, table)], results, WINDOW, source=HOSTILE)
    assert "<script" not in page and "<img" not in page and "onerror=alert(1)>" not in page
    assert page.count("&lt;script&gt;document.title=&quot;owned&quot;&lt;/script&gt;") >= 5
    assert "default-src 'none'" in page                          # and no script would run anyway


@example({}, [1.797693134362316e+308], "timeseries")   # the largest float: no round axis ticks (it overflowed)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=60), max_size=5),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=30),
       st.sampled_from(["timeseries", "stat", "bargauge", "table", "heatmap"]))
def test_any_labels_and_values_render_without_markup_leaking(labels: dict[str, str], values: list[float],
                                                            kind: str) -> None:
    panel = _panel(kind, legend_format="{{group}} {{le}}", instant=kind in ("bargauge", "table"))
    if kind == "heatmap":
        panel["targets"][0]["format"] = "heatmap"
    page = render_snapshot([_board(panel)], {("b", "1", "A"): QueryResult([_line(labels, values)])}, WINDOW)
    [(_, state, inner)] = _sections(page)
    assert state in ("data", "nodata")
    text_only = re.sub(r"<[^<>]*>", "", inner)          # once the page's own tags are gone, no markup is left
    assert "<" not in text_only and ">" not in text_only


def test_a_long_series_keeps_its_last_value_for_a_stat() -> None:
    points = [(START + i, float(i % 10)) for i in range(1_000)] + [(START + 1_000, 4.0)]
    assert downsample(points)[-1] == (START + 1_000, 4.0) and downsample(points)[0] == points[0]
    state, inner = _render(_panel("stat", defaults={"unit": "none"}), QueryResult([Series({}, points)]))
    assert re.search(r'class="stat-value"[^>]*>4<', inner), inner


def test_a_heatmap_counts_every_sample_of_a_long_series_once() -> None:
    panel = _panel("heatmap", legend_format="{{le}}")
    panel["targets"][0]["format"] = "heatmap"
    ones = Series({"le": "+Inf"}, [(START + i * 3600 / 1_000, 1.0) for i in range(1_000)])
    _, inner = _render(panel, QueryResult([ones]))
    counts = [float(v) for v in re.findall(r"<title>\+Inf: ([\d.]+)</title>", inner)]
    assert sum(counts) == 1_000
