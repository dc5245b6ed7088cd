"""The monthly maintenance tasks: clean old metrics, update alert thresholds, performance review."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import Any

from hux.monitoring.durations import duration_or
from hux.monitoring.status import FAIL, WARN, worst
from hux.ops.maintenance.context import MaintenanceContext, guarded, label_text
from hux.ops.maintenance.promql import Threshold, find_threshold
from hux.ops.maintenance.report import OK, LineChart, RangeChart, RangeRow, Report, Series, Table, ago, fmt_value

DAY = 86400.0
MONTH = 30 * DAY
MIN_STEP = 15.0
POINTS = 2000  # subquery/range points per series: fine enough for quantiles, far below Prometheus's 11 000


@dataclass(frozen=True)
class Window:
    """The review period: 30 days, or less when Prometheus holds less history."""

    seconds: int
    step: int

    @property
    def range(self) -> str:
        return f"[{self.seconds}s:{self.step}s]"

    @property
    def label(self) -> str:
        return ago(self.seconds)


def review_window(ctx: MaintenanceContext, longest: float = MONTH) -> Window:
    lowest = ctx.value("min(prometheus_tsdb_lowest_timestamp_seconds)")
    if lowest is None:
        lowest_ms = ctx.value("min(prometheus_tsdb_lowest_timestamp)")
        lowest = lowest_ms / 1000 if lowest_ms else None
    held = ctx.now - lowest if lowest else longest
    seconds = int(max(60.0, min(longest, held)))
    return Window(seconds, int(max(MIN_STEP, seconds / POINTS)))
BYTES_PER_SAMPLE_FALLBACK = 1.5  # Prometheus's documented rule of thumb (1-2 bytes per sample)


# --- clean old metrics --------------------------------------------------------------------------


@dataclass
class StaleTarget:
    job: str
    instance: str
    series: int
    whole_job: bool


def _retention_seconds(ctx: MaintenanceContext) -> float:
    try:
        flags = ctx.prom.flags()
    except Exception:  # noqa: BLE001 - fall back to the default retention
        flags = {}
    return duration_or(flags.get("storage.tsdb.retention.time"), None) or 15 * DAY


def find_stale_targets(ctx: MaintenanceContext) -> list[StaleTarget]:
    """Targets with series in the TSDB (their ``up``) that Prometheus no longer scrapes."""
    start = ctx.now - _retention_seconds(ctx)
    active = ctx.prom.targets().get("activeTargets", [])
    live = {(t["labels"].get("job", ""), t["labels"].get("instance", "")) for t in active}
    live_jobs = {job for job, _ in live}
    stored = {(s.get("job", ""), s.get("instance", "")) for s in ctx.prom.series(["up"], start=start, end=ctx.now)}
    stale = []
    for job, instance in sorted(stored - live):
        selector = _selector(job, instance)
        count = len(ctx.prom.series([selector], start=start, end=ctx.now))
        stale.append(StaleTarget(job, instance, count, job not in live_jobs))
    return stale


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _selector(job: str, instance: str) -> str:
    return f'{{job="{_quote(job)}",instance="{_quote(instance)}"}}'


def clean_old_metrics(ctx: MaintenanceContext, report: Report, *, apply: bool) -> None:
    section = report.section("Clean old metrics (series of targets that no longer exist)")
    with guarded(section, "Prometheus"):
        stale = find_stale_targets(ctx)
        rows, statuses = [], []
        if stale and apply:
            selectors = [_selector(t.job, t.instance) for t in stale]
            selectors += [f'{{job="{_quote(j)}",instance=""}}' for j in sorted({t.job for t in stale if t.whole_job})]
            ctx.prom.delete_series(selectors, allow_remote=ctx.allow_remote)
            ctx.prom.clean_tombstones(allow_remote=ctx.allow_remote)
        start = ctx.now - _retention_seconds(ctx)
        for target in stale:
            left = len(ctx.prom.series([_selector(target.job, target.instance)], start=start, end=ctx.now)) if apply else None
            state = ("deleted" if left == 0 else f"{left} series left") if apply else "would be deleted"
            rows.append([target.job, target.instance, target.series,
                         "job gone" if target.whole_job else "instance gone", state])
            statuses.append(OK if apply and left == 0 else WARN)
        section.add(Table("Targets with stored series that Prometheus no longer scrapes",
                          ["job", "instance", "series", "why", "action"], rows, statuses,
                          empty="none: every stored target is still scraped"))
        if stale and not apply:
            section.note(f"{len(stale)} old target(s): run `hux maintain monthly --clean` to delete their series "
                         "(delete_series, then clean_tombstones)", WARN)
            section.status = WARN
        elif stale:
            section.note("deleted through the admin API and compacted away with clean_tombstones")


# --- retention review ------------------------------------------------------------------------------


def retention_review(ctx: MaintenanceContext, report: Report) -> None:
    section = report.section("Retention review")
    with guarded(section, "Prometheus"):
        flags = ctx.prom.flags()
        retention = duration_or(flags.get("storage.tsdb.retention.time"), None) or 15 * DAY
        size_limit = flags.get("storage.tsdb.retention.size", "0B")
        lowest = ctx.value("min(prometheus_tsdb_lowest_timestamp_seconds)")
        if lowest is None:
            lowest_ms = ctx.value("min(prometheus_tsdb_lowest_timestamp)")
            lowest = lowest_ms / 1000 if lowest_ms else None
        blocks = ctx.value("sum(prometheus_tsdb_storage_blocks_bytes)") or 0.0
        wal = ctx.value("sum(prometheus_tsdb_wal_storage_size_bytes)") or 0.0
        head_chunks = ctx.value("sum(prometheus_tsdb_head_chunks_storage_size_bytes)") or 0.0
        rate = ctx.value("sum(rate(prometheus_tsdb_head_samples_appended_total[1d]))") or \
            ctx.value("sum(rate(prometheus_tsdb_head_samples_appended_total[5m]))") or 0.0
        per_sample = ctx.value("sum(prometheus_tsdb_compaction_chunk_size_bytes_sum) / "
                               "sum(prometheus_tsdb_compaction_chunk_samples_sum)")
        estimated = per_sample is None
        per_sample = per_sample or BYTES_PER_SAMPLE_FALLBACK
        projected = rate * retention * per_sample + wal + head_chunks
        free = None
        if ctx.prometheus_data_dir is not None and ctx.prometheus_data_dir.exists():
            free = shutil.disk_usage(ctx.prometheus_data_dir).free
        held = ctx.now - lowest if lowest else None
        rows = [
            ["retention time", ago(retention)],
            ["retention size", size_limit if size_limit not in ("0B", "") else "no limit"],
            ["oldest sample", f"{ago(held)} ago" if held else "—"],
            ["on disk now", f"{fmt_value(blocks + wal + head_chunks, 'bytes')} (blocks {fmt_value(blocks, 'bytes')}, "
                            f"WAL {fmt_value(wal, 'bytes')})"],
            ["ingestion", fmt_value(rate, "per_second") + " samples"],
            ["bytes per sample", f"{per_sample:.2f}" + (" (rule of thumb: no compaction yet)" if estimated else "")],
            ["projected size at full retention", fmt_value(projected, "bytes")],
            ["free on the data disk", fmt_value(free, "bytes") if free is not None else "— (data dir not local)"],
        ]
        status = OK
        if free is not None and projected - (blocks + wal + head_chunks) > 0.8 * free:
            status = FAIL
            section.note("at this ingestion rate the retention will not fit on the disk: set "
                         "prometheus.retention_size, lower prometheus.retention_time or add space", FAIL)
        elif held and held < retention * 0.9:
            section.note(f"the TSDB holds {ago(held)} of a {ago(retention)} retention: figures are projections")
        section.add(Table("Storage", ["item", "value"], rows))
        section.status = worst([section.status, status])
        tsdb = ctx.prom.tsdb_status()
        head = tsdb.get("headStats", {})
        total = head.get("numSeries") or 0
        section.add(Table(f"Metrics with the most series (head: {total:,} series)", ["metric", "series", "share"],
                          [[m["name"], m["value"], f"{m['value'] / total * 100:.1f}%" if total else "—"]
                           for m in tsdb.get("seriesCountByMetricName", [])[:10]]))


# --- alert threshold review -------------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[a-z]+", text) if len(w) > 2}


def _setting_for(ctx: MaintenanceContext, alertname: str, threshold: float) -> str:
    """The settings key holding this alert's threshold: same value (numbers, or durations in seconds),
    the one whose name shares most words with the alert's name."""
    candidates: list[tuple[str, Any]] = []
    for section in ("alerts", "backup"):
        model = getattr(ctx.settings, section, None)
        if model is not None and hasattr(model, "model_dump"):
            candidates += [(f"{section}.{key}", value) for key, value in model.model_dump().items()]
    matches = []
    for key, value in candidates:
        if isinstance(value, bool):
            continue
        number: float | None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str) and value and value[0].isdigit():
            number = duration_or(value, None)
        else:
            continue
        if number is not None and number == threshold:
            matches.append((len(_words(key) & _words(alertname)), key))
    if not matches:
        return ""
    best = max(score for score, _ in matches)
    return ", ".join(key for score, key in matches if score == best)


def _firing_history(ctx: MaintenanceContext, window: Window) -> tuple[dict[str, tuple[int, float]], dict[str, int]]:
    """Per alert name: (firing episodes, firing seconds) from ALERTS, activations from ALERTS_FOR_STATE."""
    start, step = ctx.now - window.seconds, window.step
    fired: dict[str, tuple[int, float]] = {}
    for labels, points in ctx.range('ALERTS{alertstate="firing"}', start, ctx.now, step):
        name = labels.get("alertname", "")
        episodes, seconds = fired.get(name, (0, 0.0))
        previous = None
        for t, _ in points:
            if previous is None or t - previous > step * 1.5:
                episodes += 1
            previous = t
        fired[name] = (episodes, seconds + len(points) * step)
    activations: dict[str, set[float]] = {}
    for labels, points in ctx.range("ALERTS_FOR_STATE", start, ctx.now, step):
        activations.setdefault(labels.get("alertname", ""), set()).update(v for _, v in points)
    return fired, {name: len(values) for name, values in activations.items()}


def _verdict(threshold: Threshold, q: dict[str, float | None], breached: float | None, fired: int,
             period: Window) -> tuple[str, str]:
    if q.get("max") is None:
        return f"no data in {period.label}: check that the metric exists", WARN
    if breached is not None and breached >= 0.5:
        return f"condition held {breached:.0%} of the time: threshold too tight, or a standing problem to fix", FAIL
    if breached is not None and breached >= 0.05:
        return f"condition held {breached:.0%} of the time: consider raising the threshold or its `for`", WARN
    if fired == 0 and threshold.op in (">", ">=") and q["max"] is not None and threshold.value > 0 \
            and q["max"] < 0.5 * threshold.value:
        return "never came near: fine (or tighten it if real problems went unnoticed)", OK
    return "ok", OK


def threshold_review(ctx: MaintenanceContext, report: Report) -> None:
    section = report.section("Alert threshold review (30 days)")
    with guarded(section, "Prometheus"):
        period = review_window(ctx)
        if period.seconds < MONTH:
            section.note(f"Prometheus holds {period.label} of history: the review covers that")
        fired, activations = _firing_history(ctx, period)
        rows, statuses = [], []
        chart_rows: list[RangeRow] = []
        others = []
        for group in ctx.prom.rules():
            for rule in group.get("rules", []):
                if rule.get("type") != "alerting":
                    continue
                name = rule.get("name", "")
                threshold = find_threshold(rule.get("query", ""))
                episodes, firing_seconds = fired.get(name, (0, 0.0))
                if threshold is None:
                    others.append([name, rule.get("labels", {}).get("severity", ""), " ".join(rule.get("query", "").split())[:80],
                                   episodes, ago(firing_seconds) if firing_seconds else "—"])
                    continue
                lhs = threshold.expr
                window = period.range
                q: dict[str, float | None] = {}
                for label, expr in (("p50", f"max(quantile_over_time(0.5, ({lhs}){window}))"),
                                    ("p90", f"max(quantile_over_time(0.9, ({lhs}){window}))"),
                                    ("p99", f"max(quantile_over_time(0.99, ({lhs}){window}))"),
                                    ("max", f"max(max_over_time(({lhs}){window}))")):
                    q[label] = ctx.value(expr)
                # the share of observed time the whole condition held (before `for`): evaluation points where
                # the alert expression had a value, over points where the compared value had one
                held = ctx.value(f"max(count_over_time(({rule.get('query')}){window}))") or 0.0
                observed = ctx.value(f"max(count_over_time(({lhs}){window}))")
                breached = min(1.0, held / observed) if observed else None
                verdict, status = _verdict(threshold, q, breached, episodes, period)
                rows.append([name, rule.get("labels", {}).get("severity", ""), " ".join(lhs.split())[:60],
                             f"{threshold.op} {threshold.value:g}", _setting_for(ctx, name, threshold.value),
                             fmt_value(q["p50"]), fmt_value(q["p90"]), fmt_value(q["p99"]), fmt_value(q["max"]),
                             f"{breached:.1%}" if breached is not None else "—", episodes,
                             ago(firing_seconds) if firing_seconds else "—", activations.get(name, 0), verdict])
                statuses.append(status)
                same = sum(1 for r in chart_rows if r.label.split(" #")[0] == name)
                chart_rows.append(RangeRow(f"{name} #{same + 1}" if same else name, q, threshold.value, threshold.op,
                                           detail=" ".join(lhs.split())))
        section.add(Table("Each threshold beside what its metric did (max over series)",
                          ["alert", "severity", "value", "threshold", "setting", "p50", "p90", "p99", "max",
                           "condition held", "fired", "firing time", "activations", "verdict"], rows, statuses,
                          empty="no threshold alerts loaded"))
        section.add(RangeChart("Observed distribution against each threshold", chart_rows))
        section.add(Table("Alerts without a numeric threshold", ["alert", "severity", "expression", "fired", "firing time"],
                          others, empty="none"))
        section.status = worst([section.status, *statuses])
        section.note("change a threshold in the settings file (the `setting` column), then `hux render` / `hux reload`; "
                     "docs/runbooks.md explains each alert")


# --- performance review -------------------------------------------------------------------------

PERFORMANCE = (
    ("p95 message→decision latency",
     "histogram_quantile(0.95, sum by (le) (rate(hux_message_decision_latency_seconds_bucket[1h])))", "seconds"),
    ("p95 token processing time",
     "histogram_quantile(0.95, sum by (le) (rate(hux_token_processing_seconds_bucket[1h])))", "seconds"),
    ("p95 market API latency",
     "histogram_quantile(0.95, sum by (le) (rate(hux_api_request_duration_seconds_bucket[1h])))", "seconds"),
    ("messages per second", "sum(rate(hux_messages_received_total[1h]))", "per_second"),
    ("pipeline failure ratio",
     'sum(rate(hux_pipeline_stage_total{outcome="failure"}[1h])) / sum(rate(hux_pipeline_stage_total[1h]))', "ratio"),
    ("rule evaluation / interval (worst group)",
     "max(prometheus_rule_group_last_duration_seconds / prometheus_rule_group_interval_seconds)", "ratio"),
    ("slowest scrape", "max(scrape_duration_seconds)", "seconds"),
    ("p90 PromQL query time", 'max(prometheus_engine_query_duration_seconds{quantile="0.9"})', "seconds"),
    ("Prometheus head series", "sum(prometheus_tsdb_head_series)", ""),
)


def performance_review(ctx: MaintenanceContext, report: Report) -> None:
    section = report.section("Performance review (30 days)")
    with guarded(section, "Prometheus"):
        period = review_window(ctx)
        coarse = Window(period.seconds, max(period.step, int(period.seconds / 720)))
        week = Window(min(period.seconds, int(7 * DAY)), int(max(MIN_STEP, min(period.seconds, 7 * DAY) / 720)))
        if period.seconds < MONTH:
            section.note(f"Prometheus holds {period.label} of history: figures cover that")
        rows, statuses = [], []
        for label, expr, unit in PERFORMANCE:
            avg30 = ctx.value(f"avg_over_time(({expr}){coarse.range})")
            p95 = ctx.value(f"quantile_over_time(0.95, ({expr}){coarse.range})")
            last7 = ctx.value(f"avg_over_time(({expr}){week.range})")
            first7 = ctx.value(f"avg_over_time(({expr}){week.range})", ctx.now - 23 * DAY) \
                if period.seconds >= MONTH else None
            trend, status = "—", OK
            if last7 is not None and first7:
                delta = (last7 - first7) / abs(first7)
                trend = f"{delta * 100:+.0f}%"
                if delta > 0.5 and label != "messages per second":
                    status = WARN
            rows.append([label, fmt_value(avg30, unit), fmt_value(p95, unit), fmt_value(last7, unit), trend])
            statuses.append(status)
        section.add(Table("Key figures", ["measure", "30 d average", "30 d p95", "last 7 d average",
                                          "last week vs first week"], rows, statuses))
        section.status = worst([section.status, *statuses])
        jobs = ctx.series(f"max by (job) (max_over_time(process_resident_memory_bytes[{period.seconds}s]))")
        cpu = {m.get("job"): v
               for m, v in ctx.series(f"sum by (job) (rate(process_cpu_seconds_total[{period.seconds}s]))")}
        section.add(Table("Processes (by job)", ["job", "peak resident memory", "average CPU cores"],
                          [[m.get("job"), fmt_value(v, "bytes"), f"{cpu.get(m.get('job'), 0):.3f}"]
                           for m, v in sorted(jobs, key=lambda item: -item[1])]))
        step = max(MIN_STEP, period.seconds / 240)
        start = ctx.now - period.seconds
        for title, expr, unit in (PERFORMANCE[0], PERFORMANCE[3], PERFORMANCE[4]):
            series = ctx.range(expr, start, ctx.now, step)
            section.add(LineChart(f"{title}, last {period.label}", [Series(title, pts) for _, pts in series[:1]],
                                  unit=unit))
        rss = ctx.range("max by (job) (process_resident_memory_bytes)", start, ctx.now, step)
        section.add(LineChart(f"Resident memory by job, last {period.label}",
                              [Series(label_text(m, ("job",)), p) for m, p in rss[:8]], unit="bytes"))


def monthly(ctx: MaintenanceContext, *, clean: bool = False) -> Report:
    report = Report("Monthly maintenance report", sources={"Prometheus": ctx.prometheus_url})
    clean_old_metrics(ctx, report, apply=clean)
    retention_review(ctx, report)
    threshold_review(ctx, report)
    performance_review(ctx, report)
    return report
