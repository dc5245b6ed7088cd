"""Pipeline throughput and latency against zero-latency local doubles, and instrumentation overhead.

    .venv/bin/python bench/bot_pipeline.py [--messages 6000] [--rounds 3]

The market doubles (``hux doubles serve``) run in their own process; the bot
runs in this one: replay source -> intake (SQLite inbox, WAL, synchronous=FULL)
-> 4 workers -> DexScreener/RugCheck doubles over loopback HTTP -> score ->
SQLite -> Telegram alerts to the double. Provider rate limits are lifted: the
point is the bot's own capacity.

1. Sustained load: the feed replays as fast as intake accepts it; messages/s
   and new tokens/s (tokens looked up, not cooldown skips) until every result
   is written.
2. Latency: the same pipeline fed at half that rate, paced by timestamps;
   p95 of message->decision latency from the bot's own histogram (linear
   interpolation inside the bucket, as Prometheus' histogram_quantile does).
3. Instrumentation overhead: sustained throughput with ``BotMetrics()`` vs
   ``BotMetrics.noop()`` (same metric objects on a private registry without
   process collectors), alternating rounds in the same run, medians compared.
   Because ``noop()`` still records every sample, a third variant replaces
   every metric with an object whose methods do nothing ("null"): that ratio
   is the full cost of recording. Besides wall-clock throughput (noisy: the
   bot, the doubles and SQLite share two cores) the bot process's CPU time per
   message is compared, which is what instrumentation actually costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client import disable_created_metrics

from hux.bot.app import BotApp
from hux.bot.config import BotConfig
from hux.bot.metrics import BotMetrics
from hux.bot.profile import live_profile
from hux.bot.samplefeed import generate_messages

TOKEN = "1000000002:bench-token-for-the-local-double"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_doubles() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hux.cli", "doubles", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_double/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the doubles did not start")


def write_feed(path: Path, count: int, *, rate: float | None, seed: int) -> None:
    """``count`` messages; ``rate`` msgs/s spacing (None: all at once), mostly distinct tokens."""
    with open(path, "w", encoding="utf-8") as fh:
        for i, record in enumerate(generate_messages(count, seed=seed, tokens=max(60, count // 2))):
            record["ts"] = 1_736_500_000 + (i / rate if rate else 0.0)
            fh.write(json.dumps(record) + "\n")


def config(home: Path, base: str, feed: Path, workers: int) -> BotConfig:
    unlimited = 6_000_000.0
    return BotConfig.model_validate({
        "port": 0,
        "database_url": f"sqlite:///{home / 'bench.db'}",
        "workers": workers,
        "queue_capacity": 1000,
        "cooldown_seconds": 900,
        "demo": {"enabled": False},
        "shutdown_grace_seconds": 2.0,
        "telegram": {"api_base": f"{base}/telegram", "alert_chat_id": "-1001", "alert_rate_limit_per_minute": unlimited,
                     "poll_timeout_seconds": 25},
        "dexscreener": {"base_url": f"{base}/dexscreener", "rate_limit_per_minute": unlimited},
        "rugcheck": {"base_url": f"{base}/rugcheck", "rate_limit_per_minute": unlimited},
        "goplus": {"base_url": f"{base}/goplus", "rate_limit_per_minute": unlimited},
        "replay": {"path": str(feed), "loop": False, "speed": 1.0, "max_gap_seconds": 1.0},
    })


class _Null:
    """Accepts every metric call and does nothing."""

    def labels(self, *args, **kwargs) -> "_Null":
        return self

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def null_metrics() -> BotMetrics:
    """A BotMetrics whose metrics record nothing; its private registry stays for the benchmark's own reads."""
    shell = BotMetrics.noop()
    reads = BotMetrics.noop()  # the benchmark still needs received/persisted counts
    for name, attr in list(vars(shell).items()):
        if name in ("registry", "group_label"):
            continue
        if name in ("stage_results", "tokens_processed", "decision_latency_seconds"):
            setattr(shell, name, getattr(reads, name))  # the few the benchmark reads to know when a run is done
        elif hasattr(attr, "_name"):
            setattr(shell, name, _Null())
    shell.registry = reads.registry
    return shell


def value(metrics: BotMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


def _count(counter) -> float:
    # The child's value, read directly: collecting the whole registry (process collector
    # included) on every poll would bill the benchmark's own reads to the instrumented run.
    return counter._value.get()


def received(metrics: BotMetrics) -> float:
    return _count(metrics.stage_results.labels(stage="intake", outcome="success"))


def persisted(metrics: BotMetrics) -> float:
    return _count(metrics.stage_results.labels(stage="persist", outcome="success"))


async def run_pipeline(base: str, count: int, *, rate: float | None, metrics: BotMetrics, seed: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["HUX_HOME"] = str(home)
        feed = home / "feed.jsonl"
        write_feed(feed, count, rate=rate, seed=seed)
        cfg = config(home, base, feed, workers)
        app = BotApp(cfg, live_profile(cfg, TOKEN), metrics=metrics)
        await app.start()
        started = time.perf_counter()
        cpu_started = time.process_time()
        try:
            replay = next(s for s in app.sources if s.name == "replay")
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not (replay.finished.is_set() and persisted(metrics) >= received(metrics)):
                await asyncio.sleep(0.1)  # reading the registry costs CPU too: poll gently
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            accepted = received(metrics)
        finally:
            await app.stop()
    decided = sum(value(metrics, "hux_tokens_processed_total", outcome=o) for o in ("alerted", "below_threshold", "no_market_data", "failed"))
    return {
        "elapsed": elapsed,
        "messages_per_s": accepted / elapsed,
        "cpu_us_per_message": cpu / accepted * 1e6,
        "new_tokens_per_s": decided / elapsed,
        "tokens": decided,
        "failed": value(metrics, "hux_tokens_processed_total", outcome="failed"),
        "p95": quantile(metrics, 0.95),
        "p50": quantile(metrics, 0.5),
    }


def quantile(metrics: BotMetrics, q: float) -> float:
    buckets = []
    for family in metrics.registry.collect():
        if family.name == "hux_message_decision_latency_seconds":
            buckets = [(float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")]
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-9)
        lower_bound, lower_count = bound, count
    return buckets[-1][0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="bot.workers (default: the shipped default, 4)")
    args = parser.parse_args()
    disable_created_metrics()
    logging.basicConfig(level=logging.ERROR)
    proc, base = start_doubles()
    try:
        print(f"pipeline against zero-latency doubles ({base}), {args.messages} messages per run, {args.workers} workers, SQLite")
        runs: dict[str, list[dict]] = {"metrics": [], "noop": [], "null": []}
        factories = {"metrics": BotMetrics, "noop": BotMetrics.noop, "null": null_metrics}
        for r in range(args.rounds):
            for name, factory in factories.items():
                runs[name].append(await run_pipeline(base, args.messages, rate=None, metrics=factory(), seed=100 + r, workers=args.workers))
            print(f"  round {r + 1}: " + ", ".join(
                f"{name} {runs[name][-1]['messages_per_s']:,.0f} msg/s {runs[name][-1]['cpu_us_per_message']:,.0f} µs CPU/msg" for name in runs))

        def med(name: str, key: str) -> float:
            return statistics.median(x[key] for x in runs[name])

        sustained = med("metrics", "messages_per_s")
        tokens = med("metrics", "new_tokens_per_s")
        print(f"sustained: {sustained:,.0f} messages/s, {tokens:,.0f} new tokens/s "
              f"(failed lookups: {sum(x['failed'] for x in runs['metrics']):.0f})")
        for base_name in ("noop", "null"):
            print(f"instrumentation overhead vs {base_name}: throughput ratio {med(base_name, 'messages_per_s') / sustained:.3f}, "
                  f"CPU per message ratio {med('metrics', 'cpu_us_per_message') / med(base_name, 'cpu_us_per_message'):.3f} (target <= 1.03)")

        half = sustained / 2
        duration = 15.0
        latency = await run_pipeline(base, int(half * duration), rate=half, metrics=BotMetrics(), seed=999, workers=args.workers)
        print(f"at half load ({half:,.0f} msg/s for {duration:.0f} s): message->decision p50 {latency['p50'] * 1000:.0f} ms, "
              f"p95 {latency['p95'] * 1000:.0f} ms (target <= 500 ms)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
