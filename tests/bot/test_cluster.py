"""Several instances on one PostgreSQL: the SQL that decides claims, leadership, tokens and budgets.

Each test runs real statements against a fresh PostgreSQL database, with two or
three ``Coordinator``s standing for instances; the process-level drills (three
``hux bot run`` processes, kill -9 of the leader, a database restart) are in
``test_cluster_drill.py``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hux.bot.cluster import Coordinator, SingleInstanceError, single_instance_lock
from hux.bot.config import BotConfig
from hux.bot.messages import ChatMessage
from hux.bot.store import Store
from hux.config import ConfigError


def _store(url: str) -> Store:
    store = Store(url)
    store.migrate()
    return store


def _messages(n: int, prefix: str = "m") -> list[ChatMessage]:
    out = []
    for i in range(n):
        m = ChatMessage(f"replay:{prefix}{i}", "replay", "g", f"text {i}", 1_700_000_000.0 + i)
        m.accepted_wall = 1_700_000_000.0 + i
        out.append(m)
    return out


@pytest.fixture
def cluster_db(pg_database):
    url = pg_database()
    store = _store(url)
    coords: list[Coordinator] = []

    def make(name: str, *, claim_ttl: float = 30.0, lease_ttl: float = 30.0) -> Coordinator:
        c = Coordinator(url, name, claim_ttl=claim_ttl, lease_ttl=lease_ttl)
        coords.append(c)
        return c

    yield store, make
    for c in coords:
        c.dispose()
    store.dispose()


def test_concurrent_claims_are_disjoint_and_cover_every_pending_row(cluster_db) -> None:
    store, make = cluster_db
    store.inbox_add(_messages(300))
    coords = [make(f"i{n}") for n in range(3)]
    got: dict[str, list[str]] = {c.me: [] for c in coords}

    barrier = threading.Barrier(3)

    def drain(c: Coordinator) -> None:
        barrier.wait()
        while True:
            claimed = c.claim(7)
            if not claimed.messages:
                return
            got[c.me] += [m.key for m in claimed.messages]
            time.sleep(0.005)  # the work

    threads = [threading.Thread(target=drain, args=(c,)) for c in coords]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    keys = [k for ks in got.values() for k in ks]
    assert len(keys) == 300 and len(set(keys)) == 300          # every row once, none twice
    assert all(got[c.me] for c in coords)                       # each instance got a share


def test_a_lapsed_claim_returns_to_the_pool_and_is_counted_as_taken_over(cluster_db) -> None:
    store, make = cluster_db
    store.inbox_add(_messages(5))
    dead, alive = make("dead", claim_ttl=1.0), make("alive", claim_ttl=1.0)
    assert len(dead.claim(10).messages) == 5
    assert alive.claim(10).messages == []                       # held: nothing to take
    time.sleep(1.2)                                             # the dead one never renews
    again = alive.claim(10)
    assert len(again.messages) == 5 and again.taken_over == 5


def test_a_renewed_claim_is_kept_and_a_finished_row_is_never_claimed(cluster_db) -> None:
    store, make = cluster_db
    msgs = _messages(4)
    store.inbox_add(msgs)
    holder, other = make("holder", claim_ttl=1.0), make("other", claim_ttl=1.0)
    assert len(holder.claim(10).messages) == 4
    for _ in range(3):
        time.sleep(0.4)
        held, live, *_ = holder.heartbeat()
        assert held == 4 and live == 1
    assert other.claim(10).messages == []
    from hux.bot.store import MessageResult
    store.write_results([MessageResult(m, [], time.time()) for m in msgs[:2]])
    assert holder.heartbeat()[0] == 2                           # done rows are no longer held
    holder.leave()                                              # a clean stop hands the rest back at once
    assert sorted(m.key for m in other.claim(10).messages) == sorted(m.key for m in msgs[2:])


def test_one_leader_at_a_time_and_a_takeover_once_its_lease_lapses(cluster_db) -> None:
    _, make = cluster_db
    a, b, c = (make(n, lease_ttl=1.0) for n in "abc")
    epoch = a.lead()
    assert epoch is not None and b.lead() is None and c.lead() is None
    assert a.lead() == epoch                                    # renewing keeps the epoch
    time.sleep(1.2)
    new = b.lead()
    assert new == epoch + 1 and c.lead() is None and a.lead() is None
    b.leave()                                                   # resigning: the next one need not wait
    assert c.lead() == epoch + 2


def test_two_instances_deciding_one_token_at_once_take_it_once(cluster_db) -> None:
    _, make = cluster_db
    coords = [make(f"i{n}") for n in range(3)]
    results: list[bool] = []
    barrier = threading.Barrier(3)

    def race(c: Coordinator) -> None:
        barrier.wait()
        results.append(c.gate_begin("solana:TOKEN", 60.0)[0])

    threads = [threading.Thread(target=race, args=(c,)) for c in coords]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False, False, True]


def test_cooldown_and_a_failed_lookup_are_decided_in_the_database(cluster_db) -> None:
    _, make = cluster_db
    a, b = make("a"), make("b")
    assert a.gate_begin("evm:0x1", 60.0) == (True, False)
    a.gate_end("evm:0x1", False)                                # failed: no cooldown, the next mention retries
    assert b.gate_begin("evm:0x1", 60.0) == (True, False)
    b.gate_end("evm:0x1", True)                                 # decided: cooldown from now
    assert a.gate_begin("evm:0x1", 60.0) == (False, False)
    assert a.gate_begin("evm:0x1", 0.0) == (True, False)        # no cooldown configured


def test_a_holder_that_dies_while_sending_is_detected(cluster_db) -> None:
    _, make = cluster_db
    dead, alive = make("dead", claim_ttl=1.0), make("alive", claim_ttl=1.0)
    assert dead.gate_begin("solana:X", 60.0)[0]
    dead.gate_sending("solana:X")                               # ... and never records it
    assert alive.gate_begin("solana:X", 60.0) == (False, False)  # still held
    time.sleep(1.2)
    assert alive.heartbeat()[2] == 1                            # swept: one unconfirmed alert
    assert alive.gate_begin("solana:X", 60.0) == (True, False)  # decided again, once


def test_the_shared_budget_never_exceeds_its_rate_across_instances(cluster_db) -> None:
    _, make = cluster_db
    coords = [make(f"i{n}") for n in range(3)]
    rate, burst = 20.0, 2.0
    taken: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 2.0

    def spend(c: Coordinator) -> None:
        while time.monotonic() < stop_at:
            wait = c.take_budget("dexscreener", rate, burst)
            if wait == 0.0:
                with lock:
                    taken.append(time.monotonic())
            else:
                time.sleep(min(wait, 0.05))

    threads = [threading.Thread(target=spend, args=(c,)) for c in coords]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # At most burst + rate * elapsed in any window (a token bucket), whoever asks.
    assert len(taken) <= burst + rate * 2.0 + 1
    assert len(taken) >= rate * 2.0 * 0.7                       # and the budget is used, not starved
    taken.sort()
    for i, t in enumerate(taken):
        in_window = sum(1 for u in taken[i:] if u - t <= 0.5)
        assert in_window <= burst + rate * 0.5 + 1


def test_the_offset_only_moves_forward(cluster_db) -> None:
    _, make = cluster_db
    a, b = make("a"), make("b")
    assert a.load_offset("telegram") is None
    a.save_offset("telegram", 120)
    b.save_offset("telegram", 100)                              # a stale leader's late save
    assert b.load_offset("telegram") == 120


def test_a_second_instance_on_one_sqlite_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "bot" / "hux.db"
    first = single_instance_lock(db)
    with pytest.raises(SingleInstanceError) as err:
        single_instance_lock(db)
    assert "PostgreSQL" in str(err.value) and "stop that one" in str(err.value) and str(db) in str(err.value)
    first.close()
    single_instance_lock(db).close()                            # free again once the first one is gone


def test_several_instances_need_postgresql() -> None:
    with pytest.raises(ValueError, match="needs bot.database_url on PostgreSQL"):
        BotConfig.model_validate({"instances": 2, "database_url": "sqlite:////tmp/x.db"})
    assert BotConfig.model_validate({"instances": 3, "database_url": "postgresql+psycopg://u@h/db"}).instances == 3
    assert issubclass(SingleInstanceError, RuntimeError) and ConfigError


def test_a_second_bot_process_on_the_same_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.bot.test_run import BotProcess, bot_env

    env = bot_env(tmp_path, HUX__BOT__PORT="0", HUX__BOT__DEMO__DOUBLES_PORT="0")
    first = BotProcess(tmp_path, env)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "data" / "bot" / "hux.db.instance.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        second = subprocess.run([sys.executable, "-m", "hux.cli", "bot", "run"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        said = second.stderr + second.stdout
        assert "already runs on the SQLite database" in said and "PostgreSQL" in said, said
        assert first.proc.poll() is None                        # the first one is untouched
    finally:
        first.stop()


def test_a_decision_is_stored_with_its_cooldown_so_a_crash_before_the_batched_write_loses_nothing(cluster_db) -> None:
    from sqlalchemy import func, select

    from hux.bot.store import CALL_HORIZONS, MessageResult, TokenResult, alerts, call_checks, decisions

    store, make = cluster_db
    a = make("a")
    message = _messages(1)[0]
    store.inbox_add([message])
    result = TokenResult("solana:T", "T", "solana", "solana", "alerted", time.time(), score=88.0,
                         price_usd=0.5, liquidity_usd=50_000.0, deliveries={"telegram": True})
    assert a.gate_begin("solana:T", 60.0)[0]
    a.gate_end("solana:T", True, (message.key, result))        # ... and the instance dies before writing its batch
    with store.engine.connect() as conn:
        assert conn.execute(select(decisions.c.outcome, decisions.c.score)).all() == [("alerted", 88.0)]
        assert conn.execute(select(alerts.c.channel, alerts.c.outcome)).all() == [("telegram", "success")]
        # the alert's re-checks too: a call whose instance died is still tracked
        assert sorted(conn.execute(select(call_checks.c.horizon, call_checks.c.channels)).all()) == sorted(
            (label, "telegram") for label, _ in CALL_HORIZONS)
    store.write_results([MessageResult(message, [result], time.time())])  # the batch arriving after all: no second row
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(decisions)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(alerts)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(call_checks)).scalar_one() == len(CALL_HORIZONS)


def test_the_instance_id_names_the_machine_so_containers_on_one_address_differ() -> None:
    import os
    import socket

    from hux.bot.cluster import instance_id

    # every bot-N container of the docker path listens on 0.0.0.0:8000 as pid 1: only the hostname differs
    assert instance_id("0.0.0.0", 8000) == f"0.0.0.0:8000:{os.getpid()}@{socket.gethostname()}"[:64]
    assert len(instance_id("0.0.0.0", 8000)) <= 64   # the instances.id / claimed_by column


def _chat_messages(chat: int, n: int, start: int = 0) -> list[ChatMessage]:
    """``n`` Telegram messages of one chat (keys carry its id, as the Bot API source makes them)."""
    out = []
    for i in range(start, start + n):
        m = ChatMessage(f"telegram:{chat}:{i}", "telegram", f"chat {chat}", f"text {i}", 1_700_000_000.0 + i)
        out.append(m)
    return out


def _pending(store: Store) -> dict[str, int]:
    from sqlalchemy import func, select

    from hux.bot.store import inbox
    with store.engine.connect() as conn:
        rows = conn.execute(select(inbox.c.chat, func.count()).where(inbox.c.status == "pending")
                            .group_by(inbox.c.chat)).all()
    return {str(chat): int(count) for chat, count in rows}


def test_the_shared_inbox_admits_per_chat_and_in_total_and_holds_the_rest_back(cluster_db) -> None:
    from hux.bot.store import InboxBound, MessageResult

    store, _ = cluster_db
    bound = InboxBound(per_chat=5, total=12)
    flood, quiet = _chat_messages(-100, 9), _chat_messages(-200, 4)
    refused: list = []
    first = store.inbox_admit(flood + quiet, bound, refused)
    assert [m.key for m in first.fresh] == [m.key for m in flood[:5] + quiet]  # in order
    assert [m.key for m in first.backlog] == [m.key for m in flood[5:]]           # the chat is full: refused
    assert first.waiting == [] and refused == []
    assert _pending(store) == {"telegram:-100": 5, "telegram:-200": 4}
    # A redelivery is neither counted nor refused; a third chat fills the inbox to its total and then waits.
    third = _chat_messages(-300, 5)
    second = store.inbox_admit(flood[:5] + third, bound, refused)
    assert [m.key for m in second.fresh] == [m.key for m in third[:3]]
    assert second.backlog == [] and [m.key for m in second.waiting] == [m.key for m in third[3:]]
    assert sum(_pending(store).values()) == 12
    # Still full: nothing goes in, nothing is refused; a decided message makes room for exactly one.
    assert store.inbox_admit(third[3:], bound, refused).waiting == third[3:]
    store.write_results([MessageResult(quiet[0], [], time.time())])
    again = store.inbox_admit(third[3:], bound, refused)
    assert [m.key for m in again.fresh] == [third[3].key] and again.waiting == [third[4]]
    assert sum(_pending(store).values()) == 12


def test_instances_admitting_at_once_never_pass_the_bound(cluster_db) -> None:
    from hux.bot.store import InboxBound

    store, _ = cluster_db
    stores = [Store(store.url) for _ in range(3)]  # three instances, three connection pools
    bound = InboxBound(per_chat=20, total=50)
    barrier = threading.Barrier(3)
    outcome: dict[int, tuple[int, int, int]] = {}

    def admit(i: int) -> None:
        barrier.wait()
        fresh = backlog = waiting = 0
        for batch in range(6):  # each instance: chats -1 (shared by all) and its own, 10 messages a batch
            messages = _chat_messages(-1, 5, start=i * 100 + batch * 5) + _chat_messages(-10 - i, 5, start=batch * 5)
            got = stores[i].inbox_admit(messages, bound, [])
            fresh, backlog, waiting = fresh + len(got.fresh), backlog + len(got.backlog), waiting + len(got.waiting)
        outcome[i] = (fresh, backlog, waiting)

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in stores:
        s.dispose()
    pending = _pending(store)
    assert sum(pending.values()) == 50 == sum(f for f, _, _ in outcome.values())
    assert all(count <= 20 for count in pending.values()) and pending["telegram:-1"] == 20
    assert sum(b for _, b, _ in outcome.values()) == 90 - 20        # the shared chat: every message beyond 20 refused


def test_the_migration_gives_pending_rows_their_chat(cluster_db) -> None:
    from sqlalchemy import text

    store, _ = cluster_db
    store.inbox_add(_chat_messages(-100, 3) + _messages(2))
    with store.engine.begin() as conn:  # a database from before migration 8
        conn.execute(text("UPDATE inbox SET chat = NULL"))
        conn.execute(text("DELETE FROM schema_version WHERE version = 8"))
    assert store.migrate() == [8]
    assert _pending(store) == {"telegram:-100": 3, "replay:g": 2}
