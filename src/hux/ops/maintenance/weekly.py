"""The weekly maintenance tasks: review dashboard trends, check alert configurations, verify backup metrics."""

from __future__ import annotations

from typing import Any

from hux.monitoring.checks import run_config_checks
from hux.monitoring.durations import duration_seconds
from hux.monitoring.status import FAIL, WARN, worst
from hux.ops import archive as arc
from hux.ops.maintenance.context import MaintenanceContext, guarded
from hux.ops.maintenance.report import OK, LineChart, Report, Series, Table, ago, fmt_value

DAY = 86400.0
WEEK = 7 * DAY
CHANGE_FLAG = 0.25  # week-over-week changes beyond ±25 % are flagged

#: label, expression over the past 7 days (evaluated now and a week ago), unit, which direction is bad
KEY_METRICS = (
    ("messages received", "sum(increase(hux_messages_received_total[7d]))", "", None),
    ("tokens processed", "sum(increase(hux_tokens_processed_total[7d]))", "", None),
    ("token alerts delivered", 'sum(increase(hux_alerts_sent_total{outcome="success"}[7d]))', "", None),
    ("pipeline failure ratio",
     'sum(increase(hux_pipeline_stage_total{outcome="failure"}[7d])) / sum(increase(hux_pipeline_stage_total[7d]))',
     "ratio", "up"),
    ("API error ratio",
     'sum(increase(hux_api_requests_total{outcome=~"client_error|server_error|timeout|connection_error|invalid_response"}[7d]))'
     " / sum(increase(hux_api_requests_total[7d]))", "ratio", "up"),
    ("API requests rate limited", 'sum(increase(hux_api_requests_total{outcome="rate_limited"}[7d]))', "", "up"),
    ("p95 message→decision latency",
     "histogram_quantile(0.95, sum by (le) (increase(hux_message_decision_latency_seconds_bucket[7d])))", "seconds", "up"),
    ("p95 token processing time",
     "histogram_quantile(0.95, sum by (le) (increase(hux_token_processing_seconds_bucket[7d])))", "seconds", "up"),
    ("target availability", "avg(avg_over_time(up[7d]))", "ratio", "down"),
    ("CPU busy (avg)", 'avg_over_time((1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m])))[7d:15m])', "ratio", "up"),
    ("memory used (avg)",
     "avg_over_time((1 - avg(node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes))[7d:15m])", "ratio", "up"),
    ("Prometheus head series (avg)", "avg_over_time(sum(prometheus_tsdb_head_series)[7d:1h])", "", "up"),
    ("alerts that fired", 'count(count by (alertname) (count_over_time(ALERTS{alertstate="firing",alertname!="Watchdog"}[7d])))',
     "", "up"),
)

TREND_CHARTS = (
    ("Messages received per second", "sum(rate(hux_messages_received_total[1h]))", "per_second"),
    ("Pipeline failure ratio",
     'sum(rate(hux_pipeline_stage_total{outcome="failure"}[1h])) / sum(rate(hux_pipeline_stage_total[1h]))', "ratio"),
    ("p95 message→decision latency",
     "histogram_quantile(0.95, sum by (le) (rate(hux_message_decision_latency_seconds_bucket[1h])))", "seconds"),
    ("CPU busy", '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1h]))', "ratio"),
    ("Memory used", "1 - avg(node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)", "ratio"),
)


def trends(ctx: MaintenanceContext, report: Report) -> None:
    section = report.section("Dashboard trends: this week against last week")
    with guarded(section, "Prometheus"):
        rows, statuses = [], []
        for label, expr, unit, bad in KEY_METRICS:
            this_week = ctx.value(expr)
            last_week = ctx.value(expr, ctx.now - WEEK)
            change, status = "—", OK
            if this_week is not None and last_week is not None and last_week != 0:
                delta = (this_week - last_week) / abs(last_week)
                change = f"{delta * 100:+.0f}%"
                if abs(delta) >= CHANGE_FLAG and bad and (delta > 0) == (bad == "up"):
                    status = WARN
            elif this_week is not None and last_week is None:
                change = "new"
            rows.append([label, fmt_value(this_week, unit), fmt_value(last_week, unit), change])
            statuses.append(status)
        section.add(Table("Key metrics (last 7 days; previous 7 days)", ["metric", "last 7 d", "previous 7 d", "change"],
                          rows, statuses))
        section.status = worst([section.status, *statuses])
        if all(r[1] == "—" for r in rows):
            section.note("no data for the last week: is Prometheus scraping the bot and node_exporter?", WARN)
        for title, expr, unit in TREND_CHARTS:
            series = ctx.range(expr, ctx.now - 2 * WEEK, ctx.now, 3600)
            points = series[0][1] if series else []
            this = [((t - (ctx.now - WEEK)) / DAY, v) for t, v in points if t > ctx.now - WEEK]
            last = [((t - (ctx.now - 2 * WEEK)) / DAY, v) for t, v in points if t <= ctx.now - WEEK]
            section.add(LineChart(title, [Series("this week", this), Series("last week", last)], unit=unit,
                                  x_is_time=False, x_label="days into the week", x_range=(0.0, 7.0)))


def alert_configuration(ctx: MaintenanceContext, report: Report) -> None:
    section = report.section("Alert configuration check")
    results = run_checks(ctx)
    if results is None:
        section.note("promtool/amtool checks skipped: the monitoring settings are not loaded "
                     "(run `hux check-config`)", WARN)
        section.status = WARN
    else:
        rows = [[name, "pass" if ok else "FAIL", "" if ok else " ".join(detail.split())[:400]]
                for name, ok, detail in results]
        statuses = [OK if ok else FAIL for _, ok, _ in results]
        section.add(Table("promtool / amtool checks, rule unit tests, routing cases", ["check", "result", "detail"],
                          rows, statuses))
        section.status = worst([section.status, *statuses])
    with guarded(section, "Prometheus rules"):
        rows, statuses = [], []
        for group in ctx.prom.rules():
            for rule in group.get("rules", []):
                if rule.get("health") != "ok" or rule.get("lastError"):
                    rows.append([group["name"], rule.get("name"), rule.get("health"), rule.get("lastError", "")])
                    statuses.append(FAIL)
        section.add(Table("Rules Prometheus cannot evaluate", ["group", "rule", "health", "error"], rows, statuses,
                          empty="every rule evaluates"))
        section.status = worst([section.status, *statuses])
        for name, expr in (("Prometheus config reload", "min(prometheus_config_last_reload_successful)"),
                           ("Alertmanager config reload", "min(alertmanager_config_last_reload_successful)")):
            value = ctx.value(expr)
            if value is None:
                section.note(f"{name}: no data", "info")
            elif value < 1:
                section.note(f"{name}: the last reload FAILED; the running config is older than the file", FAIL)
            else:
                section.note(f"{name}: last reload succeeded")


def run_checks(ctx: MaintenanceContext) -> list[tuple[str, bool, str]] | None:
    """The monitoring area's config checks (promtool/amtool, rule tests, routing cases)."""
    if ctx.settings is None:
        return None
    run_dir = ctx.run_dir if ctx.run_dir and (ctx.run_dir / "prometheus.yml").is_file() else None
    results = run_config_checks(ctx.settings, run_dir)
    return [(r.name, bool(r.ok), getattr(r, "detail", "")) for r in results]


def backup_metrics(ctx: MaintenanceContext, report: Report) -> None:
    section = report.section("Backup metrics")
    max_age = _max_age(ctx)
    with guarded(section, "Prometheus"):
        rows: list[list[Any]] = []
        statuses = []
        success = {m.get("kind"): v for m, v in ctx.series("hux_backup_last_success_timestamp_seconds")}
        last_ok = {m.get("kind"): v for m, v in ctx.series("hux_backup_last_success")}
        size = {m.get("kind"): v for m, v in ctx.series("hux_backup_last_size_bytes")}
        duration = {m.get("kind"): v for m, v in ctx.series("hux_backup_last_duration_seconds")}
        kinds: set[Any] = set(success) | set(last_ok) | {"prometheus"}  # label values (None: no kind label)
        for kind in sorted(kinds):
            age = ctx.now - success[kind] if kind in success else None
            status = OK
            if age is None or age > max_age:
                status = FAIL if kind == "prometheus" else WARN
            if last_ok.get(kind) == 0:
                status = worst([status, WARN])
            rows.append([kind, ago(age) if age is not None else "never", "yes" if last_ok.get(kind) == 1 else
                         ("no" if kind in last_ok else "—"), fmt_value(duration.get(kind), "seconds"),
                         fmt_value(size.get(kind), "bytes")])
            statuses.append(status)
        shown_age = getattr(getattr(ctx.settings, "backup", None), "max_age", None) or ago(max_age)
        section.add(Table(f"As Prometheus scrapes them (backup.max_age: {shown_age})",
                          ["kind", "last success", "last run ok", "duration", "size"], rows, statuses))
        section.status = worst([section.status, *statuses])
        if not success:
            section.note("Prometheus has no hux_backup_* series: run a backup, and check that node_exporter reads "
                         f"the textfile directory {ctx.textfile_dir}", FAIL)
        growth = ctx.value("max(hux_backup_last_size_bytes) / max(max_over_time(hux_backup_last_size_bytes[7d] offset 7d))")
        if growth is not None:
            section.note(f"largest archive against last week's largest: {growth * 100:.0f}%")
    archives = arc.list_archives(ctx.backup_dir)
    rows = []
    for kind in sorted({a.kind for a in archives}):
        mine = [a for a in archives if a.kind == kind]
        newest = mine[-1]
        rows.append([kind, len(mine), newest.path.name, ago(ctx.now - newest.created_at.timestamp()),
                     fmt_value(sum(a.size for a in mine), "bytes"), newest.problem or "readable"])
    section.add(Table(f"Archives in {ctx.backup_dir}", ["kind", "count", "newest", "age", "total size", "newest manifest"],
                      rows, [WARN if r[-1] != "readable" else OK for r in rows], empty="no archives"))
    if not archives:
        section.status = worst([section.status, WARN])


def _max_age(ctx: MaintenanceContext) -> float:
    text = getattr(getattr(ctx.settings, "backup", None), "max_age", "26h")
    try:
        return duration_seconds(text)
    except ValueError:
        return 26 * 3600.0


def weekly(ctx: MaintenanceContext) -> Report:
    report = Report("Weekly maintenance report",
                    sources={"Prometheus": ctx.prometheus_url, "backups": str(ctx.backup_dir)})
    trends(ctx, report)
    alert_configuration(ctx, report)
    backup_metrics(ctx, report)
    return report

