"""Intake: where sources hand messages over, and the bounded queue behind it.

``Intake.accept(messages)`` returns only once every message is durable (in the
database inbox, or in the local spool while the database is away) *and* queued
for the workers. Sources acknowledge upstream (advance the Telegram offset,
move the replay checkpoint) only after it returns, so a crash at any point
loses nothing. When the queue is full, ``accept`` waits: that is the
back-pressure, counted in ``hux_queue_blocked_seconds_total``; nothing is
dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Sequence

from hux.bot.messages import ChatMessage, Rejected
from hux.bot.metrics import BotMetrics
from hux.bot.persistence import Persistence

log = logging.getLogger("hux.bot.intake")


class IntakeQueue:
    """A bounded FIFO of accepted messages whose length and capacity are metrics."""

    def __init__(self, capacity: int, metrics: BotMetrics) -> None:
        self.capacity = capacity
        self._queue: asyncio.Queue[ChatMessage] = asyncio.Queue(maxsize=capacity)
        self._metrics = metrics
        metrics.queue_capacity.set(capacity)
        metrics.queue_length.set_function(self._queue.qsize)

    def __len__(self) -> int:
        return self._queue.qsize()

    @property
    def saturated(self) -> bool:
        return self._queue.full()

    async def put(self, message: ChatMessage) -> None:
        if not self._queue.full():
            self._queue.put_nowait(message)
            return
        started = time.monotonic()
        try:
            await self._queue.put(message)
        finally:
            self._metrics.queue_blocked_seconds.inc(time.monotonic() - started)

    async def get(self) -> ChatMessage:
        return await self._queue.get()

    def task_done(self) -> None:
        self._queue.task_done()

    async def join(self) -> None:
        await self._queue.join()


class Intake:
    def __init__(self, queue: IntakeQueue, persistence: Persistence, metrics: BotMetrics) -> None:
        self.queue = queue
        self.persistence = persistence
        self.metrics = metrics

    def reject(self, source: str, error: Rejected, where: str) -> None:
        """Count and log a refused input (the log says where it came from, never its content)."""
        self.metrics.messages_rejected.labels(source=source, reason=error.reason).inc()
        log.warning("message refused", extra={"source": source, "reason": error.reason, "where": where, "detail": str(error)})

    async def accept(self, messages: Sequence[ChatMessage]) -> int:
        """Durably accept, then queue, ``messages``; return how many were new. Raises if not durable."""
        if not messages:
            return 0
        try:
            fresh = await self.persistence.accept(messages)
        except Exception:
            self.metrics.stage_results.labels(stage="intake", outcome="failure").inc(len(messages))
            raise
        now = time.monotonic()
        for message in fresh:
            message.accepted_at = now
            self.metrics.messages_received.labels(source=message.source, group=self.metrics.group_label(message.group)).inc()
        self.metrics.stage_results.labels(stage="intake", outcome="success").inc(len(fresh))
        for message in fresh:
            await self.queue.put(message)
        return len(fresh)

    async def requeue(self, messages: Sequence[ChatMessage]) -> None:
        """Queue messages already durable (recovered after a restart)."""
        now = time.monotonic()
        for message in messages:
            message.accepted_at = now
            await self.queue.put(message)
