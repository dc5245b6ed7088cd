"""The store on real SQLite and real PostgreSQL: migrations, idempotent writes, inbox recovery."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from hux.bot.messages import ChatMessage
from hux.bot.store import LATEST_VERSION, MIGRATIONS, MessageResult, Store, TokenResult, schema_version


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path, pg_database) -> Store:
    url = f"sqlite:///{tmp_path / 'bot.db'}" if request.param == "sqlite" else pg_database()
    s = Store(url)
    yield s
    s.dispose()


def _messages(n: int, prefix: str = "m") -> list[ChatMessage]:
    now = time.time()
    return [ChatMessage(f"test:{prefix}:{i}", "replay", f"group {i % 3}", f"text {i}", now + i) for i in range(n)]


def _result(message: ChatMessage, token: str = "TokenA", outcome: str = "alerted") -> MessageResult:
    token_result = TokenResult(token, token, "solana", "solana", outcome, time.time(), score=81.5, symbol="AAA",
                               liquidity_usd=1e5, reasons=("liquidity $100,000",), deliveries={"telegram": True, "webhook": False})
    return MessageResult(message, [token_result], time.time())


def test_migrations_create_the_schema_and_are_idempotent(store: Store) -> None:
    assert store.schema_version() == 0
    assert store.migrate() == [m.version for m in MIGRATIONS]
    assert store.schema_version() == LATEST_VERSION
    assert store.migrate() == []
    tables = set(inspect(store.engine).get_table_names())
    assert {"schema_version", "inbox", "tokens", "mentions", "decisions", "alerts"} <= tables
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema_version.c.version, schema_version.c.description)).all()
    assert [r.version for r in rows] == [m.version for m in MIGRATIONS] and all(r.description for r in rows)


def test_upgrade_from_an_older_version(store: Store) -> None:
    with store.engine.begin() as conn:
        schema_version.create(conn)
        MIGRATIONS[0].apply(conn)
        conn.execute(schema_version.insert().values(version=1, description=MIGRATIONS[0].description, applied_at=0.0))
    assert store.schema_version() == 1
    assert store.migrate() == [2]
    index_names = {ix["name"] for ix in inspect(store.engine).get_indexes("decisions")}
    assert "ix_decisions_decided_at" in index_names


def test_inbox_accepts_once_and_recovers_pending(store: Store) -> None:
    store.migrate()
    messages = _messages(5)
    assert [m.key for m in store.inbox_add(messages)] == [m.key for m in messages]
    assert store.inbox_add(messages[:3]) == []          # a redelivery is recognised
    pending = store.inbox_pending()
    assert [m.key for m in pending] == [m.key for m in messages]
    assert pending[0].text == "text 0" and pending[0].group == "group 0"
    store.write_results([_result(m) for m in messages[:2]])
    assert {m.key for m in store.inbox_pending()} == {m.key for m in messages[2:]}


def test_result_writes_are_idempotent(store: Store) -> None:
    store.migrate()
    messages = _messages(3)
    store.inbox_add(messages)
    results = [_result(m) for m in messages]
    store.write_results(results)
    store.write_results(results)  # a batch retried after a lost commit
    counts = store.counts()
    assert counts == {"inbox": 3, "tokens": 1, "mentions": 3, "decisions": 3, "alerts": 6, "inbox_pending": 0}
    with store.engine.connect() as conn:
        from hux.bot.store import tokens

        row = conn.execute(select(tokens)).one()
    assert row.mentions == 3 and row.last_score == 81.5 and row.symbol == "AAA" and row.last_outcome == "alerted"
    assert [k for k, _ in store.recent_decisions(time.time() - 60)] == ["TokenA"]


def test_cooldown_mentions_count_but_are_no_decision(store: Store) -> None:
    store.migrate()
    first, second = _messages(2)
    store.write_results([_result(first), _result(second, outcome="cooldown")])
    counts = store.counts()
    assert counts["mentions"] == 2 and counts["decisions"] == 1


def test_text_the_databases_must_hold(store: Store) -> None:
    store.migrate()
    odd = ChatMessage("test:odd", "telegram", "Ω group ☃" * 10, "🚀 ünïcødé \ufffd " * 2000, time.time())
    store.inbox_add([odd])
    assert store.inbox_pending()[0].text == odd.text


def test_prune_removes_only_old_processed_rows(store: Store) -> None:
    store.migrate()
    old, fresh = _messages(2)
    store.inbox_add([old, fresh])
    store.write_results([_result(old)])
    assert store.prune_inbox(time.time() + 1) == 1
    assert [m.key for m in store.inbox_pending()] == [fresh.key]


def test_unsupported_url_says_what_to_use() -> None:
    with pytest.raises(ValueError, match="sqlite:///path or postgresql"):
        Store("mysql://localhost/db")
