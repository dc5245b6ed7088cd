"""`hux bot run` as a subprocess: the demo exports the whole catalogue; live mode polls Telegram and never logs the token."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hux.bot import samplefeed
from hux.bot.metrics import EXPECTED_FAMILIES
from hux.doubles.faults import FaultSettings
from hux.doubles.market import start_doubles
from tests.bot.conftest import samples, total
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(120)

#: Families that legitimately read 0 in a healthy demo (they must still be exported).
MAY_BE_ZERO = {"hux_queue_length", "hux_database_errors_total"}
FAKE_TOKEN = "424242424:AAH-fake-token-for-live-mode-test_xyz"


def bot_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")}
    env.update({"HUX_HOME": str(home), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


class BotProcess:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.stderr_path = home / "bot.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "hux.cli", "bot", "run"], cwd=home, env=env,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.close()
        return self.proc.returncode

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def bot_processes():
    started: list[BotProcess] = []

    def start(home: Path, env: dict[str, str]) -> BotProcess:
        bot = BotProcess(home, env)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.stop()


def family_values(body: str) -> dict[str, list[float]]:
    parsed = samples(body)
    out: dict[str, list[float]] = {}
    for family in EXPECTED_FAMILIES:
        names = [n for n in parsed if n == family or (n.startswith(family + "_") and n[len(family) + 1:] in
                                                         ("bucket", "count", "sum", "total", "info"))]
        if family.endswith("_info"):
            names = [n for n in parsed if n == family]
        out[family] = [v for n in names for _, v in parsed[n]]
    return out


def missing_or_zero(body: str) -> list[str]:
    problems = []
    for family, values in family_values(body).items():
        if not values:
            problems.append(f"{family} (absent)")
        elif family not in MAY_BE_ZERO and not any(v > 0 for v in values):
            problems.append(f"{family} (all zero)")
    return problems


async def known_mint(http: httpx.AsyncClient, dexscreener: str) -> str:
    """A mint the DexScreener double has a market for (it knows most, not all, addresses)."""
    rng = random.Random(4)
    for _ in range(50):
        mint = samplefeed.solana_mint(rng)
        if (await http.get(f"{dexscreener}/latest/dex/tokens/{mint}")).json().get("pairs"):
            return mint
    raise AssertionError("the DexScreener double knows none of 50 mints")


async def test_demo_run_exports_every_family_within_a_minute(hux_home: Path, bot_processes) -> None:
    port, doubles_port = free_port(), free_port()
    bot = bot_processes(hux_home, bot_env(hux_home, HUX__BOT__PORT=str(port), HUX__BOT__DEMO__DOUBLES_PORT=str(doubles_port)))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    problems = ["not scraped yet"]
    body = ""
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline and bot.proc.poll() is None:
            try:
                r = await http.get(f"{base}/metrics")
            except httpx.TransportError:
                await asyncio.sleep(0.3)
                continue
            assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
            body = r.text
            problems = missing_or_zero(body)
            if not problems:
                break
            await asyncio.sleep(1.0)
        assert bot.proc.poll() is None, bot.stderr
        assert problems == [], f"after 60 s: {problems}\n{bot.stderr[-2000:]}"

        ready = await http.get(f"{base}/ready")
        assert ready.status_code == 200
        body_ready = ready.json()
        assert body_ready["mode"] == "demo" and body_ready["demo"] is True and "demo mode" in body_ready["message"]
        assert body_ready["database"]["reachable"] is True and body_ready["queue"]["saturated"] is False
        assert (await http.get(f"{base}/health")).json()["status"] == "ok"
        # faults can be injected into the running demo's doubles
        r = await http.put(f"http://127.0.0.1:{doubles_port}/_double/faults", json={"rugcheck": {"error_rate": 0.5}})
        assert r.status_code == 200

    parsed = samples(body)
    assert 'mode="demo"' in body and total(parsed, "hux_demo_mode") == 1
    assert total(parsed, "hux_api_requests_total", api="dexscreener") > 0
    assert not any(n.endswith("_created") for n in parsed)  # *_created series are switched off

    assert bot.stop() == 0
    log = (hux_home / "logs" / "mr_hux_alpha_bot.log").read_text(encoding="utf-8")
    assert "DEMO MODE" in log and '"level": "INFO"' in log and "bot stopped" in log
    assert (hux_home / "data" / "bot" / "hux.db").exists()


async def test_live_mode_polls_telegram_and_never_logs_the_token(hux_home: Path, bot_processes) -> None:
    doubles = await start_doubles("127.0.0.1", 0, seed=21)
    try:
        port = free_port()
        env = bot_env(
            hux_home,
            HUX_TELEGRAM_TOKEN=FAKE_TOKEN,
            HUX__BOT__PORT=str(port),
            HUX__BOT__ALERT_THRESHOLD="0",
            HUX__BOT__TELEGRAM__API_BASE=doubles.url("telegram"),
            HUX__BOT__TELEGRAM__ALERT_CHAT_ID="-1001234567890",
            HUX__BOT__TELEGRAM__POLL_TIMEOUT_SECONDS="1",
            HUX__BOT__DEXSCREENER__BASE_URL=doubles.url("dexscreener"),
            HUX__BOT__RUGCHECK__BASE_URL=doubles.url("rugcheck"),
        )
        bot = bot_processes(hux_home, env)
        base = f"http://127.0.0.1:{port}"
        state = doubles.telegram
        async with httpx.AsyncClient(timeout=5) as http:
            ready = None
            for _ in range(100):
                try:
                    ready = (await http.get(f"{base}/ready")).json()
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
            assert ready is not None, bot.stderr
            assert ready["mode"] == "live" and ready["demo"] is False and ready["sources"] == ["telegram"]

            mint = await known_mint(http, doubles.url("dexscreener"))
            state.inject_message(f"new call {mint}", chat_title="Alpha Hunters")
            state.inject_message(f"https://pump.fun/coin/{mint}", chat_title="Degen Trenches")

            async def alerted() -> bool:
                return len(state.sent) >= 1 and len(state.pending) == 0

            deadline = time.monotonic() + 40
            while not await alerted() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert await alerted(), bot.stderr[-2000:]
            metrics = samples((await http.get(f"{base}/metrics")).text)
            assert total(metrics, "hux_messages_received_total", source="telegram") == 2
            assert total(metrics, "hux_alerts_sent_total", channel="telegram", outcome="success") >= 1
            assert total(metrics, "hux_build_info", mode="live") == 1
            # Telegram failing: the client logs errors about Bot API calls, whose URLs carry the token
            doubles.faults["telegram"].set(FaultSettings(error_rate=1.0, error_status=502))
            deadline = time.monotonic() + 20
            while "getUpdates failed" not in bot.stderr and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert "getUpdates failed" in bot.stderr
        assert bot.stop() == 0
    finally:
        await doubles.stop()

    log = (hux_home / "logs" / "mr_hux_alpha_bot.log").read_text(encoding="utf-8")
    secret = FAKE_TOKEN.split(":", 1)[1]
    for text in (log, bot.stderr):
        assert FAKE_TOKEN not in text and secret not in text
    assert "DEMO MODE" not in log and "live mode" in log
    assert "getUpdates failed" in log  # the failures were logged, without the token
