"""Prometheus itself: config reload, targets, rule groups, and whether it reaches the Alertmanager."""

from __future__ import annotations

import time

from hux.stack.health.context import (
    HealthContext,
    NotAnswering,
    discovering,
    not_checked,
    parse_time,
    still_discovering,
)
from hux.stack.health.model import FAIL, PASS, WARN, CheckResult
from hux.units import ago


async def check_prometheus_config(ctx: HealthContext) -> list[CheckResult]:
    name = "prometheus config"
    try:
        info = await ctx.runtimeinfo()
    except NotAnswering as exc:
        return [not_checked(name, exc)]
    if info.get("reloadConfigSuccess") is False:
        return [CheckResult(name, FAIL, "the last config reload failed; Prometheus runs the previous config",
                            f"see {ctx.paths.logs / 'prometheus.log'}, fix the settings, then `hux reload`")]
    loaded = parse_time(info.get("lastConfigTime", ""))
    return [CheckResult(name, PASS, "loaded" + (f" {ago(time.time() - loaded)} ago" if loaded else ""))]


async def check_targets(ctx: HealthContext) -> list[CheckResult]:
    try:
        targets = await ctx.active_targets()
    except NotAnswering as exc:
        return [not_checked("prometheus targets", exc)]
    if not targets and (age := await still_discovering(ctx)) is not None:
        return [discovering("prometheus targets", age, "targets")]
    if not targets:
        return [CheckResult("prometheus targets", FAIL, "Prometheus has no active targets",
                            "check the scrape configs in data/run/prometheus.yml (`hux render --check`)")]
    results = []
    for target in sorted(targets, key=lambda t: (t["labels"].get("job", ""), t["labels"].get("instance", ""))):
        labels = target.get("labels", {})
        name = f"target {labels.get('job', '?')} {labels.get('instance', target.get('scrapeUrl', '?'))}"
        health = target.get("health")
        if health == "up":
            last = parse_time(target.get("lastScrape", ""))
            results.append(CheckResult(name, PASS, "up" + (f", scraped {ago(time.time() - last)} ago" if last else "")))
        elif health == "unknown":
            results.append(CheckResult(name, WARN, "not scraped yet", "wait one scrape interval and check again"))
        else:
            error = target.get("lastError") or "down"
            results.append(CheckResult(name, FAIL, f"down: {error}",
                                       f"is {target.get('scrapeUrl')} running? `hux status`; check its log"))
    return results


async def check_rules(ctx: HealthContext) -> list[CheckResult]:
    name = "rule groups"
    try:
        groups = await ctx.prom("/api/v1/rules", lambda p: p.rules())
    except NotAnswering as exc:
        return [not_checked(name, exc)]
    if not groups:
        return [CheckResult(name, FAIL, "no rule groups loaded",
                            "check rule_files in data/run/prometheus.yml and data/run/rules/ (`hux render --check`)")]
    now = time.time()
    broken, late, pending, rules, oldest = [], [], [], 0, 0.0
    for group in groups:
        interval = float(group.get("interval") or 15)
        for rule in group.get("rules") or []:
            rules += 1
            if rule.get("health") == "err":
                broken.append(f"{group['name']}/{rule.get('name')}: {rule.get('lastError', 'error')}")
        last = parse_time(group.get("lastEvaluation", ""))
        if last is None:
            pending.append(group["name"])
            continue
        age = now - last
        oldest = max(oldest, age)
        if age > 2 * interval + 5:
            late.append(f"{group['name']} (last {ago(age)} ago, every {interval:g} s)")
    if broken:
        return [CheckResult(name, FAIL, f"{len(broken)} rule(s) failing: " + "; ".join(broken[:3]),
                            "fix the expression in the rules (`hux check-config`), then `hux reload`")]
    if late:
        return [CheckResult(name, FAIL, "not evaluating on time: " + ", ".join(late[:3]),
                            "Prometheus is overloaded or stuck: see logs/prometheus.log")]
    if pending:
        return [CheckResult(name, WARN, f"{len(pending)} of {len(groups)} groups not evaluated yet",
                            "normal right after a start or reload; check again after one evaluation interval")]
    return [CheckResult(name, PASS, f"{len(groups)} groups, {rules} rules healthy, last evaluated ≤ {ago(oldest)} ago")]


async def check_prometheus_alertmanager(ctx: HealthContext) -> list[CheckResult]:
    name = "prometheus → alertmanager"
    try:
        data = await ctx.prom("/api/v1/alertmanagers", lambda p: p.alertmanagers())
    except NotAnswering as exc:
        return [not_checked(name, exc)]
    active = [am.get("url", "") for am in data.get("activeAlertmanagers") or []]
    if not active and (age := await still_discovering(ctx)) is not None:
        return [discovering(name, age, "Alertmanager")]
    if not active:
        return [CheckResult(name, FAIL, "Prometheus has no Alertmanager to send alerts to",
                            "check the alerting section of data/run/prometheus.yml")]
    port = f":{ctx.settings.stack.ports.alertmanager}/"
    ours = [url for url in active if port in url]
    if not ours:
        return [CheckResult(name, WARN, f"sends to {', '.join(active)}, not to port {ctx.settings.stack.ports.alertmanager}",
                            "re-render (`hux render`) and `hux reload`")]
    return [CheckResult(name, PASS, f"sends to {', '.join(ours)}")]
