"""Is each component up: Prometheus, Alertmanager and node_exporter ready (and Grafana's absence explained)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hux.stack.components import READY_PATHS
from hux.stack.health.context import AUTH_FIX, HealthContext
from hux.stack.health.model import FAIL, PASS, WARN, CheckResult

COMPONENTS = ("prometheus", "alertmanager", "node_exporter")


async def check_components(ctx: HealthContext) -> list[CheckResult]:
    expected, skip_reason = ctx.grafana_expected()
    results = await ready_results(ctx, COMPONENTS)
    if not expected:
        summary, _, fix = skip_reason.partition(". ")
        results.append(CheckResult("grafana", WARN, f"not running: {summary}", fix))
    return results


async def ready_results(ctx: HealthContext, names: Sequence[str]) -> list[CheckResult]:
    """A "<name> ready" result per component: its ready URL in this mode answers, else why not and the fix."""
    probes = await asyncio.gather(*(ctx.get(ctx.url(n) + READY_PATHS[n]) for n in names))
    results = []
    for name, result in zip(names, probes, strict=True):
        if result.ok:
            results.append(CheckResult(f"{name} ready", PASS, f"{ctx.url(name)} ready ({result.elapsed * 1000:.0f} ms)"))
        elif result.status == 401:
            results.append(CheckResult(f"{name} ready", FAIL, f"{result.url}: refused our credentials (HTTP 401)",
                                       AUTH_FIX))
        else:
            extra, fix = ctx.down_fix(name)
            results.append(CheckResult(f"{name} ready", FAIL, f"{result.url}: {result.detail}{extra}", fix))
    return results
