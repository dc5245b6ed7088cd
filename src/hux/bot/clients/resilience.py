"""What keeps the bot within a provider's limits and off a failing one.

* ``RateLimiter``: the provider's request rate as a token bucket, shared fairly by the chats
  the calls are made for (least recently served chat first; the last token of the burst kept
  for a quiet chat).
* ``CircuitBreaker``: after enough consecutive failures calls fail fast for a while, then one
  trial call decides whether the provider is back.
* ``parse_retry_after`` / ``body_retry_after``: how long a provider asks us to wait (a
  ``Retry-After`` header, or Telegram's ``parameters.retry_after`` in the body), bounded by
  ``MAX_RETRY_AFTER``.

Each is used by ``hux.bot.clients.http.ApiClient`` and knows nothing of HTTP; ``RateLimiter``
also paces the Telegram alert output (``hux.bot.outputs``).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from datetime import datetime, timezone
from typing import Any

#: Longest pause a provider's Retry-After can impose; asked for longer, the client asks again after this.
MAX_RETRY_AFTER = 3600.0


class RateLimiter:
    """Token bucket: ``rate_per_second`` sustained, up to ``burst`` at once, shared fairly by key.

    ``acquire(key)`` waits for a token; ``key`` is the chat the call is made for (``None``: no
    chat in particular). Waiting callers are released one token at a time:

    * least recently served key first: keys with a backlog take turns (round-robin), a key that
      has not been served lately (a quiet chat) goes ahead of a busy key's backlog, and one key's
      callers go in arrival order. One chat's burst of calls cannot queue ahead of everyone else;
    * the last ``reserve`` tokens (default 1, at most ``burst - 1``) go only to a quiet key (not
      served in the last ``burst / rate`` seconds) or to an unkeyed call. A busy key alone still
      gets the whole ``rate``, but never empties the bucket: a quiet chat's call finds a token at
      once instead of waiting for a refill behind it.

    The bucket is the provider's limit and stays one: never more than ``burst`` at once nor more
    than ``rate`` sustained, whoever asks. Keys remembered: at most ``max_keys`` (the least
    recently served are forgotten first; a forgotten key counts as quiet).
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int = 5,
        *,
        reserve: int = 1,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_per_second > 0 or not math.isfinite(rate_per_second):
            raise ValueError(f"rate_per_second must be a positive number, got {rate_per_second!r}")
        self.rate = float(rate_per_second)
        self.burst = max(1, int(burst))
        self.reserve = min(max(0, int(reserve)), self.burst - 1)
        self.busy_seconds = self.burst / self.rate
        self.max_keys = max(1, int(max_keys))
        self._clock = clock
        self._tokens = float(self.burst)
        self._updated = clock()
        # Waiting callers by key; dict order = the order keys started waiting (ties go to the earlier).
        self._waiting: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._served: OrderedDict[Hashable, float] = OrderedDict()  # key -> when it last got a token
        self._timer: asyncio.TimerHandle | None = None

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._updated) * self.rate)
        self._updated = now

    def _next(self) -> tuple[Hashable, float]:
        """The waiting key served least recently (never: first) and when that was."""
        best: Hashable = None
        best_at = math.inf
        for key in self._waiting:
            at = self._served.get(key, -math.inf)
            if at < best_at:
                best, best_at = key, at
        return best, best_at

    def _release(self) -> None:
        """Hand out every token that is due, in turn; schedule the next look when someone must wait."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        self._refill(now)
        while self._waiting:
            key, served_at = self._next()
            busy = key is not None and now - served_at < self.busy_seconds
            need = 1.0 + (self.reserve if busy else 0)
            if self._tokens < need:
                delay = (need - self._tokens) / self.rate
                if busy:  # it may take the reserve as soon as it is quiet again
                    delay = min(delay, served_at + self.busy_seconds - now)
                self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._release)
                return
            queue = self._waiting[key]
            future = queue.popleft()
            if not queue:
                del self._waiting[key]
            self._tokens -= 1.0
            self._served.pop(key, None)
            self._served[key] = now
            while len(self._served) > self.max_keys:
                self._served.popitem(last=False)
            future.set_result(None)

    async def acquire(self, key: Hashable = None) -> float:
        """Take one token for ``key``, waiting for its turn as needed. Returns the seconds waited."""
        started = self._clock()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(future)
        self._release()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._tokens = min(float(self.burst), self._tokens + 1.0)  # granted but not used: give it back
            else:
                queue = self._waiting.get(key)
                if queue is not None and future in queue:
                    queue.remove(future)
                    if not queue:
                        del self._waiting[key]
            if self._waiting:
                self._release()
            raise
        return max(0.0, self._clock() - started)


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failed attempts;
    open → half-open after ``reset_seconds``; half-open lets one trial through:
    success closes, failure re-opens.

    ``on_change(code)`` gets 0 (closed), 1 (half-open) or 2 (open), the values
    of ``hux_api_circuit_state``.
    """

    CLOSED, HALF_OPEN, OPEN = 0, 1, 2
    _NAMES = {CLOSED: "closed", HALF_OPEN: "half_open", OPEN: "open"}

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.reset_seconds = max(0.0, float(reset_seconds))
        self._clock = clock
        self._on_change = on_change
        self._code = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        """"closed", "half_open" or "open" (an open breaker past its reset time reports "half_open")."""
        if self._code == self.OPEN and self._clock() - self._opened_at >= self.reset_seconds:
            return "half_open"
        return self._NAMES[self._code]

    def _set(self, code: int) -> None:
        if code != self._code:
            self._code = code
            if self._on_change is not None:
                self._on_change(code)

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial request through (0 when not open)."""
        if self._code != self.OPEN:
            return 0.0
        return max(0.0, self.reset_seconds - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a request go out now? In half-open state only one trial at a time."""
        if self._code == self.OPEN:
            if self._clock() - self._opened_at < self.reset_seconds:
                return False
            self._set(self.HALF_OPEN)
        if self._code == self.HALF_OPEN:
            if self._trial_in_flight:
                return False
            self._trial_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._trial_in_flight = False
        self._set(self.CLOSED)

    def record_failure(self) -> None:
        self._trial_in_flight = False
        if self._code == self.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open()

    def record_neutral(self) -> None:
        """An attempt that says nothing about the service's health (429, cancelled): free the trial slot."""
        self._trial_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._failures = 0
        self._set(self.OPEN)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def body_retry_after(body: Any) -> float | None:
    """Telegram puts the wait in the body: ``{"parameters": {"retry_after": N}}``."""
    if isinstance(body, dict) and isinstance(body.get("parameters"), dict):
        value = body["parameters"].get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                seconds = float(value)
            except OverflowError:  # an int beyond any float: as long as we ever wait
                return MAX_RETRY_AFTER
            if math.isfinite(seconds):
                return min(MAX_RETRY_AFTER, max(0.0, seconds))
    return None
