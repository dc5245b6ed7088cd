"""GoPlus Security token-security reports for EVM tokens: the double, the client, the risk they feed the score."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hux.bot import samplefeed
from hux.bot.clients.goplus import CHAIN_IDS, GoPlusClient, grade, parse_report, parse_token_security
from hux.bot.clients.http import ApiError
from hux.bot.extract import EVM_CHAINS
from hux.bot.metrics import BotMetrics
from hux.bot.scoring import ScoreInput, score
from hux.doubles import goplus as goplus_double
from hux.doubles.dexscreener import Market
from hux.doubles.faults import FaultSettings
from hux.doubles.market import RunningDoubles, start_doubles
from tests.bot.conftest import bot_config, metric_value, running_bot, wait_until, write_feed

pytestmark = pytest.mark.timeout(60)

# The documented example shape (abridged): flags and numbers as strings, holders with fractions of the supply.
DOCUMENTED = {
    "code": 1,
    "message": "OK",
    "result": {
        "0x6982508145454ce325ddbe47a25d4ec3d2311933": {
            "buy_tax": "0", "sell_tax": "0", "is_honeypot": "0", "is_mintable": "0", "is_proxy": "0",
            "owner_change_balance": "0", "cannot_sell_all": "0", "is_open_source": "1", "holder_count": "123456",
            "holders": [
                {"address": "0xf977814e90da44bfa03b6295a0616a897441acec", "tag": "Binance 8", "is_contract": 0,
                 "balance": "52000000000000", "percent": "0.123752", "is_locked": 0},
                {"address": "0x0000000000000000000000000000000000000000", "tag": "", "is_contract": 0,
                 "balance": "3000000000000", "percent": "0.007", "is_locked": 1},
            ],
            "lp_holders": [
                {"address": "0x000000000000000000000000000000000000dead", "tag": "Null Address", "is_contract": 0,
                 "balance": "10", "percent": "0.999", "is_locked": 1},
            ],
        }
    },
}
PEPE = "0x6982508145454Ce325dDbE47a25d4ec3d2311933"


@pytest.fixture
async def doubles():
    running = await start_doubles(port=0, seed=3)
    yield running
    await running.stop()


def test_every_evm_chain_the_bot_follows_has_a_goplus_chain_id() -> None:
    assert set(CHAIN_IDS) == set(EVM_CHAINS)
    assert set(CHAIN_IDS.values()) == goplus_double.CHAIN_IDS


def test_the_documented_shape_reads_as_a_clean_report() -> None:
    report = parse_token_security(PEPE)(DOCUMENTED)
    assert report is not None
    assert (report.honeypot, report.buy_tax, report.sell_tax, report.mintable, report.proxy) == (False, 0.0, 0.0, False, False)
    assert report.top_holder_share == pytest.approx(0.123752)  # the locked holder does not count
    assert report.lp_locked_share == pytest.approx(0.999)
    assert (report.risk_level, report.risks) == ("good", ())
    # a token GoPlus has not analysed: not in result
    assert parse_token_security("0x" + "1" * 40)(DOCUMENTED) is None
    assert parse_token_security(PEPE)({"code": 1, "message": "OK", "result": {}}) is None


@pytest.mark.parametrize("body", [
    [], {"message": "OK"}, {"code": "1", "result": {}}, {"code": 2021, "message": "no info", "result": None},
    {"code": 1, "result": ["x"]}, {"code": 1, "result": {PEPE.lower(): "report"}},
])
def test_bodies_that_are_not_the_documented_shape_are_refused(body) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_token_security(PEPE)(body)


@pytest.mark.parametrize(("fields", "level", "finding"), [
    ({"is_honeypot": "1"}, "danger", "honeypot: it cannot be sold"),
    ({"owner_change_balance": "1"}, "danger", "the owner can change balances"),
    ({"cannot_sell_all": "1"}, "danger", "holders cannot sell all their tokens"),
    ({"sell_tax": "0.35"}, "danger", "sell tax 35%"),
    ({"buy_tax": "0.1"}, "warn", "buy tax 10%"),
    ({"sell_tax": "0.099"}, "good", None),
    ({"is_mintable": "1"}, "warn", "mintable"),
    ({"is_proxy": "1"}, "warn", "proxy contract (code can change)"),
    ({"holders": [{"percent": "0.5", "is_locked": 0}]}, "danger", "one holder has 50% of the supply"),
    ({"holders": [{"percent": "0.08", "is_locked": 0}] * 9}, "warn", "top 10 holders have 72%"),
    ({"holders": [{"percent": "0.08", "is_locked": 0}] * 8}, "good", None),
    ({"lp_holders": [{"percent": "0.4", "is_locked": 1}, {"percent": "0.6", "is_locked": 0}]}, "warn",
     "only 40% of the liquidity is locked"),
    ({"is_honeypot": "", "buy_tax": "", "sell_tax": "NaN", "holders": "x", "is_mintable": "yes"}, "good", None),
])
def test_each_finding_grades_the_token(fields, level, finding) -> None:
    report = parse_report(fields)
    assert report.risk_level == level
    assert (finding in report.risks) if finding else report.risks == ()
    assert grade(report) == (report.risk_level, report.risks)


def test_a_honeypot_scores_zero_and_findings_show_in_the_reasons() -> None:
    base = dict(liquidity_usd=50_000, volume_h24=200_000, price_change_h1=10, pair_age_seconds=3 * 3600, rugged=False,
                groups_mentioning=1)
    assert score(ScoreInput(risk_level="danger", honeypot=True, **base)).value == 0.0
    warned = score(ScoreInput(risk_level="warn", risk_notes=("sell tax 12%", "mintable"), **base))
    assert warned.value == 58.7  # docs/scoring.md, "Examples"
    assert "risk warn (sell tax 12%, mintable)" in warned.reasons


async def test_the_double_answers_the_documented_shape(doubles: RunningDoubles) -> None:
    addresses = [samplefeed.evm_address(random.Random(i)) for i in range(40)]
    async with httpx.AsyncClient(base_url=doubles.url("goplus")) as http:
        reports, missing = {}, 0
        for address in addresses:
            body = (await http.get("/api/v1/token_security/1", params={"contract_addresses": address})).json()
            assert body["code"] == 1 and body["message"] == "OK" and isinstance(body["result"], dict)
            if not body["result"]:
                missing += 1
                continue
            [(key, report)] = body["result"].items()
            assert key == address.lower()
            reports[key] = report
        assert 0 < missing < 12
        for report in reports.values():
            assert report["is_honeypot"] in ("0", "1") and isinstance(report["sell_tax"], str)
            assert {"address", "tag", "is_contract", "balance", "percent", "is_locked"} <= set(report["holders"][0])
        assert {parse_report(r).risk_level for r in reports.values()} == {"good", "warn", "danger"}
        assert (await http.get("/api/v1/token_security/999", params={"contract_addresses": addresses[0]})).status_code == 404
        assert (await http.get("/api/v1/token_security/1", params={"contract_addresses": "../x"})).status_code == 400


async def test_the_client_counts_under_api_goplus_and_fails_clearly(doubles: RunningDoubles) -> None:
    metrics = BotMetrics()
    client = GoPlusClient.create(metrics, doubles.url("goplus"), max_retries=1, cache_ttl=0, backoff_base=0.01)
    try:
        known = next(a for a in (samplefeed.evm_address(random.Random(i)) for i in range(50))
                     if goplus_double.report("8453", a) is not None)
        report = await client.token_security("base", known)
        assert report is not None and report.risk_level in ("good", "warn", "danger")
        # chains GoPlus is not asked about, and Solana mints, cost no request
        assert await client.token_security("solana", known) is None
        assert await client.token_security("base", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263") is None
        sample = lambda outcome: metrics.registry.get_sample_value(  # noqa: E731
            "hux_api_requests_total", {"api": "goplus", "endpoint": "token_security", "outcome": outcome})
        assert sample("success") == 1
        doubles.faults["goplus"].set(FaultSettings(rate_limit_status_rate=1.0, retry_after=0.01))
        with pytest.raises(ApiError) as limited:
            await client.token_security("base", known)
        assert limited.value.outcome == "rate_limited" and sample("rate_limited") == 2
        doubles.faults["goplus"].set(FaultSettings(malformed_rate=1.0))
        with pytest.raises(ApiError) as malformed:
            await client.token_security("base", known)
        assert malformed.value.outcome == "invalid_response" and "goplus" in str(malformed.value)
        assert metrics.registry.get_sample_value("hux_api_rate_limit_requests_per_second", {"api": "goplus"}) == 0.5
    finally:
        await client.aclose()


def _evm_token(market: Market, *, honeypot: bool) -> str:
    """An EVM address the DexScreener double lists and whose GoPlus report is (not) a honeypot."""
    for i in range(5000):
        address = samplefeed.evm_address(random.Random(f"goplus-{i}"))
        token = market.token(address)
        report = goplus_double.report(CHAIN_IDS[token.chain], address)
        if token.known and report is not None and (report["is_honeypot"] == "1") == honeypot:
            return address
    raise AssertionError("no such token in 5,000 addresses")


async def test_evm_tokens_are_scored_with_goplus_risk_and_a_honeypot_is_never_alerted(hux_home: Path) -> None:
    from hux.bot.store import decisions

    market = Market()
    clean, trap = _evm_token(market, honeypot=False), _evm_token(market, honeypot=True)
    feed = write_feed(hux_home / "feed.jsonl", [
        {"ts": 1_736_500_000, "group": "Base Gems", "text": f"ca {clean}"},
        {"ts": 1_736_500_001, "group": "Base Gems", "text": f"ca {trap}"},
    ])
    cfg = bot_config(demo={"alert_threshold": 0.0}, replay={"path": str(feed), "loop": False, "speed": 20.0})
    async with running_bot(cfg) as app:
        reg = app.metrics.registry
        assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success") >= 2, 30)
        assert metric_value(reg, "hux_api_requests_total", api="goplus", endpoint="token_security", outcome="success") == 2
        store = app.persistence.store

        def rows():
            with store.engine.connect() as conn:
                return {r.token_key: r for r in conn.execute(select(decisions))}

        found = await asyncio.to_thread(rows)
        assert found[clean.lower()].risk_level in ("good", "warn", "danger") and found[clean.lower()].outcome == "alerted"
        assert found[trap.lower()].score == 0.0 and found[trap.lower()].risk_level == "danger"
        assert found[trap.lower()].outcome == "alerted"  # threshold 0 in this test: even 0 clears it
        assert "honeypot" in str(app.profile.doubles.telegram.sent[-1])


async def test_goplus_down_scores_without_a_risk_report(hux_home: Path) -> None:
    clean = _evm_token(Market(), honeypot=False)
    feed = write_feed(hux_home / "feed.jsonl", [{"ts": 1_736_500_000, "group": "x", "text": "gm"},
                                                {"ts": 1_736_500_020, "group": "x", "text": f"ca {clean}"}])
    cfg = bot_config(replay={"path": str(feed), "loop": False, "speed": 20.0}, goplus={"max_retries": 0})
    async with running_bot(cfg) as app:
        app.profile.doubles.faults["goplus"].set(FaultSettings(error_rate=1.0, error_status=503))
        reg = app.metrics.registry
        assert await wait_until(lambda: metric_value(reg, "hux_pipeline_stage_total", stage="persist", outcome="success") >= 2, 30)
        assert metric_value(reg, "hux_pipeline_stage_total", stage="enrich", outcome="failure") == 1
        assert metric_value(reg, "hux_api_requests_total", api="goplus", endpoint="token_security", outcome="server_error") == 1
        assert metric_value(reg, "hux_tokens_processed_total", outcome="failed") == 0


@pytest.mark.parametrize(("code", "outcome"), [(4029, "rate_limited"), (5000, "server_error"), (2004, "invalid_response")])
async def test_an_error_code_in_a_200_answer_counts_as_what_it_means(code: int, outcome: str) -> None:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": code, "message": "request limit reached", "result": None})

    metrics = BotMetrics()
    client = GoPlusClient.create(metrics, "http://goplus.invalid", max_retries=1, cache_ttl=0, backoff_base=0.01,
                                 transport=httpx.MockTransport(answer))
    try:
        with pytest.raises(ApiError) as failed:
            await client.token_security("ethereum", PEPE)
        assert failed.value.outcome == outcome and f"code {code}" in str(failed.value)
        retried = 1 if outcome != "invalid_response" else 0
        assert metrics.registry.get_sample_value("hux_api_requests_total", {
            "api": "goplus", "endpoint": "token_security", "outcome": outcome}) == 1 + retried
    finally:
        await client.aclose()
