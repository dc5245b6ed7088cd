"""`hux dashboards snapshot` against a real Prometheus holding known, backfilled series.

The page's look in a browser is tested in tests/monitoring/test_snapshot_browser.py;
here: the queries reach Prometheus over the range, a failing query shows on its
panel and nowhere else, hostile label values stored in the TSDB come out as text,
the CLI's arguments, default path and exit codes, and any answer Prometheus might
give is read without crashing.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hux import paths
from hux.cli import main
from hux.monitoring.dashboards.snapshot_html import MAX_SERIES, Window, render_snapshot, snapshot_queries
from hux.ops.clients import Prometheus
from hux.ops.dashboard_snapshot import (
    MAX_SERIES_KEPT,
    fetch,
    parse_result,
    select_boards,
    take_snapshot,
    time_range,
)
from hux.ops.errors import OpsError
from tests.conftest import free_port
from tests.ops.conftest import create_blocks

HOSTILE = '<script>alert("owned")</script><img src=x onerror=alert(1)>'
STEP = 30
HOURS = 2


def _openmetrics(end: float) -> str:
    """Two hours of two series every 30 s: a counter per group (one group named like markup) and a gauge."""
    start = end - HOURS * 3600
    lines = ["# HELP hux_messages_received_total Messages.", "# TYPE hux_messages_received_total counter"]
    groups = ("alpha", HOSTILE.replace("\\", "\\\\").replace('"', '\\"'))
    for group in groups:
        lines += [f'hux_messages_received_total{{job="bot",instance="a:1",group="{group}"}} {i * 2} {start + i * STEP:.3f}'
                  for i in range(HOURS * 3600 // STEP)]
    lines += ["# HELP hux_queue_length Queue.", "# TYPE hux_queue_length gauge"]
    lines += [f'hux_queue_length{{job="bot",instance="a:1"}} {i % 7} {start + i * STEP:.3f}'
              for i in range(HOURS * 3600 // STEP)]
    return "\n".join(lines + ["# EOF"]) + "\n"


@pytest.fixture
def known_prometheus(prom_factory: Any, tmp_path: Path) -> tuple[str, float]:
    end = time.time() - 60
    prom = prom_factory(start=False)
    create_blocks(_openmetrics(end), prom.data_dir, tmp_path)
    prom.start()
    return prom.url, end


def _board() -> dict[str, Any]:
    def panel(pid: int, kind: str, expr: str, legend: str = "", **target: Any) -> dict[str, Any]:
        return {"id": pid, "type": kind, "title": f"panel {pid}", "gridPos": {"x": 0, "y": pid * 8, "w": 24, "h": 8},
                "targets": [{"refId": "A", "expr": expr, "legendFormat": legend, **target}],
                "fieldConfig": {"defaults": {"unit": "short"}}}

    return {"uid": "known", "title": "Known", "templating": {"list": [{"name": "job", "allValue": ".*"}]},
            "panels": [
                panel(1, "timeseries", 'sum by (group) (rate(hux_messages_received_total{job=~"$job"}[$__rate_interval]))',
                      "{{group}}"),
                panel(2, "stat", 'max(hux_queue_length{job=~"$job"})'),
                panel(3, "bargauge", 'sum by (group) (increase(hux_messages_received_total[$__range]))', "{{group}}",
                      instant=True),
                panel(4, "timeseries", "rate(hux_queue_length[$__rate_interval"),      # a broken query
                panel(5, "timeseries", "absent_metric_for_sure"),
            ]}


def _states(page: str) -> dict[str, str]:
    return dict(re.findall(r'<section class="panel [^"]*" data-type="[^"]*" data-state="(\w+)"[^>]*><h4[^>]*>([^<]*)<',
                           page)[i][::-1] for i in range(page.count('<section class="panel ')))


@pytest.mark.integration
def test_every_target_is_asked_over_the_range_and_a_broken_query_fails_on_its_own_panel(known_prometheus) -> None:
    url, end = known_prometheus
    window = Window.over(end - 3600, end, 15)
    boards = [_board()]
    queries = snapshot_queries(boards, window)
    with Prometheus(url, auth=None) as prometheus:
        results = fetch(prometheus, queries, window)
    assert set(results) == {q.key for q in queries}
    lines = results[("known", "1", "A")].series
    assert {s.labels["group"] for s in lines} == {"alpha", HOSTILE}
    assert all(len(s.points) == 3600 // window.step + 1 for s in lines)     # the whole range at the window's step
    assert results[("known", "3", "A")].series[0].points[0][0] == pytest.approx(end)   # instant: at the end
    assert "parse error" in (results[("known", "4", "A")].error or "")
    page = render_snapshot(boards, results, window)
    assert _states(page) == {"panel 1": "data", "panel 2": "data", "panel 3": "data", "panel 4": "error",
                             "panel 5": "nodata"}
    assert "<script" not in page and "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in page


@pytest.mark.integration
def test_the_command_writes_the_page_under_the_layout_and_prints_its_path(known_prometheus, hux_home, capsys,
                                                                          tmp_path) -> None:
    url, end = known_prometheus
    config = tmp_path / "hux.toml"
    config.write_text('[prometheus]\nscrape_interval = "15s"\n')
    to = datetime.fromtimestamp(end, timezone.utc).isoformat()
    code = main(["--config", str(config), "dashboards", "snapshot", "--since", "1h", "--to", to,
                 "--prometheus-url", url, "--dashboard", "token"])
    out = capsys.readouterr()
    expected = paths.Layout(hux_home).snapshots_dir / (
        "dashboards-" + datetime.fromtimestamp(end, timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ".html")
    assert code == 0, out.err
    assert f"wrote {expected}\n" in out.out and expected.is_file()
    page = expected.read_text()
    assert 'id="hux-token-monitoring"' in page and 'id="hux-risk-monitoring"' not in page
    assert re.search(r"\d+ panels \(\d+ data, \d+ nodata\)", out.out)
    assert "data-type=\"stat\" data-state=\"data\"" in page           # Messages / s from the backfilled counter


def test_with_prometheus_down_the_page_is_written_and_says_why(hux_home, tmp_path, capsys) -> None:
    out = tmp_path / "page.html"
    code = main(["dashboards", "snapshot", "--since", "10m", "--out", str(out), "--dashboard", "risk",
                 "--prometheus-url", f"http://127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "queries failed: is Prometheus up (`hux status`)?" in err
    page = out.read_text()
    assert 'data-state="data"' not in page and 'data-state="error"' in page
    assert "query failed: Prometheus is not reachable" in page


@pytest.mark.parametrize("argv, message", [
    (["--dashboard", "nope"], 'no dashboard called \'nope\': choose one of "System Overview"'),
    (["--from", "2026-12-02T06:00:00Z", "--to", "2026-12-02T05:00:00Z"], "--from must come before --to"),
    (["--since", "soon"], "--since: 'soon' is not a duration"),
    (["--from", "yesterday"], "'yesterday' is not a time: use ISO 8601"),
    (["--since", "400d"], "longer than 90 days"),
])
def test_bad_arguments_are_refused_with_what_to_do(argv: list[str], message: str, hux_home, capsys) -> None:
    assert main(["dashboards", "snapshot", "--prometheus-url", f"http://127.0.0.1:{free_port()}", *argv]) == 1
    assert message in capsys.readouterr().err


def test_time_range_and_board_selection() -> None:
    assert time_range(since="2h", start=None, end=None, now=10_000.0) == (2_800.0, 10_000.0)
    assert time_range(since=None, start="2026-12-02T05:00:00", end="1796191200", now=0.0) == (
        datetime(2026, 12, 2, 5, tzinfo=timezone.utc).timestamp(), 1796191200.0)     # UTC, unix seconds
    with pytest.raises(OpsError, match="either --since or --from"):
        time_range(since="1h", start="1796187600", end=None)
    boards = [{"uid": "hux-risk-monitoring", "title": "Risk Monitoring"}, {"uid": "x", "title": "Token Monitoring"}]
    assert select_boards(boards, ["Token Monitoring", "hux-risk-monitoring", "risk"]) == [boards[1], boards[0]]


def test_take_snapshot_writes_atomically_and_privately(hux_home) -> None:
    from hux.monitoring.settings import load_settings

    layout = paths.Layout(hux_home)
    settings = load_settings(None)
    result = take_snapshot(settings, start=1_800_000_000, end=1_800_000_600, layout=layout,
                           prometheus_url=f"http://127.0.0.1:{free_port()}")
    assert result.path.parent == layout.snapshots_dir and result.path.is_file()
    assert not list(layout.snapshots_dir.glob("*.tmp"))
    assert layout.snapshots_dir.stat().st_mode & 0o077 == 0
    assert result.path.stat().st_mode & 0o077 == 0        # chat names in label values: private, like data/
    assert sum(result.panels.values()) >= 60 and set(result.panels) == {"error"}


def test_parse_result_reads_every_shape_prometheus_gives() -> None:
    matrix = parse_result({"resultType": "matrix", "result": [
        {"metric": {"job": "a"}, "values": [[2, "1"], [1, "NaN"], [3, "x"], "junk"]},
        {"metric": "not labels", "values": []}]})
    assert [(s.labels, s.points[0]) for s in matrix.series] == [({"job": "a"}, (1.0, pytest.approx(float("nan"),
                                                                                                   nan_ok=True)))]
    assert matrix.unreadable == 3
    assert parse_result({"resultType": "scalar", "result": [5, "2"]}).series[0].points == [(5.0, 2.0)]
    assert "not a matrix or vector" in (parse_result({"resultType": "string", "result": [1, "x"]}).error or "")
    many = parse_result({"resultType": "vector", "result": [{"metric": {"i": str(i)}, "value": [1, "1"]}
                                                            for i in range(MAX_SERIES_KEPT + 5)]})
    assert len(many.series) == MAX_SERIES_KEPT and many.dropped_series == 5 and MAX_SERIES < MAX_SERIES_KEPT


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=30)


@given(st.one_of(JSON, st.fixed_dictionaries({"resultType": st.sampled_from(["matrix", "vector", "scalar"]),
                                              "result": JSON})))
def test_parse_result_never_raises_and_keeps_labels_as_strings(data: Any) -> None:
    result = parse_result(data)
    for series in result.series:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in series.labels.items())
        assert all(isinstance(t, float) and isinstance(v, float) for t, v in series.points)


def test_fetch_gives_up_at_its_deadline_and_says_so() -> None:
    window = Window.over(1_800_000_000, 1_800_000_600, 15)
    queries = snapshot_queries([_board()], window)
    with Prometheus(f"http://127.0.0.1:{free_port()}", auth=None) as prometheus:
        results = fetch(prometheus, queries, window, total_timeout=0)
    assert set(results) == {q.key for q in queries}
    assert all("no answer within 0 s for all queries" in (r.error or "") for r in results.values())


def test_the_rate_interval_covers_the_slowest_scrape(hux_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hux.monitoring.settings import load_settings
    from hux.ops.dashboard_snapshot import slowest_scrape

    monkeypatch.chdir(hux_home)                      # no hux.toml but the defaults
    settings = load_settings(None, environ={"HUX__PROMETHEUS__SCRAPE_INTERVAL": "1s"})
    assert slowest_scrape(settings) == 5.0          # the bot's own 5 s: a rate over 4 x 1 s would see one sample
