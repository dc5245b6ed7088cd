"""The bot: its ``/ready`` (database, queue) and its metric families as Prometheus holds them."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from hux.bot.metric_names import EXPECTED_FAMILIES
from hux.stack.components import READY_PATHS
from hux.stack.health.context import HealthContext, NotAnswering, discovering, not_checked, still_discovering
from hux.stack.health.model import FAIL, PASS, WARN, CheckResult

_SUFFIXES = "(_total|_bucket|_count|_sum|_created|_info)?"


async def check_bot(ctx: HealthContext) -> list[CheckResult]:
    if not ctx.runtime.probes_bot:
        return []   # not published on the host: its scrape target and metric families speak for it
    ready = await ctx.get(ctx.url("bot") + READY_PATHS["bot"], want_json=True)
    if ready.status is None:
        extra, fix = ctx.down_fix("bot")
        return [CheckResult("bot ready", FAIL, f"{ready.url}: {ready.detail}{extra}", fix)]
    body = ready.body if isinstance(ready.body, dict) else {}
    details = describe_bot_ready(body)
    if ready.ok and body.get("ready", True):
        return [CheckResult("bot ready", PASS, details)]
    fixes = []
    if not _dict(body.get("database")).get("reachable", True):
        fixes.append("the database is unreachable: check bot.database_url and the database server (the bot holds "
                     "results and retries)")
    if _dict(body.get("queue")).get("saturated"):
        fixes.append("the intake queue is full: workers cannot keep up (raise bot.workers; see the latency panels)")
    fixes.append(f"see {ctx.paths.logs / 'mr_hux_alpha_bot.log'}")
    return [CheckResult("bot ready", FAIL, f"HTTP {ready.status}: {details or ready.detail}", "; ".join(fixes))]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def describe_bot_ready(body: dict[str, Any]) -> str:
    """One line from the bot's /ready JSON: mode, database, queue."""
    parts = [f"{body.get('mode', 'unknown')} mode"]
    database = _dict(body.get("database"))
    parts.append("database reachable" if database.get("reachable") else "database UNREACHABLE")
    queue = _dict(body.get("queue"))
    if queue:
        parts.append(f"queue {queue.get('length')}/{queue.get('capacity')}" + (" SATURATED" if queue.get("saturated") else ""))
    sources = body.get("sources")
    if isinstance(sources, list) and sources:
        parts.append("sources " + ", ".join(str(s) for s in sources))
    return ", ".join(parts)


async def check_metric_families(ctx: HealthContext) -> list[CheckResult]:
    """The metric families the dashboards and alerts read, present in Prometheus for the bot's job."""
    name = "bot metric families"
    try:
        active = await ctx.active_targets()
    except NotAnswering as exc:
        return [not_checked(name, exc)]
    bot_addresses = set(ctx.settings.bot_targets())
    jobs = sorted({t["labels"].get("job", "") for t in active if urlsplit(t.get("scrapeUrl", "")).netloc in bot_addresses})
    if not jobs:   # docker: the bot is discovered by service name, not by the host addresses
        jobs = sorted({t["labels"].get("job", "") for t in active if t["labels"].get("job") == ctx.settings.stack.bot_job})
    if not jobs and (age := await still_discovering(ctx)) is not None:
        return [discovering(name, age, "targets")]
    if not jobs:
        return [CheckResult(name, FAIL, f"Prometheus does not scrape the bot ({', '.join(sorted(bot_addresses))})",
                            "check stack.bot_targets and the bot job in data/run/prometheus.yml")]
    bot_targets = [t for t in active if t["labels"].get("job") in jobs]
    if bot_targets and all(t.get("health") == "unknown" for t in bot_targets):
        return [CheckResult(name, WARN, "not checked yet: Prometheus has not scraped the bot yet",
                            "check again after one scrape interval")]
    regex = "(" + "|".join(re.escape(f.removesuffix("_total")) for f in EXPECTED_FAMILIES) + ")" + _SUFFIXES
    job_re = "|".join(re.escape(j) for j in jobs)
    try:
        series = await ctx.query(f'group by (__name__) ({{__name__=~"{regex}", job=~"{job_re}"}})')
    except NotAnswering as exc:
        return [not_checked(name, exc)]
    present = {s["metric"].get("__name__", "") for s in series}
    missing = [f for f in EXPECTED_FAMILIES
               if not any(re.fullmatch(re.escape(f.removesuffix("_total")) + _SUFFIXES, p) for p in present)]
    if missing:
        return [CheckResult(name, FAIL, f"{len(missing)} of {len(EXPECTED_FAMILIES)} missing in Prometheus: "
                            + ", ".join(missing[:6]) + ("…" if len(missing) > 6 else ""),
                            "is the bot up and scraped (target checks)? if so, see logs/mr_hux_alpha_bot.log")]
    return [CheckResult(name, PASS, f"all {len(EXPECTED_FAMILIES)} present (job {', '.join(jobs)})")]
