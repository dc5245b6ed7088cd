"""Every dashboard panel's every query returns data from a real Prometheus scraping a running stack.

Real processes on ephemeral loopback ports (the ``live_stack`` fixture,
tests/monitoring/livestack.py): Prometheus, Alertmanager, node_exporter with a
backup textfile, and the demo bot. Nothing here needs Grafana: the queries go
to Prometheus' HTTP API the way Grafana would send them, with template
variables set to "All".
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import yaml

from hux.monitoring.dashboards import build_dashboards, dashboard_queries
from tests.bot.conftest import running_bot, wait_until
from tests.bot.test_telegram_user import ALPHA, telegram, user_config  # noqa: F401 - the fixture: Telegram's side
from tests.monitoring.livestack import INTERVAL, RANGE, RATE_INTERVAL, LiveStack, wait_for_panel_data
from tests.ops.conftest import prom_factory  # noqa: F401 - the fixture: a real Prometheus on a free port

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


def _scraped(client: httpx.Client, job: str, timeout: float) -> bool:
    """Whether Prometheus has scraped ``job`` (up == 1) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/api/v1/query", params={"query": f'up{{job="{job}"}} == 1'}).json()["data"]["result"]:
            return True
        time.sleep(0.5)
    return False


async def test_the_telegram_user_account_panels_have_data_once_it_runs(
        telegram, hux_home: Path, make_settings, prom_factory) -> None:  # noqa: F811 - the fixtures imported above
    """The row the demo leaves empty, on a bot reading two chats as a user account (Telethon's objects,
    Telegram's side a double): a FloodWait at start, a message, a lost connection and its catch-up, then a
    real Prometheus scraping that bot answers every panel of the row, and its ``present`` query too."""
    server, doubles = telegram
    server.flood_on_resolve = [1]
    queries = [q for q in dashboard_queries(build_dashboards(make_settings()).values(), rate_interval=RATE_INTERVAL,
                                            interval=INTERVAL, range_=RANGE) if q.empty_unless == "bot.telegram_user"]
    assert len({q.panel for q in queries}) == 8
    cfg = user_config(hux_home, doubles.base_url, catch_up_messages=5, reconnect_max_seconds=0.5)
    async with running_bot(cfg, demo=False) as app:
        source = next(s for s in app.sources if s.name == "telegram_user")
        assert await wait_until(source.connected.is_set, 10)
        await server.post(ALPHA, 10, "gm")
        server.current.lose_connection()
        await server.post(ALPHA, 11, "said while nobody listened")
        assert await wait_until(lambda: len(server.clients) == 2 and source.connected.is_set(), 10)
        prom = await asyncio.to_thread(prom_factory, "global:\n  scrape_interval: 1s\nscrape_configs:\n"
                                       f"  - job_name: bot\n    static_configs:\n      - targets: ['127.0.0.1:{app.port}']\n")
        with httpx.Client(base_url=prom.url, timeout=5) as client:
            # the bot answers its scrapes from this event loop: the questions are asked from a thread
            assert await asyncio.to_thread(_scraped, client, "bot", 20)
            found = await asyncio.to_thread(wait_for_panel_data, client, queries, 40)
            present = await asyncio.to_thread(client.get, "/api/v1/query", params={"query": queries[0].present})
    assert not found.problems and not found.not_configured, found
    assert present.json()["data"]["result"]
