"""Several bot instances on one PostgreSQL: shared work, one poller, one decision per token, one budget.

Everything two instances could disagree on is decided by PostgreSQL, in a
single statement, never by a per-process cache:

* **work** (``claim``): a pending ``inbox`` row is claimed with
  ``FOR UPDATE SKIP LOCKED`` by whichever instance has room in its queue; the
  claim carries an expiry (``claim_ttl_seconds``, database clock) that the
  holder renews every third of it. A claim of an instance that died (or lost
  the database) lapses and the next claimer takes the row over, counted in
  ``hux_bot_claims_expired_total``. PostgreSQL itself is the queue: a queue
  library (pgmq, procrastinate) would add a second schema, a worker model of
  its own and an extension to install, for what one ``UPDATE ... SKIP LOCKED``
  does here;
* **leadership** (``lead``): a lease row ``leases['leader']`` (not an advisory
  lock: a lock lives and dies with one connection, and a pool that reconnects
  after a database restart would silently drop it). The leader runs the
  sources (Telegram ``getUpdates`` accepts one poller) and renews the lease
  every third of ``leader_lease_seconds``; it steps down by itself when it has
  not renewed for 0.8 of it, before anyone else may take over;
* **tokens** (``SharedGate``): ``token_gate`` holds who looks a token up and
  when it was last decided; taking it is one ``INSERT ... ON CONFLICT DO
  UPDATE ... WHERE`` (free and out of cooldown), so two instances deciding the
  same token at once produce one lookup and one alert. ``sending_at`` is set
  before an alert goes out and cleared once recorded: a row whose holder died
  in between is an alert that may have gone out unrecorded, counted in
  ``hux_alerts_unconfirmed_total`` (at-least-once, with the duplicates shown);
* **upstream budgets** (``SharedBudget``): one token bucket per API in
  ``api_budgets``, taken a token at a time in one statement, so N instances
  together stay within the provider's per-IP limit;
* the **Telegram offset** (``source_offsets``): saved after each accepted
  batch, read by the next leader;
* the **inbox's bound** (``Store.inbox_admit``): what the leader's sources
  accept is counted against the pending rows of every instance, per chat
  (``bot.fairness.chat_queue_capacity``, more are refused) and in all
  (``bot.queue_capacity``, the sources wait), in one transaction under an
  advisory lock; each heartbeat exports the pending count
  (``hux_bot_inbox_pending``). Counted on a partial index, not kept in a
  counter row: every accept and every result of every instance would update
  that one row, and wait on each other for it.

The SQL is PostgreSQL's: SQLite serves one instance, and ``single_instance_lock``
makes a second one on the same file refuse to start.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Awaitable, Callable, Coroutine, NamedTuple, Sequence, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from hux.bot.messages import ChatMessage
from hux.bot.metrics import BotMetrics
from hux.bot.store import (
    CALL_HORIZONS,
    OUTAGE,
    TokenResult,
    alerts,
    call_check_rows,
    call_checks,
    classify,
    create_db_engine,
    decision_row,
    decisions,
    delivery_rows,
    describe_refusal,
)

log = logging.getLogger("hux.bot.cluster")
T = TypeVar("T")

#: The database clock in seconds: every expiry is compared on one clock, whatever the instances' clocks say.
_NOW = "extract(epoch from clock_timestamp())::float8"
#: Instances whose heartbeat is older than this are forgotten (the live count only looks one claim_ttl back).
FORGET_INSTANCES_SECONDS = 86_400.0
LEADER = "leader"


def is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


class SingleInstanceError(RuntimeError):
    """A second instance on a SQLite database."""


def single_instance_lock(database: Path) -> IO[str]:
    """Hold an exclusive lock beside a SQLite database for the process's life; refuse a second instance.

    ``flock`` goes with the process (``kill -9`` included), so a crashed bot never blocks the next start.
    """
    path = database.with_name(database.name + ".instance.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = fh.read().strip()[:80] or "another process"
        fh.close()
        raise SingleInstanceError(
            f"another bot instance ({holder}) already runs on the SQLite database {database}; SQLite serves one "
            "instance: stop that one, or set bot.database_url to a PostgreSQL database to run several"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    return fh


class Heartbeat(NamedTuple):
    held: int     # claims this instance holds
    live: int     # instances whose heartbeat is within the claim time
    swept: int    # alerts found being sent by an instance that stopped (unconfirmed)
    pending: int  # the inbox's pending rows (hux_bot_inbox_pending)


@dataclass(frozen=True)
class Claimed:
    messages: list[ChatMessage]
    taken_over: int  # of them, rows whose earlier claim had lapsed


class Coordinator:
    """The cluster's SQL (PostgreSQL), synchronous; ``Cluster`` runs it on threads of its own."""

    def __init__(self, url: str, instance_id: str, *, claim_ttl: float, lease_ttl: float,
                 engine: Engine | None = None, call_horizons: Sequence[tuple[str, float]] = CALL_HORIZONS) -> None:
        self.engine = engine or create_db_engine(url)
        self.call_horizons = tuple(call_horizons)  # an alert's re-checks, stored with its decision
        self.me = instance_id
        self.claim_ttl = claim_ttl
        self.lease_ttl = lease_ttl

    def _run(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.begin() as conn:
            result = conn.execute(text(sql), {"me": self.me, **params})
            return list(result.all()) if result.returns_rows else [result.rowcount]

    # -- instances ----------------------------------------------------------------------
    def heartbeat(self) -> Heartbeat:
        """Renew this instance's claims and say it is alive; count the inbox's pending rows."""
        with self.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO instances (id, started_at, heartbeat_at) VALUES (:me, {_NOW}, {_NOW}) "
                              f"ON CONFLICT (id) DO UPDATE SET heartbeat_at = {_NOW}"), {"me": self.me})
            held = conn.execute(text(f"UPDATE inbox SET claim_expires = {_NOW} + :ttl "
                                     "WHERE claimed_by = :me AND status = 'pending'"),
                                {"me": self.me, "ttl": self.claim_ttl}).rowcount
            conn.execute(text(f"UPDATE token_gate SET lease_until = {_NOW} + :ttl WHERE holder = :me"),
                         {"me": self.me, "ttl": self.claim_ttl})
            live: int = conn.execute(text(f"SELECT count(*) FROM instances WHERE heartbeat_at > {_NOW} - :ttl"),
                                {"ttl": self.claim_ttl}).scalar_one()
            swept = conn.execute(text(
                f"UPDATE token_gate SET holder = NULL, lease_until = NULL, sending_at = NULL "
                f"WHERE sending_at IS NOT NULL AND lease_until < {_NOW}")).rowcount
            conn.execute(text(f"DELETE FROM instances WHERE heartbeat_at < {_NOW} - :forget"),
                         {"forget": FORGET_INSTANCES_SECONDS})
            # On the partial index of pending rows: as many index entries as are pending (at most about the bound).
            pending: int = conn.execute(text("SELECT count(*) FROM inbox WHERE status = 'pending'")).scalar_one()
        return Heartbeat(int(held or 0), int(live), int(swept or 0), int(pending))

    def leave(self) -> None:
        """A clean stop: hand leadership and claims back at once instead of letting them lapse."""
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE leases SET expires_at = 0 WHERE name = :name AND holder = :me"),
                         {"me": self.me, "name": LEADER})
            conn.execute(text("UPDATE inbox SET claimed_by = NULL, claim_expires = NULL "
                              "WHERE claimed_by = :me AND status = 'pending'"), {"me": self.me})
            conn.execute(text("UPDATE token_gate SET holder = NULL, lease_until = NULL "
                              "WHERE holder = :me AND sending_at IS NULL"), {"me": self.me})
            conn.execute(text("DELETE FROM instances WHERE id = :me"), {"me": self.me})

    # -- leadership ----------------------------------------------------------------------
    def lead(self) -> int | None:
        """Take or renew the leader lease; its epoch when this instance leads, else None."""
        rows = self._run(
            f"INSERT INTO leases (name, holder, expires_at, epoch) VALUES (:name, :me, {_NOW} + :ttl, 1) "
            f"ON CONFLICT (name) DO UPDATE SET holder = :me, expires_at = {_NOW} + :ttl, "
            "epoch = leases.epoch + CASE WHEN leases.holder = :me THEN 0 ELSE 1 END "
            f"WHERE leases.holder = :me OR leases.expires_at < {_NOW} RETURNING epoch",
            name=LEADER, ttl=self.lease_ttl)
        return int(rows[0][0]) if rows else None

    # -- work ------------------------------------------------------------------------------
    def claim(self, limit: int) -> Claimed:
        """Up to ``limit`` pending inbox rows nobody holds (or whose claim lapsed), oldest first."""
        rows = self._run(
            "WITH picked AS (SELECT key, claimed_by AS was FROM inbox "
            f"WHERE status = 'pending' AND (claim_expires IS NULL OR claim_expires < {_NOW}) "
            "ORDER BY accepted_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
            f"UPDATE inbox SET claimed_by = :me, claim_expires = {_NOW} + :ttl FROM picked WHERE inbox.key = picked.key "
            "RETURNING inbox.key, inbox.source, inbox.group_name, inbox.text, inbox.sent_at, inbox.accepted_at, picked.was",
            limit=limit, ttl=self.claim_ttl)
        messages = []
        for row in sorted(rows, key=lambda r: r.accepted_at):
            message = ChatMessage(row.key, row.source, row.group_name, row.text, row.sent_at)
            message.accepted_wall = row.accepted_at
            messages.append(message)
        return Claimed(messages, sum(1 for row in rows if row.was is not None))

    # -- tokens ----------------------------------------------------------------------------
    def gate_begin(self, key: str, cooldown: float) -> tuple[bool, bool]:
        """(taken, an earlier holder died while sending its alert)."""
        rows = self._run(
            f"INSERT INTO token_gate (token_key, holder, lease_until) VALUES (:key, :me, {_NOW} + :ttl) "
            f"ON CONFLICT (token_key) DO UPDATE SET holder = :me, lease_until = {_NOW} + :ttl "
            f"WHERE (token_gate.lease_until IS NULL OR token_gate.lease_until < {_NOW}) "
            f"AND (token_gate.decided_at IS NULL OR token_gate.decided_at <= {_NOW} - :cooldown) "
            "RETURNING sending_at",
            key=key, ttl=self.claim_ttl, cooldown=cooldown)
        return (True, rows[0][0] is not None) if rows else (False, False)

    def gate_sending(self, key: str) -> None:
        self._run(f"UPDATE token_gate SET sending_at = {_NOW} WHERE token_key = :key AND holder = :me", key=key)

    def gate_end(self, key: str, decided: bool, record: tuple[str, TokenResult] | None = None) -> None:
        """Release the token; ``decided`` starts its cooldown, and its decision and deliveries (``record``) are
        stored in the same transaction with its call re-checks, so a crash before the batched write leaves no cooldown
        without them."""
        with self.engine.begin() as conn:
            if decided and record is not None:
                message_key, result = record
                conn.execute(postgresql.insert(decisions).on_conflict_do_nothing(), [decision_row(result, message_key)])
                rows = delivery_rows(result, message_key)
                if rows:
                    conn.execute(postgresql.insert(alerts).on_conflict_do_nothing(), rows)
                checks = call_check_rows(result, message_key, self.call_horizons)
                if checks:
                    conn.execute(postgresql.insert(call_checks).on_conflict_do_nothing(), checks)
            conn.execute(text(
                "UPDATE token_gate SET holder = NULL, lease_until = NULL, sending_at = NULL, "
                f"decided_at = CASE WHEN :decided THEN {_NOW} ELSE decided_at END WHERE token_key = :key AND holder = :me"),
                {"me": self.me, "key": key, "decided": decided})

    # -- offsets, budgets --------------------------------------------------------------------
    def load_offset(self, source: str) -> int | None:
        rows = self._run("SELECT value FROM source_offsets WHERE source = :source", source=source)
        return int(rows[0][0]) if rows else None

    def save_offset(self, source: str, value: int) -> None:
        # Only forward: a stale leader's late save must not move the offset back.
        self._run(f"INSERT INTO source_offsets (source, value, updated_at) VALUES (:source, :value, {_NOW}) "
                  f"ON CONFLICT (source) DO UPDATE SET value = greatest(source_offsets.value, :value), updated_at = {_NOW}",
                  source=source, value=value)

    def take_budget(self, api: str, rate: float, burst: float) -> float:
        """One token of ``api``'s shared bucket: 0.0 when taken, else the seconds until one is due."""
        refilled = f"least(:burst, api_budgets.tokens + greatest(0, {_NOW} - api_budgets.updated_at) * :rate)"
        rows = self._run(
            f"INSERT INTO api_budgets (api, tokens, updated_at) VALUES (:api, :burst - 1, {_NOW}) "
            f"ON CONFLICT (api) DO UPDATE SET tokens = {refilled} - 1, updated_at = {_NOW} "
            f"WHERE {refilled} >= 1 RETURNING tokens",
            api=api, rate=rate, burst=burst)
        if rows:
            return 0.0
        rows = self._run(f"SELECT {refilled.replace('api_budgets.', '')} FROM api_budgets WHERE api = :api",
                         api=api, rate=rate, burst=burst)
        have = float(rows[0][0]) if rows else 0.0
        return max(0.001, (1.0 - have) / rate)

    def dispose(self) -> None:
        self.engine.dispose()


class Cluster:
    """This instance's side of the cluster: heartbeat, leadership, claiming work, the shared gate and budgets.

    ``on_lead(stop)`` runs the sources until ``stop`` is set (leadership lost or
    shutdown); ``deliver(messages)`` queues claimed work; ``room()`` says how
    many more messages this instance should hold.
    """

    def __init__(self, coordinator: Coordinator, metrics: BotMetrics, *, poll_interval: float,
                 configured_instances: int, threads: int = 4) -> None:
        self.coord = coordinator
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.leader = False
        self.epoch: int | None = None
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="hux-cluster")
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._term: asyncio.Event | None = None
        self._term_task: asyncio.Task[None] | None = None
        self._renewed = 0.0
        self._error_logged: dict[str, float] = {}
        metrics.cluster_leader.set(0)
        metrics.cluster_claims_held.set(0)
        metrics.cluster_instances_configured.set(configured_instances)
        metrics.registry.register(metrics.cluster_inbox_pending)
        metrics.cluster_instances_live.set(0)
        metrics.alerts_unconfirmed.inc(0)
        metrics.claims_expired.inc(0)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _error(self, what: str, exc: BaseException) -> None:
        """Log a failed cluster call at most once a minute per kind; the loops retry."""
        self.metrics.database_errors.labels(operation="cluster").inc()
        now = time.monotonic()
        if now - self._error_logged.get(what, -60.0) >= 60.0:
            self._error_logged[what] = now
            kind = "unreachable" if classify(exc) in (OUTAGE, None) else "refused"
            log.error("cluster %s failed (database %s: %s); retrying", what, kind, describe_refusal(exc))

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wake(self) -> None:
        """New work in the inbox (this instance just accepted some): claim now, not at the next poll."""
        self._wake.set()

    async def start(self, *, on_lead: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
                    deliver: Callable[[list[ChatMessage]], Awaitable[None]], room: Callable[[], int]) -> None:
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name="hux-cluster-heartbeat"),
            asyncio.create_task(self._leader_loop(on_lead), name="hux-cluster-leader"),
            asyncio.create_task(self._claim_loop(deliver, room), name="hux-cluster-claims"),
        ]

    async def _sleep(self, seconds: float, event: asyncio.Event | None = None) -> bool:
        """Sleep up to ``seconds`` (or until ``event``); True when stopping."""
        waits = [asyncio.ensure_future(self._stop.wait())]
        if event is not None:
            waits.append(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return self._stop.is_set()

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                beat = await self.call(self.coord.heartbeat)
            except Exception as exc:  # noqa: BLE001 - the database is away: claims lapse, others take over
                self._error("heartbeat", exc)
            else:
                self.metrics.cluster_claims_held.set(beat.held)
                self.metrics.cluster_instances_live.set(beat.live)
                self.metrics.cluster_inbox_pending.set(beat.pending)
                if beat.swept:
                    self._unconfirmed(beat.swept)
            if await self._sleep(self.coord.claim_ttl / 3):
                return

    def _unconfirmed(self, count: int) -> None:
        self.metrics.alerts_unconfirmed.inc(count)
        log.warning("%d alert(s) were being sent by an instance that stopped before recording them: they may have "
                    "gone out twice or not at all (hux_alerts_unconfirmed_total); the token is decided again", count)

    async def _leader_loop(self, on_lead: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        interval = self.coord.lease_ttl / 3
        while True:
            try:
                epoch = await self.call(self.coord.lead)
            except Exception as exc:  # noqa: BLE001
                self._error("leader lease", exc)
                if self.leader and time.monotonic() - self._renewed > 0.8 * self.coord.lease_ttl:
                    await self._step_down("its lease could not be renewed (database away)")
            else:
                if epoch is not None:
                    self._renewed = time.monotonic()
                    if not self.leader:
                        self._take_lead(epoch, on_lead)
                elif self.leader:
                    await self._step_down("another instance holds the lease")
            if await self._sleep(interval):
                return

    def _take_lead(self, epoch: int, on_lead: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self.leader, self.epoch = True, epoch
        self.metrics.cluster_leader.set(1)
        self.metrics.cluster_leader_changes.inc()
        log.info("this instance leads (lease epoch %d): it runs the sources", epoch, extra={"instance": self.coord.me})
        self._term = asyncio.Event()
        self._term_task = asyncio.create_task(on_lead(self._term), name="hux-cluster-term")

    async def _step_down(self, why: str) -> None:
        log.warning("this instance no longer leads: %s; its sources stop", why, extra={"instance": self.coord.me})
        self.leader = False
        self.metrics.cluster_leader.set(0)
        if self._term is not None:
            self._term.set()
        if self._term_task is not None:
            await asyncio.gather(self._term_task, return_exceptions=True)
        self._term = self._term_task = None

    async def _claim_loop(self, deliver: Callable[[list[ChatMessage]], Awaitable[None]], room: Callable[[], int]) -> None:
        while True:
            free = room()
            got = 0
            if free > 0:
                try:
                    claimed = await self.call(self.coord.claim, free)
                except Exception as exc:  # noqa: BLE001
                    self._error("claim", exc)
                else:
                    got = len(claimed.messages)
                    if claimed.taken_over:
                        self.metrics.claims_expired.inc(claimed.taken_over)
                        log.warning("took over %d message(s) whose claim had lapsed (an instance stopped or lost the "
                                    "database before finishing them)", claimed.taken_over)
                    if claimed.messages:
                        self.metrics.cluster_claims_held.inc(got)
                        await deliver(claimed.messages)
            if got >= free > 0:
                continue  # more may be waiting: claim again at once
            self._wake.clear()
            if await self._sleep(self.poll_interval, self._wake):
                return

    # -- the shared gate and budgets, the Telegram offset ----------------------------------
    async def load_offset(self, source: str) -> int | None:
        return await self.call(self.coord.load_offset, source)

    async def save_offset(self, source: str, value: int) -> None:
        await self.call(self.coord.save_offset, source, value)

    async def stop(self) -> None:
        """Stop the sources (leadership handed back) and the loops: no new work is claimed."""
        self._stop.set()
        if self.leader:
            await self._step_down("stopping")
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """After the last result is written: hand unfinished claims back at once instead of letting them lapse."""
        try:
            await asyncio.wait_for(self.call(self.coord.leave), timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - they lapse by themselves within the claim time
            self._error("leave", exc)
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, self.coord.dispose)


class SharedGate:
    """``hux.bot.dedupe.Gate`` decided in PostgreSQL (``token_gate``); waits out a database outage.

    A token is never looked up without the database's word: while it is away the
    worker waits (its message's claim lapses and another instance may take it
    over; the gate still lets one of them through).
    """

    def __init__(self, cluster: Cluster, cooldown_seconds: float, *, retry_max: float = 5.0) -> None:
        self.cluster = cluster
        self.cooldown = cooldown_seconds
        self.retry_max = retry_max

    async def _retry(self, what: str, fn: Callable[..., T], *args: Any) -> T | None:
        """``fn`` until the database answers; None once the instance is stopping and a claim time has passed
        (its token's lease lapses by itself: a shutdown must not wait for a database that is away)."""
        delay, started = 0.1, time.monotonic()
        while True:
            try:
                return await self.cluster.call(fn, *args)
            except Exception as exc:  # noqa: BLE001 - wait for the database; the claim's lapse hands the work on
                self.cluster._error(what, exc)
                if self.cluster.stopping and time.monotonic() - started > self.cluster.coord.claim_ttl:
                    return None
                await asyncio.sleep(delay)
                delay = min(self.retry_max, delay * 2)

    async def begin(self, key: str) -> bool:
        answer = await self._retry("token gate", self.cluster.coord.gate_begin, key, self.cooldown)
        if answer is None:  # stopping without the database: the message stays pending for an instance that has it
            raise RuntimeError("the token gate is unreachable (database away) while stopping; the message stays pending")
        taken, orphaned = answer
        if orphaned:
            self.cluster._unconfirmed(1)
        return taken

    async def sending(self, key: str) -> None:
        await self._retry("token gate", self.cluster.coord.gate_sending, key)

    async def end(self, key: str, *, decided: bool, record: tuple[str, TokenResult] | None = None) -> None:
        if record is not None and record[1].outcome == "cooldown":
            record = None  # nothing was decided: the gate was not taken
        await self._retry("token gate", self.cluster.coord.gate_end, key, decided, record)


class SharedBudget:
    """One API's request budget shared by every instance (``api_budgets``), on top of the local limiter.

    If the database is away the local limiter alone paces the calls; the
    instances that still reach it share what is left.
    """

    def __init__(self, cluster: Cluster, api: str, rate_per_second: float, burst: float) -> None:
        self.cluster = cluster
        self.api = api
        self.rate = rate_per_second
        self.burst = max(1.0, burst)

    async def acquire(self) -> None:
        started = time.monotonic()
        while True:
            try:
                wait = await self.cluster.call(self.cluster.coord.take_budget, self.api, self.rate, self.burst)
            except Exception as exc:  # noqa: BLE001
                self.cluster._error("budget", exc)
                return
            if wait <= 0:
                break
            await asyncio.sleep(min(wait, 1.0))
        self.cluster.metrics.api_budget_wait_seconds.labels(api=self.api).inc(time.monotonic() - started)


def instance_id(host: str, port: int) -> str:
    """A name unique among running instances (address, port, pid, machine): a restarted process is a new
    instance. The machine's name tells apart containers (each bot-N of the docker path listens on 0.0.0.0:8000
    as pid 1) and hosts that run a bot on the same port."""
    return f"{host}:{port}:{os.getpid()}@{socket.gethostname()}"[:64]


def settle(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Claimed messages on this process's latency clock, from when any instance accepted them."""
    mono, wall = time.monotonic(), time.time()
    for message in messages:
        message.accepted_at = mono - min(max(0.0, wall - message.accepted_wall), 86_400.0)
    return list(messages)
