"""The shared inbox's bound: what one admission check costs on a 100,000-row inbox (PostgreSQL).

    HUX_TEST_PG_URL=postgresql+psycopg://root@/hux_test?host=/var/run/postgresql \\
        .venv/bin/python bench/inbox_bound.py [--rows 100000] [--runs 200]

A database of its own, migrated; the inbox filled with ``--rows`` rows over 50
chats in one ``INSERT ... SELECT`` and vacuumed (as autovacuum would). Timed,
``--runs`` times each, with ``Store.inbox_admit`` (the leader's call per
accepted batch: advisory lock, known keys, the bounded counts, the insert) and
the heartbeat's exact count:

* ``done``: the rows processed and 1,000 pending, the default bound
  (``bot.queue_capacity`` 1,000): a batch of 100 new messages finds it full and
  waits (no insert): the check alone;
* ``pending``: every row pending (an inbox that grew past the bound while the
  database was away and the spool drained, or a bound lowered): the same
  check, whose counts stop at the bound (the batch's chats are full: refused);
* ``room``: the ``done`` inbox with a bound of 10^6: a batch of 100 written;
* ``heartbeat``: ``count(*)`` of the pending rows, exact, in the ``pending`` inbox.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import create_engine, text  # noqa: E402

from hux.bot.messages import ChatMessage  # noqa: E402
from hux.bot.store import InboxBound, Store  # noqa: E402
from tests.bot.conftest import PgDatabases  # noqa: E402

CHATS = 50


def fill(url: str, rows: int, pending: bool) -> None:
    status = "'pending'" if pending else "'done'"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("TRUNCATE inbox"))
        conn.execute(text(
            "INSERT INTO inbox (key, source, group_name, text, sent_at, accepted_at, status, processed_at, chat) "
            f"SELECT 'telegram:-' || (i % {CHATS}) || ':' || i, 'telegram', 'chat ' || (i % {CHATS}), 'ca token ' || i, "
            f"1.7e9 + i, 1.7e9 + i, {status}, CASE WHEN {status} = 'done' THEN 1.7e9 + i END, "
            f"'telegram:-' || (i % {CHATS}) FROM generate_series(1, :rows) AS i"), {"rows": rows})
        conn.execute(text("VACUUM ANALYZE inbox"))
    engine.dispose()


def batch(tag: str, n: int = 100) -> list[ChatMessage]:
    return [ChatMessage(f"telegram:-{i % CHATS}:{tag}-{i}", "telegram", f"chat {i % CHATS}", "ca x", 1.8e9)
            for i in range(n)]


def timed(runs: int, fn) -> tuple[float, float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    base = os.environ.get("HUX_TEST_PG_URL")
    if not base:
        print("set HUX_TEST_PG_URL (a PostgreSQL where this user may create databases)", file=sys.stderr)
        return 2
    dbs = PgDatabases(base)
    url = dbs.create()
    store = Store(url)
    try:
        store.migrate()
        full = InboxBound(per_chat=100, total=1000)
        fill(url, args.rows, pending=False)
        refused: list[tuple[ChatMessage, str]] = []  # stays empty: every row here is storable
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:  # the default bound's worth of pending rows on top of the done ones
            conn.execute(text("UPDATE inbox SET status = 'pending', processed_at = NULL "
                              "WHERE key IN (SELECT key FROM inbox ORDER BY key LIMIT 1000)"))
            conn.execute(text("VACUUM ANALYZE inbox"))
        engine.dispose()
        results = {}
        waiting = batch("w")
        results["done"] = timed(args.runs, lambda: store.inbox_admit(waiting, full, refused))
        count = iter(range(10**9))
        roomy = InboxBound(per_chat=10**6, total=10**6)
        results["room"] = timed(args.runs, lambda: store.inbox_admit(batch(f"r{next(count)}"), roomy, refused))
        fill(url, args.rows, pending=True)
        results["pending"] = timed(args.runs, lambda: store.inbox_admit(waiting, full, refused))
        with store.engine.connect() as conn:
            results["heartbeat"] = timed(args.runs, lambda: conn.execute(
                text("SELECT count(*) FROM inbox WHERE status = 'pending'")).scalar_one())
        print(f"inbox of {args.rows:,} rows over {CHATS} chats, {args.runs} runs each (median / p95 ms):")
        for name, (median, p95) in results.items():
            print(f"  {name:10s} {median:7.2f} / {p95:7.2f}")
    finally:
        store.dispose()
        dbs.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
