"""Grafana, when it should run: ``/api/health`` and its Prometheus datasource's health."""

from __future__ import annotations

from hux.stack.health.context import HealthContext
from hux.stack.health.model import FAIL, PASS, WARN, CheckResult


def grafana_auth(ctx: HealthContext) -> tuple[str, str] | None:
    path = ctx.paths.grafana_password_file(ctx.settings.grafana.admin_password_file)
    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return (ctx.settings.grafana.admin_user, password)


async def check_grafana(ctx: HealthContext) -> list[CheckResult]:
    expected, reason = ctx.grafana_expected()
    if not expected:
        return []
    if reason:  # expected but cannot run
        return [CheckResult("grafana ready", FAIL, reason, "install Grafana or set grafana.enabled = \"auto\"")]
    health = await ctx.get(ctx.url("grafana") + "/api/health", want_json=True)
    if not health.ok:
        extra, fix = ctx.down_fix("grafana")
        return [CheckResult("grafana ready", FAIL, f"{health.url}: {health.detail}{extra}", fix)]
    body = health.body if isinstance(health.body, dict) else {}
    if body.get("database") != "ok":
        return [CheckResult("grafana ready", FAIL, f"Grafana answers but its database is {body.get('database')!r}",
                            f"see {ctx.paths.logs / 'grafana.log'}")]
    results = [CheckResult("grafana ready", PASS, f"version {body.get('version', '?')}, database ok")]
    uid = ctx.settings.grafana.datasource_uid
    auth = grafana_auth(ctx)
    name = f"grafana datasource {uid}"
    if auth is None:
        results.append(CheckResult(name, WARN, "not checked: no Grafana admin password file",
                                   f"create {ctx.paths.grafana_password_file(ctx.settings.grafana.admin_password_file)} (`hux up` does)"))
        return results
    ds = await ctx.get(f"{ctx.url('grafana')}/api/datasources/uid/{uid}/health", auth=auth, want_json=True)
    ds_body = ds.body if isinstance(ds.body, dict) else {}
    message = str(ds_body.get("message", ""))
    if ds.ok and ds_body.get("status") == "OK":
        results.append(CheckResult(name, PASS, message or "OK"))
    elif ds.status == 404:
        results.append(CheckResult(name, FAIL, f"Grafana has no datasource with uid {uid!r}",
                                   "check data/run/grafana/provisioning/datasources and restart Grafana"))
    elif ds.status in (401, 403):
        results.append(CheckResult(name, FAIL, "Grafana refused the admin credentials",
                                   "the password file differs from the one Grafana was first started with: "
                                   "reset it with `grafana cli admin reset-admin-password`"))
    else:
        results.append(CheckResult(name, FAIL, message or ds.detail,
                                   "Grafana cannot query Prometheus: check the prometheus checks above"))
    return results
