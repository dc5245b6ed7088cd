"""The asynchronous side of the store: durable intake, held writes, the DB probe.

The database can go away at any moment. Nothing accepted is lost because:

* **intake** writes each batch to the ``inbox`` table before sources
  acknowledge; while the database is unreachable it appends to a local spool
  file instead (``data/bot/spool/intake.jsonl``, fsync'ed), drained into the
  inbox once the database is back;
* **results** (what the workers decided) are held in memory and written in
  batches; a failed write keeps them and retries with backoff. Beyond
  ``max_pending_writes`` held results, workers wait (back-pressure) rather
  than drop anything. A failed write is told by its error (``store.classify``):
  a connection that is gone or cannot be made is an outage (the results are
  *held*, which ``hux_database_up`` and BotDatabaseDown report, not a failed
  ``persist`` stage); a database that answered and refused the write is a
  failed ``persist`` stage (BotHighErrorRate{stage="persist"} reports that).
  Only an error that is no driver error is followed by a probe. One fault,
  one page. A result whose rows the database refuses while the rest of its
  batch goes in is a rejected message: counted once, its inbox row marked
  ``rejected`` with why (``MARK_ATTEMPTS`` tries), never processed again;
* a **probe** (``SELECT 1`` every ``db_probe_interval_seconds``) keeps
  ``hux_database_up`` current and wakes the writer as soon as the database
  answers again.

Every database call runs on one dedicated thread, so writes, spool and
migrations never interleave; the probe has its own thread so a slow write does
not make the database look down.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Callable, Sequence, TypeVar

from hux.bot.messages import ChatMessage
from hux.bot.metrics import PRUNED_TABLES, BotMetrics
from hux.bot.store import (
    HISTORY_TABLES,
    OUTAGE,
    REFUSED,
    ROW,
    Admission,
    InboxBound,
    MessageResult,
    Refusals,
    Store,
    classify,
    describe_refusal,
    split_storable,
)

log = logging.getLogger("hux.bot.store")
T = TypeVar("T")

#: ``operation`` label values of ``hux_database_errors_total``.
DB_OPERATIONS = ("probe", "migrate", "intake", "write", "recover", "prune", "calls", "cluster", "admin")
WRITE_BATCH = 500
#: Tries to mark a refused message ``rejected`` in the inbox before giving up with one log line.
MARK_ATTEMPTS = 5
#: Seconds between log lines about the same operation refused by a database that answers.
REFUSAL_LOG_SECONDS = 60.0


class Spool:
    """Append-only JSONL of messages accepted while the database was away.

    Appends go to ``intake.jsonl``. Draining first renames it to a unique
    ``intake.<n>.draining`` file (a quick step under the lock), then moves
    that file's messages into the database without holding the lock, so a
    database that hangs never blocks new appends, and an append can never
    slip between reading and deleting.

    Bots that share a home keep one spool each (``intake-<port>.jsonl`` when
    ``bot.instances`` > 1). While a bot runs it holds an flock on its spool's
    ``.lock`` file; at start it takes over the spools whose lock is free, so a
    spool left by ``intake.jsonl`` before the instance count went up (or by
    ``intake-8001.jsonl`` after it went down) is drained, never forgotten.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._owner: IO[str] | None = None
        self._held_elsewhere = False
        self._names = itertools.count()

    @staticmethod
    def _stem(path: Path) -> str:
        return path.name.split(".", 1)[0]

    def _lock_file(self, stem: str) -> IO[str] | None:
        """``<stem>.lock`` opened and flock'ed, or None while a running bot holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(os.open(self.path.parent / f"{stem}.lock", os.O_RDWR | os.O_CREAT, 0o600), "r+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return None
        return fh

    def hold(self) -> None:
        """Mark this spool as owned by a running bot (until ``release``), so no other bot takes it over.

        A spool directory that cannot be written yet is not fatal: the next append tries again (and
        fails loudly there, where the caller keeps the work)."""
        if self._owner is not None or self._held_elsewhere:
            return
        try:
            self._owner = self._lock_file(self._stem(self.path))
        except OSError as exc:
            log.warning("cannot lock the spool %s yet (%s); trying again at the next append", self.path, exc.strerror)
            return
        if self._owner is None:
            self._held_elsewhere = True
            log.warning("another running bot holds the spool %s; check that no two bots use the same port "
                        "and home", self.path)

    def release(self) -> None:
        if self._owner is not None:
            self._owner.close()
            self._owner = None

    def adopt_orphans(self) -> int:
        """Take over the spool files of bots that no longer run (their lock is free); returns how many."""
        if not self.path.parent.is_dir():
            return 0
        own = self._stem(self.path)
        stems = {self._stem(p) for p in self.path.parent.iterdir()
                 if p.suffix in (".jsonl", ".draining") and self._stem(p) != own}
        taken = 0
        for stem in sorted(stems):
            owner = self._lock_file(stem)
            if owner is None:   # that bot is running: its spool is its own
                continue
            try:
                for orphan in sorted(self.path.parent.glob(f"{stem}.*")):
                    if orphan.suffix in (".jsonl", ".draining"):
                        os.replace(orphan, self.path.with_name(
                            f"{own}.{time.time_ns()}{next(self._names):04d}.draining"))
                        taken += 1
            finally:
                owner.close()
        if taken:
            log.info("took over %d spool file(s) of bots no longer running; they are drained like this bot's own",
                     taken, extra={"spool": str(self.path)})
        return taken

    def append(self, messages: Sequence[ChatMessage]) -> None:
        data = "".join(json.dumps(m.to_record(), ensure_ascii=False) + "\n" for m in messages).encode("utf-8")
        self.hold()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Chat texts: 0600, like the database they wait for.
            with os.fdopen(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())

    def _draining(self) -> list[Path]:
        return sorted(self.path.parent.glob(f"{self.path.stem}.*.draining")) if self.path.parent.exists() else []

    def files(self) -> list[Path]:
        """Every spool file, oldest first.

        Listed under the lock ``take`` seals under: outside it, a file sealed between looking at the
        sealed files and at the open one was missed, so a spool being drained could look empty."""
        with self._lock:
            return self._files()

    def _files(self) -> list[Path]:
        return self._draining() + ([self.path] if self.path.exists() else [])

    def take(self) -> list[Path]:
        """Seal the current spool for draining; returns every sealed file."""
        with self._lock:
            if self.path.exists() and self.path.stat().st_size > 0:
                os.replace(self.path, self.path.with_name(f"{self.path.stem}.{time.time_ns()}.draining"))
        return self._draining()

    @staticmethod
    def read_file(path: Path) -> list[ChatMessage]:
        out = []
        try:
            with open(path, "rb") as fh:
                for line in fh:
                    try:
                        out.append(ChatMessage.from_record(json.loads(line)))
                    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
                        # A torn last line from a crash mid-append: that batch was never acknowledged.
                        log.warning("spool line unreadable, skipped", extra={"spool": str(path)})
        except FileNotFoundError:
            pass
        return out

    def read(self) -> list[ChatMessage]:
        return [m for path in self.files() for m in self.read_file(path)]

    def __bool__(self) -> bool:
        with self._lock:
            for path in self._files():
                try:
                    if path.stat().st_size > 0:
                        return True
                except FileNotFoundError:   # a sealed file the drain has finished with: its messages are in
                    continue
        return False


class Persistence:
    def __init__(
        self,
        store: Store,
        metrics: BotMetrics,
        *,
        spool_path: Path,
        probe_interval: float = 5.0,
        retry_max: float = 10.0,
        max_pending: int = 20_000,
        inbox_retention_seconds: float = 86_400.0,
        retention_seconds: float | None = None,
        prune_batch_rows: int = 1000,
        prune_interval: float = 600.0,
        flush_interval: float = 0.05,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.spool = Spool(spool_path)
        self.spool.hold()
        self.probe_interval = probe_interval
        self.retry_max = retry_max
        self.max_pending = max_pending
        self.inbox_retention_seconds = inbox_retention_seconds
        self.retention_seconds = retention_seconds  # tokens, mentions, decisions, alerts, call checks; None: kept
        self.prune_batch_rows = prune_batch_rows
        self.prune_interval = prune_interval
        self.flush_interval = flush_interval
        self.database_up = False
        self.migrated = False
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="hux-db-write")
        self._probe_thread = ThreadPoolExecutor(1, thread_name_prefix="hux-db-probe")
        self._spool_thread = ThreadPoolExecutor(1, thread_name_prefix="hux-spool")
        self._pending: list[MessageResult] = []
        self._unmarked: list[tuple[ChatMessage, str, int]] = []  # refused results to mark rejected: why, attempts
        self._refusal_logged: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._room = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._stop_event = asyncio.Event()
        self._last_prune = 0.0
        self._refusing = False
        for op in DB_OPERATIONS:
            metrics.database_errors.labels(operation=op)
        for table in PRUNED_TABLES:
            metrics.database_rows_pruned.labels(table=table)
        metrics.database_up.set(0)
        metrics.database_pending_writes.set_function(lambda: len(self._pending))

    # -- plumbing ----------------------------------------------------------------------
    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, fn, *args)

    async def store_call(self, operation: str, fn: Callable[..., T], *args: Any) -> T | None:
        """``fn(*args)`` (a ``Store`` method) on the writer thread; None when the database is away or
        refuses it (counted under ``operation``, one of ``DB_OPERATIONS``): the caller tries again later."""
        if not self.migrated or not self.database_up:
            return None
        try:
            return await self._on_writer(fn, *args)
        except Exception as exc:  # noqa: BLE001 - any driver error means "not now"
            self._db_error(operation, exc)
            return None

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.metrics.database_errors.labels(operation=operation).inc()
        if self.database_up:
            log.error("database unreachable: %s; holding work until it is back", _brief(exc), extra={"operation": operation})
        self._set_up(False)

    def _db_error(self, operation: str, exc: BaseException) -> None:
        """A failed call other than a result write: an outage, or a database that answers and refuses it.

        A refusal is counted without calling the database down (it answers, a
        down flag would page BotDatabaseDown and flap with the probe); the
        caller keeps the work (spool, pending rows) as it would in an outage.
        """
        if classify(exc) not in (REFUSED, ROW):
            self._failed(operation, exc)
            return
        self.metrics.database_errors.labels(operation=operation).inc()
        now = time.monotonic()
        if now - self._refusal_logged.get(operation, -REFUSAL_LOG_SECONDS) >= REFUSAL_LOG_SECONDS:
            self._refusal_logged[operation] = now
            log.error("database answers but refused %s: %s; the work is kept and retried; check the database's "
                      "log, free space and the bot role's privileges", operation, _brief(exc), extra={"operation": operation})

    async def _kind(self, exc: BaseException) -> str:
        """What a failed write means; only an error that is no driver error asks the database whether it answers."""
        kind = classify(exc)
        if kind is None:
            kind = REFUSED if await self._ping() is None else OUTAGE
        return kind

    def _refused(self, count: int, exc: BaseException) -> None:
        """The database answers but refused a write: the results stay held, the persist stage failed."""
        self.metrics.database_errors.labels(operation="write").inc()
        self.metrics.stage_results.labels(stage="persist", outcome="failure").inc(count)
        if not self._refusing:  # once per episode: retries with backoff would flood the log
            log.error("database refused a write of %d results: %s; holding them and retrying; check the "
                      "database's log, free space and the bot role's privileges", count, _brief(exc))
        self._refusing = True

    def _rejected(self, refused: Refusals) -> None:
        """Messages the database refused (or no column can hold): each one rejected and counted, never an outage."""
        for message, why in refused:
            self.metrics.messages_rejected.labels(source=message.source, reason="unstorable").inc()
            log.warning("message refused", extra={"source": message.source, "reason": "unstorable", "where": message.key,
                                                  "detail": f"the database cannot store it ({why})"})

    def _set_up(self, up: bool) -> None:
        if up and not self.database_up:
            log.info("database reachable", extra={"pending_writes": len(self._pending)})
            self._wake.set()
        self.database_up = up
        self.metrics.database_up.set(1 if up else 0)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, *, attempts: int = 3) -> None:
        """Migrate (retrying briefly) and start the writer and probe. A database still down keeps being retried."""
        for attempt in range(attempts):
            if await self._try_migrate():
                break
            await asyncio.sleep(min(2.0, 0.5 * 2**attempt))
        if not self.migrated:
            log.error("database not reachable at start; accepting into the spool and retrying every %.0f s", self.probe_interval)
        self._tasks = [
            asyncio.create_task(self._writer_loop(), name="hux-db-writer"),
            asyncio.create_task(self._probe_loop(), name="hux-db-probe"),
        ]

    async def _try_migrate(self) -> bool:
        try:
            applied = await self._on_writer(self.store.migrate)
        except Exception as exc:  # noqa: BLE001 - any driver error means "not now"
            self._failed("migrate", exc)
            return False
        if applied:
            log.info("database schema migrated", extra={"versions": applied})
        self.migrated = True
        self._set_up(True)
        return True

    async def recover(self) -> list[ChatMessage]:
        """Messages accepted earlier but never finished: the inbox's pending rows and the spool."""
        found: dict[str, ChatMessage] = {}
        await self._on_writer(self.spool.adopt_orphans)
        spooled = await self._on_writer(self.spool.read)
        if self.migrated:
            try:
                await self._on_writer(self._drain_spool)
                pending = await self._on_writer(self.store.inbox_pending)
            except Exception as exc:  # noqa: BLE001
                self._db_error("recover", exc)
            else:
                # Drained: every spooled message is now a pending row (below), or was refused and counted.
                spooled = []
                for message in pending:
                    found[message.key] = message
        for message in spooled:
            found.setdefault(message.key, message)
        if found:
            log.info("recovering %d accepted messages not yet processed", len(found))
        return list(found.values())

    async def recent_decisions(self, since: float) -> list[tuple[str, float]]:
        if not self.migrated:
            return []
        try:
            return await self._on_writer(self.store.recent_decisions, since)
        except Exception as exc:  # noqa: BLE001
            self._failed("recover", exc)
            return []

    async def close(self, timeout: float = 10.0) -> None:
        """Flush held results (up to ``timeout``) and stop. What cannot be written stays in inbox/spool."""
        self._wake.set()
        deadline = time.monotonic() + timeout
        while (self._pending or self._unmarked) and time.monotonic() < deadline and self.database_up:
            await asyncio.sleep(0.05)
        # Stop the loops by flag, not by cancelling mid-write: a write in flight finishes first.
        self._stopped = True
        self._wake.set()
        self._stop_event.set()
        done, pending = await asyncio.wait(self._tasks, timeout=5.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pending:
            log.warning("%d processed results not written; their messages will be processed again at next start", len(self._pending))
        if self._unmarked:
            log.warning("%d refused messages not marked rejected; they will be processed (and refused) again at next start",
                        len(self._unmarked))
        self._writer_thread.shutdown(wait=True)
        self._probe_thread.shutdown(wait=False, cancel_futures=True)
        self._spool_thread.shutdown(wait=True)
        self.spool.release()
        await asyncio.get_running_loop().run_in_executor(None, self.store.dispose)

    def _drain_spool(self) -> int:
        """Sealed spool files -> inbox (pending), each file deleted once its messages are in."""
        moved = 0
        for path in self.spool.take():
            messages = self.spool.read_file(path)
            refused: Refusals = []
            if messages:
                self.store.inbox_add(messages, refused)
            self._rejected(refused)  # a refused message must not hold the rest of the spool back
            path.unlink(missing_ok=True)
            moved += len(messages) - len(refused)
        return moved

    # -- intake --------------------------------------------------------------------------
    async def accept(self, messages: Sequence[ChatMessage], bound: InboxBound | None = None) -> Admission:
        """Make ``messages`` durable; ``fresh``: the new ones. Raises only if neither DB nor spool takes them.

        With ``bound`` (several instances share the inbox) only what it has room
        for is written (``Store.inbox_admit``); while the database is away nothing
        can be counted and the batch goes to the spool, whose drain writes it
        whatever the bound then says: it was accepted. A message no column can
        hold, or whose row the database refuses, is rejected (counted, reason
        ``unstorable``) and left out; the others go in.
        """
        refused: Refusals = []
        storable = split_storable(messages, refused)
        self._rejected(refused)
        if not storable:
            return Admission()
        if self.database_up and self.migrated:
            refused = []
            try:
                if bound is None:
                    admission = Admission(fresh=await self._on_writer(self.store.inbox_add, storable, refused))
                else:
                    admission = await self._on_writer(self.store.inbox_admit, storable, bound, refused)
            except Exception as exc:  # noqa: BLE001
                self._db_error("intake", exc)
            else:
                self._rejected(refused)
                return admission
        # Not on the writer thread: a database call hanging there must not hold up the spool.
        await asyncio.get_running_loop().run_in_executor(self._spool_thread, self.spool.append, storable)
        return Admission(fresh=storable)

    # -- results ---------------------------------------------------------------------------
    async def submit(self, result: MessageResult) -> None:
        """Hand a processed message to the writer; waits while too many results are held."""
        if len(self._pending) >= self.max_pending:
            async with self._room:
                await self._room.wait_for(lambda: len(self._pending) < self.max_pending)
        self._pending.append(result)
        if len(self._pending) >= WRITE_BATCH:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def unmarked(self) -> int:
        """Refused messages whose inbox rows are still to be marked rejected."""
        return len(self._unmarked)

    async def _writer_loop(self) -> None:
        delay = 0.0
        while not self._stopped:
            try:
                async with asyncio.timeout(max(self.flush_interval, delay)):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if not (self._pending or self._unmarked) or not self.migrated:
                continue
            if await self._write_pending() and await self._mark_rejected():
                delay = 0.0
            else:
                delay = min(self.retry_max, max(0.25, delay * 2))

    async def _write_pending(self) -> bool:
        """Write one batch of held results; False when it failed (they stay held)."""
        if not self._pending:
            return True
        batch = self._pending[:WRITE_BATCH]
        refused: Refusals = []
        try:
            await self._on_writer(self.store.write_results, batch, refused)
        except Exception as exc:  # noqa: BLE001
            if await self._kind(exc) == OUTAGE:
                self._failed("write", exc)
            else:
                self._refused(len(batch), exc)
            return False
        self._refusing = False
        del self._pending[: len(batch)]
        self.metrics.stage_results.labels(stage="persist", outcome="success").inc(len(batch) - len(refused))
        if refused:  # those messages' results cannot be stored; the rest of the batch is written
            self.metrics.stage_results.labels(stage="persist", outcome="failure").inc(len(refused))
            self._rejected(refused)
            self._unmarked.extend((message, why, 0) for message, why in refused)
        if not self.database_up:
            self._set_up(True)
        async with self._room:
            self._room.notify_all()
        if self._pending or self._unmarked:
            self._wake.set()
        return True

    async def _mark_rejected(self) -> bool:
        """End refused messages' inbox rows as rejected. Each gets ``MARK_ATTEMPTS`` refusals, then one log line."""
        if not self._unmarked:
            return True
        batch = self._unmarked[:WRITE_BATCH]
        try:
            refused = await self._on_writer(self.store.mark_rejected, [(m, why) for m, why, _ in batch], time.time())
        except Exception as exc:  # noqa: BLE001
            if await self._kind(exc) == OUTAGE:
                self._failed("write", exc)  # kept, like held results, until the database is back
                return False
            refused = [(m, describe_refusal(exc)) for m, _, _ in batch]
        del self._unmarked[: len(batch)]
        if not refused:
            return True
        self.metrics.database_errors.labels(operation="write").inc()
        again = {m.key: why for m, why in refused}
        for message, why, attempts in batch:
            if message.key not in again:
                continue
            if attempts + 1 < MARK_ATTEMPTS:
                self._unmarked.append((message, why, attempts + 1))
            else:
                log.error("message %s could not be marked rejected after %d attempts (%s); it stays pending in the "
                          "inbox and will be processed again at the next start (and refused and counted again); "
                          "check the database's log and the bot role's privileges on the inbox table",
                          message.key, MARK_ATTEMPTS, again[message.key],
                          extra={"source": message.source})
        return False

    async def _ping(self) -> BaseException | None:
        """One ``SELECT 1`` on the probe thread: None when the database answers, else why not."""
        try:
            async with asyncio.timeout(max(5.0, self.probe_interval)):
                await asyncio.get_running_loop().run_in_executor(self._probe_thread, self.store.ping)
        except Exception as exc:  # noqa: BLE001
            return exc
        return None

    async def _probe_loop(self) -> None:
        while not self._stopped:
            started = time.perf_counter()
            error = await self._ping()
            self.metrics.database_probe_seconds.observe(time.perf_counter() - started)
            if error is not None:
                self._failed("probe", error)
            else:
                self._set_up(True)
                await self._housekeeping()
            try:
                async with asyncio.timeout(self.probe_interval):
                    await self._stop_event.wait()
                return
            except TimeoutError:
                pass

    async def _housekeeping(self) -> None:
        if not self.migrated and not await self._try_migrate():
            return
        if self.spool:
            try:
                moved = await self._on_writer(self._drain_spool)
                log.info("moved %d spooled messages into the database inbox", moved)
            except Exception as exc:  # noqa: BLE001
                self._db_error("intake", exc)
                return
        if time.monotonic() - self._last_prune > self.prune_interval:
            self._last_prune = time.monotonic()
            try:
                removed = await self._on_writer(self.store.prune_inbox, time.time() - self.inbox_retention_seconds)
                self.metrics.database_rows_pruned.labels(table="inbox").inc(removed)
                if removed:
                    log.info("pruned %d processed inbox rows", removed)
                await self.prune_history()
            except Exception as exc:  # noqa: BLE001
                self._db_error("prune", exc)

    async def prune_history(self, max_batches: int = 100) -> dict[str, int]:
        """Delete history older than ``retention_seconds``, ``prune_batch_rows`` rows per transaction.

        Each batch is its own short call on the writer thread, so held results are
        written between two batches: retention never holds the pipeline for longer
        than one batch. At most ``max_batches`` per table per round; the rest waits
        for the next round. Returns the rows deleted per table.
        """
        removed = {table: 0 for table in HISTORY_TABLES}
        if self.retention_seconds is None:
            return removed
        cutoff = time.time() - self.retention_seconds
        for table in HISTORY_TABLES:  # tokens last: a token goes once its history has gone
            for _ in range(max_batches):
                count = await self._on_writer(self.store.prune_batch, table, cutoff, self.prune_batch_rows)
                removed[table] += count
                self.metrics.database_rows_pruned.labels(table=table).inc(count)
                if count < self.prune_batch_rows or self._stopped:
                    break
        if any(removed.values()):
            log.info("retention: pruned rows older than %.0f days", self.retention_seconds / 86400, extra={"pruned": removed})
        return removed


def _brief(exc: BaseException) -> str:
    """One line about a driver error, without SQL parameters (they may hold message text)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
