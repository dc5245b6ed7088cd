"""The bot's database: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL (by URL).

Tables:

``schema_version``  one row per applied migration (``MIGRATIONS``)
``inbox``           every accepted message until processed (``pending`` -> ``done``, or
                    ``rejected`` with a ``reason`` when the database refused its result);
                    what makes a crash or restart lose nothing
``tokens``          one row per token: first/last seen, mentions, last score
``mentions``        token x message x group
``decisions``       the outcome (and score) of each lookup
``alerts``          each alert delivery attempt, by channel and outcome
``call_checks``     each alerted token's re-checks (+1 h, +6 h, +24 h): due time, then the
                    price and liquidity seen, the multiple and whether it rugged (migration 4)

Several instances on one PostgreSQL (``hux.bot.cluster``, migration 5):

``inbox.claimed_by`` / ``claim_expires``  which instance works on a pending row, until when
``inbox.chat``      the chat a row belongs to (``messages.chat_of``); with a partial index of the
                    pending rows, what bounds the shared inbox (``Store.inbox_admit``, migration 8)
``instances``       one row per running instance: its heartbeat (live instances)
``leases``          named leases (``leader``: the one instance that polls the sources)
``source_offsets``  where a source resumes (the Telegram update offset)
``token_gate``      one row per token: who looks it up now, when it was decided (cooldown),
                    whether an alert was being sent (a crash between send and record)
``api_budgets``     one token bucket per upstream API, shared by every instance

Every write is idempotent (keyed on message and token), so a batch retried
after a lost connection never duplicates rows. This class is synchronous; the
pipeline calls it from a worker thread (``hux.bot.persistence``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError

from hux import paths
from hux.bot.config import READER_ROLE, READER_TABLES
from hux.bot.messages import ChatMessage, chat_of

#: How a database that answers refuses a row's values (a constraint, a value the column cannot hold),
#: as opposed to not answering at all: that row is a rejected message, the rest of the batch goes in.
ROW_REFUSALS = (IntegrityError, DataError)
#: What a failed database call means (``classify``).
OUTAGE = "outage"    # the connection is gone or cannot be made: hold the work, retry, hux_database_up 0
ROW = "row"          # the database answered and refused these rows' values (SQLSTATE classes 22, 23)
REFUSED = "refused"  # the database answered and refused the write itself (privilege, read-only, disk full...)
#: PostgreSQL SQLSTATEs of a session that is gone or cannot start: class 08 (connection exception),
#: 57P (admin/crash shutdown, cannot connect now, database dropped, idle timeout), 53300 (too many clients).
_OUTAGE_SQLSTATES = ("08", "57P", "53300")
_ROW_SQLSTATES = ("22", "23")
#: SQLite result codes (and their extended codes) of a file another process holds or the OS cannot give us.
_SQLITE_OUTAGES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL", "SQLITE_NOTADB")
#: Messages the store would not write, with why: filled by ``inbox_add``/``write_results`` when given.
Refusals = list[tuple[ChatMessage, str]]
T = TypeVar("T")

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", Float, nullable=False),
)
inbox = Table(
    "inbox",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("source", String(32), nullable=False),
    Column("group_name", String(128), nullable=False),
    Column("text", Text, nullable=False),
    Column("sent_at", Float, nullable=False),
    Column("accepted_at", Float, nullable=False),
    Column("status", String(16), nullable=False),  # pending | done | rejected
    Column("processed_at", Float),
    Column("reason", String(200)),  # why a rejected message's result could not be stored (migration 3)
    Column("claimed_by", String(64)),   # the instance working on a pending row (migration 4)
    Column("claim_expires", Float),     # its claim returns to the pool after this (database clock)
    Column("chat", String(200)),        # messages.chat_of: the shared inbox's per-chat bound (migration 8)
)
tokens = Table(
    "tokens",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("address", String(100), nullable=False),
    Column("chain", String(32), nullable=False),
    Column("symbol", String(64)),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("mentions", Integer, nullable=False),
    Column("last_score", Float),
    Column("last_outcome", String(32)),
    Column("last_decided_at", Float),
)
mentions = Table(
    "mentions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_key", String(100), nullable=False, index=True),
    Column("message_key", String(200), nullable=False),
    Column("group_name", String(128), nullable=False),
    Column("mentioned_at", Float, nullable=False),
    UniqueConstraint("token_key", "message_key", name="uq_mentions_token_message"),
)
decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_key", String(100), nullable=False, index=True),
    Column("message_key", String(200), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("score", Float),
    Column("chain", String(32)),
    Column("symbol", String(64)),
    Column("price_usd", Float),
    Column("liquidity_usd", Float),
    Column("volume_h24", Float),
    Column("price_change_h1", Float),
    Column("risk_level", String(16)),
    Column("reasons", Text),
    Column("decided_at", Float, nullable=False),
    UniqueConstraint("token_key", "message_key", name="uq_decisions_token_message"),
)
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_key", String(100), nullable=False),
    Column("message_key", String(200), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("sent_at", Float, nullable=False),
    UniqueConstraint("token_key", "message_key", "channel", name="uq_alerts_token_message_channel"),
)
call_checks = Table(
    "call_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_key", String(100), nullable=False),
    Column("message_key", String(200), nullable=False),
    Column("address", String(100), nullable=False),
    Column("chain", String(32), nullable=False),
    Column("symbol", String(64)),
    Column("channels", String(200), nullable=False),  # the channels the alert reached, comma-separated
    Column("alerted_at", Float, nullable=False),
    Column("horizon", String(8), nullable=False),     # CALL_HORIZONS
    Column("due_at", Float, nullable=False),
    Column("base_price_usd", Float),
    Column("base_liquidity_usd", Float, nullable=False),
    Column("status", String(16), nullable=False),     # pending | checked | no_market
    Column("checked_at", Float),
    Column("price_usd", Float),
    Column("liquidity_usd", Float),
    Column("multiple", Float),
    Column("rugged", Integer),
    UniqueConstraint("token_key", "message_key", "horizon", name="uq_call_checks_call_horizon"),
)
mutes = Table(
    "mutes",
    metadata,
    Column("token_key", String(100), primary_key=True),
    Column("until", Float, nullable=False),
    Column("muted_by", String(32), nullable=False),  # the admin's Telegram user id (audit)
    Column("muted_at", Float, nullable=False),
)
bot_settings = Table(
    "bot_settings",
    metadata,
    Column("name", String(64), primary_key=True),   # e.g. alert_threshold, set with /threshold
    Column("value", Text, nullable=False),
    Column("set_by", String(32), nullable=False),
    Column("set_at", Float, nullable=False),
)
#: The re-check horizons of an alerted token (the ``horizon`` label) and their live delays in seconds.
CALL_HORIZONS: tuple[tuple[str, float], ...] = (("1h", 3600.0), ("6h", 21600.0), ("24h", 86400.0))
#: Liquidity at or below this share of the alert's liquidity: the liquidity was pulled (rugged).
RUG_LIQUIDITY_SHARE = 0.2
#: What retention prunes by age (``Store.prune_batch``): table -> the column that dates a row.
HISTORY_TABLES: dict[str, Column[Any]] = {
    "mentions": mentions.c.mentioned_at, "decisions": decisions.c.decided_at, "alerts": alerts.c.sent_at,
    "call_checks": call_checks.c.alerted_at, "tokens": tokens.c.last_seen,
}
instances = Table(
    "instances",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)
leases = Table(
    "leases",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("epoch", Integer, nullable=False),  # +1 at every change of holder
)
source_offsets = Table(
    "source_offsets",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)
token_gate = Table(
    "token_gate",
    metadata,
    Column("token_key", String(100), primary_key=True),
    Column("holder", String(64)),          # the instance looking it up now (None: nobody)
    Column("lease_until", Float),          # its claim lapses after this
    Column("decided_at", Float),           # last decision: the cooldown runs from here
    Column("sending_at", Float),           # an alert is being sent; cleared once recorded
)
api_budgets = Table(
    "api_budgets",
    metadata,
    Column("api", String(32), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)


# --- migrations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _initial_schema(conn: Connection) -> None:
    for table in (inbox, tokens, mentions, decisions, alerts):
        table.create(conn, checkfirst=True)


def _time_indexes(conn: Connection) -> None:
    # Plain DDL: an Index object would attach itself to the shared Table and leak into migration 1.
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_inbox_status_accepted ON inbox (status, accepted_at)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_decisions_decided_at ON decisions (decided_at)"))


def _call_checks(conn: Connection) -> None:
    call_checks.create(conn, checkfirst=True)
    # Due checks are read by time; retention deletes by time in every history table.
    for table, column in (("call_checks", "status, due_at"), ("call_checks", "alerted_at"), ("mentions", "mentioned_at"),
                          ("alerts", "sent_at"), ("tokens", "last_seen")):
        name = f"ix_{table}_{column.replace(', ', '_')}"
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})"))


def _inbox_reason(conn: Connection) -> None:
    # Migration 1 creates the inbox from the current Table, which already has the column on a new database.
    if "reason" not in {c["name"] for c in inspect(conn).get_columns("inbox")}:
        conn.execute(text("ALTER TABLE inbox ADD COLUMN reason VARCHAR(200)"))


def _cluster(conn: Connection) -> None:
    have = {c["name"] for c in inspect(conn).get_columns("inbox")}
    for name, kind in (("claimed_by", "VARCHAR(64)"), ("claim_expires", "FLOAT")):
        if name not in have:
            conn.execute(text(f"ALTER TABLE inbox ADD COLUMN {name} {kind}"))
    for table in (instances, leases, source_offsets, token_gate, api_budgets):
        table.create(conn, checkfirst=True)


def _inbox_chat(conn: Connection) -> None:
    if "chat" not in {c["name"] for c in inspect(conn).get_columns("inbox")}:
        conn.execute(text("ALTER TABLE inbox ADD COLUMN chat VARCHAR(200)"))
    # Only pending rows: the bound counts them (per chat and in all) without reading the done ones.
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_inbox_pending_chat ON inbox (chat) WHERE status = 'pending'"))
    rows = conn.execute(select(inbox.c.key, inbox.c.source, inbox.c.group_name)
                        .where(inbox.c.status == "pending", inbox.c.chat.is_(None))).all()
    if rows:
        conn.execute(inbox.update().where(inbox.c.key == bindparam("k")).values(chat=bindparam("c")),
                     [{"k": r.key, "c": chat_of(ChatMessage(r.key, r.source, r.group_name, "", 0.0))} for r in rows])


def _admin(conn: Connection) -> None:
    for table in (mutes, bot_settings):
        table.create(conn, checkfirst=True)


def grant_reader(conn: Connection) -> bool:
    """On PostgreSQL, when ``READER_ROLE`` exists: SELECT on ``READER_TABLES`` for it. True when granted."""
    if conn.dialect.name != "postgresql":
        return False
    if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": READER_ROLE}).first():
        return False
    conn.execute(text(f"GRANT SELECT ON {', '.join(READER_TABLES)} TO {READER_ROLE}"))
    return True


def _reader_grants(conn: Connection) -> None:
    grant_reader(conn)


#: Append only. A migration runs in its own transaction with its version row.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "inbox, tokens, mentions, decisions, alerts", _initial_schema),
    Migration(2, "indexes for inbox recovery/pruning and recent decisions", _time_indexes),
    Migration(3, "inbox.reason: why a message ended rejected", _inbox_reason),
    Migration(4, "call_checks: alerted tokens re-checked at +1h/+6h/+24h; time indexes for retention", _call_checks),
    Migration(5, "several instances: inbox claims, instances, leases, source offsets, token gate, API budgets", _cluster),
    Migration(6, "mutes and bot_settings: what admins set from Telegram (/mute, /threshold)", _admin),
    Migration(7, "PostgreSQL: SELECT on tokens, decisions, call_checks for Grafana's read-only role, if it exists",
              _reader_grants),
    Migration(8, "inbox.chat and an index of pending rows per chat: the shared inbox's bound", _inbox_chat),
)
LATEST_VERSION = MIGRATIONS[-1].version


# --- what the pipeline hands over ---------------------------------------------------------


@dataclass(slots=True)
class TokenResult:
    key: str
    address: str
    chain: str
    kind: str
    outcome: str                       # metrics.TOKEN_OUTCOMES
    decided_at: float
    score: float | None = None
    symbol: str | None = None
    price_usd: float | None = None
    liquidity_usd: float | None = None
    volume_h24: float | None = None
    price_change_h1: float | None = None
    risk_level: str | None = None
    reasons: tuple[str, ...] = ()
    deliveries: dict[str, bool] = field(default_factory=dict)  # channel -> delivered


#: ``pg_advisory_xact_lock`` key of the shared inbox's admissions ("huxinb"): one at a time, across instances.
INBOX_ADMIT_LOCK = 0x6875_7869_6E62


@dataclass(frozen=True)
class InboxBound:
    """Pending messages the shared inbox holds: per chat (more are refused) and in all (sources wait)."""

    per_chat: int
    total: int


@dataclass
class Admission:
    """What ``Store.inbox_admit`` did with a batch, each list in the batch's order."""

    fresh: list[ChatMessage] = field(default_factory=list)    # written, pending
    backlog: list[ChatMessage] = field(default_factory=list)  # refused: their chat had ``per_chat`` pending
    waiting: list[ChatMessage] = field(default_factory=list)  # not written: ``total`` pending; offer them again


@dataclass(slots=True)
class MessageResult:
    message: ChatMessage
    tokens: list[TokenResult]
    processed_at: float


def inbox_row(m: ChatMessage, status: str, **extra: Any) -> dict[str, Any]:
    """The ``inbox`` row of a message in ``status`` (``extra``: processed_at, reason)."""
    return {"key": m.key, "source": m.source, "group_name": m.group, "text": m.text, "sent_at": m.sent_at,
            "accepted_at": m.accepted_wall, "status": status, "chat": chat_of(m), **extra}


def decision_row(t: TokenResult, message_key: str) -> dict[str, Any]:
    """The ``decisions`` row of a token decided for a message (the writer's, and the token gate's at once)."""
    return {"token_key": t.key, "message_key": message_key, "outcome": t.outcome, "score": t.score,
            "chain": t.chain, "symbol": t.symbol, "price_usd": t.price_usd, "liquidity_usd": t.liquidity_usd,
            "volume_h24": t.volume_h24, "price_change_h1": t.price_change_h1, "risk_level": t.risk_level,
            "reasons": json.dumps(list(t.reasons)), "decided_at": t.decided_at}


def delivery_rows(t: TokenResult, message_key: str) -> list[dict[str, Any]]:
    """The ``alerts`` rows of a token's deliveries, one per channel."""
    return [{"token_key": t.key, "message_key": message_key, "channel": channel,
             "outcome": "success" if ok else "failure", "score": t.score or 0.0, "sent_at": t.decided_at}
            for channel, ok in t.deliveries.items()]


def call_check_rows(t: TokenResult, message_key: str, horizons: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    """The ``call_checks`` rows of an alerted token: one pending re-check per horizon (label, delay seconds)."""
    if t.outcome != "alerted" or t.liquidity_usd is None:
        return []
    reached = ",".join(sorted(channel for channel, ok in t.deliveries.items() if ok))
    return [{"token_key": t.key, "message_key": message_key, "address": t.address, "chain": t.chain,
             "symbol": t.symbol, "channels": reached[:200], "alerted_at": t.decided_at, "horizon": label,
             "due_at": t.decided_at + delay, "base_price_usd": t.price_usd, "base_liquidity_usd": t.liquidity_usd,
             "status": "pending"}
            for label, delay in horizons]


# --- the store ---------------------------------------------------------------------------


def describe_refusal(exc: BaseException) -> str:
    """One line about a driver error, without the SQL parameters (they may hold message text)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def classify(exc: BaseException) -> str | None:
    """``OUTAGE``, ``ROW`` or ``REFUSED`` for a driver error; None for anything that is not one.

    Decided from the error alone, never by asking the database again: while a
    server shuts down a probe may still answer although this write's
    connection is gone. PostgreSQL's SQLSTATE decides when the server sent
    one; without one (the client lost the connection) the error's class does.
    """
    if not isinstance(exc, DBAPIError):
        return None
    if exc.connection_invalidated:
        return OUTAGE
    orig = exc.orig
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str) and len(state) == 5:
        if state.startswith(_OUTAGE_SQLSTATES):
            return OUTAGE
        return ROW if state.startswith(_ROW_SQLSTATES) else REFUSED
    if isinstance(exc, ROW_REFUSALS):
        return ROW
    sqlite_code = getattr(orig, "sqlite_errorname", None)
    if isinstance(sqlite_code, str):
        return OUTAGE if sqlite_code.startswith(_SQLITE_OUTAGES) else REFUSED
    if isinstance(exc, (OperationalError, InterfaceError)):
        return OUTAGE
    return REFUSED


def bisect_refusals(items: Sequence[T], write: Callable[[list[T]], int]) -> tuple[int, list[tuple[T, BaseException]]]:
    """``write`` all of ``items`` in as few transactions as the database's row refusals allow.

    The batch first; a chunk the database refuses (``ROW``) is split in
    halves, each written on its own, so k refused rows among n cost about
    1 + 2k*log2(n) transactions instead of n + 1. Iterative, depth at most
    ceil(log2(n)), chunks in their original order. Returns what was written
    and each refused item with its error; any other error raises at once.
    """
    written = 0
    bad: list[tuple[T, BaseException]] = []
    stack: list[list[T]] = [list(items)] if items else []
    while stack:
        chunk = stack.pop()
        try:
            written += write(chunk)
        except DBAPIError as exc:
            if classify(exc) != ROW:
                raise
            if len(chunk) == 1:
                bad.append((chunk[0], exc))
            else:
                half = len(chunk) // 2
                stack += [chunk[half:], chunk[:half]]  # the first half is written first
    return written, bad


def _storable_text(value: Any, limit: int | None) -> bool:
    if not isinstance(value, str) or (limit is not None and len(value) > limit):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: neither driver can send them
        return False
    return True


def split_storable(messages: Sequence[ChatMessage], refused: Refusals) -> list[ChatMessage]:
    """The messages an inbox row can hold; the others are appended to ``refused`` with why."""
    keep = []
    for message in messages:
        why = unstorable(message)
        if why is None:
            keep.append(message)
        else:
            refused.append((message, why))
    return keep


def unstorable(message: ChatMessage) -> str | None:
    """Why no inbox row can hold ``message`` (a value out of a column's range), or None.

    Sources validate their input; this is the store's own last check, so NaN,
    an infinity or an over-long key never reaches a column whatever a caller
    hands over.
    """
    for name, value, limit in (("key", message.key, 200), ("source", message.source, 32),
                               ("group", message.group, 128), ("text", message.text, None)):
        if not _storable_text(value, limit):
            return f"{name} is not a string of at most {limit or 'any'} storable characters"
    for name, when in (("sent_at", message.sent_at), ("accepted_at", message.accepted_wall)):
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when) or abs(when) > 1e15:
            return f"{name} {when!r} is not a finite time"
    return None



def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")   # a committed accept survives power loss
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_db_engine(url: str, *, connect_timeout: float = 5.0) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # Chat texts: the database file (and its -wal/-shm, which SQLite creates with its mode) is 0600.
            paths.private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": connect_timeout})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,   # drop connections the server closed while it was away
            pool_size=4,
            max_overflow=2,
            pool_timeout=connect_timeout,
            connect_args={
                "connect_timeout": max(1, int(connect_timeout)),
                # A server that vanishes from the network must fail calls, not hang them.
                "options": "-c statement_timeout=30000",
                "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
            },
        )
    raise ValueError(f"database_url scheme {parsed.drivername!r} is not supported: use sqlite:///path or postgresql+psycopg://...")


class Store:
    def __init__(self, url: str, *, engine: Engine | None = None,
                 call_horizons: Sequence[tuple[str, float]] = CALL_HORIZONS) -> None:
        self.url = url
        self.engine = engine or create_db_engine(url)
        self.dialect = self.engine.dialect.name
        self.call_horizons = tuple(call_horizons)  # (label, delay seconds) of each alert's re-checks

    # -- schema ----------------------------------------------------------------------
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("schema_version"):
                return 0
            return int(conn.execute(select(func.coalesce(func.max(schema_version.c.version), 0))).scalar_one())

    def migrate(self) -> list[int]:
        """Apply pending migrations in order; return the versions applied."""
        with self.engine.begin() as conn:
            schema_version.create(conn, checkfirst=True)
        applied = []
        for migration in MIGRATIONS:
            with self.engine.begin() as conn:
                done = conn.execute(select(schema_version.c.version).where(schema_version.c.version == migration.version)).first()
                if done:
                    continue
                migration.apply(conn)
                conn.execute(schema_version.insert().values(version=migration.version, description=migration.description, applied_at=time.time()))
                applied.append(migration.version)
        return applied

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()

    # -- helpers ---------------------------------------------------------------------
    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- intake ----------------------------------------------------------------------
    def inbox_add(self, messages: Sequence[ChatMessage], refused: Refusals | None = None) -> list[ChatMessage]:
        """Durably accept messages (pending); return the ones not seen before (redeliveries are ignored).

        With ``refused``: a message no column can hold (``unstorable``) or whose
        row the database refuses (``ROW``) is appended there with why, and the
        others still go in (``bisect_refusals``). Without it, a refusal raises.
        Any other error (``OUTAGE``, ``REFUSED``) raises either way.
        """
        unique = list({m.key: m for m in messages}.values())
        if refused is not None:
            unique = split_storable(unique, refused)
        if not unique:
            return []
        if refused is None:
            return self._inbox_insert(unique)
        fresh: list[ChatMessage] = []

        def insert(chunk: list[ChatMessage]) -> int:
            new = self._inbox_insert(chunk)
            fresh.extend(new)
            return len(new)

        _, bad = bisect_refusals(unique, insert)
        refused.extend((m, describe_refusal(exc)) for m, exc in bad)
        order = {m.key: i for i, m in enumerate(unique)}
        return sorted(fresh, key=lambda m: order[m.key])

    def _inbox_insert(self, unique: list[ChatMessage]) -> list[ChatMessage]:
        rows = [inbox_row(m, "pending", processed_at=None) for m in unique]
        with self.engine.begin() as conn:
            known: set[str] = set(conn.execute(select(inbox.c.key).where(inbox.c.key.in_([m.key for m in unique]))).scalars())
            fresh = [row for row in rows if row["key"] not in known]
            if fresh:
                conn.execute(self._insert(inbox).on_conflict_do_nothing(index_elements=["key"]), fresh)
        return [m for m in unique if m.key not in known]

    def inbox_admit(self, messages: Sequence[ChatMessage], bound: InboxBound, refused: Refusals) -> Admission:
        """Write what the shared inbox has room for, in order, in one transaction (PostgreSQL).

        Admissions take turns under a transaction-scoped advisory lock (every
        instance's; claims and results do not take it). The pending rows are
        counted on the partial index ``ix_inbox_pending_chat``, each count only
        up to its bound, so a check reads at most ``total`` index entries
        whatever the inbox holds. A message the inbox already has is a
        redelivery: neither counted nor refused. Then, in order: a message whose
        chat has ``per_chat`` pending is refused (``backlog``); the first one
        that finds ``total`` pending stops the batch: it and the rest are
        ``waiting``, not written. A row the database refuses goes to ``refused``.
        """
        unique = split_storable(list({m.key: m for m in messages}.values()), refused)
        admission = Admission()
        if not unique:
            return admission
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": INBOX_ADMIT_LOCK})
            known: set[str] = set(conn.execute(select(inbox.c.key).where(inbox.c.key.in_([m.key for m in unique]))).scalars())
            new = [m for m in unique if m.key not in known]
            if not new:
                return admission
            pending = int(conn.execute(text(
                "SELECT count(*) FROM (SELECT 1 FROM inbox WHERE status = 'pending' LIMIT :total) AS p"),
                {"total": bound.total}).scalar_one())
            per_chat: dict[str, int] = {str(row[0]): int(row[1]) for row in conn.execute(text(
                "SELECT c.chat, (SELECT count(*) FROM (SELECT 1 FROM inbox WHERE status = 'pending' AND chat = c.chat "
                "LIMIT :cap) AS p) FROM unnest(CAST(:chats AS varchar[])) AS c(chat)"),
                {"chats": sorted({chat_of(m) for m in new}), "cap": bound.per_chat}).all()}
            take: list[ChatMessage] = []
            for i, m in enumerate(new):
                chat = chat_of(m)
                if per_chat.get(chat, 0) >= bound.per_chat:
                    admission.backlog.append(m)
                elif pending >= bound.total:
                    admission.waiting = new[i:]
                    break
                else:
                    per_chat[chat] = per_chat.get(chat, 0) + 1
                    pending += 1
                    take.append(m)
            written: set[str] = set()

            def insert(chunk: list[ChatMessage]) -> int:
                with conn.begin_nested():  # a refused row rolls back its chunk only
                    keys = conn.execute(postgresql.insert(inbox).on_conflict_do_nothing(index_elements=["key"])
                                        .returning(inbox.c.key), [inbox_row(m, "pending", processed_at=None) for m in chunk])
                    written.update(keys.scalars())
                return len(chunk)

            _, bad = bisect_refusals(take, insert)
        refused.extend((m, describe_refusal(exc)) for m, exc in bad)
        admission.fresh = [m for m in take if m.key in written]
        return admission

    def inbox_pending(self, limit: int = 10_000) -> list[ChatMessage]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(inbox.c.key, inbox.c.source, inbox.c.group_name, inbox.c.text, inbox.c.sent_at, inbox.c.accepted_at)
                .where(inbox.c.status == "pending")
                .order_by(inbox.c.accepted_at)
                .limit(limit)
            ).all()
        out = []
        for row in rows:
            msg = ChatMessage(row.key, row.source, row.group_name, row.text, row.sent_at)
            msg.accepted_wall = row.accepted_at
            out.append(msg)
        return out

    def prune_inbox(self, older_than: float) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                inbox.delete().where(inbox.c.status.in_(("done", "rejected")), inbox.c.processed_at < older_than)
            )
            return int(result.rowcount or 0)

    def mark_rejected(self, entries: Sequence[tuple[ChatMessage, str]], at: float) -> Refusals:
        """End these messages' inbox rows as ``rejected`` with why, so no restart processes them again.

        A pending row changes only its status, time and reason; a message the
        inbox never held (accepted into the spool, not drained yet) is inserted
        already rejected, so the later drain skips it. A done row stays done.
        Returns the entries the database refused to mark (found by
        ``bisect_refusals``); any other error raises.
        """
        def mark(chunk: list[tuple[ChatMessage, str]]) -> int:
            reasons = {m.key: (why or "refused")[:200] for m, why in chunk}
            with self.engine.begin() as conn:
                for key, why in reasons.items():
                    conn.execute(inbox.update().where(inbox.c.key == key, inbox.c.status == "pending")
                                 .values(status="rejected", processed_at=at, reason=why))
                known: set[str] = set(conn.execute(select(inbox.c.key).where(inbox.c.key.in_(list(reasons)))).scalars())
                missing = [inbox_row(m, "rejected", processed_at=at, reason=reasons[m.key]) for m, _ in chunk if m.key not in known]
                if missing:
                    conn.execute(self._insert(inbox).on_conflict_do_nothing(index_elements=["key"]), missing)
            return len(chunk)

        unique = list({m.key: (m, why) for m, why in entries}.values())
        _, bad = bisect_refusals(unique, mark)
        return [(entry[0], describe_refusal(exc)) for entry, exc in bad]

    # -- results ---------------------------------------------------------------------
    def write_results(self, results: Iterable[MessageResult], refused: Refusals | None = None) -> int:
        """Persist processed messages in one transaction; idempotent. Returns tokens written.

        With ``refused``, when the database refuses rows of the batch (``ROW``)
        the batch is halved until the refused results are found
        (``bisect_refusals``): those are appended to ``refused`` (that message
        is rejected, the rest flow). When it refuses every one of them the
        refusal is not about a row but the database (a trigger on every row):
        it raises and the results stay held. ``OUTAGE`` and ``REFUSED`` errors
        raise at once.
        """
        results = list(results)
        if refused is None or len(results) < 2:
            return self._write_results(results)
        written, bad = bisect_refusals(results, self._write_results)
        if len(bad) == len(results):
            raise bad[0][1]
        refused.extend((res.message, describe_refusal(exc)) for res, exc in bad)
        return written

    def _write_results(self, results: list[MessageResult]) -> int:
        inbox_rows: dict[str, dict[str, Any]] = {}
        token_rows: dict[str, dict[str, Any]] = {}
        mention_rows, decision_rows, alert_rows, check_rows = [], [], [], []
        for res in results:
            m = res.message
            inbox_rows[m.key] = inbox_row(m, "done", processed_at=res.processed_at)
            for t in res.tokens:
                mention_rows.append({"token_key": t.key, "message_key": m.key, "group_name": m.group, "mentioned_at": m.sent_at})
                row = token_rows.get(t.key)
                if row is None:
                    row = token_rows[t.key] = {"key": t.key, "address": t.address, "chain": t.chain, "symbol": t.symbol,
                                               "first_seen": m.sent_at, "last_seen": m.sent_at, "mentions": 0,
                                               "last_score": None, "last_outcome": None, "last_decided_at": None}
                row["mentions"] += 1
                row["first_seen"] = min(row["first_seen"], m.sent_at)
                row["last_seen"] = max(row["last_seen"], m.sent_at)
                if t.symbol:
                    row["symbol"] = t.symbol
                if t.chain not in ("evm", "solana") or row["chain"] == "evm":
                    row["chain"] = t.chain
                if t.outcome != "cooldown":
                    decision_rows.append(decision_row(t, m.key))
                    if t.score is not None:
                        row["last_score"] = t.score
                    row["last_outcome"] = t.outcome
                    row["last_decided_at"] = t.decided_at
                alert_rows += delivery_rows(t, m.key)
                check_rows += call_check_rows(t, m.key, self.call_horizons)
        with self.engine.begin() as conn:
            if mention_rows:
                # A batch retried after a lost commit must not count mentions twice:
                # only tokens whose mention row is new get their counters bumped.
                existing = set(
                    conn.execute(
                        select(mentions.c.token_key, mentions.c.message_key).where(
                            mentions.c.message_key.in_(list(inbox_rows))
                        )
                    ).all()
                )
                fresh = [r for r in mention_rows if (r["token_key"], r["message_key"]) not in existing]
                if len(fresh) != len(mention_rows):
                    self._drop_counted(token_rows, mention_rows, existing)
                if fresh:
                    conn.execute(self._insert(mentions).on_conflict_do_nothing(), fresh)
            if token_rows:
                stmt = self._insert(tokens)
                ex = stmt.excluded
                stmt = stmt.on_conflict_do_update(
                    index_elements=["key"],
                    set_={
                        "mentions": tokens.c.mentions + ex.mentions,
                        "last_seen": func.max(tokens.c.last_seen, ex.last_seen) if self.dialect == "sqlite" else func.greatest(tokens.c.last_seen, ex.last_seen),
                        "symbol": func.coalesce(ex.symbol, tokens.c.symbol),
                        "chain": case((ex.chain == "evm", tokens.c.chain), else_=ex.chain),
                        "last_score": func.coalesce(ex.last_score, tokens.c.last_score),
                        "last_outcome": func.coalesce(ex.last_outcome, tokens.c.last_outcome),
                        "last_decided_at": func.coalesce(ex.last_decided_at, tokens.c.last_decided_at),
                    },
                )
                conn.execute(stmt, list(token_rows.values()))
            if decision_rows:
                conn.execute(self._insert(decisions).on_conflict_do_nothing(), decision_rows)
            if alert_rows:
                conn.execute(self._insert(alerts).on_conflict_do_nothing(), alert_rows)
            if check_rows:
                conn.execute(self._insert(call_checks).on_conflict_do_nothing(), check_rows)
            stmt = self._insert(inbox)
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["key"], set_={"status": "done", "processed_at": stmt.excluded.processed_at}),
                list(inbox_rows.values()),
            )
        return len(decision_rows)

    @staticmethod
    def _drop_counted(token_rows: dict[str, dict[str, Any]], mention_rows: list[dict[str, Any]], existing: set[Any]) -> None:
        """``existing``: the (token_key, message_key) rows already stored."""
        for r in mention_rows:
            if (r["token_key"], r["message_key"]) in existing:
                token_rows[r["token_key"]]["mentions"] -= 1

    # -- reads (recovery, tests, operators) -------------------------------------------
    def recent_decisions(self, since: float) -> list[tuple[str, float]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tokens.c.key, tokens.c.last_decided_at).where(tokens.c.last_decided_at >= since)
            ).all()
        return [(r.key, r.last_decided_at) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            out = {}
            for table in (inbox, tokens, mentions, decisions, alerts, call_checks):
                out[table.name] = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for status in ("pending", "rejected"):
                out[f"inbox_{status}"] = int(
                    conn.execute(select(func.count()).select_from(inbox).where(inbox.c.status == status)).scalar_one()
                )
            return out

    # -- calls tracked -----------------------------------------------------------------
    def due_checks(self, now: float, limit: int = 100) -> list[CallCheck]:
        """Pending re-checks due at ``now``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(call_checks).where(call_checks.c.status == "pending", call_checks.c.due_at <= now)
                                .order_by(call_checks.c.due_at).limit(limit)).all()
        return [CallCheck.from_row(row) for row in rows]

    def record_check(self, check_id: int, *, at: float, price_usd: float | None, liquidity_usd: float | None) -> CheckOutcome | None:
        """Record one re-check's market data; its multiple and whether it rugged are derived here.

        Returns the outcome, or None when another writer recorded it first. ``first_rug`` is
        True only for the first check of that alert to find it rugged (one follow-up per call).
        """
        with self.engine.begin() as conn:
            row = conn.execute(select(call_checks).where(call_checks.c.id == check_id)).first()
            if row is None or row.status != "pending":
                return None
            check = CallCheck.from_row(row)
            outcome = check.outcome(price_usd, liquidity_usd)
            rugged_before = conn.execute(
                select(func.count()).select_from(call_checks).where(
                    call_checks.c.token_key == check.token_key, call_checks.c.message_key == check.message_key,
                    call_checks.c.rugged == 1)).scalar_one()
            done = conn.execute(call_checks.update().where(call_checks.c.id == check_id, call_checks.c.status == "pending").values(
                status="checked" if liquidity_usd is not None else "no_market", checked_at=at, price_usd=price_usd,
                liquidity_usd=liquidity_usd, multiple=outcome.multiple, rugged=int(outcome.rugged)))
            if not done.rowcount:
                return None
            best: float | None = conn.execute(select(func.max(call_checks.c.multiple)).where(
                call_checks.c.token_key == check.token_key, call_checks.c.message_key == check.message_key)).scalar_one()
        outcome.first_rug = outcome.rugged and not rugged_before
        outcome.best_multiple = best
        return outcome

    # -- admin commands (``hux.bot.admin``) ---------------------------------------------
    def set_mute(self, token_key: str, until: float, by: str) -> bool:
        with self.engine.begin() as conn:
            stmt = self._insert(mutes).values(token_key=token_key, until=until, muted_by=by[:32], muted_at=time.time())
            conn.execute(stmt.on_conflict_do_update(index_elements=["token_key"], set_={
                "until": stmt.excluded.until, "muted_by": stmt.excluded.muted_by, "muted_at": stmt.excluded.muted_at}))
        return True

    def active_mutes(self, now: float) -> dict[str, float]:
        """Token key -> muted until, for the mutes not expired at ``now``."""
        with self.engine.connect() as conn:
            return {r.token_key: r.until for r in conn.execute(select(mutes).where(mutes.c.until > now))}

    def set_setting(self, name: str, value: str, by: str) -> bool:
        with self.engine.begin() as conn:
            stmt = self._insert(bot_settings).values(name=name, value=value, set_by=by[:32], set_at=time.time())
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={
                "value": stmt.excluded.value, "set_by": stmt.excluded.set_by, "set_at": stmt.excluded.set_at}))
        return True

    def setting(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            value: str | None = conn.execute(select(bot_settings.c.value).where(bot_settings.c.name == name)).scalar()
        return value

    def top_tokens(self, since: float, limit: int = 10) -> list[dict[str, Any]]:
        """The best-scored tokens decided since ``since``, best first: each token once, at its best score."""
        best = func.max(decisions.c.score).label("best")
        with self.engine.connect() as conn:
            rows = conn.execute(select(decisions.c.token_key, best, func.max(decisions.c.decided_at).label("at"))
                                .where(decisions.c.decided_at >= since, decisions.c.score.is_not(None))
                                .group_by(decisions.c.token_key).order_by(best.desc()).limit(limit)).all()
            info = {t.key: t for t in conn.execute(select(tokens).where(tokens.c.key.in_([r.token_key for r in rows])))}
        return [{"address": info[r.token_key].address if r.token_key in info else r.token_key,
                 "symbol": info[r.token_key].symbol if r.token_key in info else None,
                 "chain": info[r.token_key].chain if r.token_key in info else None,
                 "score": r.best, "decided_at": r.at} for r in rows]

    def source_activity(self, since: float, limit: int = 20) -> list[dict[str, Any]]:
        """Per source and group: messages accepted since ``since`` and the last one's time (the inbox's memory)."""
        recent = func.sum(case((inbox.c.accepted_at >= since, 1), else_=0)).label("recent")
        with self.engine.connect() as conn:
            rows = conn.execute(select(inbox.c.source, inbox.c.group_name, recent, func.max(inbox.c.accepted_at).label("last"))
                                .group_by(inbox.c.source, inbox.c.group_name)
                                .order_by(func.max(inbox.c.accepted_at).desc()).limit(limit)).all()
        return [{"source": r.source, "group": r.group_name, "messages": int(r.recent or 0), "last_seen": r.last} for r in rows]

    # -- retention ---------------------------------------------------------------------
    def prune_batch(self, table: str, older_than: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` rows of ``table`` (``HISTORY_TABLES``) dated before ``older_than``: one short transaction.

        A call's pending re-checks and a token with one are kept whatever their age.
        """
        column = HISTORY_TABLES[table]
        target = column.table
        key = target.c.key if table == "tokens" else target.c.id
        query = select(key).where(column < older_than)
        if table == "call_checks":
            query = query.where(call_checks.c.status != "pending")
        if table == "tokens":
            query = query.where(~tokens.c.key.in_(select(call_checks.c.token_key).where(call_checks.c.status == "pending")))
        with self.engine.begin() as conn:
            ids: list[Any] = list(conn.execute(query.limit(limit)).scalars())
            if not ids:
                return 0
            return int(conn.execute(target.delete().where(key.in_(ids))).rowcount or 0)

    # -- operators (``hux tokens``) ----------------------------------------------------
    def latest_decisions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest decisions with score and reasons, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(decisions, tokens.c.address).join(tokens, tokens.c.key == decisions.c.token_key, isouter=True)
                                .order_by(decisions.c.decided_at.desc(), decisions.c.id.desc()).limit(limit)).all()
        return [_decision_dict(row) for row in rows]

    def token_detail(self, address: str) -> dict[str, Any] | None:
        """One token: its row, its decisions (newest first) and its calls' re-checks; None when unknown."""
        key = address.strip()
        key = key.lower() if key.startswith("0x") else key
        with self.engine.connect() as conn:
            token = conn.execute(select(tokens).where(tokens.c.key == key)).first()
            if token is None:
                return None
            decided = conn.execute(select(decisions, tokens.c.address).join(tokens, tokens.c.key == decisions.c.token_key)
                                   .where(decisions.c.token_key == key).order_by(decisions.c.decided_at.desc()).limit(50)).all()
            checks = conn.execute(select(call_checks).where(call_checks.c.token_key == key)
                                  .order_by(call_checks.c.alerted_at.desc(), call_checks.c.due_at)).all()
        return {
            "address": token.address, "chain": token.chain, "symbol": token.symbol, "mentions": token.mentions,
            "first_seen": token.first_seen, "last_seen": token.last_seen, "last_score": token.last_score,
            "last_outcome": token.last_outcome,
            "decisions": [_decision_dict(row) for row in decided],
            "calls": [{"alerted_at": c.alerted_at, "horizon": c.horizon, "due_at": c.due_at, "status": c.status,
                       "base_price_usd": c.base_price_usd, "base_liquidity_usd": c.base_liquidity_usd,
                       "checked_at": c.checked_at, "price_usd": c.price_usd, "liquidity_usd": c.liquidity_usd,
                       "multiple": c.multiple, "rugged": None if c.rugged is None else bool(c.rugged),
                       "channels": [name for name in c.channels.split(",") if name]} for c in checks],
        }


def _decision_dict(row: Any) -> dict[str, Any]:
    try:
        reasons = json.loads(row.reasons or "[]")
    except ValueError:
        reasons = []
    return {"decided_at": row.decided_at, "address": row.address or row.token_key, "chain": row.chain,
            "symbol": row.symbol, "outcome": row.outcome, "score": row.score, "price_usd": row.price_usd,
            "liquidity_usd": row.liquidity_usd, "risk_level": row.risk_level,
            "reasons": [str(r) for r in reasons] if isinstance(reasons, list) else []}


@dataclass(slots=True)
class CheckOutcome:
    multiple: float | None      # price now / price at the alert (None: either price unknown)
    rugged: bool                # liquidity at or below RUG_LIQUIDITY_SHARE of the alert's (or no market left)
    first_rug: bool = False     # the first check of this call to find it rugged
    best_multiple: float | None = None  # the best multiple of this call so far


@dataclass(frozen=True, slots=True)
class CallCheck:
    id: int
    token_key: str
    message_key: str
    address: str
    chain: str
    symbol: str | None
    channels: tuple[str, ...]
    alerted_at: float
    horizon: str
    due_at: float
    base_price_usd: float | None
    base_liquidity_usd: float

    @classmethod
    def from_row(cls, row: Any) -> "CallCheck":
        return cls(row.id, row.token_key, row.message_key, row.address, row.chain, row.symbol,
                   tuple(name for name in row.channels.split(",") if name), row.alerted_at, row.horizon, row.due_at,
                   row.base_price_usd, row.base_liquidity_usd)

    def outcome(self, price_usd: float | None, liquidity_usd: float | None) -> CheckOutcome:
        """No market left (``liquidity_usd`` None) counts as liquidity pulled, with nothing left of the price."""
        liquidity = liquidity_usd or 0.0
        rugged = self.base_liquidity_usd > 0 and liquidity <= RUG_LIQUIDITY_SHARE * self.base_liquidity_usd
        if liquidity_usd is None:
            return CheckOutcome(0.0, rugged)
        if price_usd is None or not self.base_price_usd:
            return CheckOutcome(None, rugged)
        return CheckOutcome(price_usd / self.base_price_usd, rugged)
