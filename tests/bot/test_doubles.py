"""The API doubles over real loopback HTTP: documented shapes, moving market, Telegram semantics, fault injection."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hux.doubles.dexscreener import Market, decimal_string
from hux.doubles.faults import FaultSettings
from hux.doubles.market import RunningDoubles, start_doubles
from hux.doubles.telegram import check_html
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(30)

TOKEN = "123456789:AAEdoubleDOUBLEdouble_token-xyz"
SOL = "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr"
EVM = "0x6982508145454Ce325dDbE47a25d4ec3d2311933"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@pytest.fixture
async def doubles():
    running = await start_doubles("127.0.0.1", 0, seed=11)
    yield running
    await running.stop()


@pytest.fixture
async def http(doubles: RunningDoubles):
    async with httpx.AsyncClient(base_url=doubles.base_url, timeout=5.0) as client:
        yield client


def mints(count: int) -> list[str]:
    return [SOL[:-2] + B58[i % 58] + B58[(i // 58) % 58] for i in range(count)]


# --------------------------------------------------------------------------- DexScreener
async def test_dexscreener_pairs_follow_the_documented_shape(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/dexscreener/latest/dex/tokens/{SOL},{EVM}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["schemaVersion"] == "1.0.0"
    assert body["pairs"], "both sample addresses are known to the seeded market"
    for pair in body["pairs"]:
        assert {"chainId", "dexId", "url", "pairAddress", "baseToken", "quoteToken", "priceNative", "priceUsd", "txns",
                "volume", "priceChange", "liquidity", "fdv", "marketCap", "pairCreatedAt"} <= set(pair)
        assert set(pair["baseToken"]) == {"address", "name", "symbol"}
        assert isinstance(pair["priceUsd"], str) and float(pair["priceUsd"]) > 0
        assert re.fullmatch(r"\d+(\.\d+)?", pair["priceNative"])
        assert set(pair["txns"]) == {"m5", "h1", "h6", "h24"} and set(pair["txns"]["h1"]) == {"buys", "sells"}
        assert set(pair["volume"]) == set(pair["priceChange"]) == {"m5", "h1", "h6", "h24"}
        assert set(pair["liquidity"]) == {"usd", "base", "quote"}
        assert isinstance(pair["pairCreatedAt"], int) and pair["pairCreatedAt"] > 1_600_000_000_000
        assert pair["url"].startswith(f"https://dexscreener.com/{pair['chainId']}/")
    chains = {p["baseToken"]["address"]: p["chainId"] for p in body["pairs"]}
    assert chains[SOL] == "solana" and chains[EVM] in ("ethereum", "base", "bsc")


async def test_dexscreener_unknown_tokens_get_null_pairs(http: httpx.AsyncClient, doubles: RunningDoubles) -> None:
    unknown = next(a for a in mints(200) if not doubles.market.token(a).known)
    body = (await http.get(f"/dexscreener/latest/dex/tokens/{unknown}")).json()
    assert body == {"schemaVersion": "1.0.0", "pairs": None}
    assert (await http.get(f"/dexscreener/tokens/v1/solana/{unknown}")).json() == []


async def test_dexscreener_tokens_v1_filters_by_chain_and_limits_to_30(http: httpx.AsyncClient) -> None:
    pairs = (await http.get(f"/dexscreener/tokens/v1/solana/{SOL},{EVM}")).json()
    assert isinstance(pairs, list) and pairs and all(p["chainId"] == "solana" for p in pairs)
    too_many = ",".join(mints(31))
    response = await http.get(f"/dexscreener/latest/dex/tokens/{too_many}")
    assert response.status_code == 400 and "30" in response.json()["error"]


def test_market_is_deterministic_per_address_and_drifts_over_time() -> None:
    now = [1_800_000_000.0]
    market = Market(clock=lambda: now[0])
    first = market.pairs(SOL)
    assert market.pairs(SOL) == first, "same address, same instant: same market"
    assert Market(clock=lambda: now[0]).pairs(SOL) == first, "another process sees the same token"
    now[0] += 600
    later = market.pairs(SOL)
    assert later[0]["priceUsd"] != first[0]["priceUsd"]
    assert later[0]["volume"]["h1"] != first[0]["volume"]["h1"]
    assert later[0]["pairAddress"] == first[0]["pairAddress"] and later[0]["pairCreatedAt"] == first[0]["pairCreatedAt"]
    known = [a for a in mints(300) if market.token(a).known]
    assert 0.8 * 300 <= len(known) < 300, "about one address in ten is unknown"


def test_a_share_of_tokens_pumps_and_another_rugs_never_both() -> None:
    now = [1_800_000_000.0]
    market = Market(clock=lambda: now[0], rug_share=0.2, rug_after_seconds=10, pump_share=0.3, pump_period_seconds=8)
    known = [a for a in mints(400) if market.token(a).known]
    before = {a: float(market.pairs(a)[0]["priceUsd"]) for a in known}   # first lookups
    calm = Market(clock=lambda: now[0])                                   # the same tokens, never pumped nor rugged
    now[0] += 12
    ratio = {a: float(market.pairs(a)[0]["priceUsd"]) / float(calm.pairs(a)[0]["priceUsd"]) for a in known}
    pumped = [a for a in known if ratio[a] > 2.9]
    rugged = [a for a in known if ratio[a] < 0.11]
    assert 0.2 * len(known) <= len(pumped) <= 0.4 * len(known), len(pumped)
    assert 0.1 * len(known) <= len(rugged) <= 0.3 * len(known), len(rugged)
    assert all(abs(r - 1) < 1e-6 for a, r in ratio.items() if a not in pumped and a not in rugged)
    assert before and not set(pumped) & set(rugged)
    now[0] += 8                                                           # the next period: back to their price
    assert all(abs(float(market.pairs(a)[0]["priceUsd"]) / float(calm.pairs(a)[0]["priceUsd"]) - 1) < 1e-6 for a in pumped)


def test_prices_are_plain_decimal_strings() -> None:
    for value in (3.9e-08, 0.00012345, 1.2345, 4321.5):
        text = decimal_string(value)
        assert "e" not in text and abs(float(text) - value) / value < 1e-3, text


# --------------------------------------------------------------------------- RugCheck
async def test_rugcheck_summary_shape_and_errors(http: httpx.AsyncClient) -> None:
    answers = [await http.get(f"/rugcheck/v1/tokens/{m}/report/summary") for m in mints(30)]
    known = [r.json() for r in answers if r.status_code == 200]
    assert known and any(r.status_code == 404 for r in answers)
    for summary in known:
        assert set(summary) == {"tokenProgram", "tokenType", "risks", "score", "score_normalised", "lpLockedPct"}
        assert isinstance(summary["score"], int) and 0 <= summary["score_normalised"] <= 100
        for risk in summary["risks"]:
            assert set(risk) == {"name", "value", "description", "score", "level"} and risk["level"] in ("warn", "danger")
    assert any(s["risks"] for s in known) and len({s["score_normalised"] for s in known}) > 3
    bad = await http.get(f"/rugcheck/v1/tokens/{EVM}/report/summary")
    assert bad.status_code == 400 and "error" in bad.json()


# --------------------------------------------------------------------------- Telegram
async def test_get_updates_long_polls_and_wakes_on_new_messages(http: httpx.AsyncClient, doubles: RunningDoubles) -> None:
    started = time.monotonic()
    empty = await http.get(f"/telegram/bot{TOKEN}/getUpdates", params={"timeout": 1})
    assert empty.json() == {"ok": True, "result": []} and time.monotonic() - started >= 0.9

    poll = asyncio.create_task(http.post(f"/telegram/bot{TOKEN}/getUpdates", json={"timeout": 10}))
    await asyncio.sleep(0.2)
    injected = await http.post("/telegram/_double/updates", json={"text": f"ape {SOL}", "chat_title": "Degen Lab"})
    started = time.monotonic()
    result = (await asyncio.wait_for(poll, 5)).json()["result"]
    assert time.monotonic() - started < 2, "a waiting poll returns as soon as a message arrives"
    update = result[0]
    assert update == injected.json()["updates"][0]
    message = update["message"]
    assert message["chat"]["type"] == "supergroup" and message["chat"]["title"] == "Degen Lab" and message["chat"]["id"] < 0
    assert {"message_id", "from", "chat", "date", "text"} <= set(message)


async def test_get_updates_offset_confirms_and_limit_caps(http: httpx.AsyncClient, doubles: RunningDoubles) -> None:
    for i in range(5):
        doubles.telegram.inject_message(f"m{i}")
    first = (await http.get(f"/telegram/bot{TOKEN}/getUpdates", params={"limit": 2})).json()["result"]
    assert [u["message"]["text"] for u in first] == ["m0", "m1"]
    again = (await http.get(f"/telegram/bot{TOKEN}/getUpdates", params={"limit": 2})).json()["result"]
    assert again == first, "without a higher offset the same updates come back (nothing lost)"
    rest = (await http.get(f"/telegram/bot{TOKEN}/getUpdates", params={"offset": first[-1]["update_id"] + 1})).json()["result"]
    assert [u["message"]["text"] for u in rest] == ["m2", "m3", "m4"]
    done = (await http.get(f"/telegram/bot{TOKEN}/getUpdates", params={"offset": rest[-1]["update_id"] + 1})).json()
    assert done["result"] == []


async def test_newer_poll_terminates_the_older_with_409(http: httpx.AsyncClient) -> None:
    older = asyncio.create_task(http.get(f"/telegram/bot{TOKEN}/getUpdates", params={"timeout": 10}))
    await asyncio.sleep(0.2)
    newer = asyncio.create_task(http.get(f"/telegram/bot{TOKEN}/getUpdates", params={"timeout": 1}))
    conflict = await asyncio.wait_for(older, 5)
    assert conflict.status_code == 409
    assert conflict.json()["ok"] is False and conflict.json()["error_code"] == 409
    assert (await asyncio.wait_for(newer, 5)).json()["ok"] is True


async def test_send_message_shapes_and_errors(http: httpx.AsyncClient, doubles: RunningDoubles) -> None:
    url = f"/telegram/bot{TOKEN}/sendMessage"
    ok = (await http.post(url, json={"chat_id": -1001, "text": "<b>HUX</b> &amp; co", "parse_mode": "HTML"})).json()
    assert ok["ok"] is True and ok["result"]["text"] == "HUX & co" and ok["result"]["chat"]["id"] == -1001
    assert ok["result"]["from"]["is_bot"] is True and isinstance(ok["result"]["message_id"], int)
    form = await http.post(url, data={"chat_id": "-1001", "text": "plain"})
    assert form.json()["ok"] is True
    cases = [
        ({"text": "x"}, "Bad Request: chat_id is empty"),
        ({"chat_id": 1, "text": ""}, "Bad Request: message text is empty"),
        ({"chat_id": 1, "text": "<script>x</script>", "parse_mode": "HTML"}, "Bad Request: can't parse entities"),
        ({"chat_id": 1, "text": "<b>open", "parse_mode": "HTML"}, "Bad Request: can't parse entities"),
        ({"chat_id": 1, "text": "x" * 4097}, "Bad Request: message is too long"),
    ]
    for payload, description in cases:
        response = await http.post(url, json=payload)
        body = response.json()
        assert response.status_code == 400 and body["ok"] is False and body["error_code"] == 400
        assert body["description"].startswith(description), body
    sent = (await http.get("/telegram/_double/sent")).json()["messages"]
    assert [m["text"] for m in sent] == ["<b>HUX</b> &amp; co", "plain"]
    assert len(doubles.telegram.sent) == 2


async def test_wrong_token_and_unknown_method(doubles: RunningDoubles, http: httpx.AsyncClient) -> None:
    doubles.telegram.token = TOKEN
    wrong = await http.get("/telegram/bot123:wrongwrongwrongwrongwrong/getMe")
    assert wrong.status_code == 401 and wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    me = (await http.get(f"/telegram/bot{TOKEN}/getMe")).json()
    assert me["ok"] is True and me["result"]["is_bot"] is True
    unknown = await http.get(f"/telegram/bot{TOKEN}/sendCarrierPigeon")
    assert unknown.status_code == 404 and unknown.json()["ok"] is False


def test_html_checker() -> None:
    assert check_html('<b>a</b> <code>x</code> <a href="https://x">y</a> &lt;tag&gt;') is None
    assert check_html("<div>x</div>") is not None
    assert check_html("<b><i>x</b></i>") is not None


async def test_telegram_429_fault_carries_retry_after_in_parameters(http: httpx.AsyncClient) -> None:
    await http.put("/_double/faults", json={"telegram": {"rate_limit_status_rate": 1.0, "retry_after": 3}})
    response = await http.post(f"/telegram/bot{TOKEN}/sendMessage", json={"chat_id": 1, "text": "x"})
    assert response.status_code == 429
    assert response.json() == {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
                               "parameters": {"retry_after": 3}}


# --------------------------------------------------------------------------- fault injection
async def test_fault_settings_per_api_and_combined(http: httpx.AsyncClient, doubles: RunningDoubles) -> None:
    defaults = FaultSettings().to_json()
    assert (await http.get("/_double/faults")).json() == {api: defaults for api in ("dexscreener", "rugcheck", "goplus", "telegram", "webhook")}
    put = await http.put("/_double/faults", json={"dexscreener": {"error_rate": 1.0, "error_status": 502, "retry_after": 2}})
    assert put.status_code == 200 and put.json()["dexscreener"]["error_status"] == 502
    failing = await http.get(f"/dexscreener/latest/dex/tokens/{SOL}")
    assert failing.status_code == 502 and failing.headers["Retry-After"] == "2"
    assert (await http.get(f"/rugcheck/v1/tokens/{SOL}/report/summary")).status_code in (200, 404), "other APIs untouched"

    # The per-API endpoint sees the same settings; PUT there replaces them.
    assert (await http.get("/dexscreener/_double/faults")).json()["error_rate"] == 1.0
    await http.put("/dexscreener/_double/faults", json={"rate_limit_status_rate": 1.0})
    limited = await http.get(f"/dexscreener/latest/dex/tokens/{SOL}")
    assert limited.status_code == 429 and "Retry-After" not in limited.headers, "retry_after reset to null by the PUT"

    assert (await http.delete("/_double/faults")).json()["dexscreener"] == defaults
    assert (await http.get(f"/dexscreener/latest/dex/tokens/{SOL}")).status_code == 200

    stats = (await http.get("/_double/stats")).json()
    assert stats["dexscreener"]["requests"]["tokens"] == {"502": 1, "429": 1, "200": 1}
    assert stats["dexscreener"]["total"] == 3
    assert (await http.get("/dexscreener/_double/stats")).json() == stats["dexscreener"]


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"dexscreener": {"error_rate": 2}}, "dexscreener.error_rate"),
        ({"dexscreener": {"eror_rate": 0.5}}, "unknown key(s) eror_rate"),
        ({"rugcheck": {"hang": "yes"}}, "rugcheck.hang"),
        ({"telegram": {"error_status": 200}}, "telegram.error_status"),
        ({"binance": {}}, "unknown API(s) binance"),
        ({"dexscreener": []}, "expected a JSON object"),
        ([], "object keyed by API"),
    ],
)
async def test_bad_fault_settings_are_refused_and_change_nothing(http: httpx.AsyncClient, body: object, needle: str) -> None:
    before = (await http.get("/_double/faults")).json()
    response = await http.put("/_double/faults", json={"webhook": {"error_rate": 1.0}, **body} if isinstance(body, dict) else body)
    assert response.status_code == 400 and needle in response.json()["error"], response.text
    assert (await http.get("/_double/faults")).json() == before, "validated before anything changes"
    not_json = await http.put("/_double/faults", content=b"{oops")
    assert not_json.status_code == 400


async def test_latency_and_malformed_faults(http: httpx.AsyncClient) -> None:
    await http.put("/_double/faults", json={"rugcheck": {"latency_seconds": 0.3, "malformed_rate": 1.0}})
    started = time.monotonic()
    response = await http.get(f"/rugcheck/v1/tokens/{SOL}/report/summary")
    assert time.monotonic() - started >= 0.28
    assert response.status_code == 200
    try:
        body = response.json()
    except ValueError:
        body = None
    assert body is None or not isinstance(body, dict) or not isinstance(body.get("score_normalised"), int)


async def test_hang_holds_requests_until_cleared(http: httpx.AsyncClient) -> None:
    await http.put("/_double/faults", json={"dexscreener": {"hang": True}})
    with pytest.raises(httpx.ReadTimeout):
        await http.get(f"/dexscreener/latest/dex/tokens/{SOL}", timeout=0.3)
    pending = asyncio.create_task(http.get(f"/dexscreener/latest/dex/tokens/{SOL}", timeout=5))
    await asyncio.sleep(0.2)
    assert not pending.done()
    await http.delete("/_double/faults")
    assert (await asyncio.wait_for(pending, 5)).status_code == 200


async def test_stopping_releases_hanging_requests_quickly() -> None:
    running = await start_doubles()
    running.faults["dexscreener"].set(FaultSettings(hang=True))
    async with httpx.AsyncClient(timeout=10) as client:
        request = asyncio.create_task(client.get(f"{running.url('dexscreener')}/latest/dex/tokens/{SOL}"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await running.stop()
        assert time.monotonic() - started < 3
        try:
            await asyncio.wait_for(request, 5)
        except httpx.HTTPError:
            pass  # released with an answer or a closed connection: either way not stuck


async def test_webhook_receiver_records_json(http: httpx.AsyncClient, doubles: RunningDoubles) -> None:
    assert (await http.post("/webhook/hooks/alerts", json={"a": 1})).json() == {"ok": True}
    assert (await http.post("/webhook/hooks/alerts", content=b"not json")).status_code == 400
    assert (await http.get("/webhook/_double/received")).json() == {"received": [{"name": "alerts", "payload": {"a": 1}}]}
    assert list(doubles.webhook_received) == [{"name": "alerts", "payload": {"a": 1}}]


async def test_start_doubles_on_a_busy_port_says_so() -> None:
    running = await start_doubles()
    try:
        with pytest.raises(OSError, match="pick another port"):
            await start_doubles("127.0.0.1", running.port)
    finally:
        await running.stop()


# --------------------------------------------------------------------------- CLI
def test_cli_serves_the_doubles_until_terminated(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HUX_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hux.cli", "doubles", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 15
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/_double/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None and health.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/dexscreener/latest/dex/tokens/{SOL}", timeout=2).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"http://127.0.0.1:{port}" in out and "doubles stopped" in out
    assert proc.returncode == 0


def test_cli_refuses_a_bad_port() -> None:
    result = subprocess.run([sys.executable, "-m", "hux.cli", "doubles", "serve", "--port", "70000"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "--port must be 0..65535" in result.stderr


async def test_even_fault_spacing_gives_exact_shares(http: httpx.AsyncClient) -> None:
    await http.put("/_double/faults", json={"rugcheck": {"error_rate": 0.25, "even": True}})
    statuses = [(await http.get(f"/rugcheck/v1/tokens/{SOL}/report/summary")).status_code for _ in range(12)]
    assert statuses.count(503) == 3
    assert all(a != 503 or b != 503 for a, b in itertools.pairwise(statuses)), "never two faults in a row at 0.25"
