"""The real PostgreSQL fault cluster goes away mid-run and comes back: nothing accepted is lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.bot.conftest import PgDatabases, bot_config, metric_value, pg_url, running_bot, wait_until
from tests.bot.test_pipeline import token_feed
from tests.conftest import require_binary
from tests.pg import pg_ctl

pytestmark = pytest.mark.timeout(120)


def cluster() -> list[str]:
    value = os.environ.get("HUX_TEST_PG_FAULT_CLUSTER")
    if not value:
        pytest.fail("HUX_TEST_PG_FAULT_CLUSTER is not set: run the suite with `python3 scripts/run_tests.py`", pytrace=False)
    return value.split()


@pytest.fixture
def fault_database():
    dbs = PgDatabases(pg_url("HUX_TEST_PG_FAULT_URL"))
    yield dbs.create()
    status = subprocess.run([require_binary("pg_ctlcluster"), *cluster(), "status"], capture_output=True, timeout=30)
    if status.returncode != 0:  # a failed test must not leave the cluster down for the next one
        pg_ctl(cluster(), "start")
    dbs.drop_all()


async def test_database_outage_holds_work_and_persists_everything_after(hux_home: Path, fault_database: str) -> None:
    total_messages = 300
    feed = token_feed(hux_home / "feed.jsonl", total_messages, gap=1.0, tokens=30)
    # 300 messages at 40/s: about 7.5 s of traffic; the database is away for part of it.
    cfg = bot_config(database_url=fault_database, replay={"path": str(feed), "loop": False, "speed": 40.0})
    async with running_bot(cfg) as app:
        reg = app.metrics.registry
        base = f"http://127.0.0.1:{app.port}"

        def received() -> float:
            return sum(v.value for v in _samples(reg, "hux_messages_received_total"))

        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"{base}/ready")).status_code == 200
            assert await wait_until(lambda: received() >= 40, 20)
            before = await asyncio.to_thread(app.persistence.store.counts)
            assert before["inbox"] >= 40

            await asyncio.to_thread(pg_ctl, cluster(), "stop")
            assert await wait_until(lambda: metric_value(reg, "hux_database_up") == 0, 10)
            ready = await http.get(f"{base}/ready")
            assert ready.status_code == 503
            body = ready.json()
            assert body["ready"] is False and body["database"]["reachable"] is False and body["mode"] == "demo"
            assert "database unreachable" in body["message"]
            during = received()
            await asyncio.sleep(2.0)  # traffic keeps arriving while the database is away
            assert received() > during
            errors = sum(s.value for s in _samples(reg, "hux_database_errors_total"))
            assert errors > 0
            assert metric_value(reg, "hux_database_pending_writes") > 0 or app.persistence.spool

            await asyncio.to_thread(pg_ctl, cluster(), "start")
            assert await wait_until(lambda: metric_value(reg, "hux_database_up") == 1, 20)
            assert await wait_until(lambda: app.sources[0].finished.is_set(), 30)
            # every accepted message written once its result is (workers may still hold the last few)
            assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success")
                                    == total_messages and not app.persistence.spool, 30)
            assert (await http.get(f"{base}/ready")).status_code == 200

        after = await asyncio.to_thread(app.persistence.store.counts)
        accepted = received()
        assert accepted == total_messages
        assert after["inbox"] == total_messages and after["inbox_pending"] == 0
        assert after["mentions"] == total_messages
        assert after["inbox"] > before["inbox"]
        decided = sum(s.value for s in _samples(reg, "hux_tokens_processed_total"))
        assert decided == total_messages
        # An outage holds writes; it is not a failing persist stage (BotDatabaseDown pages for it, once).
        assert metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="failure") == 0
        assert metric_value(reg, "hux_database_errors_total", operation="write") + \
            metric_value(reg, "hux_database_errors_total", operation="probe") > 0


async def test_a_database_that_refuses_writes_is_a_persist_failure_and_loses_nothing(hux_home: Path) -> None:
    """SQLite answers the probe but a trigger rejects every mention: the persist stage fails, results stay held."""
    from sqlalchemy import text

    feed = token_feed(hux_home / "feed.jsonl", 40, gap=1.0, tokens=8)
    cfg = bot_config(replay={"path": str(feed), "loop": False, "speed": 10.0})  # 4 s of traffic
    async with running_bot(cfg) as app:
        reg = app.metrics.registry
        engine = app.persistence.store.engine

        def sql(statement: str) -> None:
            with engine.begin() as conn:
                conn.execute(text(statement))

        await asyncio.to_thread(sql, "CREATE TRIGGER refuse_mentions BEFORE INSERT ON mentions "
                                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist",
                                                     outcome="failure") > 0, 20)
        assert metric_value(reg, "hux_database_up") == 1, "the database answers: it is up, it refuses writes"
        assert metric_value(reg, "hux_database_errors_total", operation="write") > 0
        assert app.persistence.pending > 0, "refused results are held, not dropped"

        await asyncio.to_thread(sql, "DROP TRIGGER refuse_mentions")
        assert await wait_until(lambda: app.sources[0].finished.is_set(), 30)
        assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist",
                                                     outcome="success") == 40 and app.persistence.pending == 0, 30)
        counts = await asyncio.to_thread(app.persistence.store.counts)
        assert counts["inbox"] == 40 and counts["mentions"] == 40 and counts["inbox_pending"] == 0


def _samples(registry, name: str):
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                yield sample
