"""`/metrics` with 100 groups and all APIs active: series count (<= 2,000) and p50 response time (<= 3 ms).

    .venv/bin/python bench/bot_metrics_endpoint.py [--requests 500] [--library]

Fills a ``BotMetrics`` the way a busy bot would (100 chat groups, two sources,
every API x endpoint x outcome, every stage, token outcome, candidate kind,
channel and database operation, all histograms observed), serves it with the
bot's own HTTP server on loopback in a process of its own (as Prometheus
scrapes it: the client does not share the server's interpreter lock) and times
GET /metrics from this process. It also times the body's rendering alone, the
bot's ``Exposition`` against prometheus_client's ``generate_latest``
(``--library`` serves the latter, the way the bot did before). Process
collectors are on, ``*_created`` series are off (as in ``hux bot run``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import random
import statistics
import time

import httpx
from aiohttp import web
from prometheus_client import disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from hux.bot.exposition import Exposition
from hux.bot.metrics import (
    ALERT_OUTCOMES,
    API_OUTCOMES,
    CANDIDATE_KINDS,
    REJECT_REASONS,
    STAGE_OUTCOMES,
    STAGES,
    TOKEN_OUTCOMES,
    BotMetrics,
)
from hux.bot.persistence import DB_OPERATIONS
from hux.bot.server import HttpServer, ReadyState, build_app

APIS = {"dexscreener": ("tokens",), "rugcheck": ("report_summary",), "telegram": ("getUpdates", "sendMessage"), "webhook": ("alert",)}


def busy_metrics(groups: int) -> BotMetrics:
    rng = random.Random(1)
    m = BotMetrics(group_label_limit=groups, mode="live")
    for g in range(groups + 20):  # 20 more than the cap: they land in "other"
        for source in ("telegram", "replay"):
            m.messages_received.labels(source=source, group=m.group_label(f"group {g}")).inc(rng.randint(1, 500))
    for source in ("telegram", "replay"):
        for reason in REJECT_REASONS:
            m.messages_rejected.labels(source=source, reason=reason).inc()
    for stage in STAGES:
        for outcome in STAGE_OUTCOMES:
            m.stage_results.labels(stage=stage, outcome=outcome).inc(rng.randint(1, 1000))
    for kind in CANDIDATE_KINDS:
        m.token_candidates.labels(kind=kind).inc(100)
    for outcome in TOKEN_OUTCOMES:
        m.tokens_processed.labels(outcome=outcome).inc(50)
    for api, endpoints in APIS.items():
        m.api_rate_limit.labels(api=api).set(5)
        m.api_circuit_state.labels(api=api).set(0)
        for result in ("hit", "miss"):
            m.api_cache.labels(api=api, result=result).inc()
        for outcome in API_OUTCOMES:
            m.api_retries.labels(api=api, reason=outcome).inc()
        for endpoint in endpoints:
            for outcome in API_OUTCOMES:
                m.api_requests.labels(api=api, endpoint=endpoint, outcome=outcome).inc(rng.randint(1, 100))
            for _ in range(100):
                m.api_request_seconds.labels(api=api, endpoint=endpoint).observe(rng.expovariate(10))
    for channel in ("telegram", "webhook"):
        for outcome in ALERT_OUTCOMES:
            m.alerts_sent.labels(channel=channel, outcome=outcome).inc(3)
    for op in DB_OPERATIONS:
        m.database_errors.labels(operation=op)
    for _ in range(1000):
        m.token_processing_seconds.observe(rng.expovariate(20))
        m.decision_latency_seconds.observe(rng.expovariate(5))
        m.token_score.observe(rng.uniform(0, 100))
        m.database_probe_seconds.observe(rng.expovariate(500))
    m.database_up.set(1)
    return m


def serve(groups: int, library: bool, ports: "multiprocessing.Queue[int]", stop: "multiprocessing.synchronize.Event") -> None:
    disable_created_metrics()
    metrics = busy_metrics(groups)

    async def main() -> None:
        state = ReadyState("live", lambda: True, lambda: 0, 1000, lambda: ["telegram"])
        app = build_app(metrics.registry, state)
        if library:  # the bot's endpoint before: prometheus_client renders every scrape from scratch
            async def plain(_: web.Request) -> web.Response:
                return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
            app = web.Application()
            app.router.add_get("/metrics", plain)
        server = HttpServer(app, "127.0.0.1", 0)
        ports.put(await server.start())
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await server.stop()

    asyncio.run(main())


def render_ms(groups: int, rounds: int = 300) -> tuple[float, float]:
    """Milliseconds to render the body: (prometheus_client's generate_latest, the bot's Exposition)."""
    metrics = busy_metrics(groups)
    out = []
    for render in (lambda: generate_latest(metrics.registry), Exposition(metrics.registry).render):
        render()
        started = time.perf_counter()
        for _ in range(rounds):
            render()
        out.append((time.perf_counter() - started) / rounds * 1000)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--library", action="store_true", help="serve prometheus_client's generate_latest (the old endpoint)")
    args = parser.parse_args()
    disable_created_metrics()
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    stop = multiprocessing.Event()
    child = multiprocessing.Process(target=serve, args=(args.groups, args.library, ports, stop), daemon=True)
    child.start()
    url = f"http://127.0.0.1:{ports.get(timeout=30)}/metrics"
    timings = []
    with httpx.Client() as http:
        body = http.get(url).text
        for _ in range(args.requests):
            started = time.perf_counter()
            r = http.get(url)
            timings.append(time.perf_counter() - started)
            r.raise_for_status()
    stop.set()
    child.join(5)
    library_ms, ours_ms = render_ms(args.groups)
    series = [line for line in body.splitlines() if line and not line.startswith("#")]
    families = {line.split("{")[0].split(" ")[0] for line in series}
    timings.sort()
    print(f"/metrics with {args.groups} groups and all APIs active ({len(body) / 1024:.0f} KiB)")
    print(f"  series: {len(series)} (target <= 2,000) in {len(families)} sample names")
    print(f"  response time over {args.requests} requests: p50 {statistics.median(timings) * 1000:.2f} ms, "
          f"p95 {timings[int(0.95 * len(timings))] * 1000:.2f} ms (target p50 <= 3 ms), "
          f"served by {'generate_latest' if args.library else 'Exposition'}")
    print(f"  rendering alone: generate_latest {library_ms:.2f} ms, Exposition {ours_ms:.2f} ms")


if __name__ == "__main__":
    main()
