"""Intake: where sources hand messages over, and the fair, bounded queue behind it.

``Intake.accept(messages)`` returns only once every message is durable (in the
database inbox, or in the local spool while the database is away) *and* queued
for the workers. Sources acknowledge upstream (advance the Telegram offset,
move the replay checkpoint) only after it returns, so a crash at any point
loses nothing. When the queue is full, ``accept`` waits: that is the
back-pressure, counted in ``hux_queue_blocked_seconds_total``; nothing that was
accepted is dropped.

Fairness between chats (one chat's backlog must not delay another chat's
messages):

* each chat has its own FIFO; workers serve the chats round-robin, so a chat
  with a thousand messages waiting gets one turn like a chat with one;
* a chat may occupy at most ``chat_max_in_flight`` workers at once, so the
  others stay free for the other chats; with ``lend_idle_workers`` it may
  also use the idle workers but one while no other chat is waiting (one is
  kept free for the next chat's message), for a bot that reads one busy chat;
* a per-chat token bucket (``chat_rate_per_minute``, ``chat_burst``) marks
  messages that arrive faster than that as over rate: they are served only
  when no chat within its rate has work, and counted in
  ``hux_chat_throttled_total{reason="over_rate"}``;
* a chat that already has ``chat_queue_capacity`` messages waiting has its
  further messages refused *before* they are accepted (not persisted, not
  acknowledged as processed), counted in
  ``hux_messages_rejected_total{reason="chat_backlog"}``. Without this bound a
  single flooding chat would fill the shared queue and the back-pressure would
  stop every chat's source behind it.

The chat identity is the Telegram chat id (from the message key) or, for
other sources, the source and group name (``messages.chat_of``). It never
becomes a metric label.

Several instances on PostgreSQL (``hux.bot.cluster``): accepted messages wait
in the database inbox, not in this queue (which holds only what this instance
claimed), so the same two settings bound the inbox, counted over every
instance's pending rows in one transaction (``Store.inbox_admit``):
``chat_queue_capacity`` per chat (further messages refused, ``chat_backlog``,
as above) and ``queue_capacity`` in all. At the total the leader's sources
wait (back-pressure, ``hux_queue_blocked_seconds_total``) rather than refuse,
because each of them can leave the rest upstream:

* **telegram** (Bot API): the offset is not moved past the waiting batch and
  no new ``getUpdates`` is made, so Telegram keeps the updates (24 h);
* **replay**: the checkpoint stays before the waiting batch; the file is there;
* **telegram_user**: the waiting batch is not noted in the catch-up state;
  Telegram pushes updates, so its own queue (1,000) fills and then Telethon
  holds each further one in memory (a waiting handler task), as when this
  instance's queue is full; a restart catches up from the state
  (``catch_up_messages`` per chat, the rest counted as skipped). Refusing
  instead would drop what Telegram already delivered.

A leader that loses the lease while its sources wait stops waiting
(``IntakeStopped``): nothing of the rest was acknowledged, and what it had
written is recognised when the next leader reads it again. While the database
is away nothing can be counted: the spool takes the batch as before (the
leader steps down within its lease) and its drain writes it whatever the bound
then says, since it was accepted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

from hux.bot.config import FairnessSettings
from hux.bot.messages import ChatMessage, Rejected, chat_of
from hux.bot.metrics import BotMetrics
from hux.bot.persistence import Persistence
from hux.bot.sources import sleep_or_stop
from hux.bot.store import Admission, InboxBound

log = logging.getLogger("hux.bot.intake")

#: Idle chats whose token-bucket state is remembered (least recently active forgotten first).
IDLE_CHATS_REMEMBERED = 10_000


@dataclass
class _Chat:
    tokens: float
    updated: float
    waiting: deque[tuple[ChatMessage, bool]] = field(default_factory=deque)  # (message, within_rate)
    in_flight: int = 0


class IntakeQueue:
    """A bounded queue of accepted messages, served fairly between chats.

    The total waiting is bounded by ``capacity`` (``put`` waits beyond it:
    back-pressure); each chat's waiting by ``chat_queue_capacity``, checked with
    ``admits`` before a message is accepted. ``get`` hands out the next
    message round-robin over chats that have one and are below their in-flight
    limit, chats within their rate first; ``task_done(message)`` ends its turn.
    """

    def __init__(self, capacity: int, metrics: BotMetrics, fairness: FairnessSettings | None = None,
                 *, workers: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        # Workers serving this queue: with it, a chat over its in-flight limit may use idle workers
        # but one while no other chat waits (work-conserving); without it the limit is strict.
        self.workers = workers
        self.fairness = fairness or FairnessSettings()
        # Below ``capacity`` a flooding chat cannot fill the shared queue; at or above it, it can
        # (the back-pressure then holds every source): keep it well below.
        self.chat_capacity = self.fairness.chat_queue_capacity
        self._rate = self.fairness.chat_rate_per_minute / 60.0
        self._burst = float(max(1, self.fairness.chat_burst))
        self._clock = clock
        self._metrics = metrics
        self._chats: dict[str, _Chat] = {}                  # chats with waiting or in-flight messages
        self._idle: OrderedDict[str, _Chat] = OrderedDict()  # bucket state of recently active chats
        self._ring: deque[str] = deque()                     # chats with waiting messages, in serving order
        self._size = 0
        self._unfinished = 0
        self._waiters: list[asyncio.Future[None]] = []
        metrics.queue_capacity.set(capacity)
        metrics.queue_length.set_function(lambda: self._size)
        metrics.chat_throttled.labels(reason="over_rate")

    def __len__(self) -> int:
        return self._size

    @property
    def unfinished(self) -> int:
        """Messages queued or being worked on."""
        return self._unfinished

    @property
    def saturated(self) -> bool:
        return self._size >= self.capacity

    # -- per-chat state -------------------------------------------------------------------
    def _chat(self, name: str) -> _Chat:
        chat = self._chats.get(name)
        if chat is None:
            chat = self._idle.pop(name, None) or _Chat(tokens=self._burst, updated=self._clock())
            self._chats[name] = chat
        return chat

    def _maybe_idle(self, name: str, chat: _Chat) -> None:
        if not chat.waiting and chat.in_flight == 0:
            del self._chats[name]
            self._idle[name] = chat
            while len(self._idle) > IDLE_CHATS_REMEMBERED:
                self._idle.popitem(last=False)

    def waiting_for(self, chat: str) -> int:
        state = self._chats.get(chat)
        return len(state.waiting) if state else 0

    def admits(self, chat: str, already: int = 0) -> bool:
        """May one more message of ``chat`` be accepted (``already`` of its messages are on their way in)?"""
        return self.waiting_for(chat) + already < self.chat_capacity

    def _take_token(self, chat: _Chat) -> bool:
        now = self._clock()
        chat.tokens = min(self._burst, chat.tokens + (now - chat.updated) * self._rate)
        chat.updated = now
        if chat.tokens >= 1.0:
            chat.tokens -= 1.0
            return True
        return False

    # -- waiting ----------------------------------------------------------------------------
    async def _wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        await future

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    # -- queue ------------------------------------------------------------------------------
    async def put(self, message: ChatMessage, *, wait_for_chat: bool = False) -> None:
        """Queue an accepted message; waits while the queue is full (back-pressure). Never refuses.

        ``wait_for_chat`` also waits while the message's chat has ``chat_capacity``
        messages waiting (recovery after a restart: one chat's pile must not fill
        the queue ahead of everyone else's).
        """
        name = chat_of(message)

        def full() -> bool:
            return self._size >= self.capacity or (wait_for_chat and self.waiting_for(name) >= self.chat_capacity)

        if full():
            started = time.monotonic()
            try:
                while full():
                    await self._wait()
            finally:
                self._metrics.queue_blocked_seconds.inc(time.monotonic() - started)
        chat = self._chat(name)
        within = self._take_token(chat)
        if not within:
            self._metrics.chat_throttled.labels(reason="over_rate").inc()
        if not chat.waiting:
            self._ring.append(name)
        chat.waiting.append((message, within))
        self._size += 1
        self._unfinished += 1
        self._wake()

    def _next(self, *, ignore_limits: bool = False) -> ChatMessage | None:
        """Round-robin over chats below their in-flight limit, chats within their rate first."""
        limit = self.fairness.chat_max_in_flight
        fallback: str | None = None
        chosen: str | None = None
        for name in self._ring:
            chat = self._chats[name]
            if chat.in_flight >= limit and not ignore_limits:
                continue
            if chat.waiting[0][1]:
                chosen = name
                break
            if fallback is None:
                fallback = name
        chosen = chosen or fallback
        if chosen is None and not ignore_limits and self._ring and self._spare_worker():
            # Nobody under its limit waits: let an over-limit chat use an idle worker (round-robin,
            # within-rate chats first), keeping one worker free for whichever chat comes next.
            chosen = next((name for name in self._ring if self._chats[name].waiting[0][1]), self._ring[0])
        if chosen is None:
            return None
        chat = self._chats[chosen]
        message, _ = chat.waiting.popleft()
        chat.in_flight += 1
        self._size -= 1
        self._ring.remove(chosen)
        if chat.waiting:
            self._ring.append(chosen)  # its next message waits for every other chat's turn
        self._wake()  # room for a waiting put
        return message

    def _spare_worker(self) -> bool:
        if self.workers is None:
            return False
        in_flight = sum(chat.in_flight for chat in self._chats.values())
        return in_flight < self.workers - 1

    async def get(self) -> ChatMessage:
        """The next message to work on; the caller must call ``task_done(message)`` when finished."""
        while True:
            message = self._next()
            if message is not None:
                return message
            await self._wait()

    def get_nowait(self) -> ChatMessage:
        """The next waiting message in serving order, ignoring in-flight limits (``asyncio.QueueEmpty`` if none)."""
        message = self._next(ignore_limits=True)
        if message is None:
            raise asyncio.QueueEmpty
        return message

    def task_done(self, message: ChatMessage) -> None:
        """``message`` (from ``get``) is finished: its chat's worker slot is free again."""
        name = chat_of(message)
        chat = self._chats.get(name)
        if chat is not None and chat.in_flight > 0:
            chat.in_flight -= 1
            self._maybe_idle(name, chat)
        self._unfinished = max(0, self._unfinished - 1)
        self._wake()

    async def join(self) -> None:
        """Wait until every queued message has been taken and finished."""
        while self._unfinished:
            await self._wait()


class IntakeStopped(Exception):
    """The source was stopped while its batch waited for room in the shared inbox.

    The part not yet written is not accepted: the source must not acknowledge
    the batch upstream (the part written is recognised when it comes again).
    """


class Intake:
    """Where sources hand messages over.

    ``shared`` and ``bound``: several instances share the database
    (``hux.bot.cluster``); accepted messages stay in the inbox, within
    ``bound``, for whichever instance claims them, and ``shared()`` is told
    there is new work. Without them this instance's queue bounds the intake.
    """

    def __init__(self, queue: IntakeQueue, persistence: Persistence, metrics: BotMetrics,
                 *, shared: Callable[[], None] | None = None, bound: InboxBound | None = None,
                 room_poll_seconds: float = 0.2) -> None:
        self.queue = queue
        self.persistence = persistence
        self.metrics = metrics
        self.shared = shared
        self.bound = bound
        self.room_poll_seconds = room_poll_seconds

    def reject(self, source: str, error: Rejected, where: str) -> None:
        """Count and log a refused input (the log says where it came from, never its content)."""
        self.metrics.messages_rejected.labels(source=source, reason=error.reason).inc()
        log.warning("message refused", extra={"source": source, "reason": error.reason, "where": where, "detail": str(error)})

    def _refuse_backlog(self, messages: Sequence[ChatMessage], waiting: str) -> None:
        """Count and log messages refused because their chat's backlog is full (``waiting``: where they wait)."""
        refused: dict[str, int] = {}
        for message in messages:
            refused[message.source] = refused.get(message.source, 0) + 1
        for source, count in refused.items():
            self.metrics.messages_rejected.labels(source=source, reason="chat_backlog").inc(count)
            log.warning(
                "%d message(s) refused: their chat already has %d messages %s (bot.fairness.chat_queue_capacity); "
                "one chat is sending faster than the bot can look its tokens up: raise the limit, add workers or "
                "instances, or fix a slow API", count, self.queue.chat_capacity, waiting,
                extra={"source": source, "reason": "chat_backlog"},
            )

    def _admit(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """The messages whose chat has room; the rest are refused (chat_backlog) before anything is written."""
        admitted: list[ChatMessage] = []
        refused: list[ChatMessage] = []
        incoming: dict[str, int] = {}
        for message in messages:
            chat = chat_of(message)
            if self.queue.admits(chat, incoming.get(chat, 0)):
                incoming[chat] = incoming.get(chat, 0) + 1
                admitted.append(message)
            else:
                refused.append(message)
        self._refuse_backlog(refused, "waiting")
        return admitted

    async def _persist(self, messages: Sequence[ChatMessage]) -> Admission:
        """Write what may go in (all, or what the shared inbox's bound has room for); count what was refused."""
        try:
            admission = await self.persistence.accept(messages, self.bound)
        except Exception:
            self.metrics.stage_results.labels(stage="intake", outcome="failure").inc(len(messages))
            raise
        self._refuse_backlog(admission.backlog, "pending in the shared inbox")
        now = time.monotonic()
        for message in admission.fresh:
            message.accepted_at = now
            self.metrics.messages_received.labels(source=message.source, group=self.metrics.group_label(message.group)).inc()
        self.metrics.stage_results.labels(stage="intake", outcome="success").inc(len(admission.fresh))
        if admission.fresh and self.shared is not None:
            self.shared()
        return admission

    async def accept(self, messages: Sequence[ChatMessage], *, stop: asyncio.Event | None = None) -> int:
        """Durably accept, then queue, ``messages``; return how many were new. Raises if not durable.

        Messages of a chat whose backlog is full are refused first (counted, never written).
        """
        if not messages:
            return 0
        if self.bound is not None:
            return await self._accept_shared(messages, self.bound, stop)
        messages = self._admit(messages)
        if not messages:
            return 0
        fresh = (await self._persist(messages)).fresh
        for message in fresh:
            await self.queue.put(message)
        return len(fresh)

    async def _accept_shared(self, messages: Sequence[ChatMessage], bound: InboxBound, stop: asyncio.Event | None) -> int:
        """Write into the shared inbox what its bound has room for; wait (back-pressure) until the rest fits.

        The database is asked again every ``room_poll_seconds`` (doubling to a
        second) until the instances have decided enough. ``stop`` set meanwhile
        raises ``IntakeStopped``: the source keeps the rest upstream.
        """
        fresh = 0
        waited_since: float | None = None
        delay = self.room_poll_seconds
        while True:
            admission = await self._persist(messages)
            fresh += len(admission.fresh)
            messages = admission.waiting
            if not messages:
                if waited_since is not None:
                    log.info("the shared inbox has room again after %.1f s; the sources go on", time.monotonic() - waited_since)
                return fresh
            if waited_since is None:
                waited_since = time.monotonic()
                log.warning(
                    "the shared inbox holds %d pending messages (bot.queue_capacity): the sources wait, leaving "
                    "messages upstream, until the instances decide some; if it lasts, look for a slow or hung API "
                    "(BotQueueBacklog), add workers or instances", bound.total, extra={"reason": "inbox_full"})
            paused = time.monotonic()
            stopped = await _stopped(stop, delay)
            # Counted pause by pause, so the back-pressure shows while it lasts, not only once it ends.
            self.metrics.queue_blocked_seconds.inc(time.monotonic() - paused)
            if stopped:
                raise IntakeStopped(f"stopped while {len(messages)} message(s) waited for room in the shared inbox")
            delay = min(1.0, delay * 2)

    async def requeue(self, messages: Sequence[ChatMessage]) -> None:
        """Queue messages already durable (recovered after a restart): never refused, they wait for room.

        Chats take turns (one message of each in turn, each chat's own order kept)
        and each waits for room in its own chat queue, so a flood that was pending
        at the restart does not delay the other chats' recovered messages.
        """
        now = time.monotonic()
        for message in interleave_by_chat(messages):
            message.accepted_at = now
            await self.queue.put(message, wait_for_chat=True)


async def _stopped(stop: asyncio.Event | None, seconds: float) -> bool:
    """Wait ``seconds``; True when ``stop`` was set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    return await sleep_or_stop(stop, seconds)


def interleave_by_chat(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """``messages`` with chats taking turns: first of each chat, then second of each, ...; per-chat order kept."""
    per_chat: dict[str, deque[ChatMessage]] = {}
    for message in messages:
        per_chat.setdefault(chat_of(message), deque()).append(message)
    out: list[ChatMessage] = []
    queues = list(per_chat.values())
    while queues:
        out.extend(q.popleft() for q in queues)
        queues = [q for q in queues if q]
    return out
