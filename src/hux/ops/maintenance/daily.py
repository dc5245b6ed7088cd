"""The daily maintenance tasks: check alert status, review error logs, monitor resource usage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hux.monitoring.status import FAIL, WARN, worst
from hux.ops.maintenance.context import MaintenanceContext, guarded, label_text
from hux.ops.maintenance.logs import review_logs
from hux.ops.maintenance.report import OK, LineChart, Report, Series, Table, ago, fmt_value

DAY = 86400.0
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2, "none": 3}


def _parse(ts: str) -> float | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def alert_status(ctx: MaintenanceContext, report: Report) -> None:
    section = report.section("Alert status")
    with guarded(section, "Alertmanager"):
        alerts = ctx.am.alerts()
        rows, statuses = [], []
        watchdog = False
        for alert in sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a["labels"].get("severity", ""), 9),
                                                  a.get("startsAt", ""))):
            labels = alert["labels"]
            if labels.get("alertname") == "Watchdog":
                watchdog = True
                continue
            state = alert.get("status", {}).get("state", "")
            if alert.get("status", {}).get("silencedBy"):
                state = "silenced"
            elif alert.get("status", {}).get("inhibitedBy"):
                state = "inhibited"
            started = _parse(alert.get("startsAt", ""))
            rows.append([labels.get("alertname"), labels.get("severity", ""), state,
                         ago(ctx.now - started) if started else "—", label_text(labels, ("job", "instance")),
                         alert.get("annotations", {}).get("summary", "")])
            severity = labels.get("severity", "")
            statuses.append(OK if state in ("silenced", "inhibited") else FAIL if severity == "critical" else WARN)
        section.add(Table("Firing alerts in Alertmanager", ["alert", "severity", "state", "for", "target", "summary"],
                          rows, statuses, empty="none firing"))
        section.status = worst([section.status, *statuses])
        if watchdog:
            section.note("Watchdog is firing: the alert pipeline Prometheus → Alertmanager works.")
        else:
            section.note("Watchdog is not firing in Alertmanager: alerts may not be reaching it "
                         "(check `hux health` and the PrometheusAlertmanagerUnreachable runbook).", WARN)
        silences = ctx.am.silences(("active", "pending"))
        section.add(Table(
            "Silences (active and pending)", ["id", "state", "matchers", "by", "comment", "ends in"],
            [[s["id"][:8], s["status"]["state"],
              ", ".join(f"{m['name']}{'=~' if m.get('isRegex') else '='}{m['value']}" if m.get("isEqual", True)
                        else f"{m['name']}{'!~' if m.get('isRegex') else '!='}{m['value']}" for m in s["matchers"]),
              s.get("createdBy", ""), s.get("comment", ""), ago((_parse(s["endsAt"]) or ctx.now) - ctx.now)]
             for s in silences],
            empty="no silences",
        ))
    with guarded(section, "Prometheus"):
        pending = [a for a in ctx.prom.alerts() if a.get("state") == "pending"]
        section.add(Table("Pending in Prometheus (waiting for their `for`)", ["alert", "severity", "since", "target"],
                          [[a["labels"].get("alertname"), a["labels"].get("severity", ""),
                            ago(ctx.now - (_parse(a.get("activeAt", "")) or ctx.now)), label_text(a["labels"])]
                           for a in pending], empty="none pending"))


def error_logs(ctx: MaintenanceContext, report: Report, hours: float = 24.0) -> None:
    section = report.section(f"Error logs (last {hours:g} h)")
    until = datetime.fromtimestamp(ctx.now, timezone.utc)
    review = review_logs(ctx.log_dir, since=until - timedelta(hours=hours), until=until)
    if not review.files:
        section.note(f"no log files in {ctx.log_dir}", WARN)
        section.status = WARN
        return
    rows, statuses = [], []
    for group in review.groups:
        rows.append([group.component, group.level, group.count, group.pattern,
                     group.first.strftime("%m-%d %H:%M") if group.first else "—",
                     group.last.strftime("%m-%d %H:%M") if group.last else "—", group.example])
        statuses.append(FAIL if group.level == "CRITICAL" else WARN)
    section.add(Table("Error and critical lines, grouped by component and message pattern",
                      ["component", "level", "count", "pattern", "first", "last", "example"], rows, statuses,
                      empty="no ERROR or CRITICAL lines"))
    section.add(Table("Files read", ["file", "lines", "errors", "undated"],
                      [[f.path.name, f.lines, f.errors, f.undated] for f in review.files]))
    section.status = WARN if review.groups else OK
    if any(g.level == "CRITICAL" for g in review.groups):
        section.status = FAIL


FS_FILTER = 'fstype!~"tmpfs|devtmpfs|ramfs|overlay|squashfs|nsfs|fuse.lxcfs|autofs|iso9660"'
RESOURCES = (
    # label, expression, unit, setting for the warn level, default warn level
    ("CPU busy", '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', "ratio", None, 0.85),
    ("memory used", "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "ratio", "memory_used_ratio", 0.9),
    ("disk used", f"1 - node_filesystem_avail_bytes{{{FS_FILTER}}} / node_filesystem_size_bytes{{{FS_FILTER}}}",
     "ratio", "disk_free_ratio", 0.9),
    ("load (1m) per CPU", 'node_load1 / on (instance) count by (instance) (node_cpu_seconds_total{mode="idle"})',
     "", None, 2.0),
    ("resident memory", "process_resident_memory_bytes", "bytes", None, None),
    ("Prometheus head series", "prometheus_tsdb_head_series", "", None, None),
    ("samples ingested", "sum by (job, instance) (rate(prometheus_tsdb_head_samples_appended_total[5m]))",
     "per_second", None, None),
    ("TSDB blocks on disk", "prometheus_tsdb_storage_blocks_bytes", "bytes", None, None),
)


def resource_usage(ctx: MaintenanceContext, report: Report) -> None:
    section = report.section("Resource usage (now, 24 h average, 24 h peak)")
    with guarded(section, "Prometheus"):
        rows, statuses, missing = [], [], []
        for label, expr, unit, setting, default_warn in RESOURCES:
            warn_at = default_warn
            if setting == "memory_used_ratio" and default_warn is not None:
                warn_at = ctx.alert_setting(setting, default_warn)
            elif setting == "disk_free_ratio" and default_warn is not None:
                warn_at = 1 - ctx.alert_setting(setting, 1 - default_warn)
            now = ctx.series(expr)
            if not now:
                missing.append(label)
                continue
            avg = {_key(m): v for m, v in ctx.series(f"avg_over_time(({expr})[24h:1m])")}
            peak = {_key(m): v for m, v in ctx.series(f"max_over_time(({expr})[24h:1m])")}
            for labels, value in sorted(now, key=lambda item: label_text(item[0])):
                key = _key(labels)
                hi = peak.get(key)
                status = OK
                if warn_at is not None and value >= warn_at:
                    status = FAIL
                elif warn_at is not None and hi is not None and hi >= warn_at:
                    status = WARN
                rows.append([label, label_text(labels, ("job", "instance", "mountpoint")), fmt_value(value, unit),
                             fmt_value(avg.get(key), unit), fmt_value(hi, unit),
                             fmt_value(warn_at, unit) if warn_at is not None else ""])
                statuses.append(status)
        section.add(Table("Usage", ["resource", "where", "now", "24h avg", "24h peak", "alert level"], rows, statuses,
                          empty="no resource metrics"))
        section.status = worst([section.status, *statuses])
        if missing:
            section.note("no data for: " + ", ".join(missing) + " (is node_exporter scraped? see `hux health`)",
                         WARN if "CPU busy" in missing else "info")
        chart = LineChart("CPU and memory, last 24 h", [], unit="ratio",
                          thresholds=[("memory alert", ctx.alert_setting("memory_used_ratio", 0.9))])
        for name, expr in (("CPU busy", "max(" + RESOURCES[0][1] + ")"), ("memory used", "max(" + RESOURCES[1][1] + ")")):
            for _, points in ctx.range(expr, ctx.now - DAY, ctx.now, 300):
                chart.series.append(Series(name, points))
        section.add(chart)


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


def daily(ctx: MaintenanceContext) -> Report:
    report = Report("Daily maintenance report",
                    sources={"Prometheus": ctx.prometheus_url, "Alertmanager": ctx.alertmanager_url,
                             "logs": str(ctx.log_dir)})
    alert_status(ctx, report)
    error_logs(ctx, report)
    resource_usage(ctx, report)
    return report
