"""Alertmanager: a loaded config, its cluster, its last reload; and its receivers reachable."""

from __future__ import annotations

import asyncio
import os
import re
from typing import Awaitable

import httpx

from hux.stack.health.context import HealthContext, redact
from hux.stack.health.model import FAIL, PASS, WARN, CheckResult


async def check_alertmanager(ctx: HealthContext) -> list[CheckResult]:
    name = "alertmanager config"
    status = await ctx.get(ctx.url("alertmanager") + "/api/v2/status", want_json=True)
    if not status.ok or not isinstance(status.body, dict):
        return [CheckResult(name, WARN, f"not checked: {status.detail}", "fix the alertmanager ready check first")]
    body = status.body
    config = body.get("config")
    config = config if isinstance(config, dict) else {}
    cluster_info = body.get("cluster")
    cluster_info = cluster_info if isinstance(cluster_info, dict) else {}
    original = str(config.get("original") or "").strip()
    cluster = cluster_info.get("status", "unknown")
    if not original:
        return [CheckResult(name, FAIL, "Alertmanager reports no loaded configuration",
                            "see logs/alertmanager.log; `hux check-config`, then `hux reload`")]
    if cluster not in ("ready", "disabled"):
        return [CheckResult(name, WARN, f"config loaded; cluster {cluster}", "wait for the cluster to settle")]
    metrics = await ctx.text(ctx.url("alertmanager") + "/metrics")
    if metric_value(metrics, "alertmanager_config_last_reload_successful") == 0:
        return [CheckResult(name, FAIL, "the last config reload failed; Alertmanager runs the previous config",
                            "see logs/alertmanager.log, fix the settings, then `hux reload`")]
    return [CheckResult(name, PASS, f"config loaded, cluster {cluster}")]


def metric_value(text: str, name: str) -> float | None:
    """The first sample of ``name`` in a text exposition; None when absent or not a number."""
    match = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+(\S+)", text, re.MULTILINE)
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


async def _smtp_banner(host: str, port: int, timeout: float) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
        try:
            writer.write(b"QUIT\r\n")
            await asyncio.wait_for(writer.drain(), 0.2)
        except (OSError, asyncio.TimeoutError):
            pass
        return line.decode(errors="replace").strip()
    finally:
        writer.close()


async def check_receivers(ctx: HealthContext) -> list[CheckResult]:
    """Every enabled receiver reachable: SMTP answers with its banner, webhook hosts answer HTTP."""
    receivers = ctx.settings.receivers
    environ = os.environ
    checks: list[Awaitable[CheckResult]] = []

    async def smtp() -> CheckResult:
        host, _, port = receivers.email.smtp_smarthost.rpartition(":")
        name = "receiver email"
        try:
            banner = await _smtp_banner(host.strip("[]"), int(port), ctx.timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            return CheckResult(name, FAIL, f"cannot connect to SMTP {host}:{port} ({type(exc).__name__})",
                               "check receivers.email.smtp_smarthost and that the mail server is up")
        if not banner.startswith("220"):
            return CheckResult(name, FAIL, f"SMTP {host}:{port} answered {banner[:60]!r}, not a 220 greeting",
                               "is receivers.email.smtp_smarthost really an SMTP server?")
        return CheckResult(name, PASS, f"SMTP {host}:{port} answers ({banner[:40]})")

    async def http(name: str, url: str | None, setting: str) -> CheckResult:
        if not url:
            return CheckResult(name, FAIL, "enabled but no URL", f"set {setting}")
        assert ctx.client is not None
        try:
            response = await ctx.client.head(url, timeout=ctx.timeout)
        except httpx.HTTPError as exc:
            return CheckResult(name, FAIL, f"{redact(url)} unreachable ({type(exc).__name__})",
                               f"check {setting} and the network path to that host")
        return CheckResult(name, PASS, f"{redact(url)} answers (HTTP {response.status_code})")

    if receivers.email.enabled:
        checks.append(smtp())
    if receivers.slack.enabled:
        checks.append(http("receiver slack", receivers.slack.api_url(environ), "receivers.slack.api_url_env"))
    if receivers.webhook.enabled:
        checks.append(http("receiver webhook", receivers.webhook.resolved_url(environ), "receivers.webhook.url"))
    if receivers.heartbeat.enabled:
        checks.append(http("receiver heartbeat", receivers.heartbeat.resolved_url(environ), "receivers.heartbeat.url"))
    return list(await asyncio.gather(*checks))
