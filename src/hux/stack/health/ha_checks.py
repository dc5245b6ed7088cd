"""The HA topology (``stack.topology = "ha"``): the other replica, members and VictoriaMetrics ready; the
Alertmanager cluster's membership; each replica's remote-write lag; VictoriaMetrics' deduplication.

Nothing to check (no result) in the single topology. Both modes: each URL is the runtime's (``ctx.url``), the
listen address natively and the published port under docker.
"""

from __future__ import annotations

import asyncio
import re

from hux.monitoring.durations import duration_or, duration_seconds
from hux.monitoring.prometheus_config import dedup_interval
from hux.stack.health.alertmanager_checks import metric_value
from hux.stack.health.component_checks import ready_results
from hux.stack.health.context import HealthContext
from hux.stack.health.model import PASS, WARN, CheckResult

_DEDUP_FLAG = re.compile(r'^flag\{name="dedup\.minScrapeInterval", value="([^"]*)"', re.MULTILINE)
_DEDUPLICATED = re.compile(r'^vm_deduplicated_samples_total\{type="merge"\}\s+(\S+)', re.MULTILINE)


async def check_ha(ctx: HealthContext) -> list[CheckResult]:
    stack = ctx.settings.stack
    if not stack.ha:
        return []
    extra = [name for name in (*stack.prometheus_replicas(), *stack.alertmanager_members(), "victoria_metrics")
             if name not in ("prometheus", "alertmanager")]
    ready, cluster, lag, dedup = await asyncio.gather(
        ready_results(ctx, extra), _cluster(ctx), _remote_write_lag(ctx), _dedup(ctx))
    return [*ready, *cluster, *lag, *dedup]


async def _cluster(ctx: HealthContext) -> list[CheckResult]:
    members = ctx.settings.stack.alertmanager_members()
    answers = await asyncio.gather(*(ctx.get(ctx.url(m) + "/api/v2/status", want_json=True) for m in members))
    seen: list[str] = []
    short: list[str] = []
    for member, answer in zip(members, answers, strict=True):
        body = answer.body if answer.ok and isinstance(answer.body, dict) else None
        cluster = body.get("cluster") if body else None
        if not isinstance(cluster, dict):
            short.append(f"{member}: no answer ({answer.detail})")
            continue
        peers = cluster.get("peers")
        count = len(peers) if isinstance(peers, list) else 0
        seen.append(f"{member} {count}")
        if cluster.get("status") != "ready" or count < len(members):
            short.append(f"{member} sees {count} of {len(members)} ({cluster.get('status', 'unknown')})")
    if short:
        return [CheckResult("alertmanager cluster", WARN, "; ".join(short),
                            "a member down or settling: `hux status`; wait a minute after a start, else see the "
                            "runbook of AlertmanagerClusterMembersMissing")]
    return [CheckResult("alertmanager cluster", PASS, f"{len(members)} members, each sees all ({', '.join(seen)})")]


async def _remote_write_lag(ctx: HealthContext) -> list[CheckResult]:
    replicas = list(ctx.settings.stack.prometheus_replicas())
    pages = await asyncio.gather(*(ctx.text(ctx.url(name) + "/metrics") for name in replicas))
    limit = ctx.settings.alerts.remote_write_lag_seconds
    results = []
    for name, text in zip(replicas, pages, strict=True):
        check = f"remote write {name}"
        newest = metric_value(text, "prometheus_remote_storage_highest_timestamp_in_seconds")
        sent = metric_value(text, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds")
        if newest is None or sent is None:
            results.append(CheckResult(check, WARN, "no remote-write metrics on its /metrics",
                                       f"is {name} running with the rendered config? `hux status`, `hux up`"))
        elif sent <= 0:
            results.append(CheckResult(check, WARN, "nothing sent to VictoriaMetrics yet",
                                       "right after a start: check again in a minute; else see the runbook of "
                                       "PrometheusRemoteWriteFailing"))
        else:
            lag = max(0.0, newest - sent)
            status = PASS if lag <= limit else WARN
            results.append(CheckResult(check, status, f"{lag:.0f} s behind (warning above {limit:g} s)",
                                       "" if status == PASS else "see the runbook of PrometheusRemoteWriteBehind"))
    return results


async def _dedup(ctx: HealthContext) -> list[CheckResult]:
    text = await ctx.text(ctx.url("victoria_metrics") + "/metrics")
    want = dedup_interval(ctx.settings)
    flag = _DEDUP_FLAG.search(text)
    if flag is None:
        return [CheckResult("victoria_metrics dedup", WARN, "its /metrics does not show -dedup.minScrapeInterval",
                            "is victoria_metrics running? `hux status`")]
    # VictoriaMetrics prints Go durations ("1m0s"): compared as seconds
    if duration_or(flag.group(1), None) != duration_seconds(want):
        return [CheckResult("victoria_metrics dedup", WARN,
                            f"-dedup.minScrapeInterval is {flag.group(1)}, the scrape interval is {want}",
                            "`hux up` restarts it with the rendered flags")]
    dropped = _DEDUPLICATED.search(text)
    count = dropped.group(1) if dropped else "0"
    return [CheckResult("victoria_metrics dedup", PASS,
                        f"-dedup.minScrapeInterval={flag.group(1)}; {count} duplicate samples of the pair dropped")]
