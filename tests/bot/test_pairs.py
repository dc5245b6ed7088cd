"""dexscreener links that name a pair: the pairs endpoint, the double's pairs, batched lookups and the token behind a link."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import pytest

from hux.bot.clients.dexscreener import DexScreenerClient
from hux.bot.clients.http import ApiError
from hux.bot.enrich import Enricher, PairBatcher, PairLinkBatcher
from hux.bot.extract import extract
from hux.bot.metrics import BotMetrics
from hux.doubles.dexscreener import Market, is_pair_address, pair_address, pair_base_token
from hux.doubles.faults import FaultSettings
from hux.doubles.market import RunningDoubles, start_doubles
from tests.bot.conftest import bot_config, metric_value, running_bot, wait_until, write_feed

pytestmark = pytest.mark.timeout(60)

SOL_TOKEN = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"


@pytest.fixture
async def doubles():
    running = await start_doubles(port=0, seed=3)
    yield running
    await running.stop()


def listed_pair(doubles: RunningDoubles, chain: str, seed: int = 1) -> tuple[str, str]:
    """A pair address the double lists on ``chain`` whose base token has a market, and that token."""
    return listed_pairs(doubles, chain, 1, seed)[0]


def listed_pairs(doubles: RunningDoubles, chain: str, count: int, seed: int = 1) -> list[tuple[str, str]]:
    """``count`` distinct pairs the double lists on ``chain`` (whose base tokens have a market), with their tokens."""
    rng = random.Random(seed)
    found: dict[str, str] = {}
    while len(found) < count:
        pair = pair_address(rng.randbytes, chain)
        base = pair_base_token(chain, pair)
        if doubles.market.token(base).known:
            found[pair] = base
    return list(found.items())


def pair_requests(doubles: RunningDoubles) -> dict[str, int]:
    """Requests the double served on its pairs endpoint, by HTTP status."""
    return doubles.faults["dexscreener"].stats_json()["requests"].get("pairs", {})


async def test_the_double_answers_the_documented_pairs_shape(doubles: RunningDoubles) -> None:
    token_pairs = doubles.market.pairs(SOL_TOKEN)
    pair = token_pairs[0]["pairAddress"]
    async with httpx.AsyncClient(base_url=doubles.url("dexscreener")) as http:
        body = (await http.get(f"/latest/dex/pairs/solana/{pair}")).json()
        assert body["schemaVersion"] == "1.0.0"
        [found] = body["pairs"]
        assert found["pairAddress"] == pair and found["chainId"] == "solana"
        assert found["baseToken"]["address"] == SOL_TOKEN
        assert found["url"] == f"https://dexscreener.com/solana/{pair}"  # a base58 address keeps its case
        assert {"priceUsd", "liquidity", "volume", "priceChange", "pairCreatedAt", "quoteToken"} <= set(found)
        # a token address, or a pair on another chain, is not a pair: null, as DexScreener answers
        assert (await http.get(f"/latest/dex/pairs/solana/{SOL_TOKEN}")).json()["pairs"] is None
        assert (await http.get(f"/latest/dex/pairs/base/{pair}")).json()["pairs"] is None
        assert (await http.get("/latest/dex/pairs/solana/" + ",".join([SOL_TOKEN] * 31))).status_code == 400


async def test_the_double_answers_several_pair_ids_and_leaves_out_those_it_does_not_know(doubles: RunningDoubles) -> None:
    listed = listed_pairs(doubles, "base", 3, seed=21)
    ids = [listed[0][0], SOL_TOKEN, listed[1][0], "0x" + "ab" * 20, listed[2][0].upper().replace("0X", "0x"), "not-a-pair"]
    async with httpx.AsyncClient(base_url=doubles.url("dexscreener")) as http:
        body = (await http.get("/latest/dex/pairs/base/" + ",".join(ids))).json()
        assert body["schemaVersion"] == "1.0.0"
        # unknown ids (a token, an address no pair has, a string that is no address) are simply absent
        assert [p["pairAddress"].lower() for p in body["pairs"]] == [pair.lower() for pair, _ in listed]
        assert [p["baseToken"]["address"] for p in body["pairs"]] == [base for _, base in listed]
        # the same pair asked twice (in two cases) comes once
        twice = (await http.get(f"/latest/dex/pairs/base/{listed[0][0]},{listed[0][0].upper().replace('0X', '0x')}")).json()
        assert len(twice["pairs"]) == 1
        assert (await http.get(f"/latest/dex/pairs/base/{SOL_TOKEN},{'0x' + 'cd' * 20}")).json()["pairs"] is None
        too_many = await http.get("/latest/dex/pairs/base/" + ",".join(pair for pair, _ in listed_pairs(doubles, "base", 31)))
        assert too_many.status_code == 400 and "at most 30 pair addresses" in too_many.json()["error"]
        assert (await http.get("/latest/dex/pairs/base/,")).status_code == 400
        doubles.faults["dexscreener"].set(FaultSettings(rate_limit_status_rate=1.0, retry_after=7))
        limited = await http.get("/latest/dex/pairs/base/" + ",".join(pair for pair, _ in listed))
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"


async def test_a_listed_pair_resolves_to_a_derived_token_whose_own_pairs_name_it(doubles: RunningDoubles) -> None:
    pair, base = listed_pair(doubles, "base")
    assert is_pair_address(pair) and not is_pair_address(base)
    found = doubles.market.pair_by_address("base", pair)
    assert found is not None and found["baseToken"]["address"] == base and found["chainId"] == "base"
    # looked up as a token afterwards, the token trades in that very pair
    assert doubles.market.pairs(base)[0]["pairAddress"] == pair


async def test_the_client_reads_one_pair_and_refuses_what_is_not_a_pair(doubles: RunningDoubles) -> None:
    metrics = BotMetrics()
    client = DexScreenerClient.create(metrics, doubles.url("dexscreener"), max_retries=0)
    try:
        pair = doubles.market.pairs(SOL_TOKEN)[0]["pairAddress"]
        info = await client.pair("solana", pair)
        assert info is not None and info.base_address == SOL_TOKEN and info.pair_address == pair
        assert await client.pair("solana", SOL_TOKEN) is None
        with pytest.raises(ValueError, match="chain id"):
            await client.pair("../admin", pair)
        with pytest.raises(ValueError, match="not a Solana"):
            await client.pair("solana", "../../x")
        assert metrics.registry.get_sample_value(
            "hux_api_requests_total", {"api": "dexscreener", "endpoint": "pairs", "outcome": "success"}) == 2
        doubles.faults["dexscreener"].set(FaultSettings(malformed_rate=1.0))
        with pytest.raises(ApiError) as failure:
            await client.pair("solana", listed_pair(doubles, "solana")[0])
        assert failure.value.outcome == "invalid_response"
    finally:
        await client.aclose()


async def test_the_client_asks_for_many_pairs_30_a_request_and_keys_them_as_asked(doubles: RunningDoubles) -> None:
    metrics = BotMetrics()
    client = DexScreenerClient.create(metrics, doubles.url("dexscreener"), cache_ttl=0)
    try:
        listed = listed_pairs(doubles, "base", 35, seed=8)
        shouted = listed[0][0].upper().replace("0X", "0x")
        asked = [pair for pair, _ in listed] + [shouted, SOL_TOKEN]
        with pytest.raises(ValueError, match="not a Solana"):  # nothing was sent for a list with a bad address
            await client.pairs("base", [listed[0][0], "../../x"])
        found = await client.pairs("base", asked)
        assert pair_requests(doubles) == {"200": 2}  # 36 distinct ids: 30 + 6 (the second spelling is asked once)
        assert set(found) == set(asked) and found[SOL_TOKEN] is None  # a token address is no pair
        assert all(found[pair] is not None and found[pair].base_address == base for pair, base in listed)
        assert found[shouted] == found[listed[0][0]]
    finally:
        await client.aclose()


def pair_links(pairs: list[tuple[str, str]], chain: str) -> list:
    return [extract(f"chart https://dexscreener.com/{chain}/{pair}")[0] for pair, _ in pairs]


@pytest.mark.parametrize(("links", "requests"), [(20, 1), (40, 2)])
async def test_a_burst_of_pair_links_costs_one_request_per_30(doubles: RunningDoubles, links: int, requests: int) -> None:
    metrics = BotMetrics()
    client = DexScreenerClient.create(metrics, doubles.url("dexscreener"), cache_ttl=0)
    enricher = Enricher(PairBatcher(client), None, pair_lookup=PairLinkBatcher(client))
    try:
        listed = listed_pairs(doubles, "solana", links, seed=links)
        resolved = await asyncio.gather(*(enricher.resolve(link) for link in pair_links(listed, "solana")))
        assert [c.address for c in resolved] == [base for _, base in listed]
        assert pair_requests(doubles) == {"200": requests}
        assert metrics.registry.get_sample_value(
            "hux_api_requests_total", {"api": "dexscreener", "endpoint": "pairs", "outcome": "success"}) == requests
    finally:
        await client.aclose()


async def test_pair_links_of_several_chains_cost_one_request_per_chain(doubles: RunningDoubles) -> None:
    client = DexScreenerClient.create(BotMetrics(), doubles.url("dexscreener"), cache_ttl=0)
    enricher = Enricher(PairBatcher(client), None, pair_lookup=PairLinkBatcher(client))
    try:
        by_chain = {chain: listed_pairs(doubles, chain, 4, seed=30 + i) for i, chain in enumerate(("solana", "base", "bsc"))}
        links = [link for chain, pairs in by_chain.items() for link in pair_links(pairs, chain)]
        resolved = await asyncio.gather(*(enricher.resolve(link) for link in links))
        assert [(c.chain, c.address) for c in resolved] == [(chain, base) for chain, pairs in by_chain.items() for _, base in pairs]
        assert pair_requests(doubles) == {"200": 3}
    finally:
        await client.aclose()


async def test_a_link_the_answer_lacks_or_a_bad_one_is_left_alone_and_the_rest_resolve(doubles: RunningDoubles) -> None:
    client = DexScreenerClient.create(BotMetrics(), doubles.url("dexscreener"), cache_ttl=0)
    batcher = PairLinkBatcher(client)
    enricher = Enricher(PairBatcher(client), None, pair_lookup=batcher)
    try:
        listed = listed_pairs(doubles, "solana", 5, seed=4)
        [token_link] = extract(f"https://dexscreener.com/solana/{SOL_TOKEN}")
        links = pair_links(listed, "solana")
        links.insert(2, token_link)
        resolved, bad = await asyncio.gather(asyncio.gather(*(enricher.resolve(link) for link in links)),
                                             batcher.pair("solana", "../../x"), return_exceptions=True)
        assert isinstance(bad, ValueError) and "not a Solana" in str(bad)  # refused alone, before any request
        assert not isinstance(resolved, BaseException)
        assert resolved[2] is token_link  # not a pair: that link stays as it is, looked up as a token
        assert [c.address for c in resolved[:2] + resolved[3:]] == [base for _, base in listed]
        assert pair_requests(doubles) == {"200": 1}
    finally:
        await client.aclose()


async def test_a_failed_batch_fails_each_of_its_links_and_a_429_is_counted_and_retried(doubles: RunningDoubles) -> None:
    metrics = BotMetrics()
    client = DexScreenerClient.create(metrics, doubles.url("dexscreener"), cache_ttl=0, max_retries=1, backoff_base=0.05)
    batcher = PairLinkBatcher(client)

    def requests(outcome: str) -> float:
        return metrics.registry.get_sample_value(
            "hux_api_requests_total", {"api": "dexscreener", "endpoint": "pairs", "outcome": outcome}) or 0.0

    try:
        listed = listed_pairs(doubles, "solana", 10, seed=6)
        faults = doubles.faults["dexscreener"]
        faults.set(FaultSettings(malformed_rate=1.0))
        failed = await asyncio.gather(*(batcher.pair("solana", pair) for pair, _ in listed[:5]), return_exceptions=True)
        assert all(isinstance(f, ApiError) and f.outcome == "invalid_response" for f in failed)
        assert requests("invalid_response") == 1  # one request for the five links, not retried (as before)
        # every second request answered 429 (Retry-After 0.1 s): the burst's request is limited, then retried
        faults.set(FaultSettings(rate_limit_status_rate=0.5, retry_after=0.1, even=True))
        assert await batcher.pair("solana", listed[5][0]) is not None  # the first of each two passes
        found = await asyncio.gather(*(batcher.pair("solana", pair) for pair, _ in listed[5:]))
        assert [f.base_address for f in found if f is not None] == [base for _, base in listed[5:]]
        assert requests("rate_limited") == 1 and requests("success") == 2
        assert metrics.registry.get_sample_value("hux_api_retries_total", {"api": "dexscreener", "reason": "rate_limited"}) == 1
        assert pair_requests(doubles) == {"200": 3, "429": 1}  # the malformed answer came as a 200
    finally:
        await client.aclose()


async def test_a_pair_link_resolves_once_and_other_candidates_are_left_alone(doubles: RunningDoubles) -> None:
    metrics = BotMetrics()
    client = DexScreenerClient.create(metrics, doubles.url("dexscreener"), cache_ttl=0)
    enricher = Enricher(PairBatcher(client), None, pair_lookup=client)
    try:
        pair, base = listed_pair(doubles, "solana")
        [link] = extract(f"chart https://dexscreener.com/solana/{pair}")
        resolved = await enricher.resolve(link)
        assert (resolved.address, resolved.kind, resolved.chain) == (base, "dexscreener_link", "solana")
        assert (await enricher.resolve(link)).address == base
        [token_link] = extract(f"https://dexscreener.com/solana/{SOL_TOKEN}")
        assert (await enricher.resolve(token_link)).address == SOL_TOKEN
        [plain] = extract(f"ca {pair}")
        assert await enricher.resolve(plain) is plain
        served = doubles.faults["dexscreener"].stats_json()
        assert sum(served["requests"]["pairs"].values()) == 2  # one per link address: the answer is kept
    finally:
        await client.aclose()


async def test_a_pair_naming_an_invalid_base_token_is_not_trusted(doubles: RunningDoubles) -> None:
    class Hostile:
        async def pair(self, chain, pair_address, *, context=None):
            from dataclasses import replace

            real = await client.pair(chain, pair_address)
            return replace(real, base_address="0" * 44)

    client = DexScreenerClient.create(BotMetrics(), doubles.url("dexscreener"))
    try:
        pair, _ = listed_pair(doubles, "solana")
        [link] = extract(f"https://dexscreener.com/solana/{pair}")
        assert (await Enricher(PairBatcher(client), None, pair_lookup=Hostile()).resolve(link)).address == pair
    finally:
        await client.aclose()


async def test_the_token_behind_a_pair_link_is_gated_like_any_mention(hux_home: Path) -> None:
    rng = random.Random(11)
    # the doubles of the running bot are not started yet: pick a pair whose derived token has a market
    market = Market()
    while True:
        pair = pair_address(rng.randbytes, "solana")
        base = pair_base_token("solana", pair)
        if market.token(base).known:
            break
    feed = write_feed(hux_home / "feed.jsonl", [
        {"ts": 1_736_500_000, "group": "Alpha", "text": f"chart https://dexscreener.com/solana/{pair}"},
        {"ts": 1_736_500_001, "group": "Degen", "text": f"ca {base}"},
    ])
    cfg = bot_config(demo={"alert_threshold": 0.0, "cooldown_seconds": 600.0}, replay={"path": str(feed), "loop": False, "speed": 20.0})
    async with running_bot(cfg) as app:
        reg = app.metrics.registry
        assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success") >= 2, 30)
        assert metric_value(reg, "hux_tokens_processed_total", outcome="alerted") == 1
        assert metric_value(reg, "hux_tokens_processed_total", outcome="cooldown") == 1
        sent = app.profile.doubles.telegram.sent
        assert len(sent) == 1 and base in str(sent[0])
        keys = {key for key, _ in await asyncio.to_thread(app.persistence.store.recent_decisions, 0)}
        assert keys == {base}


async def test_a_failed_pair_lookup_is_a_failed_decision_retried_on_the_next_mention(hux_home: Path) -> None:
    pair = pair_address(random.Random(5).randbytes, "solana")
    feed = write_feed(hux_home / "feed.jsonl", [{"ts": 1_736_500_000, "group": "Alpha", "text": "gm"}] + [
        {"ts": 1_736_500_020 + i, "group": "Alpha", "text": f"https://dexscreener.com/solana/{pair}"} for i in range(3)
    ])  # the faults are set during the first gap (20 s of feed: 1 s at speed 20)
    cfg = bot_config(replay={"path": str(feed), "loop": False, "speed": 20.0}, dexscreener={"max_retries": 0})
    async with running_bot(cfg) as app:
        app.profile.doubles.faults["dexscreener"].set(FaultSettings(error_rate=1.0, error_status=503))
        reg = app.metrics.registry
        assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success") >= 4, 30)
        assert metric_value(reg, "hux_tokens_processed_total", outcome="failed") == 3
        assert metric_value(reg, "hux_api_requests_total", api="dexscreener", endpoint="pairs", outcome="server_error") >= 3


def test_the_sample_feed_names_pairs_the_demo_double_resolves() -> None:
    from hux.bot.profile import sample_feed_path

    market = Market()
    links = [c for line in sample_feed_path().read_text(encoding="utf-8").splitlines()
             for c in extract(json.loads(line)["text"]) if c.kind == "dexscreener_link"]
    pairs = [c for c in links if market.pair_by_address(c.chain, c.address) is not None]
    assert len(pairs) >= 5 and {c.chain for c in pairs} == {"solana", "base"}
    for link in pairs:
        base = market.pair_by_address(link.chain, link.address)["baseToken"]["address"]
        assert base != link.address and market.token(base).known
