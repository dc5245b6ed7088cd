"""Fairness under a flood: one chat sends 50 msg/s of 1,400-address messages beside ten ordinary chats.

    .venv/bin/python bench/bot_fairness.py [--seconds 45] [--flood-rate 50] [--addresses 1400]

The market doubles (``hux doubles serve``) run in their own process; the bot
runs in this one with the shipped defaults (4 workers, DexScreener 300/min,
RugCheck 60/min, ``max_addresses_per_message`` 20, ``[bot.fairness]``) on
SQLite, fed by a replay feed paced by its timestamps.

Ordinary traffic: ten chats, each one message every 10 s naming one token from
a pool of 30 (so some are cooldown hits, the rest new lookups). Two runs of the
same ordinary traffic:

1. clean: ordinary traffic alone;
2. flood: the same, plus one chat sending ``--flood-rate`` messages a second,
   each naming ``--addresses`` distinct valid Solana mints (~63 KB).

Latency of an ordinary message = time its result was handed to the writer
minus the time the replay read it (``sent_at``): queueing, refusal-free intake
and the lookups included. The figure compared is the p95 over the ordinary
chats' messages (exact, from every sample); the target is flood p95 <= 2x
clean p95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bot_pipeline import TOKEN, start_doubles
from prometheus_client import disable_created_metrics

from hux.bot import samplefeed
from hux.bot.app import BotApp
from hux.bot.config import BotConfig
from hux.bot.metrics import BotMetrics
from hux.bot.profile import live_profile

ORDINARY_CHATS = 10
ORDINARY_EVERY = 10.0  # seconds between two messages of one ordinary chat
T0 = 1_736_500_000.0


def write_feed(path: Path, seconds: float, *, flood_rate: float, addresses: int, seed: int) -> int:
    rng = random.Random(seed)
    tokens = [samplefeed.solana_mint(rng) for _ in range(15)] + [samplefeed.evm_address(rng) for _ in range(15)]
    records: list[tuple[float, dict]] = []
    for chat in range(ORDINARY_CHATS):
        t = chat * ORDINARY_EVERY / ORDINARY_CHATS
        while t < seconds:
            records.append((t, {"group": f"Ordinary {chat}", "text": f"ca {rng.choice(tokens)} looks good"}))
            t += ORDINARY_EVERY
    if flood_rate > 0:
        pool = [samplefeed.solana_mint(rng) for _ in range(max(addresses * 4, 6000))]
        for i in range(int(seconds * flood_rate)):
            records.append((i / flood_rate, {"group": "Flood", "text": " ".join(rng.sample(pool, addresses))}))
    records.sort(key=lambda r: r[0])
    with open(path, "w", encoding="utf-8") as fh:
        for t, record in records:
            record["ts"] = T0 + t
            fh.write(json.dumps(record) + "\n")
    return len(records)


def config(home: Path, base: str, feed: Path) -> BotConfig:
    return BotConfig.model_validate({
        "port": 0,
        "database_url": f"sqlite:///{home / 'bench.db'}",
        "cooldown_seconds": 60,
        "demo": {"enabled": False},
        "shutdown_grace_seconds": 2.0,
        "telegram": {"api_base": f"{base}/telegram", "alert_chat_id": "-1001"},
        "dexscreener": {"base_url": f"{base}/dexscreener"},
        "rugcheck": {"base_url": f"{base}/rugcheck"},
        "goplus": {"base_url": f"{base}/goplus"},
        "replay": {"path": str(feed), "loop": False, "speed": 1.0, "max_gap_seconds": 1.0},
    })


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


async def run(base: str, seconds: float, *, flood_rate: float, addresses: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["HUX_HOME"] = str(home)
        feed = home / "feed.jsonl"
        lines = write_feed(feed, seconds, flood_rate=flood_rate, addresses=addresses, seed=42)
        metrics = BotMetrics()
        cfg = config(home, base, feed)
        app = BotApp(cfg, live_profile(cfg, TOKEN), metrics=metrics)
        await app.start()
        ordinary: list[float] = []
        flood_done = 0
        original = app.persistence.submit

        async def submit(result) -> None:
            nonlocal flood_done
            if result.message.group.startswith("Ordinary"):
                ordinary.append(time.time() - result.message.sent_at)
            else:
                flood_done += 1
            await original(result)

        app.persistence.submit = submit  # the pipeline calls it per message: a tap, not a stand-in
        expected = sum(1 for _ in range(ORDINARY_CHATS)) * int(seconds / ORDINARY_EVERY)
        started = time.monotonic()
        try:
            replay = next(s for s in app.sources if s.name == "replay")
            deadline = started + seconds * 3 + 60
            while time.monotonic() < deadline and not (replay.finished.is_set() and len(ordinary) >= expected):
                await asyncio.sleep(0.2)
            elapsed = time.monotonic() - started
        finally:
            await app.stop()
    value = lambda name, **labels: metrics.registry.get_sample_value(name, labels or None) or 0.0  # noqa: E731
    return {
        "lines": lines,
        "elapsed": elapsed,
        "ordinary": len(ordinary),
        "ordinary_expected": expected,
        "p50": statistics.median(ordinary) if ordinary else float("nan"),
        "p95": p95(ordinary) if ordinary else float("nan"),
        "max": max(ordinary) if ordinary else float("nan"),
        "flood_decided": flood_done,
        "flood_refused": value("hux_messages_rejected_total", source="replay", reason="chat_backlog"),
        "over_cap": value("hux_token_candidates_skipped_total", reason="over_message_cap"),
        "throttled": value("hux_chat_throttled_total", reason="over_rate"),
        "rugcheck_calls": value("hux_api_requests_total", api="rugcheck", endpoint="report_summary", outcome="success"),
    }


def show(name: str, r: dict) -> None:
    print(f"  {name}: {r['lines']} feed lines in {r['elapsed']:.1f} s; ordinary {r['ordinary']}/{r['ordinary_expected']} decided, "
          f"p50 {r['p50'] * 1000:.0f} ms, p95 {r['p95'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms; "
          f"flood decided {r['flood_decided']}, refused (chat_backlog) {r['flood_refused']:.0f}, "
          f"addresses over cap {r['over_cap']:.0f}, over-rate {r['throttled']:.0f}; RugCheck calls {r['rugcheck_calls']:.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="length of each run's feed")
    parser.add_argument("--flood-rate", type=float, default=50.0)
    parser.add_argument("--addresses", type=int, default=1400)
    args = parser.parse_args()
    disable_created_metrics()
    logging.basicConfig(level=logging.ERROR)
    proc, base = start_doubles()
    try:
        print(f"fairness: {ORDINARY_CHATS} ordinary chats (1 msg / {ORDINARY_EVERY:.0f} s each) for {args.seconds:.0f} s, "
              f"doubles at {base}, shipped defaults")
        clean = await run(base, args.seconds, flood_rate=0.0, addresses=args.addresses)
        show("clean", clean)
        flood = await run(base, args.seconds, flood_rate=args.flood_rate, addresses=args.addresses)
        show(f"flood ({args.flood_rate:.0f} msg/s x {args.addresses} addresses)", flood)
        ratio = flood["p95"] / clean["p95"]
        print(f"ordinary p95: clean {clean['p95'] * 1000:.0f} ms, flood {flood['p95'] * 1000:.0f} ms, ratio {ratio:.2f} (target <= 2.0)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
