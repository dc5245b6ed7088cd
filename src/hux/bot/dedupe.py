"""Which token mentions deserve a lookup: per-token cooldown and mention velocity.

* ``TokenGate.claim(key)`` lets exactly one worker look a token up; any other
  mention while that lookup runs, or within ``cooldown_seconds`` after a
  decision, is a ``cooldown`` outcome (no API call). A failed lookup releases
  the token without a cooldown, so the next mention retries it.
* ``MentionTracker`` remembers which groups mentioned a token within a window;
  the number of distinct groups is the score's "mention velocity".

Both are bounded (least recently used entries are dropped first) so a flood of
distinct addresses cannot grow memory without limit.

The pipeline sees a gate through ``Gate``: ``TokenGate`` decides in this
process (one instance, SQLite); ``hux.bot.cluster.SharedGate`` decides in
PostgreSQL, so several instances deciding the same token produce one alert.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from hux.bot.store import TokenResult

Clock = Callable[[], float]


class Gate(Protocol):
    """Who looks a token up, and its cooldown: ``begin`` (True: go on), then ``end`` once decided."""

    async def begin(self, key: str) -> bool: ...

    async def sending(self, key: str) -> None:
        """An alert for ``key`` is about to go out (a crash before ``end`` is then visible)."""

    async def end(self, key: str, *, decided: bool, record: tuple[str, TokenResult] | None = None) -> None:
        """``decided``: the cooldown starts now; False (a failed lookup): the next mention retries.

        ``record``: (message key, result) of the decision, kept with the cooldown where the gate can (the
        database): an instance that dies before its batched write must not leave a cooldown without its decision.
        """


class TokenGate:
    def __init__(self, cooldown_seconds: float, *, max_tokens: int = 100_000, clock: Clock = time.monotonic) -> None:
        self.cooldown_seconds = cooldown_seconds
        self.max_tokens = max_tokens
        self._clock = clock
        self._decided_at: OrderedDict[str, float] = OrderedDict()
        self._in_flight: set[str] = set()

    def claim(self, key: str) -> bool:
        """True when the caller should process ``key`` now (and must later call decided/failed)."""
        if key in self._in_flight:
            return False
        decided = self._decided_at.get(key)
        if decided is not None and self._clock() - decided < self.cooldown_seconds:
            return False
        self._in_flight.add(key)
        return True

    def decided(self, key: str) -> None:
        self._in_flight.discard(key)
        self._decided_at[key] = self._clock()
        self._decided_at.move_to_end(key)
        while len(self._decided_at) > self.max_tokens:
            self._decided_at.popitem(last=False)

    def failed(self, key: str) -> None:
        self._in_flight.discard(key)

    async def begin(self, key: str) -> bool:
        return self.claim(key)

    async def sending(self, key: str) -> None:
        return None  # one process: a crash loses the in-flight alert's record with everything else

    async def end(self, key: str, *, decided: bool, record: tuple[str, TokenResult] | None = None) -> None:
        if decided:
            self.decided(key)
        else:
            self.failed(key)

    def remember(self, key: str, seconds_ago: float) -> None:
        """Seed the cooldown from the store after a restart."""
        self._decided_at[key] = self._clock() - max(0.0, seconds_ago)


class MentionTracker:
    def __init__(self, window_seconds: float, *, max_tokens: int = 100_000, max_groups_per_token: int = 64, clock: Clock = time.monotonic) -> None:
        self.window_seconds = window_seconds
        self.max_tokens = max_tokens
        self.max_groups_per_token = max_groups_per_token
        self._clock = clock
        self._mentions: OrderedDict[str, dict[str, float]] = OrderedDict()

    def mention(self, key: str, group: str) -> int:
        """Record a mention; return the distinct groups that mentioned ``key`` within the window."""
        now = self._clock()
        groups = self._mentions.get(key)
        if groups is None:
            groups = self._mentions[key] = {}
            while len(self._mentions) > self.max_tokens:
                self._mentions.popitem(last=False)
        else:
            self._mentions.move_to_end(key)
        groups[group] = now
        horizon = now - self.window_seconds
        for name in [g for g, at in groups.items() if at < horizon]:
            del groups[name]
        if len(groups) > self.max_groups_per_token:
            oldest = min(groups, key=groups.__getitem__)
            del groups[oldest]
        return len(groups)

    def groups(self, key: str) -> tuple[str, ...]:
        horizon = self._clock() - self.window_seconds
        return tuple(g for g, at in self._mentions.get(key, {}).items() if at >= horizon)
