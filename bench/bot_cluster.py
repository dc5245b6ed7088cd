"""Several bot instances on one PostgreSQL: throughput with 1, 2 and 3 instances, and the full leader-kill drill.

    HUX_TEST_PG_URL=postgresql+psycopg://root@/hux_test?host=/var/run/postgresql \\
        .venv/bin/python bench/bot_cluster.py [--messages 1500] [--instances 1 2 3] [--drill 3000]

Throughput: real ``hux bot run`` processes (one database of their own per
run), upstream limits lifted (DexScreener and RugCheck doubles at 10^6
requests/min), every message queued at the Telegram double before the timer
starts; the time is from the first poll to the last message decided in the
database. Messages name ``messages / 5`` distinct tokens (cooldown 1 h: the
first mention is looked up and alerted, the others are cooldown decisions, each
one still a claim, a token-gate statement and a result write).

Drill (``--drill N``): the test's scenario at full size: N messages fed at 60/s
to three instances, SIGKILL of the leader a third of the way in; prints the
failover time, the duplicates at the Telegram double, the unconfirmed count and
DexScreener's peak requests per second under its shared limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from hux.doubles.faults import max_in_window  # noqa: E402
from hux.doubles.market import start_doubles  # noqa: E402
from tests.bot.conftest import PgDatabases  # noqa: E402
from tests.bot.test_cluster_drill import (  # noqa: E402
    DEX_PER_MINUTE,
    LEASE,
    Fleet,
    check_alerts,
    db_counts,
    feed,
    inject,
    until,
)

LIFTED = 1_000_000.0


async def throughput(admin_url: str, instances: int, messages: int) -> float:
    dbs = PgDatabases(admin_url)
    url = dbs.create()
    doubles = await start_doubles(seed=5)
    with tempfile.TemporaryDirectory(prefix="hux-bench-cluster-") as tmp:
        fleet = Fleet(Path(tmp), url, doubles, instances, dex_per_minute=LIFTED, rug_per_minute=LIFTED)
        try:
            await until(fleet.ready, 60, f"{instances} instances ready")
            await until(fleet.leaders, 30, "a leader")
            for group, body in feed(messages, max(1, messages // 5), seed=instances):
                doubles.telegram.inject_message(body, chat_title=group)
            started = time.monotonic()
            await until(lambda: db_counts(url)["done"] >= messages, 600, "every message decided", interval=0.05)
            elapsed = time.monotonic() - started
        finally:
            await fleet.close()
            await doubles.stop()
            dbs.drop_all()
    return messages / elapsed


async def drill(admin_url: str, messages: int) -> None:
    dbs = PgDatabases(admin_url)
    url = dbs.create()
    doubles = await start_doubles(seed=11)
    with tempfile.TemporaryDirectory(prefix="hux-bench-drill-") as tmp:
        fleet = Fleet(Path(tmp), url, doubles)
        try:
            await until(fleet.ready, 60, "three instances ready")
            first = await until(fleet.leaders, 30, "a leader")
            tokens = max(1, messages // 5)
            feeding = asyncio.create_task(inject(doubles, feed(messages, tokens), per_second=60.0))
            await until(lambda: db_counts(url)["inbox"] >= messages // 3, 300, "a third accepted")
            fleet.bots[first[0]].proc.kill()
            killed = time.monotonic()
            second = await until(fleet.leaders, 60, "a new leader")
            failover = time.monotonic() - killed
            await feeding
            await until(lambda: db_counts(url)["done"] >= messages, 600, "every message decided")
            await asyncio.sleep(5)
            counts = db_counts(url)
            unconfirmed = await fleet.sum("hux_alerts_unconfirmed_total")
            alerted, duplicates = check_alerts(doubles, url, unconfirmed)
            arrivals = doubles.faults["dexscreener"].arrivals
            print(f"drill, {messages} messages ({tokens} tokens), 3 instances, lease {LEASE:g} s: "
                  f"leader {first[0]} killed, instance {second[0]} led after {failover:.1f} s")
            print(f"  inbox {counts['inbox']}, decided {counts['done']}, mention rows {counts['mentions']} "
                  f"({counts['mentioned_messages']} messages), tokens decided {counts['decided_tokens']}")
            print(f"  alerts: {alerted} tokens alerted, {duplicates} duplicates at the Telegram double, "
                  f"{unconfirmed:.0f} counted unconfirmed; claims taken over "
                  f"{await fleet.sum('hux_bot_claims_expired_total'):.0f}")
            print(f"  DexScreener: {len(arrivals)} requests, peak {max_in_window(arrivals, 1.0)} in any second, "
                  f"{max_in_window(arrivals, 60.0)} in any minute (shared limit {DEX_PER_MINUTE:.0f}/min + burst 5)")
        finally:
            await fleet.close()
            await doubles.stop()
            dbs.drop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--instances", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--drill", type=int, default=0, help="run the leader-kill drill with this many messages")
    args = parser.parse_args()
    admin = os.environ.get("HUX_TEST_PG_URL")
    if not admin:
        sys.exit("set HUX_TEST_PG_URL to a PostgreSQL URL whose role may create databases")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for n in args.instances:
        rate = asyncio.run(throughput(admin, n, args.messages))
        print(f"{n} instance(s): {args.messages} messages in {args.messages / rate:.1f} s = {rate:.0f} messages/s "
              f"(load {os.getloadavg()[0]:.1f})")
    if args.drill:
        asyncio.run(drill(admin, args.drill))


if __name__ == "__main__":
    main()
