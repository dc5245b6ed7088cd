"""The real PostgreSQL fault cluster goes away mid-run and comes back: nothing accepted is lost."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.bot.conftest import bot_config, metric_value, running_bot, wait_until
from tests.bot.test_pipeline import token_feed
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(120)


class PrivateCluster:
    """A PostgreSQL server of one test alone: initdb into a temporary directory, socket only, stopped at will.

    The system-wide fault cluster is stopped and started by other test runs (the e2e database scenario, the
    latency bench, a second checkout's suite) sharing this machine; an outage test on it fails whenever
    one of them restarts it mid-outage. This server is the test's own.
    """

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
        if not found[-1]:
            pytest.fail("PostgreSQL's initdb is not installed: run `python3 scripts/run_tests.py`, which installs it",
                        pytrace=False)
        self.bin = Path(found[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="hux-pg-"))
        self.port = free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.root, "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.root / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@/postgres?host={self.root}&port={self.port}"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_owner, str(self.bin / tool), *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed: {(done.stdout + done.stderr).strip()[-2000:]}")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses='' -c unix_socket_directories={self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.root / "data" / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def fault_cluster():
    """A running private cluster; stopped and removed afterwards whatever the test did to it."""
    server = PrivateCluster()
    try:
        server.start()
        yield server
    finally:
        server.remove()


async def test_database_outage_holds_work_and_persists_everything_after(hux_home: Path, fault_cluster: PrivateCluster) -> None:
    total_messages = 300
    feed = token_feed(hux_home / "feed.jsonl", total_messages, gap=1.0, tokens=30)
    # 300 messages at 40/s: about 7.5 s of traffic; the database is away for part of it.
    cfg = bot_config(database_url=fault_cluster.url, replay={"path": str(feed), "loop": False, "speed": 40.0})
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

            await asyncio.to_thread(fault_cluster.stop)
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

            await asyncio.to_thread(fault_cluster.start)
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


def _result(key: str):
    from hux.bot.messages import ChatMessage
    from hux.bot.store import MessageResult, TokenResult

    message = ChatMessage(key, "telegram", "G", f"call {MINT}", 1.7e9)
    token = TokenResult(key=MINT, address=MINT, chain="solana", kind="solana", outcome="below_threshold",
                        decided_at=1.7e9, score=10.0)
    return MessageResult(message, [token], processed_at=1.7e9)


MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


async def test_a_write_whose_connection_is_cut_is_an_outage_even_while_the_database_answers(tmp_path: Path, pg_database) -> None:
    """The server ends the writer's session mid-write (57P01, as in a shutdown) while it still answers a probe.

    Told by the error, not by asking again: the results are held and written once the writer reconnects; the
    persist stage never fails and no message is rejected.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from hux.bot.metrics import BotMetrics
    from hux.bot.persistence import Persistence
    from hux.bot.store import Store

    url = pg_database()
    metrics = BotMetrics(process_metrics=False)
    persistence = Persistence(Store(url), metrics, spool_path=tmp_path / "spool" / "intake.jsonl",
                              probe_interval=0.3, retry_max=0.5)
    await persistence.start(attempts=1)
    admin = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def sql(statement: str, **params):
        with admin.connect() as conn:
            result = conn.execute(text(statement), params)
            return result.all() if result.returns_rows else []

    try:
        # A write of the 'slow' message sleeps inside its transaction while hold_writes has a row.
        await asyncio.to_thread(sql, "CREATE TABLE hold_writes (x int)")
        await asyncio.to_thread(sql, "INSERT INTO hold_writes VALUES (1)")
        await asyncio.to_thread(sql, "CREATE FUNCTION hold_slow() RETURNS trigger AS $$ BEGIN "
                                     "IF NEW.message_key LIKE '%slow%' AND EXISTS (SELECT 1 FROM hold_writes) "
                                     "THEN PERFORM pg_sleep(20); END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
        await asyncio.to_thread(sql, "CREATE TRIGGER hold_slow BEFORE INSERT ON mentions FOR EACH ROW EXECUTE FUNCTION hold_slow()")
        keys = [f"telegram:9:{i}" for i in range(5)] + ["telegram:9:slow"]
        for key in keys:
            await persistence.submit(_result(key))

        def sleeping() -> list:
            return sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'")

        assert await wait_until(lambda: asyncio.to_thread(sleeping), 10), "the write never reached the trigger"
        (pid,) = (await asyncio.to_thread(sleeping))[0]
        await asyncio.to_thread(sql, "DELETE FROM hold_writes")
        assert (await asyncio.to_thread(sql, "SELECT pg_terminate_backend(:pid)", pid=pid))[0][0]

        assert await wait_until(lambda: persistence.pending == 0, 20), "held results written after the reconnect"
        reg = metrics.registry
        assert metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="failure") == 0
        assert metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success") == len(keys)
        assert metric_value(reg, "hux_database_errors_total", operation="write") >= 1
        assert metric_value(reg, "hux_messages_rejected_total", source="telegram", reason="unstorable") == 0
        counts = await asyncio.to_thread(persistence.store.counts)
        assert counts["mentions"] == len(keys) and counts["inbox_rejected"] == 0
        assert await wait_until(lambda: metric_value(reg, "hux_database_up") == 1, 10)
    finally:
        await persistence.close(2)
        admin.dispose()


def test_stopping_the_cluster_mid_write_is_an_outage(fault_cluster: PrivateCluster) -> None:
    """The real shutdown: a transaction open while the fault cluster stops, and a connect while it is down."""
    from sqlalchemy import text

    from hux.bot.store import OUTAGE, Store, classify, describe_refusal, inbox

    store = Store(fault_cluster.url)
    try:
        store.migrate()
        conn = store.engine.connect()
        trans = conn.begin()
        conn.execute(inbox.delete())  # a write in flight
        fault_cluster.stop()
        try:
            with pytest.raises(Exception) as mid_write:
                conn.execute(text("SELECT count(*) FROM inbox")).scalar_one()
                trans.commit()
            assert classify(mid_write.value) == OUTAGE, describe_refusal(mid_write.value)
            conn.invalidate()
            with pytest.raises(Exception) as down:
                store.ping()
            assert classify(down.value) == OUTAGE, describe_refusal(down.value)
        finally:
            fault_cluster.start()
        store.ping()
    finally:
        store.dispose()
