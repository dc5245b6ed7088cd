"""Where chat messages come from: Telegram long polling (live) and JSONL replay (demo, tests, backfills).

A source runs until its stop event is set and hands batches to
``Intake.accept``, acknowledging upstream only after it returns.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # typing only: the intake waits with sleep_or_stop (no import cycle at run time)
    from hux.bot.intake import Intake


class Source(Protocol):
    name: str  # metric label: "telegram" | "replay"

    async def run(self, intake: Intake, stop: asyncio.Event) -> None: ...


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when ``stop`` was set meanwhile."""
    if seconds <= 0:
        return stop.is_set()
    try:
        async with asyncio.timeout(seconds):  # not wait_for: 3.11's can swallow a cancellation
            await stop.wait()
        return True
    except TimeoutError:
        return False
