"""The alert inbox and who is paged: the inbox ready, the last Watchdog heartbeat it got, and whether any
receiver that reaches a person gets critical and warning alerts (a warning with the fix when none does)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import yaml

from hux.monitoring.alertmanager import Paging, native_paging, who_is_paged
from hux.monitoring.durations import duration_seconds
from hux.monitoring.inbox.store import InboxStore, StoreError
from hux.monitoring.yamlout import load as yaml_load
from hux.stack.components import READY_PATHS
from hux.stack.health.context import HealthContext
from hux.stack.health.model import FAIL, PASS, WARN, CheckResult
from hux.units import ago

#: a heartbeat this much later than ``alertmanager.heartbeat_interval`` is overdue (Alertmanager's own
#: group interval plus Prometheus's evaluation and resend delays)
HEARTBEAT_GRACE = 60.0


async def running_paging(ctx: HealthContext) -> tuple[Paging, str]:
    """Who is paged under the configuration Alertmanager runs (else the settings'), and which one it was."""
    status = await ctx.get(ctx.url("alertmanager") + "/api/v2/status", want_json=True)
    body: Any = status.body if status.ok else None
    original = ((body or {}).get("config") or {}).get("original") if isinstance(body, dict) else None
    if isinstance(original, str) and original.strip():
        try:
            config = yaml_load(original)
        except yaml.YAMLError:
            config = None
        if isinstance(config, dict):
            return who_is_paged(config), "the running Alertmanager configuration"
    return native_paging(ctx.settings), "the settings (Alertmanager did not answer)"


async def check_paging(ctx: HealthContext) -> list[CheckResult]:
    paging, source = await running_paging(ctx)
    if paging.nobody:
        sentence = paging.sentence()
        problem, _, fix = sentence.partition(". ")
        return [CheckResult("paging", WARN, f"{problem} (from {source})", fix.rstrip("."))]
    return [CheckResult("paging", PASS, paging.sentence())]


def _heartbeat(ctx: HealthContext) -> CheckResult:
    name = "alert heartbeat"
    store = InboxStore.for_layout(ctx.paths, readonly=True)
    try:
        last = store.last_heartbeat()
    except StoreError as exc:
        return CheckResult(name, WARN, str(exc), "see logs/inbox.log")
    finally:
        store.close()
    interval = duration_seconds(ctx.settings.alertmanager.heartbeat_interval)
    if last is None:
        return CheckResult(name, WARN, "no Watchdog heartbeat has reached the inbox yet",
                           f"it arrives within about {ago(interval + HEARTBEAT_GRACE)} of start; if not, check that "
                           "Prometheus sends to Alertmanager (`hux health`, prometheus → alertmanager) and "
                           "logs/alertmanager.log")
    age = time.time() - last
    if age > 2 * interval + HEARTBEAT_GRACE:
        return CheckResult(name, WARN, f"the last Watchdog heartbeat reached the inbox {ago(age)} ago "
                                       f"(expected every {ago(interval)})",
                           "Prometheus, Alertmanager or the path to the inbox is broken: `hux status`, "
                           "logs/alertmanager.log, `hux alerts`")
    return CheckResult(name, PASS, f"last Watchdog heartbeat {ago(age)} ago (every {ago(interval)})")


async def check_inbox(ctx: HealthContext) -> list[CheckResult]:
    """Natively, with ``inbox.enabled``: the inbox ready and the heartbeat recent; plus who is paged."""
    results: list[CheckResult] = []
    if ctx.mode == "native" and ctx.settings.inbox.enabled:
        probe = await ctx.get(ctx.url("inbox") + READY_PATHS["inbox"])
        if probe.ok:
            results.append(CheckResult("inbox ready", PASS, f"{ctx.url('inbox')} ready ({probe.elapsed * 1000:.0f} ms)"))
        else:
            extra, fix = ctx.down_fix("inbox")
            results.append(CheckResult("inbox ready", FAIL, f"{probe.url}: {probe.detail}{extra}", fix))
        results.append(await asyncio.to_thread(_heartbeat, ctx))
    return results + await check_paging(ctx)
