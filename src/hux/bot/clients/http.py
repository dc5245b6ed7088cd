"""The resilient JSON-over-HTTP client every external API call goes through.

One ``ApiClient`` per API (DexScreener, RugCheck, Telegram, a webhook). A call
is described once, as a frozen ``Request`` (what to send, how to read the
answer, and the ``RequestContext``: which chat it is made for), and passes
down four layers, each with one job:

1. ``_with_retries``: the response cache is consulted before (GET only, when
   ``cache_ttl > 0``); 429, 5xx, timeouts and connection errors are tried
   again with exponential backoff and jitter, other failures raise
   ``ApiError`` at once. A ``Retry-After`` (header, or Telegram's
   ``parameters.retry_after``) replaces the computed delay; one longer than
   ``backoff_max`` is handed to the caller instead of waited out.
2. ``_guarded``: what may hold a request back before it leaves. A
   server-imposed pause (a ``Retry-After`` seen earlier applies to every
   caller of this API, not only to the request that received it), the
   circuit breaker (open: fail fast with outcome ``circuit_open``) and the
   rate limiter (the provider's documented request rate, shared fairly by
   the chats the calls are made for). Afterwards it tells the breaker what
   the attempt said about the service and counts the attempt in
   ``hux_api_requests_total{api,endpoint,outcome}``.
3. ``_attempt``: one HTTP exchange, bounded by ``timeout`` end to end and its
   reply body by ``max_body_bytes`` (after decompression), timed in
   ``hux_api_request_duration_seconds``.
4. ``_classify``: the reply as an outcome (``hux.bot.metrics.API_OUTCOMES``).

Every way a reply body can be wrong — too large, not UTF-8, not JSON, nested
past the parser's depth, numbers past what Python converts, a shape ``parse``
refuses or anything else ``parse`` raises — ends as outcome
``invalid_response``: counted, and a failure for the circuit breaker.

The rate limiter, the breaker and Retry-After parsing live in
``hux.bot.clients.resilience``.

Secrets (the Telegram token sits inside Bot API URLs) never reach an error
message, a log line or a metric label: messages are built from the API name,
the bounded endpoint label and redacted provider text only, and httpx
exceptions are not chained. Each client registers its secrets with the
logging setup (``hux.bot.logsetup``), whose filter redacts httpx's own request
log lines once logging is configured.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self

import httpx

from hux import __version__
from hux.bot.clients.resilience import CircuitBreaker, RateLimiter, body_retry_after, parse_retry_after
from hux.bot.logsetup import redact, register_secrets
from hux.bot.metrics import API_OUTCOMES, BotMetrics

log = logging.getLogger("hux.bot.clients")

#: Outcomes worth another attempt; everything else fails at once.
RETRYABLE_OUTCOMES = frozenset({"rate_limited", "server_error", "timeout", "connection_error"})
#: Outcomes that say the service is unhealthy (they count towards opening the breaker).
BREAKER_FAILURES = frozenset({"server_error", "timeout", "connection_error", "invalid_response"})
#: Outcomes that say the service answered sensibly (they close the breaker).
BREAKER_SUCCESSES = frozenset({"success", "client_error"})

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

_MISS = object()  # cache sentinel: None is a valid cached answer ("unknown token")
#: Largest reply body read (after decompression); a larger one is an ``invalid_response``.
MAX_BODY_BYTES = 8 * 1024 * 1024


class SharedBudget(Protocol):
    """A request budget shared with other instances (``hux.bot.cluster.SharedBudget``): one token per call."""

    async def acquire(self) -> None: ...


class ProviderSaid(Exception):
    """Raised by a ``parse``: a 2xx body whose own status says the call failed (GoPlus answers its request
    limit as ``{"code": 4029}``). ``outcome`` is how to count it: ``rate_limited`` or ``server_error``, so it
    is retried and alerted on like the HTTP status it stands for, not as a malformed body."""

    def __init__(self, outcome: str, detail: str) -> None:
        if outcome not in ("rate_limited", "server_error"):
            raise ValueError(f"a provider's body status counts as rate_limited or server_error, not {outcome!r}")
        super().__init__(detail)
        self.outcome = outcome


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


#: A call made for no chat in particular.
NO_CONTEXT = RequestContext()


@dataclass(frozen=True, slots=True)
class Request:
    """One API call as every layer sees it: built once by ``get_json``/``post_json``, never changed.

    ``endpoint`` is the metric label (a fixed name per API method); ``timeout`` the bound on
    each attempt; ``parse`` validates and converts a 2xx JSON body; ``missing_ok``: a 404 is the
    answer ``None``; ``expect_json``: a 2xx body must be JSON (else any 2xx is success).
    """

    method: str
    endpoint: str
    path: str
    timeout: float
    params: Mapping[str, Any] | None = None
    payload: Any = None
    parse: Callable[[Any], Any] | None = None
    missing_ok: bool = False
    expect_json: bool = True
    context: RequestContext = field(default=NO_CONTEXT)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: an ``API_OUTCOMES`` value and what goes with it."""

    outcome: str
    value: Any = None
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


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
        register_secrets(*self.secrets)

        self.limiter = RateLimiter(rate_limit_per_second, burst) if rate_limit_per_second else None
        # The provider's limit is per caller IP: instances on one database also share one budget there.
        self.shared_budget: SharedBudget | None = None
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
        self._cache: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()
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
                     cache_ttl: float, endpoints: Sequence[str], **http_options: Any) -> ApiClient:
        """A market-data client: a per-minute limit (0/None: unlimited), a response cache, known endpoints."""
        return cls(
            api, base_url, metrics,
            rate_limit_per_second=rate_limit_per_minute / 60.0 if rate_limit_per_minute else None,
            cache_ttl=cache_ttl, endpoints=endpoints, **http_options,
        )

    def __repr__(self) -> str:  # base_url may hold a token: never show it
        return f"ApiClient(api={self.api!r}, breaker={self.breaker.state!r})"

    async def __aenter__(self) -> ApiClient:
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
        params: Mapping[str, Any] | None = None,
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
        request = self._request("GET", endpoint, path, params=params, parse=parse, timeout=timeout,
                                missing_ok=missing_ok, context=context)
        if not (cache and self.cache_ttl > 0):
            return await self._with_retries(request)
        key = (path, tuple(sorted((str(k), str(v)) for k, v in (params or {}).items())))
        hit = self._cache_get(key)
        if hit is not _MISS:
            self.metrics.api_cache.labels(api=self.api, result="hit").inc()
            return hit
        self.metrics.api_cache.labels(api=self.api, result="miss").inc()
        value = await self._with_retries(request)
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
        return await self._with_retries(self._request("POST", endpoint, path, payload=payload, parse=parse,
                                                      timeout=timeout, expect_json=expect_json, context=context))

    def _request(self, method: str, endpoint: str, path: str, *, timeout: float | None,
                 context: RequestContext | None, **fields: Any) -> Request:
        return Request(method, endpoint, path, self.timeout if timeout is None else float(timeout),
                       context=context or NO_CONTEXT, **fields)

    # ----------------------------------------------------------------- cache
    def _cache_get(self, key: tuple[Any, ...]) -> Any:
        entry = self._cache.get(key)
        if entry is None:
            return _MISS
        expires, value = entry
        if time.monotonic() >= expires:
            del self._cache[key]
            return _MISS
        self._cache.move_to_end(key)
        return value

    def _cache_put(self, key: tuple[Any, ...], value: Any) -> None:
        self._cache[key] = (time.monotonic() + self.cache_ttl, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # ------------------------------------------------------------- counting
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

    def _error(self, request: Request, result: Outcome, attempts: int) -> ApiError:
        return ApiError(self.api, request.endpoint, result.outcome, result.detail,
                        status=result.status, retry_after=result.retry_after, attempts=max(1, attempts))

    # ------------------------------------------------------- 1. retries
    def _backoff(self, retry: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped at backoff_max."""
        ceiling = min(self.backoff_max, self.backoff_base * (2.0**retry))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _retry_delay(self, result: Outcome, retry: int) -> float | None:
        """Seconds to wait before retry number ``retry + 1``; ``None``: give up and raise."""
        if result.outcome not in RETRYABLE_OUTCOMES or retry >= self.max_retries:
            return None
        if result.retry_after is not None and result.retry_after > self.backoff_max:
            return None  # the provider wants a longer pause than we wait inline: hand it to the caller
        # With a Retry-After the shared pause (``_guarded``) waits that long; never retry sooner
        # than the backoff either ("Retry-After: 0" from a struggling server is no reason to hammer it).
        delay = self._backoff(retry)
        if result.retry_after is not None:
            delay = max(0.0, delay - result.retry_after)
        return delay

    async def _with_retries(self, request: Request) -> Any:
        attempts = 0
        while True:
            result = await self._guarded(request, attempts)
            attempts += 1
            if result.outcome == "success":
                return result.value
            if result.retry_after is not None:
                self._not_before = max(self._not_before, time.monotonic() + result.retry_after)
            delay = self._retry_delay(result, attempts - 1)
            if delay is None:
                raise self._error(request, result, attempts)
            self.metrics.api_retries.labels(api=self.api, reason=result.outcome).inc()
            log.debug("%s %s: %s, retry %d in %.2fs", self.api, request.endpoint, result.outcome, attempts, delay)
            await asyncio.sleep(delay)

    # ------------------------------------------ 2. pause, breaker, limiter
    async def _guarded(self, request: Request, attempts: int) -> Outcome:
        """One attempt once nothing holds it back; the breaker told and the attempt counted.

        Raises ``ApiError`` without an attempt when the provider's pause is longer than we wait
        inline (``rate_limited``) or the breaker is open (``circuit_open``). ``attempts``: how
        many were made before this one (for those messages).
        """
        # A Retry-After from the provider holds every caller back, not just the one that got it.
        wait = self._not_before - time.monotonic()
        if wait > 0:
            if wait > self.backoff_max:
                self._count(request.endpoint, "rate_limited")
                raise self._error(request, Outcome(
                    "rate_limited", status=429, retry_after=wait,
                    detail=f"provider asked to pause for {wait:.1f}s (Retry-After), longer than backoff_max",
                ), attempts)
            await asyncio.sleep(wait)
        if not self.breaker.allow():
            self._count(request.endpoint, "circuit_open")
            retry_in = self.breaker.retry_in()
            raise self._error(request, Outcome(
                "circuit_open", retry_after=retry_in, detail=f"circuit breaker open, next trial in {retry_in:.1f}s",
            ), attempts)
        result: Outcome | None = None
        try:
            if self.limiter is not None:
                await self.limiter.acquire(request.context.chat)
            if self.shared_budget is not None:
                await self.shared_budget.acquire()
            result = await self._attempt(request)
        finally:
            if result is None:  # cancelled: says nothing about the service
                self.breaker.record_neutral()
        self._count(request.endpoint, result.outcome)
        if result.outcome in BREAKER_SUCCESSES:
            self.breaker.record_success()
        elif result.outcome in BREAKER_FAILURES:
            self.breaker.record_failure()
        else:
            self.breaker.record_neutral()
        return result

    # ------------------------------------------------------ 3. one attempt
    async def _attempt(self, request: Request) -> Outcome:
        """One HTTP exchange, bounded in time (end to end) and body size, timed."""
        limit = request.timeout
        started = time.perf_counter()
        try:
            # httpx's timeouts bound each phase; this bounds the whole exchange (a slow drip of bytes too).
            async with asyncio.timeout(limit):
                built = self._client.build_request(
                    request.method, request.path, params=request.params, json=request.payload,
                    timeout=httpx.Timeout(limit),
                )
                response = await self._client.send(built, stream=True)
                try:
                    content = await self._read_body(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return Outcome("timeout", detail=f"no complete response within {limit:g}s")
        except BodyTooLarge as exc:
            return Outcome("invalid_response", status=response.status_code, detail=str(exc))
        except httpx.DecodingError:
            return Outcome("invalid_response", status=response.status_code,
                           detail="the body does not decode as its Content-Encoding says")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return Outcome("connection_error", detail=redact(f"{type(exc).__name__}: {exc}", self.secrets)[:300])
        finally:
            self.metrics.api_request_seconds.labels(api=self.api, endpoint=request.endpoint).observe(
                time.perf_counter() - started
            )
        try:
            return self._classify(request, response, content)
        except Exception as exc:  # noqa: BLE001 - whatever a body does to a parser, it is a counted invalid_response
            return Outcome("invalid_response", status=response.status_code,
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

    # --------------------------------------------------------- 4. classify
    def _classify(self, request: Request, response: httpx.Response, content: bytes) -> Outcome:
        """The reply as an outcome: a 2xx parsed (or ``invalid_response``), else by status."""
        status = response.status_code
        body: Any = None
        try:
            body = decode_json(content) if content else None
            json_ok = True
        except ValueError:
            json_ok = False

        if 200 <= status < 300:
            if not request.expect_json:
                return Outcome("success", status=status)
            if not json_ok or body is None:
                snippet = redact(content[:60].decode("utf-8", "replace"), self.secrets)
                return Outcome("invalid_response", status=status, detail=f"HTTP {status} body is not JSON: {snippet!r}")
            if request.parse is None:
                return Outcome("success", body, status=status)
            try:
                return Outcome("success", request.parse(body), status=status)
            except ProviderSaid as exc:
                return Outcome(exc.outcome, status=status, detail=redact(f"HTTP {status} {exc}", self.secrets)[:300])
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                detail = redact(f"HTTP {status} body has an unexpected shape: {str(exc)[:200]}", self.secrets)[:300]
                return Outcome("invalid_response", status=status, detail=detail)
            except Exception as exc:  # noqa: BLE001 - RecursionError, OverflowError...: still the body's fault
                return Outcome("invalid_response", status=status,
                               detail=f"HTTP {status} body could not be parsed ({type(exc).__name__})")

        provider = redact(_provider_message(body), self.secrets)
        detail = f"HTTP {status}" + (f" {provider}" if provider else "")
        if status == 404 and request.missing_ok:
            return Outcome("success", None, status=status)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = body_retry_after(body)
        if status == 429:
            return Outcome("rate_limited", status=status, retry_after=retry_after, detail=detail)
        if status >= 500:
            return Outcome("server_error", status=status, retry_after=retry_after, detail=detail)
        if 400 <= status < 500:
            return Outcome("client_error", status=status, detail=detail)
        return Outcome("invalid_response", status=status, detail=f"unexpected HTTP {status}")


class _Documented(enum.Enum):
    RATE = "the provider's documented rate"


#: ``create``'s default: the provider's documented per-minute rate (``None`` or 0 means unlimited)
DOCUMENTED_RATE = _Documented.RATE


class ProviderClient:
    """A market-data provider's client: one :class:`ApiClient` at the provider's documented rate and cache.

    Subclasses name the provider (``API``, the ``api`` label), where it answers, its rate, cache and endpoints;
    ``create`` builds the whole client stack from those, so every provider gets the same retries, breaker,
    limiter and metrics."""

    API: ClassVar[str]
    DEFAULT_BASE_URL: ClassVar[str]
    RATE_LIMIT_PER_MINUTE: ClassVar[float]
    CACHE_TTL: ClassVar[float]
    ENDPOINTS: ClassVar[tuple[str, ...]]
    BURST: ClassVar[int | None] = None   # None: ApiClient's default burst

    def __init__(self, http: ApiClient) -> None:
        self.http = http

    @classmethod
    def create(
        cls,
        metrics: BotMetrics,
        base_url: str | None = None,
        *,
        rate_limit_per_minute: float | None | _Documented = DOCUMENTED_RATE,
        cache_ttl: float | None = None,
        **http_options: Any,
    ) -> Self:
        """A client with its own ``ApiClient`` (``http_options`` go to ApiClient)."""
        if cls.BURST is not None:
            http_options.setdefault("burst", cls.BURST)
        rate = cls.RATE_LIMIT_PER_MINUTE if isinstance(rate_limit_per_minute, _Documented) else rate_limit_per_minute
        return cls(ApiClient.for_provider(
            cls.API, base_url or cls.DEFAULT_BASE_URL, metrics, rate_limit_per_minute=rate,
            cache_ttl=cls.CACHE_TTL if cache_ttl is None else cache_ttl, endpoints=cls.ENDPOINTS, **http_options))

    async def aclose(self) -> None:
        await self.http.aclose()
