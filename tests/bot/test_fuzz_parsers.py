"""The parsers that face the outside, for any input: a result or a counted rejection, nothing else.

Property-based (Hypothesis, bounded by the profile in tests/conftest.py):
token extraction, Telegram update parsing, DexScreener/RugCheck reply
parsing, the HTTP client's body decoding and replay lines. Every failing
example Hypothesis found is kept below as a plain test (``@example`` or a
named case). The API's hostile bodies also go over real loopback HTTP, where
each must end as outcome ``invalid_response`` on ``hux_api_requests_total``
and count towards the circuit breaker.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hux.bot.clients.dexscreener import PairInfo, parse_pair, parse_token_pairs
from hux.bot.clients.http import ApiClient, ApiError, decode_json
from hux.bot.clients.resilience import MAX_RETRY_AFTER, parse_retry_after
from hux.bot.clients.rugcheck import RISK_LEVELS, RiskReport, parse_summary
from hux.bot.clients.telegram import parse_updates
from hux.bot.extract import extract, is_evm_address, is_solana_address
from hux.bot.messages import MAX_TIMESTAMP, ChatMessage, Rejected
from hux.bot.metrics import CANDIDATE_KINDS, REJECT_REASONS, BotMetrics
from hux.bot.sources.replay import ReplaySource, parse_timestamp
from hux.bot.sources.telegram import CHAT_TYPES, parse_update
from hux.bot.store import unstorable
from tests.bot.test_clients import (  # noqa: F401 - server is a fixture
    FAST,
    Scripted,
    ScriptedServer,
    pair,
    requests,
    server,
)

pytestmark = pytest.mark.timeout(120)

MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
EVM = "0x6982508145454Ce325dDbE47a25d4ec3d2311933"
DEEP = 100_000  # nesting far past the interpreter's recursion limit

# Any JSON value, including the non-standard NaN/Infinity Python's json accepts, huge ints and deep-ish nesting.
json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
                | st.floats() | st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
                           max_leaves=30)


def _time_bounded(started: float, limit: float = 2.0) -> None:
    assert time.monotonic() - started < limit, "a parser must answer in bounded time"


# --------------------------------------------------------------------------- token extraction
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
address_like = st.one_of(
    st.text(alphabet=BASE58, min_size=30, max_size=46),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=38, max_size=42).map(lambda h: "0x" + h),
    st.sampled_from([MINT, EVM, EVM.lower(), f"pump.fun/coin/{MINT}", f"dexscreener.com/base/{EVM}", f"dexscreener.com/solana/{MINT}"]),
)
chat_text = st.lists(st.one_of(st.text(max_size=30), address_like, st.sampled_from([" ", "\n", "/", ".", "0x", "pump.fun/"])),
                     max_size=30).map("".join)


@given(chat_text)
@example("0x" + "0" * 40)
@example(("1" * 44 + " ") * 200)
def test_extract_returns_valid_candidates_for_any_text(text: str) -> None:
    started = time.monotonic()
    found = extract(text)
    _time_bounded(started)
    assert len({c.key for c in found}) == len(found)
    for candidate in found:
        assert candidate.kind in CANDIDATE_KINDS
        assert candidate.address in text or candidate.address.lower() in text.lower()
        assert is_evm_address(candidate.address) if candidate.address.startswith("0x") else is_solana_address(candidate.address)


def test_extract_is_linear_on_a_message_packed_with_near_addresses() -> None:
    text = ("1" * 45 + "/") * 1400  # 64 KB of strings one character too long to be a mint
    started = time.monotonic()
    assert extract(text) == []
    _time_bounded(started, 1.0)


# --------------------------------------------------------------------------- Telegram updates
def _maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the valid shape, sometimes anything at all (to reach every check behind the first)."""
    return st.one_of(valid, valid, valid, json_values)


chats = st.fixed_dictionaries(
    {"id": _maybe(st.integers(min_value=-(2**63), max_value=2**63 - 1)), "type": _maybe(st.sampled_from(CHAT_TYPES))},
    optional={"title": _maybe(st.text(max_size=140)), "username": _maybe(st.text(max_size=40))},
)
messages = st.fixed_dictionaries(
    {"message_id": _maybe(st.integers(min_value=1, max_value=2**31)), "chat": _maybe(chats),
     "date": _maybe(st.integers(min_value=0, max_value=2**34))},
    optional={"text": _maybe(st.text(max_size=200)), "caption": _maybe(st.text(max_size=50))},
)
updates = st.one_of(
    st.fixed_dictionaries({"update_id": _maybe(st.integers(min_value=0, max_value=2**63 - 1)),
                           st.sampled_from(["message", "edited_message", "channel_post", "edited_channel_post"]): _maybe(messages)}),
    json_values,
)


@given(updates)
@example({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "group"}, "date": 10**400, "text": "x"}})
@example({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "group"}, "date": math.nan, "text": "x"}})
@example({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "group", "title": 5}, "date": 1, "text": "x"}})
def test_parse_update_gives_a_message_or_a_reasoned_rejection(update: Any) -> None:
    try:
        parsed = parse_update(update, max_bytes=1000)
    except Rejected as exc:
        assert exc.reason in REJECT_REASONS and str(exc)
        return
    if parsed is None:
        return
    chat, message = parsed
    assert isinstance(message, ChatMessage) and chat.type in CHAT_TYPES
    assert -(2**63) <= chat.id < 2**63
    assert 0 <= message.sent_at <= MAX_TIMESTAMP and message.text.strip()
    assert unstorable(message) is None, "what the parser accepts the database can hold"


@given(json_values)
def test_parse_updates_accepts_only_an_ok_list(body: Any) -> None:
    try:
        result = parse_updates(body)
    except (TypeError, ValueError, KeyError):
        return  # the client turns these into invalid_response
    assert isinstance(result, list)


# --------------------------------------------------------------------------- DexScreener / RugCheck bodies
numberish = st.one_of(st.floats(), st.integers(min_value=-(2**80), max_value=2**80), st.text(max_size=20),
                      st.sampled_from(["1e999", "nan", "-inf", "0.015", " 12 "]), st.none(), st.booleans())
pairs = st.fixed_dictionaries(
    {"chainId": _maybe(st.sampled_from(["solana", "base", ""])), "pairAddress": _maybe(st.text(max_size=200)),
     "baseToken": _maybe(st.fixed_dictionaries({"address": _maybe(st.text(max_size=200)), "symbol": _maybe(st.text(max_size=60))}))},
    optional={"priceUsd": numberish, "liquidity": _maybe(st.fixed_dictionaries({"usd": numberish})),
              "volume": _maybe(st.fixed_dictionaries({"h24": numberish, "h1": numberish})),
              "priceChange": _maybe(st.fixed_dictionaries({"h1": numberish, "h24": numberish})),
              "pairCreatedAt": numberish, "url": _maybe(st.text(max_size=400)), "dexId": _maybe(st.text())},
)


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


@given(st.one_of(st.fixed_dictionaries({"pairs": st.one_of(st.none(), st.lists(_maybe(pairs), max_size=4), json_values)}), json_values))
@example({"pairs": [pair(pairCreatedAt=1e300)]})
@example({"pairs": [pair(priceUsd="1e999", liquidity={"usd": 10**400})]})
def test_dexscreener_bodies_parse_to_finite_pairs_or_a_value_error(body: Any) -> None:
    try:
        result = parse_token_pairs(body)
    except ValueError:
        return  # invalid_response
    for info in result:
        assert isinstance(info, PairInfo)
        assert _finite(info.price_usd, info.liquidity_usd, info.volume_h24, info.volume_h1, info.price_change_h1, info.price_change_h24)
        assert info.liquidity_usd >= 0 and len(info.base_address) <= 128 and len(info.base_symbol) <= 32


@given(json_values)
def test_parse_pair_never_raises(raw: Any) -> None:
    assert parse_pair(raw) is None or isinstance(parse_pair(raw), PairInfo)


summaries = st.fixed_dictionaries(
    {"score_normalised": numberish},
    optional={"risks": _maybe(st.lists(_maybe(st.fixed_dictionaries({"name": _maybe(st.text(max_size=100)),
                                                                      "level": _maybe(st.sampled_from(RISK_LEVELS))})), max_size=30)),
              "rugged": json_scalars},
)


@given(st.one_of(summaries, json_values))
@example({"score_normalised": 10**400})
def test_rugcheck_bodies_parse_to_a_bounded_report_or_a_value_error(body: Any) -> None:
    try:
        report = parse_summary(body)
    except (ValueError, TypeError):
        return  # invalid_response
    assert isinstance(report, RiskReport)
    assert 0.0 <= report.score_normalised <= 100.0 and report.risk_level in RISK_LEVELS and len(report.risks) <= 20


# --------------------------------------------------------------------------- the HTTP client's body decoding
raw_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=20_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=20_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(min_value=4300, max_value=100_000).map(lambda n: b"9" * n),
    st.sampled_from([b"1e999999", b"-1e999999", b"NaN", b'{"pairs": Infinity}', b"\xff\xfe", b"\"\\ud800\""]),
)


@given(raw_bodies)
@example(b"[" * DEEP + b"]" * DEEP)
@example(b'{"ok": true, "result": ' + b"[" * DEEP)
@example(b"1" * 100_000)
def test_decode_json_gives_a_value_or_a_value_error(raw: bytes) -> None:
    started = time.monotonic()
    try:
        decode_json(raw)
    except ValueError:
        pass
    _time_bounded(started)


# --------------------------------------------------------------------------- replay lines
replay_records = st.fixed_dictionaries(
    {"text": _maybe(st.text(max_size=200))},
    optional={"ts": _maybe(st.one_of(st.integers(min_value=0, max_value=2**33), st.floats(), st.text(max_size=30),
                                     st.sampled_from(["2025-01-10T14:03:07Z", "9999-12-31T23:59:59+00:00", "0001-01-01"]))),
              "group": _maybe(st.text(max_size=200)), "message_id": json_values},
)
replay_lines = st.one_of(
    replay_records.map(lambda r: json.dumps(r).encode()),
    st.binary(max_size=300),
    st.integers(min_value=1, max_value=20_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=20_000).map(lambda n: b'{"text": ' + b"[" * n + b"]" * n + b"}"),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@given(replay_lines)
@example(b"[" * DEEP + b"]" * DEEP)
@example(b'{"ts": 1e999, "text": "inf"}')
@example(b'{"ts": NaN, "text": "nan"}')
@example(b'{"ts": 100000000000000000000000, "text": "huge"}')
@example(b'{"ts": "-0001-01-01", "text": "odd"}')
@example(b'{"group": 100000000000000000000000000000, "text": "huge group id"}')
def test_a_replay_line_gives_a_message_or_a_reasoned_rejection(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    source = ReplaySource(Path("/nonexistent/feed.jsonl"), max_message_bytes=1000)
    started = time.monotonic()
    try:
        message, feed_ts = source.parse_line(raw, "replay:x:0:1")
    except Rejected as exc:
        assert exc.reason in REJECT_REASONS and str(exc)
        return
    finally:
        _time_bounded(started)
    assert math.isfinite(feed_ts) and 0 <= feed_ts <= MAX_TIMESTAMP
    assert unstorable(message) is None


@pytest.mark.parametrize("value,reason", [(1e999, "out_of_range"), (math.nan, "out_of_range"), (10**400, "out_of_range"),
                                          (-1, "out_of_range"), ("10000-01-01", "malformed"), ([], "malformed")])
def test_replay_timestamps_out_of_range_are_rejected(value: Any, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_timestamp(value)
    assert caught.value.reason == reason


# --------------------------------------------------------------------------- hostile bodies over real HTTP
HOSTILE_BODIES = {
    "nested 100k deep": b"[" * DEEP + b"]" * DEEP,
    "nested inside a valid envelope": b'{"pairs": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    "an int of 100k digits": b'{"pairs": ' + b"1" * 100_000 + b"}",
    "NaN where a list belongs": b'{"pairs": NaN}',
    "not UTF-8": b'{"pairs": "\xff"}',
}


@pytest.mark.parametrize("body", list(HOSTILE_BODIES.values()), ids=list(HOSTILE_BODIES))
async def test_a_hostile_body_is_a_counted_invalid_response(server: ScriptedServer, body: bytes) -> None:  # noqa: F811
    metrics = BotMetrics(process_metrics=False)
    server.answer(Scripted(body=body))
    async with ApiClient("dexscreener", server.url, metrics, max_retries=0, breaker_failures=2, **FAST) as client:
        for _ in range(2):
            with pytest.raises(ApiError) as caught:
                await client.get_json("tokens", "/latest/dex/tokens/x", parse=parse_token_pairs)
            assert caught.value.outcome == "invalid_response"
        assert client.breaker.state == "open", "invalid bodies count towards the circuit breaker"
    assert requests(metrics, "dexscreener", "tokens", "invalid_response") == 2


async def test_a_parser_that_raises_anything_is_a_counted_invalid_response(server: ScriptedServer) -> None:  # noqa: F811
    metrics = BotMetrics(process_metrics=False)
    server.answer(Scripted(body={"a": 1}))

    def recursing(body: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    async with ApiClient("rugcheck", server.url, metrics, max_retries=0, **FAST) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_json("report_summary", "/x", parse=recursing)
    assert caught.value.outcome == "invalid_response"
    assert requests(metrics, "rugcheck", "report_summary", "invalid_response") == 1


async def test_a_body_over_the_cap_is_refused_before_it_is_read_whole(server: ScriptedServer) -> None:  # noqa: F811
    metrics = BotMetrics(process_metrics=False)
    big = json.dumps({"pairs": [pair() for _ in range(2000)]}).encode()  # about 0.8 MB
    server.answer(Scripted(body=big), Scripted(body=gzip.compress(b" " * 20_000_000 + b"{}"), headers={"Content-Encoding": "gzip"}))
    async with ApiClient("dexscreener", server.url, metrics, max_retries=0, max_body_bytes=64 * 1024, **FAST) as client:
        for _ in range(2):  # plain, then a 20 MB gzip bomb in 20 KB
            with pytest.raises(ApiError) as caught:
                await client.get_json("tokens", "/x", parse=parse_token_pairs, cache=False)
            assert caught.value.outcome == "invalid_response" and "max_body_bytes" in str(caught.value)
    assert requests(metrics, "dexscreener", "tokens", "invalid_response") == 2


async def test_a_huge_retry_after_is_capped_and_never_escapes_uncounted(server: ScriptedServer) -> None:  # noqa: F811
    metrics = BotMetrics(process_metrics=False)
    server.answer(Scripted(429, b'{"ok": false, "parameters": {"retry_after": 1' + b"0" * 400 + b"}}"),
                  Scripted(429, {}, headers={"Retry-After": "1e300"}))
    async with ApiClient("telegram", server.url, metrics, max_retries=0, **FAST) as client:
        for _ in range(2):
            with pytest.raises(ApiError) as caught:
                await client.get_json("getUpdates", "/x", cache=False)
            assert caught.value.outcome == "rate_limited"
            assert caught.value.retry_after is not None and caught.value.retry_after <= MAX_RETRY_AFTER
            client._not_before = 0.0  # let the second answer be fetched now
    assert requests(metrics, "telegram", "getUpdates", "rate_limited") == 2
    assert parse_retry_after("99999999999") == MAX_RETRY_AFTER


# --------------------------------------------------------------------------- replay checkpoint files
@given(json_values.map(lambda v: json.dumps(v)) | st.sampled_from(['{"path": "%s", "offset": 1e999, "line": 0, "loop": 0}',
                                                                    '{"path": "%s", "offset": -5, "line": 0, "loop": 0}',
                                                                    '[]', '{"path": "%s", "offset": "x"}']))
def test_an_unreadable_replay_checkpoint_restarts_from_the_top(tmp_path_factory: pytest.TempPathFactory, content: str) -> None:
    directory = tmp_path_factory.mktemp("cp")
    source = ReplaySource(directory / "feed.jsonl", checkpoint_dir=directory)
    assert source.checkpoint_path is not None
    source.checkpoint_path.write_text(content.replace("%s", str(source.path.resolve())), encoding="utf-8")
    cp = source.load_checkpoint()
    assert cp.offset >= 0 and cp.line >= 0 and cp.loop >= 0
