"""The resilient JSON-over-HTTP client every external API call goes through.

One ``ApiClient`` per API (DexScreener, RugCheck, Telegram, a webhook). Each
request passes, in order:

1. the response cache (GET only, when ``cache_ttl > 0``);
2. a server-imposed pause (a ``Retry-After`` seen earlier applies to every
   caller of this API, not only to the request that received it);
3. the circuit breaker (open: fail fast with outcome ``circuit_open``);
4. the token-bucket rate limiter (the provider's documented request rate),
   shared fairly by the chat each call is made for (``RequestContext``);
5. the request itself, bounded by ``timeout`` end to end and its reply body
   by ``max_body_bytes`` (after decompression).

Every way a reply body can be wrong — too large, not UTF-8, not JSON, nested
past the parser's depth, numbers past what Python converts, a shape ``parse``
refuses or anything else ``parse`` raises — ends as outcome
``invalid_response``: counted, and a failure for the circuit breaker.

Each attempt is counted in ``hux_api_requests_total{api,endpoint,outcome}`` and
timed in ``hux_api_request_duration_seconds``. 429, 5xx, timeouts and
connection errors are retried with exponential backoff and jitter (a
``Retry-After`` header, or Telegram's ``parameters.retry_after``, replaces the
computed delay); other failures raise ``ApiError`` at once.

Secrets (the Telegram token sits inside Bot API URLs) never reach an error
message, a log line or a metric label: messages are built from the API name,
the bounded endpoint label and redacted provider text only, httpx exceptions
are not chained, and httpx's own request log lines are redacted.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from hux import __version__
from hux.bot.metrics import API_OUTCOMES, BotMetrics

log = logging.getLogger("hux.bot.clients")

#: Outcomes worth another attempt; everything else fails at once.
RETRYABLE_OUTCOMES = frozenset({"rate_limited", "server_error", "timeout", "connection_error"})
#: Outcomes that say the service is unhealthy (they count towards opening the breaker).
BREAKER_FAILURES = frozenset({"server_error", "timeout", "connection_error", "invalid_response"})

#: What the operator can do about each outcome; appended to ApiError messages.
_ADVICE = {
    "client_error": "the request was refused: check the configured base_url, credentials and the input",
    "rate_limited": "the provider is rate limiting: lower the request rate or wait for the Retry-After period",
    "server_error": "the provider is failing: it is retried automatically, check the provider's status if it persists",
    "timeout": "no answer in time: check network reachability of the base_url or raise the timeout",
    "connection_error": "could not connect: check the base_url, DNS and network reachability",
    "invalid_response": "the body is not the documented shape: check that base_url points at the real API",
    "circuit_open": "too many consecutive failures, calls are paused: they resume automatically after the reset time",
}

# Any Telegram-style bot token in a URL ("bot123456:AA...") even when it was not registered as a secret.
_BOT_TOKEN_RE = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
_REDACTED = "***"
_MISS = object()  # cache sentinel: None is a valid cached answer ("unknown token")
#: Largest reply body read (after decompression); a larger one is an ``invalid_response``.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Longest pause a provider's Retry-After can impose; asked for longer, the client asks again after this.
MAX_RETRY_AFTER = 3600.0


class BodyTooLarge(Exception):
    """A reply body over the client's ``max_body_bytes``."""


def decode_json(content: bytes) -> Any:
    """The JSON value of a reply body; ``ValueError`` for every way it can be wrong.

    Not UTF-8, not JSON, nested deeper than the parser follows (RecursionError)
    or an integer of more digits than Python converts: all ValueError, so each
    ends as outcome ``invalid_response``.
    """
    try:
        return json.loads(content)
    except RecursionError:
        raise ValueError("JSON nested deeper than the parser follows") from None


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and anything shaped like a bot token replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return _BOT_TOKEN_RE.sub("bot" + _REDACTED, text)


class _RedactingFilter(logging.Filter):
    """Rewrites httpx/httpcore log records so request URLs never carry a secret."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix; drop its args
            message = str(record.msg)
        record.msg = redact(message, self.secrets)
        record.args = ()
        return True


_LOG_REDACTOR = _RedactingFilter()
# Logger filters do not apply to child loggers: name each one httpx/httpcore log through.
for _name in ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy"):
    logging.getLogger(_name).addFilter(_LOG_REDACTOR)


class ApiError(Exception):
    """An API call failed after the client's own retries.

    ``outcome`` is one of ``hux.bot.metrics.API_OUTCOMES``; ``status`` the last
    HTTP status (``None`` when no response arrived); ``retry_after`` the
    seconds the provider (or the open breaker) asks to wait, when known. The
    message names the API and endpoint, says what happened and what to do, and
    never contains a secret.
    """

    def __init__(
        self,
        api: str,
        endpoint: str,
        outcome: str,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        advice = _ADVICE.get(outcome, "")
        message = f"{api} {endpoint}: {detail} ({outcome} after {attempts} attempt{'s' if attempts != 1 else ''})"
        if advice:
            message += f"; {advice}"
        super().__init__(message)
        self.api = api
        self.endpoint = endpoint
        self.outcome = outcome
        self.status = status
        self.retry_after = retry_after
        self.attempts = attempts

    def __repr__(self) -> str:
        return f"ApiError({self.args[0]!r}, status={self.status!r}, retry_after={self.retry_after!r})"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who an API call is made for. ``chat``: the chat whose message asked for it (``None``: no
    chat in particular, e.g. a DexScreener batch of several chats' addresses, an alert). The
    rate limiter serves chats in turn by it; it never reaches a URL, a log line or a label."""

    chat: str | None = None


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


@dataclass
class _Attempt:
    outcome: str
    value: Any = None
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


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


def _body_retry_after(body: Any) -> float | None:
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


def _provider_message(body: Any) -> str:
    """The provider's own error text, if its error body has one (Telegram: ``description``)."""
    if isinstance(body, dict):
        for key in ("description", "message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:200]
    return ""


class ApiClient:
    """Resilient JSON client for one API. See the module docstring for the request path.

    ``endpoint`` arguments are metric labels: pass a fixed name per API method
    ("tokens", "report_summary", "sendMessage"), never anything derived from
    input. ``secrets`` are strings (tokens) to scrub from every message and
    from httpx's log records.
    """

    def __init__(
        self,
        api: str,
        base_url: str,
        metrics: BotMetrics,
        *,
        timeout: float = 5.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        rate_limit_per_second: float | None = None,
        burst: int = 5,
        breaker_failures: int = 5,
        breaker_reset_seconds: float = 30.0,
        cache_ttl: float = 0.0,
        cache_size: int = 1024,
        secrets: Sequence[str] = (),
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        endpoints: Sequence[str] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"{api}: timeout must be positive, got {timeout}")
        if max_retries < 0:
            raise ValueError(f"{api}: max_retries must be 0 or more, got {max_retries}")
        self.api = api
        self.metrics = metrics
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_body_bytes = max(1, int(max_body_bytes))
        self.backoff_base = max(0.0, float(backoff_base))
        self.backoff_max = max(self.backoff_base, float(backoff_max))
        self.secrets = tuple(s for s in secrets if s)
        _LOG_REDACTOR.secrets.update(self.secrets)

        self.limiter = RateLimiter(rate_limit_per_second, burst) if rate_limit_per_second else None
        if rate_limit_per_second:
            metrics.api_rate_limit.labels(api=api).set(rate_limit_per_second)
        state_gauge = metrics.api_circuit_state.labels(api=api)
        state_gauge.set(CircuitBreaker.CLOSED)
        self.breaker = CircuitBreaker(breaker_failures, breaker_reset_seconds, on_change=state_gauge.set)
        self._counted_endpoints: set[str] = set()
        for endpoint in endpoints:
            self._start_series(endpoint)

        self.cache_ttl = max(0.0, float(cache_ttl))
        self.cache_size = max(1, int(cache_size))
        self._cache: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()
        # A server-imposed pause (Retry-After) shared by every caller of this API.
        self._not_before = 0.0

        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(self.timeout),
            headers={
                "User-Agent": f"mr-hux-alpha-bot/{__version__}",
                "Accept": "application/json",
                **(headers or {}),
            },
            follow_redirects=False,
            transport=transport,
        )

    @classmethod
    def for_provider(cls, api: str, base_url: str, metrics: BotMetrics, *, rate_limit_per_minute: float | None,
                     cache_ttl: float, endpoints: Sequence[str], **http_options: Any) -> "ApiClient":
        """A market-data client: a per-minute limit (0/None: unlimited), a response cache, known endpoints."""
        return cls(
            api, base_url, metrics,
            rate_limit_per_second=rate_limit_per_minute / 60.0 if rate_limit_per_minute else None,
            cache_ttl=cache_ttl, endpoints=endpoints, **http_options,
        )

    def __repr__(self) -> str:  # base_url may hold a token: never show it
        return f"ApiClient(api={self.api!r}, breaker={self.breaker.state!r})"

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ public
    async def get_json(
        self,
        endpoint: str,
        path: str,
        params: dict | None = None,
        *,
        parse: Callable[[Any], Any] | None = None,
        timeout: float | None = None,
        missing_ok: bool = False,
        cache: bool = True,
        context: RequestContext | None = None,
    ) -> Any:
        """GET ``path`` and return the decoded JSON (or ``parse(json)``).

        ``parse`` validates and converts the body; ValueError, TypeError,
        KeyError or AttributeError from it make the outcome
        ``invalid_response``. ``missing_ok``: a 404 returns ``None`` (a valid
        "unknown" answer). ``timeout`` overrides the client's for this call
        (long polling). ``cache=False`` bypasses the response cache.
        ``context``: who the call is made for (the rate limiter serves chats in turn).
        """
        key = None
        if cache and self.cache_ttl > 0:
            key = (path, tuple(sorted((str(k), str(v)) for k, v in (params or {}).items())))
            hit = self._cache_get(key)
            if hit is not _MISS:
                self.metrics.api_cache.labels(api=self.api, result="hit").inc()
                return hit
            self.metrics.api_cache.labels(api=self.api, result="miss").inc()
        value = await self._call("GET", endpoint, path, params, None, parse, timeout, missing_ok, True, context=context)
        if key is not None:
            self._cache_put(key, value)
        return value

    async def post_json(
        self,
        endpoint: str,
        path: str,
        payload: Any,
        *,
        parse: Callable[[Any], Any] | None = None,
        timeout: float | None = None,
        expect_json: bool = True,
        context: RequestContext | None = None,
    ) -> Any:
        """POST ``payload`` as JSON; return the decoded JSON reply (``None`` when ``expect_json`` is false)."""
        return await self._call("POST", endpoint, path, None, payload, parse, timeout, False, expect_json, context=context)

    # ----------------------------------------------------------------- cache
    def _cache_get(self, key: tuple) -> Any:
        entry = self._cache.get(key)
        if entry is None:
            return _MISS
        expires, value = entry
        if time.monotonic() >= expires:
            del self._cache[key]
            return _MISS
        self._cache.move_to_end(key)
        return value

    def _cache_put(self, key: tuple, value: Any) -> None:
        self._cache[key] = (time.monotonic() + self.cache_ttl, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # ------------------------------------------------------------ the request
    def _start_series(self, endpoint: str) -> None:
        """Every outcome series of ``endpoint`` at 0: increase() then sees the first 429 or 5xx too
        (a series born at 1 shows no increase)."""
        self._counted_endpoints.add(endpoint)
        for outcome in API_OUTCOMES:
            self.metrics.api_requests.labels(api=self.api, endpoint=endpoint, outcome=outcome)

    def _count(self, endpoint: str, outcome: str) -> None:
        if endpoint not in self._counted_endpoints:
            self._start_series(endpoint)
        self.metrics.api_requests.labels(api=self.api, endpoint=endpoint, outcome=outcome).inc()

    def _backoff(self, retry: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped at backoff_max."""
        ceiling = min(self.backoff_max, self.backoff_base * (2**retry))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _call(
        self,
        method: str,
        endpoint: str,
        path: str,
        params: dict | None,
        payload: Any,
        parse: Callable[[Any], Any] | None,
        timeout: float | None,
        missing_ok: bool,
        expect_json: bool,
        *,
        context: RequestContext | None = None,
    ) -> Any:
        chat = context.chat if context is not None else None
        attempts = 0
        while True:
            # A Retry-After from the provider holds every caller back, not just the one that got it.
            wait = self._not_before - time.monotonic()
            if wait > 0:
                if wait > self.backoff_max:
                    self._count(endpoint, "rate_limited")
                    raise ApiError(
                        self.api, endpoint, "rate_limited",
                        f"provider asked to pause for {wait:.1f}s (Retry-After), longer than backoff_max",
                        status=429, retry_after=wait, attempts=max(1, attempts),
                    )
                await asyncio.sleep(wait)
            if not self.breaker.allow():
                self._count(endpoint, "circuit_open")
                raise ApiError(
                    self.api, endpoint, "circuit_open",
                    f"circuit breaker open, next trial in {self.breaker.retry_in():.1f}s",
                    retry_after=self.breaker.retry_in(), attempts=max(1, attempts),
                )
            attempts += 1
            result: _Attempt | None = None
            try:
                if self.limiter is not None:
                    await self.limiter.acquire(chat)
                result = await self._attempt(
                    method, endpoint, path, params, payload, parse, timeout, missing_ok, expect_json
                )
            finally:
                if result is None:  # cancelled: says nothing about the service
                    self.breaker.record_neutral()
            self._count(endpoint, result.outcome)
            if result.outcome in ("success", "client_error"):
                self.breaker.record_success()  # the service answered sensibly
            elif result.outcome in BREAKER_FAILURES:
                self.breaker.record_failure()
            else:
                self.breaker.record_neutral()
            if result.outcome == "success":
                return result.value

            if result.retry_after is not None:
                self._not_before = max(self._not_before, time.monotonic() + result.retry_after)
            retry = attempts - 1
            can_retry = result.outcome in RETRYABLE_OUTCOMES and retry < self.max_retries
            if can_retry and result.retry_after is not None and result.retry_after > self.backoff_max:
                can_retry = False  # the provider wants a longer pause than we wait inline: hand it to the caller
            if not can_retry:
                raise ApiError(
                    self.api, endpoint, result.outcome, result.detail,
                    status=result.status, retry_after=result.retry_after, attempts=attempts,
                )
            self.metrics.api_retries.labels(api=self.api, reason=result.outcome).inc()
            # With a Retry-After the shared pause (top of the loop) waits that long; never retry sooner
            # than the backoff either ("Retry-After: 0" from a struggling server is no reason to hammer it).
            delay = self._backoff(retry)
            if result.retry_after is not None:
                delay = max(0.0, delay - result.retry_after)
            log.debug("%s %s: %s, retry %d in %.2fs", self.api, endpoint, result.outcome, attempts, delay)
            await asyncio.sleep(delay)

    async def _attempt(
        self,
        method: str,
        endpoint: str,
        path: str,
        params: dict | None,
        payload: Any,
        parse: Callable[[Any], Any] | None,
        timeout: float | None,
        missing_ok: bool,
        expect_json: bool,
    ) -> _Attempt:
        limit = self.timeout if timeout is None else float(timeout)
        started = time.perf_counter()
        try:
            # httpx's timeouts bound each phase; this bounds the whole exchange (a slow drip of bytes too).
            async with asyncio.timeout(limit):
                request = self._client.build_request(
                    method, path, params=params, json=payload, timeout=httpx.Timeout(limit)
                )
                response = await self._client.send(request, stream=True)
                try:
                    content = await self._read_body(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return _Attempt("timeout", detail=f"no complete response within {limit:g}s")
        except BodyTooLarge as exc:
            return _Attempt("invalid_response", status=response.status_code, detail=str(exc))
        except httpx.DecodingError:
            return _Attempt("invalid_response", status=response.status_code,
                            detail="the body does not decode as its Content-Encoding says")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _Attempt("connection_error", detail=redact(f"{type(exc).__name__}: {exc}", self.secrets)[:300])
        finally:
            self.metrics.api_request_seconds.labels(api=self.api, endpoint=endpoint).observe(
                time.perf_counter() - started
            )
        try:
            return self._classify(response, content, parse, missing_ok, expect_json)
        except Exception as exc:  # noqa: BLE001 - whatever a body does to a parser, it is a counted invalid_response
            return _Attempt("invalid_response", status=response.status_code,
                            detail=f"HTTP {response.status_code} body could not be read ({type(exc).__name__})")

    async def _read_body(self, response: httpx.Response) -> bytes:
        """The decoded body, refused past ``max_body_bytes`` (checked as it arrives: a gzip bomb too)."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and len(declared) < 20 and int(declared) > self.max_body_bytes and \
                not response.headers.get("Content-Encoding"):
            raise BodyTooLarge(f"HTTP {response.status_code} body of {int(declared)} bytes is over max_body_bytes={self.max_body_bytes}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge(f"HTTP {response.status_code} body is over max_body_bytes={self.max_body_bytes}")
            chunks.append(chunk)
        return b"".join(chunks)

    def _classify(
        self, response: httpx.Response, content: bytes, parse: Callable[[Any], Any] | None, missing_ok: bool,
        expect_json: bool,
    ) -> _Attempt:
        status = response.status_code
        body: Any = None
        try:
            body = decode_json(content) if content else None
            json_ok = True
        except ValueError:
            json_ok = False

        if 200 <= status < 300:
            if not expect_json:
                return _Attempt("success", status=status)
            if not json_ok or body is None:
                snippet = redact(content[:60].decode("utf-8", "replace"), self.secrets)
                return _Attempt("invalid_response", status=status, detail=f"HTTP {status} body is not JSON: {snippet!r}")
            if parse is None:
                return _Attempt("success", body, status=status)
            try:
                return _Attempt("success", parse(body), status=status)
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                detail = redact(f"HTTP {status} body has an unexpected shape: {str(exc)[:200]}", self.secrets)[:300]
                return _Attempt("invalid_response", status=status, detail=detail)
            except Exception as exc:  # noqa: BLE001 - RecursionError, OverflowError...: still the body's fault
                return _Attempt("invalid_response", status=status,
                                detail=f"HTTP {status} body could not be parsed ({type(exc).__name__})")

        provider = redact(_provider_message(body), self.secrets)
        detail = f"HTTP {status}" + (f" {provider}" if provider else "")
        if status == 404 and missing_ok:
            return _Attempt("success", None, status=status)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = _body_retry_after(body)
        if status == 429:
            return _Attempt("rate_limited", status=status, retry_after=retry_after, detail=detail)
        if status >= 500:
            return _Attempt("server_error", status=status, retry_after=retry_after, detail=detail)
        if 400 <= status < 500:
            return _Attempt("client_error", status=status, detail=detail)
        return _Attempt("invalid_response", status=status, detail=f"unexpected HTTP {status}")
