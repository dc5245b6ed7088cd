"""Calls tracked and retention on real SQLite and PostgreSQL; the tracker against the doubles; the demo's rug follow-up."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from hux.bot.calls import MIN_POLL_SECONDS, CallTracker, call_horizons, poll_interval
from hux.bot.clients.dexscreener import DexScreenerClient
from hux.bot.clients.telegram import TelegramBotApi
from hux.bot.enrich import PairBatcher
from hux.bot.messages import ChatMessage
from hux.bot.metrics import BotMetrics
from hux.bot.outputs import TelegramOutput, WebhookOutput
from hux.bot.persistence import Persistence
from hux.bot.profile import DEMO_TELEGRAM_TOKEN
from hux.bot.store import HISTORY_TABLES, MessageResult, Store, TokenResult
from hux.doubles.dexscreener import Market
from hux.doubles.market import start_doubles
from tests.bot.conftest import bot_config, metric_value, running_bot, wait_until

HOUR = 3600.0


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path, pg_database) -> str:
    return f"sqlite:///{tmp_path / 'calls.db'}" if request.param == "sqlite" else pg_database()


def _alerted(key: str, at: float, *, price: float = 1.0, liquidity: float = 10_000.0, delivered: bool = True,
             outcome: str = "alerted", n: int = 0) -> MessageResult:
    message = ChatMessage(f"test:calls:{key}:{n}", "replay", "alpha group", f"look at {key}", at)
    token = TokenResult(key, key, "solana", "solana", outcome, at, score=80.0, symbol="CALL", price_usd=price,
                        liquidity_usd=liquidity, reasons=("liquidity $10,000", "risk good"),
                        deliveries={"telegram": delivered, "webhook": False})
    return MessageResult(message, [token], at)


def test_an_alert_schedules_its_checks_and_each_check_records_multiple_and_rug(store_url: str) -> None:
    store = Store(store_url, call_horizons=call_horizons())
    try:
        store.migrate()
        t0 = time.time() - 2 * HOUR
        store.write_results([_alerted("Mint1", t0), _alerted("Mint2", t0, outcome="below_threshold")])
        store.write_results([_alerted("Mint1", t0)])  # a retried batch schedules nothing twice
        assert store.counts()["call_checks"] == 3
        due = store.due_checks(time.time())
        assert [(c.token_key, c.horizon, c.channels) for c in due] == [("Mint1", "1h", ("telegram",))]
        assert due[0].due_at == pytest.approx(t0 + HOUR)

        first = store.record_check(due[0].id, at=time.time(), price_usd=2.5, liquidity_usd=9_000.0)
        assert first is not None and first.multiple == pytest.approx(2.5) and not first.rugged and not first.first_rug
        assert store.record_check(due[0].id, at=time.time(), price_usd=9.0, liquidity_usd=1.0) is None  # recorded once

        later = store.due_checks(t0 + 25 * HOUR)
        assert [c.horizon for c in later] == ["6h", "24h"]
        rug = store.record_check(later[0].id, at=time.time(), price_usd=0.1, liquidity_usd=2_000.0)  # 80 % pulled
        assert rug is not None and rug.rugged and rug.first_rug and rug.multiple == pytest.approx(0.1)
        gone = store.record_check(later[1].id, at=time.time(), price_usd=None, liquidity_usd=None)  # no pair left
        assert gone is not None and gone.rugged and not gone.first_rug and gone.multiple == 0.0
        assert gone.best_multiple == pytest.approx(2.5)
        assert store.due_checks(t0 + 48 * HOUR) == []

        shown = store.token_detail("Mint1")
        assert shown is not None and shown["symbol"] == "CALL" and shown["mentions"] == 1
        assert [(c["horizon"], c["status"], c["rugged"]) for c in shown["calls"]] == [
            ("1h", "checked", False), ("6h", "checked", True), ("24h", "no_market", True)]
        assert shown["decisions"][0]["reasons"] == ["liquidity $10,000", "risk good"]
        assert store.token_detail("NoSuchMint") is None
        latest = store.latest_decisions(10)
        assert {d["address"] for d in latest} == {"Mint1", "Mint2"} and all(d["score"] == 80.0 for d in latest)
    finally:
        store.dispose()


def test_retention_prunes_old_history_in_batches_and_keeps_pending_checks(store_url: str) -> None:
    store = Store(store_url, call_horizons=call_horizons())
    try:
        store.migrate()
        old, recent = time.time() - 100 * 86400, time.time() - 60
        store.write_results([_alerted(f"Old{i}", old, n=i) for i in range(5)])
        store.write_results([_alerted("Recent", recent)])
        # An old call whose checks never ran (the bot was down for months) keeps its token and checks.
        pending_old = store.due_checks(time.time(), limit=100)
        checked = {c.token_key for c in pending_old if c.token_key != "Old0"}
        for c in pending_old:
            if c.token_key in checked:
                store.record_check(c.id, at=time.time(), price_usd=1.0, liquidity_usd=10_000.0)
        cutoff = time.time() - 30 * 86400
        removed = {table: 0 for table in HISTORY_TABLES}
        batches = 0
        for table in HISTORY_TABLES:
            while (count := store.prune_batch(table, cutoff, limit=2)):
                removed[table] += count
                batches += 1
        assert removed == {"mentions": 5, "decisions": 5, "alerts": 10, "call_checks": 12, "tokens": 4}
        assert batches >= 15  # two rows per transaction
        counts = store.counts()
        assert counts["tokens"] == 2 and counts["call_checks"] == 6  # Recent's three, Old0's three pending
        assert {t for t in ("Recent", "Old0") if store.token_detail(t)} == {"Recent", "Old0"}
    finally:
        store.dispose()


async def test_persistence_prunes_history_while_running_and_counts_it(tmp_path: Path) -> None:
    metrics = BotMetrics(process_metrics=False)
    store = Store(f"sqlite:///{tmp_path / 'prune.db'}")
    persistence = Persistence(store, metrics, spool_path=tmp_path / "spool.jsonl", retention_seconds=30 * 86400,
                              prune_batch_rows=3, prune_interval=0.2, probe_interval=0.1)
    await persistence.start()
    try:
        for i in range(7):
            await persistence.submit(_alerted(f"Old{i}", time.time() - 60 * 86400, n=i))
        await persistence.submit(_alerted("Recent", time.time()))
        pruned = lambda: metric_value(metrics.registry, "hux_database_rows_pruned_total", table="decisions") == 7  # noqa: E731
        assert await wait_until(pruned, timeout=10)
        counts = store.counts()
        # the old calls' checks never ran: they and their tokens wait for them
        assert counts["decisions"] == 1 and counts["mentions"] == 1 and counts["tokens"] == 8 and counts["call_checks"] == 24
        for check in store.due_checks(time.time(), limit=100):
            store.record_check(check.id, at=time.time(), price_usd=1.0, liquidity_usd=1.0)
        assert await wait_until(lambda: store.counts()["tokens"] == 1, timeout=10)
        assert metric_value(metrics.registry, "hux_database_rows_pruned_total", table="call_checks") == 21
        assert metric_value(metrics.registry, "hux_database_rows_pruned_total", table="tokens") == 7
    finally:
        await persistence.close()


async def test_tracker_rechecks_within_the_shared_client_posts_one_rug_follow_up_and_survives_restart(
        store_url: str, tmp_path: Path) -> None:
    market = Market(unknown_share=0.0)
    doubles = await start_doubles(market=market)
    metrics = BotMetrics(process_metrics=False)
    dex = DexScreenerClient.create(metrics, doubles.url("dexscreener"), rate_limit_per_minute=300, cache_ttl=0)
    api = TelegramBotApi.create(DEMO_TELEGRAM_TOKEN, metrics, doubles.url("telegram"), timeout=5.0)
    webhook = WebhookOutput.create(f"{doubles.url('webhook')}/hooks/calls", metrics, timeout=5.0)
    channels = [TelegramOutput(api, "-100777", rate_limit_per_minute=None), webhook]
    mint = "So1Ca11TrackerTestMint1111111111111111111111"[:44]
    pair = market.pairs(mint)[0]
    price, liquidity = float(pair["priceUsd"]), pair["liquidity"]["usd"]

    async def persistence_on(url: str) -> Persistence:
        p = Persistence(Store(url, call_horizons=call_horizons()), metrics, spool_path=tmp_path / "spool.jsonl")
        await p.start()
        return p

    try:
        first = await persistence_on(store_url)
        alerted_at = time.time() - 1.5 * HOUR
        result = _alerted(mint, alerted_at, price=price, liquidity=liquidity)
        result.tokens[0].deliveries["webhook"] = True
        await first.submit(result)
        assert await wait_until(lambda: first.store.counts()["call_checks"] == 3)
        tracker = CallTracker(first, PairBatcher(dex), channels, metrics, interval=0.1, checks_per_round=10)
        assert await tracker.round() == 1  # +1 h due, +6 h not yet
        assert metric_value(metrics.registry, "hux_call_checks_total", horizon="1h", outcome="checked") == 1
        assert metric_value(metrics.registry, "hux_call_multiple_count", horizon="1h") == 1
        await first.close()

        # Restart: the schedule is in the database. Six hours later the liquidity has been pulled.
        market.rug(mint)
        second = await persistence_on(store_url)
        tracker = CallTracker(second, PairBatcher(dex), channels, metrics, interval=0.1, checks_per_round=10)
        assert await tracker.round(now=alerted_at + 7 * HOUR) == 1
        assert metric_value(metrics.registry, "hux_call_rugs_total") == 1
        assert await tracker.round(now=alerted_at + 25 * HOUR) == 1  # still rugged: no second follow-up
        assert metric_value(metrics.registry, "hux_call_rugs_total") == 1
        assert metric_value(metrics.registry, "hux_calls_resolved_total", result="miss") == 1
        assert metric_value(metrics.registry, "hux_call_follow_ups_total", channel="telegram", outcome="success") == 1
        assert metric_value(metrics.registry, "hux_call_follow_ups_total", channel="webhook", outcome="success") == 1
        follow_ups = [m for m in doubles.telegram.sent if "rugged" in m["text"]]
        assert len(follow_ups) == 1 and str(follow_ups[0]["chat_id"]) == "-100777"
        assert "CALL</b> rugged: liquidity pulled 97%" in follow_ups[0]["text"] and mint in follow_ups[0]["text"]
        hooks = [r["payload"] for r in doubles.webhook_received if r["payload"].get("type") == "call_rugged"]
        assert len(hooks) == 1 and hooks[0]["follow_up"]["address"] == mint and hooks[0]["follow_up"]["horizon"] == "6h"
        assert hooks[0]["follow_up"]["price_multiple"] == pytest.approx(0.1, rel=0.05)
        calls = second.store.token_detail(mint)
        assert calls is not None and [c["rugged"] for c in calls["calls"]] == [False, True, True]
        await second.close()
    finally:
        await dex.aclose()
        await api.aclose()
        await webhook.aclose()
        await doubles.stop()


async def test_a_failed_lookup_leaves_the_check_due(tmp_path: Path) -> None:
    doubles = await start_doubles()
    metrics = BotMetrics(process_metrics=False)
    dex = DexScreenerClient.create(metrics, doubles.url("dexscreener"), rate_limit_per_minute=300, cache_ttl=0, max_retries=0)
    persistence = Persistence(Store(f"sqlite:///{tmp_path / 'f.db'}"), metrics, spool_path=tmp_path / "s.jsonl")
    await persistence.start()
    try:
        mint = "So1Ca11FailedLookupMint11111111111111111111"
        await persistence.submit(_alerted(mint, time.time() - 2 * HOUR))
        assert await wait_until(lambda: persistence.store.counts()["call_checks"] == 3)
        async with httpx.AsyncClient() as http:
            await http.put(f"{doubles.base_url}/_double/faults", json={"dexscreener": {"error_rate": 1.0}})
        tracker = CallTracker(persistence, PairBatcher(dex), [], metrics, interval=0.1, checks_per_round=10)
        assert await tracker.round() == 0
        assert metric_value(metrics.registry, "hux_call_checks_total", horizon="1h", outcome="failed") == 1
        assert len(persistence.store.due_checks(time.time())) == 1
    finally:
        await persistence.close()
        await dex.aclose()
        await doubles.stop()


def test_the_poll_follows_the_shortest_horizon_but_not_under_a_second() -> None:
    # Demo horizons (+0.7 s first) would poll every 0.24 s: the floor holds it at one second.
    assert poll_interval(30.0, call_horizons(0.0002)) == MIN_POLL_SECONDS == 1.0
    assert poll_interval(30.0, call_horizons(0.01)) == pytest.approx(12.0)     # +36 s first: a third of it
    assert poll_interval(30.0, call_horizons()) == 30.0                         # live: the setting
    assert poll_interval(0.3, call_horizons(0.0002)) == 0.3                     # an explicit setting is kept


async def test_demo_bot_tracks_its_calls_and_follows_up_a_rug(hux_home: Path) -> None:
    # The demo's own poll (one second, the floor): the rug is followed up and calls still resolve at +24 h.
    config = bot_config(demo={"call_horizon_scale": 0.0002, "rug_share": 1.0, "rug_after_seconds": 0.5})
    async with running_bot(config) as app:
        doubles = app.profile.doubles
        assert doubles is not None and app.metrics is not None
        registry = app.metrics.registry
        assert await wait_until(lambda: any("rugged" in m["text"] for m in doubles.telegram.sent), timeout=40)
        assert await wait_until(lambda: metric_value(registry, "hux_call_multiple_count", horizon="1h") >= 1, timeout=10)
        assert metric_value(registry, "hux_call_rugs_total") >= 1
        # the double keeps the message when it arrives, the bot counts it once the reply is read
        assert await wait_until(lambda: metric_value(registry, "hux_call_follow_ups_total", channel="telegram",
                                                     outcome="success") >= 1, timeout=10)
        assert await wait_until(lambda: metric_value(registry, "hux_calls_resolved_total", result="miss")
                                + metric_value(registry, "hux_calls_resolved_total", result="hit") >= 1, timeout=40)
        rendered = next(m["text"] for m in doubles.telegram.sent if "rugged" in m["text"])
        print("rug follow-up as sent:\n" + rendered)
        await asyncio.sleep(0)


def test_hux_tokens_lists_decisions_and_shows_one_token_with_its_calls(store_url: str, hux_home: Path, monkeypatch,
                                                                       capsys) -> None:
    from hux import cli

    monkeypatch.setenv("HUX__BOT__DATABASE_URL", store_url)
    assert cli.main(["tokens"]) == 1
    assert "start the bot once" in capsys.readouterr().err
    assert not (hux_home / "data" / "bot" / "hux.db").exists() and not Path(store_url.removeprefix("sqlite:///")).exists()

    store = Store(store_url, call_horizons=call_horizons())
    store.migrate()
    alerted_at = time.time() - 2 * HOUR
    store.write_results([_alerted("MintShown", alerted_at), _alerted("MintOther", time.time(), outcome="below_threshold")])
    check = store.due_checks(time.time())[0]
    store.record_check(check.id, at=time.time(), price_usd=3.0, liquidity_usd=1_000.0)
    store.dispose()

    assert cli.main(["tokens", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["decided", "(UTC)", "symbol", "chain", "score", "outcome", "address", "reason"]
    assert "MintShown" in out and "alerted" in out and "below_threshold" in out and "liquidity $10,000; risk good" in out

    assert cli.main(["tokens", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["decisions"]
    assert [d["address"] for d in listed] == ["MintOther", "MintShown"] and listed[1]["score"] == 80.0

    assert cli.main(["tokens", "show", "MintShown"]) == 0
    shown = capsys.readouterr().out
    assert "- liquidity $10,000" in shown and "call outcomes" in shown
    assert "+1h      checked  3.00x" in shown and "10,000 -> 1,000" in shown and "yes" in shown

    assert cli.main(["tokens", "show", "MintShown", "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert [(c["horizon"], c["status"], c["multiple"], c["rugged"]) for c in detail["calls"]] == [
        ("1h", "checked", 3.0, True), ("6h", "pending", None, None), ("24h", "pending", None, None)]

    assert cli.main(["tokens", "show", "NeverSeen"]) == 1
    assert "has not seen NeverSeen" in capsys.readouterr().err
    assert cli.main(["tokens", "show", "'; DROP TABLE tokens;--"]) == 2
    assert "is not a token address" in capsys.readouterr().err
    assert cli.main(["tokens", "--limit", "0"]) == 2


def test_grafana_reads_the_latest_calls_as_a_read_only_role_on_the_docker_path(pg_database, tmp_path: Path,
                                                                              request: pytest.FixtureRequest) -> None:
    """The docker tree's init script makes the role, the bot's migration grants it its three tables, and the
    "Latest calls" panel's SQL runs as that role on a real PostgreSQL; the inbox (chat texts) stays closed."""
    import os
    import subprocess

    import yaml
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ProgrammingError

    from hux.bot.config import READER_ROLE
    from hux.monitoring import grafana
    from hux.monitoring.compose import READER_INIT_SCRIPT
    from hux.monitoring.dashboards.token_monitoring import LATEST_CALLS_SQL
    from hux.monitoring.render import docker_files
    from hux.monitoring.settings import Settings

    url = make_url(pg_database())
    files = docker_files(Settings())

    def drop_reader() -> None:
        """The role is cluster-wide: every database migrated while it existed holds grants to it, so revoke
        them database by database (DROP OWNED) before dropping it; an earlier or concurrent run may have left it."""
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": READER_ROLE}).first():
                    return
                names = conn.execute(text("SELECT datname FROM pg_database WHERE datallowconn")).scalars().all()
            for name in names:
                each = create_engine(url.set(database=name), isolation_level="AUTOCOMMIT")
                try:
                    with each.connect() as conn:
                        conn.execute(text(f"DROP OWNED BY {READER_ROLE}"))
                finally:
                    each.dispose()
            with admin.connect() as conn:
                conn.execute(text(f"DROP ROLE IF EXISTS {READER_ROLE}"))
        finally:
            admin.dispose()

    drop_reader()
    request.addfinalizer(drop_reader)
    script = tmp_path / "init.sh"
    script.write_text(files[READER_INIT_SCRIPT])
    env = {**os.environ, "POSTGRES_USER": url.username or "root", "POSTGRES_DB": url.database or "",
           "HUX_GRAFANA_DB_PASSWORD": "reader-test-password", "PGHOST": "/var/run/postgresql", "PGPORT": str(url.port or 5432)}
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr

    store = Store(url.render_as_string(hide_password=False), call_horizons=call_horizons())
    try:
        store.migrate()  # migration 7 grants the reader its tables
        store.write_results([_alerted("MintGrafana", time.time() - 2 * HOUR)])
        check = store.due_checks(time.time())[0]
        store.record_check(check.id, at=time.time(), price_usd=2.0, liquidity_usd=1_000.0)
    finally:
        store.dispose()
    reader = create_engine(f"postgresql+psycopg://{READER_ROLE}:reader-test-password@127.0.0.1:{url.port or 5432}/{url.database}")
    try:
        with reader.connect() as conn:
            rows = conn.execute(text(LATEST_CALLS_SQL)).mappings().all()
            assert [(r["re-check"], r["status"], float(r["multiple"]) if r["multiple"] is not None else None, r["rugged"])
                    for r in rows] == [("+1h", "checked", 2.0, "yes"), ("+6h", "pending", None, None), ("+24h", "pending", None, None)]
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("SELECT text FROM inbox"))
    finally:
        reader.dispose()

    datasources = yaml.safe_load(files["docker/grafana/provisioning/datasources/hux.yml"])["datasources"]
    bot_db = next(d for d in datasources if d["uid"] == grafana.BOT_DB_DATASOURCE_UID)
    assert bot_db["user"] == READER_ROLE and bot_db["secureJsonData"] == {"password": "${HUX_GRAFANA_DB_PASSWORD}"}
    board = json.loads(files["docker/grafana/dashboards/hux-token-monitoring.json"])
    table = next(p for p in board["panels"] if p.get("title") == "Latest calls")
    assert table["targets"][0]["rawSql"] == LATEST_CALLS_SQL and table["datasource"]["uid"] == grafana.BOT_DB_DATASOURCE_UID
    compose = yaml.safe_load(files["docker-compose.yml"])["services"]
    assert "HUX_GRAFANA_DB_PASSWORD" in compose["grafana"]["environment"]
    assert "./docker/postgres/initdb:/docker-entrypoint-initdb.d:ro" in compose["postgres"]["volumes"]
