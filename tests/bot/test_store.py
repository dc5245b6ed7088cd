"""The store on real SQLite and real PostgreSQL: migrations, idempotent writes, inbox recovery."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from hux.bot.messages import ChatMessage
from hux.bot.store import (
    LATEST_VERSION,
    MIGRATIONS,
    OUTAGE,
    REFUSED,
    ROW,
    MessageResult,
    Store,
    TokenResult,
    classify,
    describe_refusal,
    inbox,
    schema_version,
)


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
    assert store.migrate() == [m.version for m in MIGRATIONS[1:]]
    index_names = {ix["name"] for ix in inspect(store.engine).get_indexes("decisions")}
    assert "ix_decisions_decided_at" in index_names
    assert "ix_call_checks_status_due_at" in {ix["name"] for ix in inspect(store.engine).get_indexes("call_checks")}
    assert {"reason", "claimed_by", "claim_expires"} <= {c["name"] for c in inspect(store.engine).get_columns("inbox")}
    assert {"instances", "leases", "source_offsets", "token_gate", "api_budgets"} <= set(inspect(store.engine).get_table_names())


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
    # three alerts delivered on one channel each: three calls, each re-checked at three horizons
    assert counts == {"inbox": 3, "tokens": 1, "mentions": 3, "decisions": 3, "alerts": 6, "call_checks": 9,
                      "inbox_pending": 0, "inbox_rejected": 0}
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


# --------------------------------------------------------------------------- refusals and outages
MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def _refuse_poison(store: Store, table: str, column: str) -> None:
    """A real refusal: the database itself rejects rows whose ``column`` mentions 'poison'."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.execute(text(f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN NEW.{column} LIKE '%poison%' "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
        else:
            conn.execute(text(f"CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN "
                              f"IF NEW.{column} LIKE '%poison%' THEN RAISE check_violation USING MESSAGE = 'refused by the test'; "
                              "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text(f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"))


def _transactions(store: Store) -> list[int]:
    seen = [0]
    event.listen(store.engine, "begin", lambda _conn: seen.__setitem__(0, seen[0] + 1))
    return seen


def test_a_refused_row_is_found_by_bisection_not_row_by_row(store: Store) -> None:
    """100 results, one refused: halving finds it in at most 1 + 2*ceil(log2 100) = 15 transactions (row by row: 101)."""
    store.migrate()
    _refuse_poison(store, "mentions", "message_key")
    messages = _messages(100)
    messages[37] = ChatMessage("test:m:37:poison", "replay", "group 1", "text 37", time.time())
    results = [_result(m) for m in messages]
    transactions = _transactions(store)
    refused: list = []
    assert store.write_results(results, refused) == 99
    assert [m.key for m, _ in refused] == ["test:m:37:poison"] and "refused by the test" in refused[0][1]
    assert transactions[0] <= 15, f"{transactions[0]} transactions to find one refused row among 100"
    counts = store.counts()
    assert counts["mentions"] == 99 and counts["decisions"] == 99
    with store.engine.connect() as conn:
        from hux.bot.store import tokens

        assert conn.execute(select(tokens.c.mentions)).scalar_one() == 99  # no row counted twice across the halves


def test_a_refused_inbox_row_is_found_by_bisection(store: Store) -> None:
    store.migrate()
    _refuse_poison(store, "inbox", "text")
    messages = _messages(64)
    messages[5] = ChatMessage("test:m:5", "replay", "group 2", "poison 5", time.time())
    messages[50] = ChatMessage("test:m:50", "replay", "group 2", "poison 50", time.time())
    transactions = _transactions(store)
    refused: list = []
    fresh = store.inbox_add(messages, refused)
    assert len(fresh) == 62 and sorted(m.key for m, _ in refused) == ["test:m:5", "test:m:50"]
    # the whole batch, then down two paths of 6 halvings (2 transactions each): 25; row by row was 65
    assert transactions[0] <= 25, transactions[0]
    assert store.counts()["inbox"] == 62


def test_every_row_refused_is_the_databases_refusal_and_raises(store: Store) -> None:
    store.migrate()
    _refuse_poison(store, "mentions", "message_key")
    results = [_result(m) for m in _messages(8, prefix="poison")]
    with pytest.raises(DBAPIError):
        store.write_results(results, [])
    assert store.counts()["mentions"] == 0


def test_a_message_whose_result_is_refused_ends_rejected_not_pending(store: Store) -> None:
    store.migrate()
    first, second, third = _messages(3)
    store.inbox_add([first, second, third])
    refused = store.mark_rejected([(second, "IntegrityError: refused by the test")], at=time.time())
    assert refused == []
    assert [m.key for m in store.inbox_pending()] == [first.key, third.key]
    with store.engine.connect() as conn:
        row = conn.execute(select(inbox.c.status, inbox.c.reason).where(inbox.c.key == second.key)).one()
    assert row.status == "rejected" and row.reason == "IntegrityError: refused by the test"
    assert store.counts()["inbox_rejected"] == 1
    # a rejected message never comes back: not from a redelivery, not as done over it
    assert store.inbox_add([second]) == []
    store.mark_rejected([(first, "x" * 1000)], at=time.time())  # the reason is cut to the column
    assert store.prune_inbox(time.time() + 1) == 2
    assert [m.key for m in store.inbox_pending()] == [third.key]


def test_marking_a_message_never_seen_by_the_inbox_inserts_it_rejected(store: Store) -> None:
    """A message accepted into the spool, processed and refused before the spool drained: its row ends rejected."""
    store.migrate()
    (only,) = _messages(1)
    assert store.mark_rejected([(only, "DataError: too long")], at=time.time()) == []
    assert store.inbox_pending() == [] and store.counts()["inbox_rejected"] == 1
    assert store.inbox_add([only]) == []  # the spool drains later: not pending again


def test_a_done_message_is_never_marked_rejected(store: Store) -> None:
    store.migrate()
    (only,) = _messages(1)
    store.write_results([_result(only)])
    store.mark_rejected([(only, "late")], at=time.time())
    assert store.counts()["inbox_rejected"] == 0


def test_real_refusals_are_told_from_outages(store: Store) -> None:
    """Errors the databases really raise: a row refusal, a refusal of the database, a connection cut mid-write."""
    store.migrate()
    (one,) = _messages(1)
    store.inbox_add([one])
    with pytest.raises(DBAPIError) as duplicate:
        with store.engine.begin() as conn:
            conn.execute(inbox.insert().values(key=one.key, source="replay", group_name="g", text="t", sent_at=1.0,
                                               accepted_at=1.0, status="pending"))
    assert classify(duplicate.value) == ROW
    with pytest.raises(DBAPIError) as read_only:
        with store.engine.begin() as conn:
            conn.execute(text("PRAGMA query_only = ON" if store.dialect == "sqlite" else "SET TRANSACTION READ ONLY"))
            try:
                conn.execute(inbox.delete())
            finally:
                if store.dialect == "sqlite":
                    conn.execute(text("PRAGMA query_only = OFF"))
    assert classify(read_only.value) == REFUSED
    if store.dialect == "postgresql":
        with pytest.raises(DBAPIError) as nul:
            with store.engine.begin() as conn:
                conn.execute(inbox.update().values(text="nul \x00").where(inbox.c.key == one.key))
        assert classify(nul.value) == ROW
        # The server ends our session mid-transaction while it keeps answering everyone else: an outage of ours.
        admin = create_engine(store.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with pytest.raises(DBAPIError) as cut:
            with store.engine.begin() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                with admin.connect() as other:
                    assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
                conn.execute(inbox.update().values(status="pending"))
        admin.dispose()
        assert classify(cut.value) == OUTAGE, describe_refusal(cut.value)
        store.ping()  # the database answers all along: the probe would have said "refused"
    else:
        # Another writer holds the file: SQLite is busy, not refusing.
        import sqlite3

        holder = sqlite3.connect(store.engine.url.database, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(DBAPIError) as busy:
                with store.engine.begin() as conn:
                    conn.execute(text("PRAGMA busy_timeout = 0"))
                    conn.execute(inbox.delete())
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert classify(busy.value) == OUTAGE, describe_refusal(busy.value)
    assert classify(RuntimeError("not a database error")) is None
