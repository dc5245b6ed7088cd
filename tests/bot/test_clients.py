"""The API clients against real loopback HTTP: the doubles, and a scripted server for exact bodies.

Every failure mode of the issue's "bad input" list: bodies that are not JSON,
missing fields, wrong types, 429 with and without Retry-After, 5xx, hanging
connections, the circuit breaker, the rate limiter, the cache, and secrets
that must never leak.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from hux.bot import logsetup
from hux.bot.clients.dexscreener import DexScreenerClient, parse_pair
from hux.bot.clients.http import ApiClient, ApiError, RequestContext, redact
from hux.bot.clients.resilience import CircuitBreaker, RateLimiter, parse_retry_after
from hux.bot.clients.rugcheck import RugCheckClient
from hux.bot.clients.telegram import TelegramBotApi
from hux.bot.messages import Rejected
from hux.bot.metrics import BotMetrics
from hux.bot.sources.telegram import parse_update
from hux.doubles.market import RunningDoubles, start_doubles
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(30)

TOKEN = "987654321:AAHsecretSECRETsecret_token-value"
SOL_A = "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr"
SOL_B = "So11111111111111111111111111111111111111112"
EVM_A = "0x6982508145454Ce325dDbE47a25d4ec3d2311933"
FAST = {"backoff_base": 0.01, "backoff_max": 0.5, "timeout": 2.0}


# --------------------------------------------------------------------------- fixtures
@dataclass
class Scripted:
    """One canned answer. ``hang``: accept and never answer (until the server stops)."""

    status: int = 200
    body: Any = None  # dict/list → JSON, bytes/str → raw
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class ScriptedServer:
    """A real HTTP server answering from a script; records when each request arrived and its path."""

    def __init__(self) -> None:
        self.script: list[Scripted] = []
        self.arrivals: list[tuple[float, str]] = []
        self._stop = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    def answer(self, *answers: Scripted) -> None:
        """Queue answers; the last one repeats once the script runs out."""
        self.script.extend(answers)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append((time.monotonic(), request.path_qs))
        scripted = self.script.pop(0) if len(self.script) > 1 else (self.script[0] if self.script else Scripted(body={}))
        if scripted.hang:
            await self._stop.wait()
        body = scripted.body
        if isinstance(body, (dict, list)) or body is None:
            raw = json.dumps(body).encode()
        else:
            raw = body.encode() if isinstance(body, str) else body
        return web.Response(status=scripted.status, body=raw, headers=scripted.headers, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)  # the "provider" side logs nothing
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._stop.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def server():
    srv = ScriptedServer()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def doubles():
    running = await start_doubles("127.0.0.1", 0, seed=7)
    yield running
    await running.stop()


@pytest.fixture
def metrics() -> BotMetrics:
    return BotMetrics(process_metrics=False)


def requests(metrics: BotMetrics, api: str, endpoint: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "hux_api_requests_total", {"api": api, "endpoint": endpoint, "outcome": outcome}
    )
    return value or 0.0


def retries(metrics: BotMetrics, api: str, reason: str) -> float:
    return metrics.registry.get_sample_value("hux_api_retries_total", {"api": api, "reason": reason}) or 0.0


def pair(**overrides: Any) -> dict:
    base = {
        "chainId": "solana", "dexId": "raydium", "url": "https://dexscreener.com/solana/p1", "pairAddress": "P1",
        "baseToken": {"address": SOL_A, "name": "Tzp", "symbol": "TZP"}, "quoteToken": {"address": SOL_B, "symbol": "SOL"},
        "priceNative": "0.0001", "priceUsd": "0.015", "volume": {"h24": 1000, "h1": 50.5}, "priceChange": {"h1": 3.5, "h24": -2},
        "liquidity": {"usd": 25000.5}, "pairCreatedAt": 1_700_000_000_000,
    }
    base.update(overrides)
    return base


# --------------------------------------------------------------------------- success and bodies
async def test_success_is_counted_and_timed(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(body={"hello": "world"}))
    async with ApiClient("dexscreener", server.url, metrics, **FAST) as client:
        assert await client.get_json("tokens", "/x", {"a": 1}) == {"hello": "world"}
    assert requests(metrics, "dexscreener", "tokens", "success") == 1
    count = metrics.registry.get_sample_value(
        "hux_api_request_duration_seconds_count", {"api": "dexscreener", "endpoint": "tokens"}
    )
    assert count == 1
    assert server.arrivals[0][1] == "/x?a=1"


async def test_every_outcome_series_exists_at_zero_before_the_first_request(metrics: BotMetrics) -> None:
    """increase() sees no rise in a series that is born at 1: the first 429 or 5xx must have a 0 before it."""
    from hux.bot.metrics import API_OUTCOMES

    dex = DexScreenerClient.create(metrics, "http://127.0.0.1:9", rate_limit_per_minute=300, cache_ttl=0)
    rug = RugCheckClient.create(metrics, "http://127.0.0.1:9", rate_limit_per_minute=0, cache_ttl=0)
    try:
        for api, endpoint in (("dexscreener", "tokens"), ("rugcheck", "report_summary")):
            for outcome in API_OUTCOMES:
                value = metrics.registry.get_sample_value(
                    "hux_api_requests_total", {"api": api, "endpoint": endpoint, "outcome": outcome})
                assert value == 0.0, f"{api}/{endpoint}/{outcome} should start at 0, is {value}"
    finally:
        await dex.aclose()
        await rug.aclose()


async def test_an_endpoint_first_seen_gets_all_its_outcome_series(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(body={"hello": "world"}))
    async with ApiClient("dexscreener", server.url, metrics, **FAST) as client:
        await client.get_json("other", "/x")
    assert requests(metrics, "dexscreener", "other", "success") == 1
    assert metrics.registry.get_sample_value(
        "hux_api_requests_total", {"api": "dexscreener", "endpoint": "other", "outcome": "rate_limited"}) == 0.0


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b'{"pairs": [', b"", "\udcff".encode("utf-8", "surrogatepass")],
    ids=["html", "truncated", "empty", "not-utf8"],
)
async def test_body_that_is_not_json_is_invalid_response(server: ScriptedServer, metrics: BotMetrics, body: bytes) -> None:
    server.answer(Scripted(body=body))
    async with ApiClient("dexscreener", server.url, metrics, **FAST) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_json("tokens", "/x")
    assert caught.value.outcome == "invalid_response"
    assert len(server.arrivals) == 1, "a broken body is not retried"
    assert requests(metrics, "dexscreener", "tokens", "invalid_response") == 1


@pytest.mark.parametrize(
    "body",
    [[], {"schemaVersion": "1.0.0"}, {"pairs": "unavailable"}, {"pairs": [{"chainId": 7}, "x", None]}, {"pairs": {"a": 1}}],
    ids=["list", "missing-pairs", "pairs-string", "no-usable-pair", "pairs-object"],
)
async def test_dexscreener_wrong_shapes_are_invalid_response(server: ScriptedServer, metrics: BotMetrics, body: Any) -> None:
    server.answer(Scripted(body=body))
    client = DexScreenerClient(ApiClient("dexscreener", server.url, metrics, **FAST))
    with pytest.raises(ApiError) as caught:
        await client.token_pairs([SOL_A])
    await client.aclose()
    assert caught.value.outcome == "invalid_response"
    assert requests(metrics, "dexscreener", "tokens", "invalid_response") == 1


async def test_dexscreener_partial_pairs_parsed_leniently_and_broken_ones_skipped(
    server: ScriptedServer, metrics: BotMetrics
) -> None:
    partial = {"chainId": "solana", "pairAddress": "P2", "baseToken": {"address": SOL_A}, "priceUsd": "abc",
               "liquidity": {"usd": "n/a"}, "volume": [], "priceChange": {"h1": True}, "pairCreatedAt": "soon"}
    no_identity = pair(baseToken={"symbol": "X"})
    server.answer(Scripted(body={"schemaVersion": "1.0.0", "pairs": [pair(), partial, no_identity, 42]}))
    client = DexScreenerClient(ApiClient("dexscreener", server.url, metrics, **FAST))
    result = await client.token_pairs([SOL_A])
    await client.aclose()
    full, lenient = result[SOL_A]
    assert (full.price_usd, full.liquidity_usd, full.volume_h1, full.price_change_h24) == (0.015, 25000.5, 50.5, -2.0)
    assert full.pair_created_at is not None and full.pair_created_at.year == 2023
    assert (lenient.price_usd, lenient.liquidity_usd, lenient.volume_h24, lenient.price_change_h1) == (None, 0.0, 0.0, 0.0)
    assert lenient.pair_created_at is None and lenient.base_symbol == "" and lenient.dex_id == ""
    assert requests(metrics, "dexscreener", "tokens", "success") == 1


def test_parse_pair_rejects_non_finite_and_negative_numbers() -> None:
    parsed = parse_pair(pair(priceUsd="-1", liquidity={"usd": float("inf")}, volume={"h24": "NaN"}))
    assert parsed is not None
    assert (parsed.price_usd, parsed.liquidity_usd, parsed.volume_h24) == (None, 0.0, 0.0)
    assert parse_pair(pair(chainId=None)) is None


async def test_dexscreener_batches_30_addresses_and_dedupes(doubles: RunningDoubles, metrics: BotMetrics) -> None:
    # 31 distinct base58 addresses (+ a duplicate and an EVM address in another case) → 2 requests.
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    addresses = [SOL_A[:-2] + alphabet[i] + alphabet[i + 1] for i in range(30)] + [EVM_A, SOL_A[:-2] + "12", EVM_A.lower()]
    client = DexScreenerClient.create(metrics, doubles.url("dexscreener"), **FAST)
    result = await client.token_pairs(addresses)
    await client.aclose()
    # every spelling asked is a key (a batch may hold one EVM address in two cases), each looked up once
    assert len(result) == 32 and set(result) == set(addresses) and result[EVM_A.lower()] == result[EVM_A] != []
    assert doubles.faults["dexscreener"].stats["tokens"]["200"] == 2
    assert sum(1 for pairs in result.values() if pairs) >= 20, "about one in ten addresses is unknown to the double"
    for address, pairs in result.items():
        for p in pairs:
            assert p.base_address.lower() == address.lower()
            assert p.liquidity_usd > 0 and p.price_usd is not None and p.pair_created_at is not None


async def test_dexscreener_refuses_strings_that_are_not_addresses(metrics: BotMetrics) -> None:
    client = DexScreenerClient.create(metrics, "http://127.0.0.1:9")
    with pytest.raises(ValueError, match="not a Solana"):
        await client.token_pairs(["../../admin", SOL_A])
    await client.aclose()
    assert requests(metrics, "dexscreener", "tokens", "success") == 0


async def test_rugcheck_summary_unknown_and_non_solana(doubles: RunningDoubles, metrics: BotMetrics) -> None:
    client = RugCheckClient.create(metrics, doubles.url("rugcheck"), rate_limit_per_minute=None, **FAST)
    assert await client.report_summary(EVM_A) is None  # RugCheck is Solana only: no request
    reports = [await client.report_summary(SOL_A[:-2] + c + "z") for c in "123456789ABCDEFGH"]
    await client.aclose()
    known = [r for r in reports if r is not None]
    assert known and len(known) < len(reports), "the double knows most mints but not all (404 → None)"
    for report in known:
        assert 0 <= report.score_normalised <= 100 and report.risk_level in ("good", "warn", "danger")
    assert requests(metrics, "rugcheck", "report_summary", "success") == len(reports)
    assert requests(metrics, "rugcheck", "report_summary", "client_error") == 0


@pytest.mark.parametrize(
    "body",
    [{"risks": []}, {"score_normalised": "high"}, {"score_normalised": 5, "risks": {"name": "x"}}, [1, 2]],
    ids=["missing-score", "score-string", "risks-object", "list"],
)
async def test_rugcheck_wrong_shapes_are_invalid_response(server: ScriptedServer, metrics: BotMetrics, body: Any) -> None:
    server.answer(Scripted(body=body))
    client = RugCheckClient(ApiClient("rugcheck", server.url, metrics, **FAST))
    with pytest.raises(ApiError) as caught:
        await client.report_summary(SOL_A)
    await client.aclose()
    assert caught.value.outcome == "invalid_response"


async def test_rugcheck_skips_malformed_risk_entries(server: ScriptedServer, metrics: BotMetrics) -> None:
    body = {"score_normalised": 250, "risks": [{"name": "Mutable metadata", "level": "warn"}, "junk", {"level": "danger"}]}
    server.answer(Scripted(body=body))
    client = RugCheckClient(ApiClient("rugcheck", server.url, metrics, **FAST))
    report = await client.report_summary(SOL_A)
    await client.aclose()
    assert report is not None
    assert (report.score_normalised, report.risk_level, report.risks) == (100.0, "warn", ("Mutable metadata",))


async def test_malformed_bodies_from_the_doubles_never_crash(doubles: RunningDoubles, metrics: BotMetrics) -> None:
    for api in ("dexscreener", "rugcheck", "telegram"):
        doubles.faults[api].set(doubles.faults[api].settings.__class__(malformed_rate=1.0))
    dex = DexScreenerClient.create(metrics, doubles.url("dexscreener"), **FAST)
    rug = RugCheckClient.create(metrics, doubles.url("rugcheck"), cache_ttl=0, rate_limit_per_minute=None, **FAST)
    tg = TelegramBotApi.create(TOKEN, metrics, doubles.url("telegram"), **FAST)
    calls = [lambda: dex.token_pairs([SOL_A]), lambda: rug.report_summary(SOL_A), lambda: tg.get_updates(None, timeout=0)]
    for call in calls * 4:
        with pytest.raises(ApiError) as caught:
            await call()
        assert caught.value.outcome == "invalid_response"
    for client in (dex, rug, tg):
        await client.aclose()
    assert requests(metrics, "dexscreener", "tokens", "invalid_response") == 4
    assert requests(metrics, "rugcheck", "report_summary", "invalid_response") == 4
    assert requests(metrics, "telegram", "getUpdates", "invalid_response") == 4


# --------------------------------------------------------------------------- 429, 5xx, timeouts
async def test_429_with_retry_after_waits_that_long_then_succeeds(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(429, {"error": "slow down"}, {"Retry-After": "0.4"}), Scripted(body={"ok": 1}))
    async with ApiClient("dexscreener", server.url, metrics, max_retries=2, backoff_base=0.01, backoff_max=2.0) as client:
        assert await client.get_json("tokens", "/x") == {"ok": 1}
    gap = server.arrivals[1][0] - server.arrivals[0][0]
    assert gap >= 0.38, f"Retry-After 0.4 s not honoured (second request after {gap:.3f}s)"
    assert requests(metrics, "dexscreener", "tokens", "rate_limited") == 1
    assert requests(metrics, "dexscreener", "tokens", "success") == 1
    assert retries(metrics, "dexscreener", "rate_limited") == 1


async def test_429_without_retry_after_backs_off_and_gives_up(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(429, {"error": "Too Many Requests"}))
    async with ApiClient("dexscreener", server.url, metrics, max_retries=3, backoff_base=0.05, backoff_max=1.0) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_json("tokens", "/x")
    assert caught.value.outcome == "rate_limited" and caught.value.retry_after is None and caught.value.attempts == 4
    times = [t for t, _ in server.arrivals]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Jittered exponential backoff: each wait is at least half of 0.05·2^n.
    assert all(gap >= 0.05 * 2**n / 2 * 0.9 for n, gap in enumerate(gaps)), gaps
    assert requests(metrics, "dexscreener", "tokens", "rate_limited") == 4
    assert retries(metrics, "dexscreener", "rate_limited") == 3


async def test_long_retry_after_is_handed_to_the_caller_and_holds_other_calls(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(429, {}, {"Retry-After": "120"}))
    async with ApiClient("dexscreener", server.url, metrics, max_retries=3, **{**FAST, "backoff_max": 1.0}) as client:
        with pytest.raises(ApiError) as first:
            await client.get_json("tokens", "/x")
        with pytest.raises(ApiError) as second:  # inside the pause: not sent at all
            await client.get_json("tokens", "/y")
    assert first.value.retry_after == pytest.approx(120, abs=1) and first.value.attempts == 1
    assert second.value.outcome == "rate_limited" and second.value.retry_after > 100
    assert len(server.arrivals) == 1
    assert requests(metrics, "dexscreener", "tokens", "rate_limited") == 2


async def test_telegram_retry_after_in_body_is_honoured(server: ScriptedServer, metrics: BotMetrics) -> None:
    limited = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}
    sent = {"ok": True, "result": {"message_id": 5, "chat": {"id": -1}, "date": 0, "text": "hi"}}
    server.answer(Scripted(429, limited), Scripted(body=sent))
    api = TelegramBotApi(ApiClient("telegram", f"{server.url}/bot{TOKEN}", metrics, secrets=(TOKEN,), **{**FAST, "backoff_max": 2.0}))
    message = await api.send_message(-1, "hi")
    await api.aclose()
    assert message["message_id"] == 5
    assert server.arrivals[1][0] - server.arrivals[0][0] >= 0.95
    assert requests(metrics, "telegram", "sendMessage", "rate_limited") == 1


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= parse_retry_after(future) <= 31


async def test_5xx_is_retried_then_server_error(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(503, {"error": "maintenance"}))
    async with ApiClient("rugcheck", server.url, metrics, max_retries=2, **FAST) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_json("report_summary", "/x")
    error = caught.value
    assert (error.outcome, error.status, error.attempts) == ("server_error", 503, 3)
    assert "maintenance" in str(error) and "rugcheck report_summary" in str(error)
    assert len(server.arrivals) == 3
    assert requests(metrics, "rugcheck", "report_summary", "server_error") == 3
    assert retries(metrics, "rugcheck", "server_error") == 2


async def test_5xx_then_recovery_succeeds(doubles: RunningDoubles, metrics: BotMetrics) -> None:
    faults = doubles.faults["dexscreener"]
    faults.set(faults.settings.__class__(error_rate=1.0, error_status=502))
    client = DexScreenerClient.create(metrics, doubles.url("dexscreener"), max_retries=5, backoff_base=0.1, backoff_max=0.3)
    task = asyncio.create_task(client.token_pairs([SOL_A]))
    for _ in range(100):  # until the first failed attempt arrived
        if faults.stats["tokens"]["502"]:
            break
        await asyncio.sleep(0.01)
    faults.reset()
    result = await asyncio.wait_for(task, 10)
    await client.aclose()
    assert SOL_A in result
    assert requests(metrics, "dexscreener", "tokens", "server_error") >= 1
    assert requests(metrics, "dexscreener", "tokens", "success") == 1


async def test_4xx_is_not_retried(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(400, {"error": "invalid token mint address"}))
    async with ApiClient("rugcheck", server.url, metrics, **FAST) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_json("report_summary", "/x")
    assert caught.value.outcome == "client_error" and len(server.arrivals) == 1


async def test_hanging_connection_times_out_and_is_counted(doubles: RunningDoubles, metrics: BotMetrics) -> None:
    faults = doubles.faults["dexscreener"]
    faults.set(faults.settings.__class__(hang=True))
    client = DexScreenerClient.create(metrics, doubles.url("dexscreener"), timeout=0.3, max_retries=1, backoff_base=0.01)
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        await client.token_pairs([SOL_A])
    elapsed = time.monotonic() - started
    await client.aclose()
    assert caught.value.outcome == "timeout" and caught.value.status is None
    assert elapsed < 5, "a hanging server must not hold the caller beyond the timeouts"
    assert requests(metrics, "dexscreener", "tokens", "timeout") == 2
    assert retries(metrics, "dexscreener", "timeout") == 1


async def test_connection_refused_is_connection_error(metrics: BotMetrics) -> None:
    async with ApiClient("rugcheck", f"http://127.0.0.1:{free_port()}", metrics, max_retries=1, **FAST) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_json("report_summary", "/x")
    assert caught.value.outcome == "connection_error"
    assert requests(metrics, "rugcheck", "report_summary", "connection_error") == 2


async def test_long_poll_waits_beyond_the_client_timeout(doubles: RunningDoubles, metrics: BotMetrics) -> None:
    api = TelegramBotApi.create(TOKEN, metrics, doubles.url("telegram"), timeout=0.5, **{"max_retries": 0})
    started = time.monotonic()
    assert await api.get_updates(None, timeout=1) == []
    assert time.monotonic() - started >= 0.9
    doubles.telegram.inject_message(f"buy {SOL_A}")
    updates = await api.get_updates(None, timeout=1)
    await api.aclose()
    assert updates[0]["message"]["text"] == f"buy {SOL_A}"


async def test_telegram_updates_that_are_not_updates_reach_the_source_to_be_counted(server: ScriptedServer, metrics: BotMetrics) -> None:
    """The client passes every entry on; the source refuses (and counts) the ones that are not updates."""
    result = [{"update_id": 1, "message": {}}, {"update_id": "2"}, 3, {"update_id": True}]
    server.answer(Scripted(body={"ok": True, "result": result}))
    api = TelegramBotApi(ApiClient("telegram", f"{server.url}/bot{TOKEN}", metrics, secrets=(TOKEN,), **FAST))
    updates = await api.get_updates(0, timeout=0)
    await api.aclose()
    assert updates == result
    for bad in updates[1:]:
        with pytest.raises(Rejected) as caught:
            parse_update(bad, max_bytes=1000)
        assert caught.value.reason == "malformed"


# --------------------------------------------------------------------------- circuit breaker
async def test_circuit_opens_rejects_fast_and_half_opens(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(503, {}))
    client = ApiClient("dexscreener", server.url, metrics, max_retries=0, breaker_failures=3, breaker_reset_seconds=0.4, **FAST)
    state = lambda: metrics.registry.get_sample_value("hux_api_circuit_state", {"api": "dexscreener"})  # noqa: E731
    assert state() == 0
    for _ in range(3):
        with pytest.raises(ApiError) as caught:
            await client.get_json("tokens", "/x")
        assert caught.value.outcome == "server_error"
    assert state() == 2 and client.breaker.state == "open"
    started = time.monotonic()
    with pytest.raises(ApiError) as rejected:
        await client.get_json("tokens", "/x")
    assert rejected.value.outcome == "circuit_open" and 0 < rejected.value.retry_after <= 0.4
    assert time.monotonic() - started < 0.5, "an open circuit fails fast"
    assert len(server.arrivals) == 3, "an open circuit sends nothing"
    assert requests(metrics, "dexscreener", "tokens", "circuit_open") == 1

    await asyncio.sleep(0.45)  # half-open: one trial; it fails → open again
    with pytest.raises(ApiError):
        await client.get_json("tokens", "/x")
    assert len(server.arrivals) == 4 and state() == 2

    await asyncio.sleep(0.45)  # half-open again; the trial succeeds → closed
    server.script[:] = [Scripted(body={"ok": True})]
    assert await client.get_json("tokens", "/x") == {"ok": True}
    assert state() == 0 and client.breaker.state == "closed"
    await client.aclose()


def test_breaker_lets_one_trial_through_when_half_open() -> None:
    now = [0.0]
    changes: list[int] = []
    breaker = CircuitBreaker(2, 10.0, clock=lambda: now[0], on_change=changes.append)
    breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()
    assert not breaker.allow() and breaker.state == "open"
    now[0] = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow(), "only one trial at a time"
    breaker.record_neutral()  # e.g. the trial got a 429: the slot frees, still half-open
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and changes == [2, 1, 0]


async def test_client_errors_do_not_open_the_circuit(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(404, {"error": "not found"}))
    async with ApiClient("rugcheck", server.url, metrics, max_retries=0, breaker_failures=2, **FAST) as client:
        for _ in range(4):
            with pytest.raises(ApiError) as caught:
                await client.get_json("report_summary", "/x")
            assert caught.value.outcome == "client_error"
    assert client.breaker.state == "closed"


# --------------------------------------------------------------------------- rate limiter and cache
async def test_rate_limiter_keeps_to_its_rate_over_a_window() -> None:
    limiter = RateLimiter(rate_per_second=20, burst=2)
    taken = 0

    async def worker(until: float) -> None:
        nonlocal taken
        while True:
            await limiter.acquire()
            if time.monotonic() >= until:
                return
            taken += 1

    window = 1.0
    until = time.monotonic() + window
    await asyncio.wait_for(asyncio.gather(*(worker(until) for _ in range(5))), 5)
    # At most the burst plus rate × window (+1 for the boundary); well above zero (it is not stuck).
    assert taken <= 2 + 20 * window + 1, taken
    assert taken >= 20 * window * 0.5, taken


async def test_api_client_paces_requests_at_the_configured_rate(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(body={}))
    async with ApiClient("dexscreener", server.url, metrics, rate_limit_per_second=10, burst=1, **FAST) as client:
        await asyncio.gather(*(client.get_json("tokens", f"/x{i}") for i in range(6)))
    times = [t for t, _ in server.arrivals]
    assert times[-1] - times[0] >= 5 / 10 * 0.9, "6 requests at 10/s with burst 1 take at least 0.5 s"
    assert metrics.registry.get_sample_value("hux_api_rate_limit_requests_per_second", {"api": "dexscreener"}) == 10


def test_rate_limiter_refuses_nonsense_rates() -> None:
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            RateLimiter(bad)


# Fairness by chat. A fake clock moved by whole tokens (1/1024 s at 1,024 tokens/s: exact in binary);
# what is asserted is the order in which waiters are released, never how fast.
TICK = 1 / 1024


class Waiters:
    """Callers of one limiter, each recorded under its label the moment the limiter releases it."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.released: list[str] = []
        self.tasks: list[asyncio.Task] = []

    async def add(self, label: str, key: str | None) -> None:
        async def one() -> None:
            await self.limiter.acquire(key)
            self.released.append(label)

        self.tasks.append(asyncio.create_task(one()))
        for _ in range(3):  # let it reach the limiter (and, if a token is there, take it)
            await asyncio.sleep(0)

    async def tick(self, now: list[float], tokens: int = 1) -> list[str]:
        """Move the clock by ``tokens`` tokens' worth; return who was released (bounded wait for the wake-up)."""
        before = len(self.released)
        now[0] += tokens * TICK
        for _ in range(100):
            await asyncio.sleep(0.002)
            if len(self.released) > before:
                break
        for _ in range(5):  # anyone else released by the same tokens
            await asyncio.sleep(0.002)
        return self.released[before:]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_rate_limiter_serves_a_quiet_chat_before_a_busy_chats_backlog() -> None:
    now = [0.0]
    limiter = RateLimiter(1024, burst=1, clock=lambda: now[0])
    waiters = Waiters(limiter)
    try:
        for i in range(4):
            await waiters.add(f"flood{i}", "telegram:-666")
        assert waiters.released == ["flood0"]  # the one token; three flood calls wait
        await waiters.add("calm", "telegram:-1")
        assert waiters.released == ["flood0"]
        released = [await waiters.tick(now) for _ in range(4)]
        # In arrival order the calm chat would wait behind the whole flood backlog.
        assert released == [["calm"], ["flood1"], ["flood2"], ["flood3"]]
    finally:
        await waiters.close()


async def test_rate_limiter_lets_backlogged_chats_take_turns() -> None:
    now = [0.0]
    limiter = RateLimiter(1024, burst=1, clock=lambda: now[0])
    waiters = Waiters(limiter)
    try:
        for chat in ("a", "b"):
            for i in range(3):
                await waiters.add(f"{chat}{i}", f"telegram:{chat}")
        assert waiters.released == ["a0"]
        released = [await waiters.tick(now) for _ in range(5)]
        assert released == [["b0"], ["a1"], ["b1"], ["a2"], ["b2"]]
    finally:
        await waiters.close()


async def test_a_busy_chat_never_empties_the_bucket_a_quiet_chat_finds_a_token() -> None:
    now = [0.0]
    limiter = RateLimiter(1024, burst=3, clock=lambda: now[0])  # reserve: the last token
    waiters = Waiters(limiter)
    try:
        for i in range(5):
            await waiters.add(f"flood{i}", "telegram:-666")
        # Alone, the flood takes the burst down to the reserve: 3 -> 1.
        assert waiters.released == ["flood0", "flood1"]
        await waiters.add("calm", "telegram:-1")
        assert waiters.released == ["flood0", "flood1", "calm"]  # at once, no refill needed
        await waiters.add("calm2", "telegram:-2")
        assert await waiters.tick(now) == ["calm2"]   # the next token: a quiet chat first
        assert await waiters.tick(now) == []          # 1 token: the reserve, not for the busy flood
        assert await waiters.tick(now) == ["flood2"]  # 2 tokens: the flood takes one above the reserve
        assert await waiters.tick(now) == ["flood3"]  # the busy chat still gets the whole rate when alone
    finally:
        await waiters.close()


async def test_unkeyed_callers_get_the_whole_burst_as_before() -> None:
    now = [0.0]
    limiter = RateLimiter(1024, burst=3, clock=lambda: now[0])
    waiters = Waiters(limiter)
    try:
        for i in range(5):
            await waiters.add(f"call{i}", None)
        assert waiters.released == ["call0", "call1", "call2"]
        assert await waiters.tick(now) == ["call3"]
        assert await waiters.tick(now) == ["call4"]
    finally:
        await waiters.close()


async def test_a_cancelled_waiter_neither_takes_a_token_nor_holds_up_the_others() -> None:
    now = [0.0]
    limiter = RateLimiter(1024, burst=1, clock=lambda: now[0])
    waiters = Waiters(limiter)
    try:
        await waiters.add("a0", "telegram:a")
        await waiters.add("b0", "telegram:b")
        await waiters.add("a1", "telegram:a")
        waiters.tasks[1].cancel()  # b0 gives up while waiting
        await asyncio.gather(waiters.tasks[1], return_exceptions=True)
        assert await waiters.tick(now) == ["a1"]
        assert await waiters.tick(now) == []
        await waiters.add("b1", "telegram:b")
        assert waiters.released == ["a0", "a1", "b1"]  # the token b0 did not take is still there
    finally:
        await waiters.close()


async def test_the_chat_travels_with_the_request_to_the_limiter(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(body={}))
    now = [0.0]
    async with ApiClient("rugcheck", server.url, metrics, rate_limit_per_second=1024, burst=1, **FAST) as client:
        client.limiter = RateLimiter(1024, burst=1, clock=lambda: now[0])  # the same limiter on a clock the test moves
        flood = RequestContext(chat="telegram:-666")
        tasks = [asyncio.create_task(client.get_json("report_summary", f"/flood{i}", context=flood)) for i in range(4)]
        assert await wait_for_arrivals(server, 1)  # flood0 took the one token; the rest of the flood waits
        tasks.append(asyncio.create_task(client.get_json("report_summary", "/calm", context=RequestContext(chat="telegram:-1"))))
        for expected in range(2, 6):
            await asyncio.sleep(0.01)
            now[0] += TICK
            assert await wait_for_arrivals(server, expected)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    # Each request went out only when the test released one token: arrival order is release order.
    assert [path for _, path in server.arrivals] == ["/flood0", "/calm", "/flood1", "/flood2", "/flood3"]


async def wait_for_arrivals(server: ScriptedServer, count: int) -> bool:
    for _ in range(500):  # bounded: 5 s
        if len(server.arrivals) >= count:
            return len(server.arrivals) == count
        await asyncio.sleep(0.01)
    return False


async def test_market_clients_pass_the_context_on(doubles: RunningDoubles, metrics: BotMetrics) -> None:
    context = RequestContext(chat="telegram:-1")
    dex = DexScreenerClient.create(metrics, doubles.url("dexscreener"), **FAST)
    rug = RugCheckClient.create(metrics, doubles.url("rugcheck"), **FAST)
    try:
        assert SOL_A in await dex.token_pairs([SOL_A], context=context)
        assert await rug.report_summary(EVM_A, context=context) is None
        await rug.report_summary(SOL_A, context=context)
    finally:
        await dex.aclose()
        await rug.aclose()
    assert requests(metrics, "rugcheck", "report_summary", "success") == 1


async def test_response_cache_hits_and_expires(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(body={"v": 1}))
    async with ApiClient("rugcheck", server.url, metrics, cache_ttl=0.3, **FAST) as client:
        assert await client.get_json("report_summary", "/x", {"a": 1}) == {"v": 1}
        assert await client.get_json("report_summary", "/x", {"a": 1}) == {"v": 1}
        assert len(server.arrivals) == 1
        await client.get_json("report_summary", "/x", {"a": 2})  # other params: other entry
        await asyncio.sleep(0.35)
        await client.get_json("report_summary", "/x", {"a": 1})
    assert len(server.arrivals) == 3
    hits = metrics.registry.get_sample_value("hux_api_cache_requests_total", {"api": "rugcheck", "result": "hit"})
    misses = metrics.registry.get_sample_value("hux_api_cache_requests_total", {"api": "rugcheck", "result": "miss"})
    assert (hits, misses) == (1, 3)


async def test_cache_is_bounded(server: ScriptedServer, metrics: BotMetrics) -> None:
    server.answer(Scripted(body={}))
    async with ApiClient("rugcheck", server.url, metrics, cache_ttl=60, cache_size=3, **FAST) as client:
        for i in range(10):
            await client.get_json("report_summary", f"/t{i}")
        assert len(client._cache) == 3


# --------------------------------------------------------------------------- secrets
async def test_token_never_appears_in_errors_logs_reprs_or_metrics(
    server: ScriptedServer, metrics: BotMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logsetup.redact_library_logs()  # as `hux bot run` does when it configures logging
    # The provider echoes the request path (with the token) in its error description.
    server.answer(Scripted(404, {"ok": False, "error_code": 404, "description": f"Not Found: /bot{TOKEN}/sendMessage"}))
    api = TelegramBotApi.create(TOKEN, metrics, server.url, **FAST)
    with pytest.raises(ApiError) as not_found:
        await api.send_message(-100, "hi")
    await api.aclose()

    refused = TelegramBotApi.create(TOKEN, metrics, f"http://127.0.0.1:{free_port()}", max_retries=0, **FAST)
    with pytest.raises(ApiError) as no_connection:
        await refused.get_updates(None, timeout=0)
    await refused.aclose()

    texts = [str(not_found.value), repr(not_found.value), str(no_connection.value), repr(no_connection.value),
             repr(api.http), caplog.text, generate_latest(metrics.registry).decode()]
    secret = TOKEN.split(":", 1)[1]
    for text in texts:
        assert secret not in text, text
    assert "bot***" in str(not_found.value)
    for error in (not_found.value, no_connection.value):
        assert error.__cause__ is None and error.__context__ is None, "no chained httpx exception carries the URL"
    assert any("HTTP Request" in r.getMessage() for r in caplog.records), "httpx's request log line was captured"


def test_importing_the_clients_installs_nothing_on_library_loggers() -> None:
    """Redacting httpx's records is logging setup's job (``logsetup.configure``), not an import's side effect."""
    code = (
        "import logging, hux.bot.clients, hux.bot.outputs, hux.bot.app\n"
        "names = ('httpx', 'httpcore', 'httpcore.connection', 'httpcore.http11')\n"
        "print(sum(len(logging.getLogger(n).filters) for n in names))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_logging_setup_redacts_library_records_with_every_client_secret(tmp_path) -> None:
    """A webhook's secret path, registered by its client, is cleaned from httpx's records once logging is set up."""
    ApiClient("webhook", "http://127.0.0.1:9", BotMetrics.noop(), secrets=("/hooks/s3cr3t-path-9f2c",))
    logsetup.configure(tmp_path / "bot.log", stderr=False)
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: POST %s "%s"',
                               (f"http://127.0.0.1:9/hooks/s3cr3t-path-9f2c and /bot{TOKEN}/getMe", "HTTP/1.1 200 OK"), None)
    assert all(f.filter(record) for f in logging.getLogger("httpx").filters)
    assert "s3cr3t" not in record.getMessage() and TOKEN.split(":", 1)[1] not in record.getMessage()
    assert "/bot***/getMe" in record.getMessage()


def test_redact_catches_unregistered_bot_tokens() -> None:
    assert redact(f"GET https://api.telegram.org/bot{TOKEN}/getMe") == "GET https://api.telegram.org/bot***/getMe"
    assert redact("key=abc123 and abc123", ["abc123"]) == "key=*** and ***"
