"""Running the checks: all at once, each within its budget, one broken check never hiding the others."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Iterable

import httpx

from hux.monitoring.settings import Settings
from hux.ops.clients import Prometheus
from hux.paths import Layout
from hux.stack.health.alertmanager_checks import check_alertmanager, check_receivers
from hux.stack.health.backup_checks import check_backup
from hux.stack.health.bot_checks import check_bot, check_metric_families
from hux.stack.health.component_checks import check_components
from hux.stack.health.context import HTTP_TIMEOUT, HealthContext
from hux.stack.health.dashboard_checks import check_dashboards
from hux.stack.health.grafana_checks import check_grafana
from hux.stack.health.ha_checks import check_ha
from hux.stack.health.host_checks import check_disk
from hux.stack.health.inbox_checks import check_inbox
from hux.stack.health.model import FAIL, CheckResult, HealthReport
from hux.stack.health.prometheus_checks import (
    check_prometheus_alertmanager,
    check_prometheus_config,
    check_rules,
    check_targets,
)
from hux.stack.health.runtime import runtime_for

CHECK_BUDGET = 1.7          # per check: the whole run must stay under 2 s

Check = Callable[[HealthContext], Awaitable[list[CheckResult]]]

CHECKS: tuple[tuple[str, Check], ...] = (
    ("components", check_components),
    ("grafana", check_grafana),
    ("bot", check_bot),
    ("prometheus config", check_prometheus_config),
    ("targets", check_targets),
    ("rules", check_rules),
    ("prometheus → alertmanager", check_prometheus_alertmanager),
    ("alertmanager", check_alertmanager),
    ("ha", check_ha),
    ("metric families", check_metric_families),
    ("dashboards", check_dashboards),
    ("receivers", check_receivers),
    ("inbox", check_inbox),
    ("disk", check_disk),
    ("backup", check_backup),
)


async def _guarded(label: str, check: Check, ctx: HealthContext, budget: float) -> list[CheckResult]:
    started = time.perf_counter()
    try:
        results = await asyncio.wait_for(check(ctx), budget)
    except asyncio.TimeoutError:
        results = [CheckResult(label, FAIL, f"no result within {budget:g} s", "a component answers too slowly: `hux status`")]
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        results = [CheckResult(label, FAIL, f"check crashed: {type(exc).__name__}: {exc}", "report this as a bug")]
    elapsed = time.perf_counter() - started
    for result in results:
        result.duration = elapsed
    return results


def client_auth(settings: Settings, paths: Layout, mode: str = "native") -> httpx.Auth | None:
    """The stack's basic auth, sent only to Prometheus, Alertmanager and node_exporter (never to the bot,
    Grafana or a receiver's URL); docker runs them without auth."""
    return runtime_for(mode).client_auth(settings, paths)


async def run_health(settings: Settings, paths: Layout, *, mode: str = "native",
                     checks: Iterable[tuple[str, Check]] = CHECKS, budget: float = CHECK_BUDGET) -> HealthReport:
    started = time.perf_counter()
    runtime = runtime_for(mode)
    auth = runtime.client_auth(settings, paths)
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    # verify=False like the probes' client: the stack's own components, and no CA bundle to load per run
    prometheus = Prometheus(runtime.url(settings, "prometheus"), timeout=HTTP_TIMEOUT, auth=auth, verify=False)
    try:
        async with httpx.AsyncClient(verify=False, limits=limits, follow_redirects=False, auth=auth) as client:
            ctx = HealthContext(settings=settings, paths=paths, runtime=runtime, client=client, prometheus=prometheus)
            try:
                groups = await asyncio.gather(*(_guarded(label, fn, ctx, budget) for label, fn in checks))
            finally:
                ctx.close()
    finally:
        prometheus.close()
    flat = [result for group in groups for result in group]
    return HealthReport(flat, time.perf_counter() - started, runtime.name)


def health(settings: Settings, paths: Layout, *, mode: str = "native") -> HealthReport:
    return asyncio.run(run_health(settings, paths, mode=mode))
