"""Every dashboard panel's every query returns data from a real Prometheus scraping a running stack.

Real processes on ephemeral loopback ports (the ``live_stack`` fixture,
tests/monitoring/livestack.py): Prometheus, Alertmanager, node_exporter with a
backup textfile, and the demo bot. Nothing here needs Grafana: the queries go
to Prometheus' HTTP API the way Grafana would send them, with template
variables set to "All".
"""

from __future__ import annotations

import httpx
import pytest
import yaml

from hux.monitoring.dashboards import build_dashboards, dashboard_queries
from tests.monitoring.livestack import INTERVAL, RANGE, RATE_INTERVAL, LiveStack, wait_for_panel_data

pytestmark = pytest.mark.integration


def test_every_dashboard_panel_has_data(live_stack: LiveStack) -> None:
    with httpx.Client(base_url=live_stack.url, timeout=5, auth=live_stack.auth) as client:
        live_stack.wait_until_up(client)
        names = [r["name"] for r in client.get("/api/v1/rules").json()["data"]["groups"]]
        rendered = [g["name"] for path in sorted((live_stack.data / "run" / "rules").glob("*.yml"))
                    for g in yaml.safe_load(path.read_text())["groups"]]
        assert sorted(names) == sorted(rendered) and {"hux-bot", "hux-host", "hux-stack"} <= set(names)

        # The same extraction `hux health` runs (hux.monitoring.dashboards.queries).
        queries = dashboard_queries(build_dashboards(live_stack.settings).values(), rate_interval=RATE_INTERVAL,
                                    interval=INTERVAL, range_=RANGE)
        assert len(queries) >= 60
        found = wait_for_panel_data(client, queries)
    problems = found.problems
    report = "\n".join(f"  {board} / {panel}: {why}\n    {expr}" for (board, panel, expr), why in problems.items())
    assert not problems, f"{len(problems)} of {len(queries)} panel queries failed:\n{report}"
    # Empty by design, and only these: the demo runs no Telegram user account (each panel says so).
    assert {(q.board, q.panel) for q in found.not_configured} == {
        (q.board, q.panel) for q in queries if q.empty_unless == "bot.telegram_user"}
    assert len({q.panel for q in found.not_configured}) == 8
