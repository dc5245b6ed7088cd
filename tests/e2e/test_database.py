"""PostgreSQL stopped under the running bot: the page, the recovery, and not one accepted message lost.

The bot runs on the fault cluster (``HUX_TEST_PG_FAULT_URL``, cluster
``HUX_TEST_PG_FAULT_CLUSTER``, both set by ``scripts/run_tests.py``) in a
database of its own, created for this module and dropped after it, so keys
from earlier runs cannot make a lost message look present.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.procs import sum_samples, wait_until
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import BOT, Bot, E2EStack
from tests.pg import pg_ctl, scratch_database

pytestmark = pytest.mark.e2e


def _fault_cluster() -> tuple[str, list[str]]:
    url = os.environ.get("HUX_TEST_PG_FAULT_URL")
    cluster = os.environ.get("HUX_TEST_PG_FAULT_CLUSTER")
    if not url or not cluster:
        pytest.fail("HUX_TEST_PG_FAULT_URL / HUX_TEST_PG_FAULT_CLUSTER are not set: run the suite through "
                    "`python3 scripts/run_tests.py`, which creates and starts the PostgreSQL fault cluster",
                    pytrace=False)
    return url, cluster.split()


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[str, list[str]]]:
    """A fresh database on the fault cluster; the cluster is running again whatever the test did."""
    base_url, cluster = _fault_cluster()
    with scratch_database(base_url, cluster, "hux_e2e") as url:
        yield url, cluster


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers,
          database: tuple[str, list[str]]) -> Iterator[E2EStack]:
    url, _ = database
    with running_stack(tmp_path_factory, receivers, bots=[Bot("pg", {"database_url": url})]) as running:
        yield running


def _inbox_keys(url: str, keys: list[str]) -> set[str]:
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT key FROM inbox WHERE key IN :keys").bindparams(bindparam("keys", expanding=True))
            return {row[0] for row in conn.execute(query, {"keys": keys})}
    finally:
        engine.dispose()


def _inbox_count(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM inbox")).scalar_one())
    finally:
        engine.dispose()


def _spooled(spool_dir: Path) -> list[str]:
    """Keys of every message in the bot's spool: the open file and any sealed for draining."""
    keys: list[str] = []
    if not spool_dir.is_dir():
        return keys
    for path in sorted(spool_dir.iterdir()):
        if not (path.name.endswith(".jsonl") or path.name.endswith(".draining")):
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue  # drained between listing and reading
        for line in lines:
            try:
                keys.append(json.loads(line)["key"])
            except (ValueError, KeyError):
                continue  # a torn last line was never acknowledged
    return keys


def test_database_stopped_pages_and_loses_nothing(scenario: Scenario, stack: E2EStack,
                                                  database: tuple[str, list[str]]) -> None:
    url, cluster = database
    bot = stack.bot
    spool = stack.home / "bots" / bot.name / "data" / "bot" / "spool"
    probe = float(BOT["db_probe_interval_seconds"])
    timing = stack.timing("BotDatabaseDown", for_key="database_down_for", window_s=probe,
                          window_note=f"the bot's database probe runs every {probe:g}s")
    assert _spooled(spool) == [], "nothing is spooled while the database is up"

    pg_ctl(cluster, "stop")
    scenario.fault()
    try:
        scenario.expect_firing("BotDatabaseDown", timing=timing, severity="critical", instance=bot.instance,
                               value=r"database probe has failed")
        # The bot keeps accepting: messages go to the spool, results are held in memory.
        wait_until(lambda: len(_spooled(spool)) >= 5, 30, "messages accepted into the spool during the outage")
        metrics = bot.metrics_text()
        assert sum_samples(metrics, "hux_database_up", {}) == 0
        spooled = _spooled(spool)
    finally:
        pg_ctl(cluster, "start")
    recovered = time.monotonic()
    scenario.expect_resolved("BotDatabaseDown", severity="critical", timeout=30)

    # Everything accepted while the database was away reaches it once it is back.
    def drained() -> bool:
        text = bot.metrics_text()
        return not _spooled(spool) and sum_samples(text, "hux_database_pending_writes", {}) == 0

    wait_until(drained, 30, "the spool and the held writes to drain into PostgreSQL")
    present = _inbox_keys(url, spooled)
    lost = sorted(set(spooled) - present)
    assert not lost, f"{len(lost)} of {len(spooled)} messages accepted during the outage are missing: {lost[:5]}"
    accepted = sum_samples(bot.metrics_text(), "hux_messages_received_total", {})
    stored = _inbox_count(url)
    assert stored >= accepted, f"the bot accepted {accepted:.0f} messages but the inbox holds {stored}"
    print(f"outage: {len(spooled)} messages spooled and all stored after recovery; "
          f"{stored} inbox rows for {accepted:.0f} accepted; drained {time.monotonic() - recovered:.1f}s after restart")
    scenario.assert_exactly_once("BotDatabaseDown", severity="critical", settle=4)
    # One fault, one page: held writes are not persist failures, and BotDatabaseDown mutes that stage's error rate.
    persist_failures = sum_samples(bot.metrics_text(), "hux_pipeline_stage_total", {"stage": "persist", "outcome": "failure"})
    assert persist_failures == 0, f"an outage counted {persist_failures:.0f} persist failures"
    scenario.assert_nothing_else({"BotDatabaseDown"})
