"""`hux dashboards snapshot` of a running demo stack, opened in a real headless Chromium.

The stack is the ``live_stack`` fixture (Prometheus, Alertmanager, node_exporter,
the demo bot); the page is written by the command itself and loaded from disk
over the DevTools protocol: no console errors, every panel of the three
dashboards on screen with a drawn series or value, and a screenshot kept under
the test artifacts (tests/artifacts/ or $HUX_TEST_ARTIFACTS).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hux.cli import main
from hux.monitoring.dashboards import build_dashboards, dashboard_queries
from hux.monitoring.dashboards.snapshot_html import QueryResult, Series, Window, render_snapshot
from tests.monitoring.browser import Browser, artifacts_dir
from tests.monitoring.livestack import INTERVAL, RANGE, RATE_INTERVAL, LiveStack, wait_for_panel_data

#: at most this many seconds more, once every query has data, until each time series has a line
LINE_WAIT = 60
#: what the page shows of each panel, measured in the browser
PANELS_JS = """
(() => Array.from(document.querySelectorAll('section.panel')).map(panel => {
  const box = panel.getBoundingClientRect();
  const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height >= 0; };
  const lines = Array.from(panel.querySelectorAll('path.series'))
    .filter(e => (e.getAttribute('d') || '').includes(' L') && e.getBBox().width > 0 && visible(e)).length;
  const dots = Array.from(panel.querySelectorAll('circle.series')).filter(visible).length;
  const values = Array.from(panel.querySelectorAll('.stat-value, .bar-value'))
    .filter(e => e.textContent.trim() && visible(e)).length;
  return {board: panel.closest('section.board').id, title: panel.querySelector('h4').textContent,
          type: panel.dataset.type, state: panel.dataset.state, width: box.width, height: box.height,
          lines, drawn: lines + dots + values + panel.querySelectorAll('table.data tbody tr, rect.cell, li.alert').length,
          text: panel.innerText.slice(0, 300)};
}))()
"""


def _pointless(page: str) -> list[str]:
    """The time series panels of a written page without a line of two points or more."""
    sections = re.findall(r'<section class="panel [^"]*" data-type="timeseries"[^>]*><h4[^>]*>([^<]*)</h4>(.*?)</section>',
                          page, re.S)
    return [title for title, inner in sections if not re.search(r'<path class="series" d="M[^"]* L', inner)]


def _problems(panels: list[dict[str, Any]]) -> list[str]:
    """Panels that show no data, nothing drawn (a time series: no line of two points or more), or are tiny."""
    return [f"{p['board']} / {p['title']} ({p['type']}): state {p['state']}, {p['drawn']} drawn, {p['lines']} lines, "
            f"{p['width']:.0f}x{p['height']:.0f} px: {p['text']!r}"
            for p in panels if p["state"] != "data" or not p["drawn"] or (p["type"] == "timeseries" and not p["lines"])
            or p["width"] < 80 or p["height"] < 80]


@pytest.mark.integration
def test_the_snapshot_of_the_demo_stack_draws_every_panel_in_chromium(live_stack: LiveStack, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    boards = list(build_dashboards(live_stack.settings).values())
    expected = sum(1 for b in boards for p in b["panels"] if p["type"] != "row")
    with httpx.Client(base_url=live_stack.url, timeout=5, auth=live_stack.auth) as client:
        live_stack.wait_until_up(client)
        found = wait_for_panel_data(client, dashboard_queries(
            boards, rate_interval=RATE_INTERVAL, interval=INTERVAL, range_=RANGE))
        assert not found.problems, f"the stack has no data for {len(found.problems)} panel queries: {found.problems}"
        unconfigured = {q.panel for q in found.not_configured}

    config = tmp_path / "snapshot.toml"
    config.write_text('[prometheus]\nscrape_interval = "1s"\n')
    page = tmp_path / "dashboards.html"
    deadline = time.monotonic() + LINE_WAIT
    while True:   # until every time series has a line (two points or more): sparse rates need a few scrapes
        code = main(["--config", str(config), "dashboards", "snapshot", "--from", f"{live_stack.started:.0f}",
                     "--out", str(page), "--prometheus-url", live_stack.url])
        printed = capsys.readouterr()
        assert code == 0, printed.err
        assert f"wrote {page}" in printed.out
        if not _pointless(page.read_text()) or time.monotonic() > deadline:
            break
        time.sleep(3)

    with Browser(tmp_path) as browser:
        loaded = browser.load(page, PANELS_JS)
    shot = artifacts_dir() / "dashboards-snapshot.png"
    shot.write_bytes(loaded.screenshot)
    shutil.copyfile(page, artifacts_dir() / "dashboards-snapshot.html")
    with capsys.disabled():
        print(f"\nscreenshot of the dashboard snapshot: {shot} ({len(loaded.screenshot)} bytes); "
              f"{len(loaded.value)} panels checked")
    assert loaded.screenshot.startswith(b"\x89PNG")
    assert not loaded.errors, loaded.errors
    panels = loaded.value
    assert len(panels) == expected >= 60
    assert {p["board"] for p in panels} == {"hux-system-overview", "hux-token-monitoring", "hux-risk-monitoring"}
    # the demo runs no Telegram user account: those panels say "No data" and why, nothing else does
    empty = [p for p in panels if p["title"] in unconfigured]
    assert empty and all(p["state"] == "nodata" and "Empty unless bot.telegram_user is configured" in p["text"]
                         for p in empty), empty
    bad = _problems([p for p in panels if p["title"] not in unconfigured])
    assert not bad, f"{len(bad)} of {len(panels)} panels show nothing:\n" + "\n".join(bad)


HOSTILE = '<script>document.title="owned"</script><img src=x onerror="document.title=\'owned\'">'


def test_hostile_label_values_are_text_in_chromium(tmp_path: Path) -> None:
    window = Window.over(1_800_000_000, 1_800_000_600, 15)
    board = {"uid": "b", "title": HOSTILE, "panels": [
        {"id": 1, "type": "timeseries", "title": HOSTILE, "gridPos": {"x": 0, "y": 0, "w": 24, "h": 8},
         "targets": [{"refId": "A", "expr": "x", "legendFormat": "{{group}}"}]},
        {"id": 2, "type": "stat", "title": "s", "gridPos": {"x": 0, "y": 8, "w": 24, "h": 4},
         "targets": [{"refId": "A", "expr": "y", "legendFormat": "{{group}}"}]}]}
    series = [Series({"group": HOSTILE}, [(window.start + i * 15, float(i)) for i in range(40)]),
              Series({"group": "plain"}, [(window.start + i * 15, 1.0) for i in range(40)])]
    results = {("b", "1", "A"): QueryResult(series), ("b", "2", "A"): QueryResult(series, error=HOSTILE)}
    page = tmp_path / "hostile.html"
    page.write_text(render_snapshot([board], results, window), encoding="utf-8")
    with Browser(tmp_path) as browser:
        loaded = browser.load(page, "({title: document.title, scripts: document.scripts.length, "
                                    "images: document.images.length, text: document.body.innerText})")
    assert not loaded.errors, loaded.errors
    assert loaded.value["scripts"] == 0 and loaded.value["images"] == 0
    assert loaded.value["title"].startswith("Mr Hux dashboards")
    assert loaded.value["text"].count('<script>document.title="owned"</script>') >= 4
