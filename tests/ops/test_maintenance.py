"""The daily, weekly and monthly reports against a real Prometheus and Alertmanager holding known history."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from xml.etree import ElementTree

import pytest

from hux.ops.clients import Alertmanager, Prometheus
from hux.ops.maintenance import MaintenanceContext, daily, monthly, render_html, render_text, weekly
from hux.ops.maintenance.logs import pattern_of, review_logs
from hux.ops.maintenance.report import FAIL, WARN, Table
from hux.ops.prometheus_backup import backup_prometheus
from tests.conftest import free_port
from tests.ops.conftest import DEFAULT_AM_CONFIG, AmProcess, PromProcess, create_blocks

pytestmark = pytest.mark.integration

STEP = 120  # the last two days: every 2 minutes, so rate(...[5m]) sees at least two samples
SPARSE_STEP = 8 * 3600  # before that: every 8 h (each 2 h window backfilled costs a TSDB block)
DAYS = 15


def history(now: float, bot: str, node: str) -> str:
    """15 days of known series: the bot doubled its traffic this week, a queue with a known distribution,
    a host at 50 % CPU and 75 % memory, two recent firings of BotQueueBacklogTest, and an exporter
    removed 10 days ago."""
    start = now - DAYS * 86400
    dense_from = now - 2 * 86400
    times = [start + i * SPARSE_STEP for i in range(int((dense_from - start) / SPARSE_STEP))]
    times += [dense_from + i * STEP for i in range(int((now - dense_from) / STEP) + 1)]
    week_ago = now - 7 * 86400
    out: list[str] = []

    def family(name: str, kind: str, rows: list[tuple[str, list[tuple[float, float]]]]) -> None:
        out.append(f"# HELP {name} test")
        out.append(f"# TYPE {name} {kind}")
        for labels, points in rows:
            out.extend(f"{name}{{{labels}}} {value} {ts:.3f}" for ts, value in points)

    total, received, previous = 0.0, [], start
    for ts in times:
        total += (20 if ts > week_ago else 10) * (ts - previous) / STEP
        previous = ts
        received.append((ts, round(total, 3)))
    family("hux_messages_received_total", "counter", [(f'job="bot",instance="{bot}",source="replay",group="g"', received)])
    family("hux_queue_length", "gauge", [(f'job="bot",instance="{bot}"', [(ts, (i * 7) % 23 + 0.5) for i, ts in enumerate(times)])])
    family("node_cpu_seconds_total", "counter", [(f'job="node",instance="{node}",cpu="0",mode="idle"',
                                                  [(ts, (ts - start) * 0.5) for ts in times])])
    family("node_memory_MemTotal_bytes", "gauge", [(f'job="node",instance="{node}"', [(ts, 8e9) for ts in times])])
    family("node_memory_MemAvailable_bytes", "gauge", [(f'job="node",instance="{node}"', [(ts, 2e9) for ts in times])])
    episodes = [(now - 40 * 3600, now - 39 * 3600), (now - 20 * 3600, now - 20 * 3600 + 1800)]
    firing = [(ts, 1) for ts in times if any(a <= ts < b for a, b in episodes)]
    for_state = [(ts, a) for ts in times for a, b in episodes if a <= ts < b]
    labels = f'alertname="BotQueueBacklogTest",severity="warning",job="bot",instance="{bot}"'
    family("ALERTS", "gauge", [(labels + ',alertstate="firing"', firing)])
    family("ALERTS_FOR_STATE", "gauge", [(labels, for_state)])
    family("up", "gauge", [(f'job="bot",instance="{bot}"', [(ts, 1) for ts in times]),
                           (f'job="node",instance="{node}"', [(ts, 1) for ts in times]),
                           ('job="old-exporter",instance="10.0.0.9:9100"', [(ts, 1) for ts in times if ts < now - 10 * 86400])])
    family("old_exporter_metric", "gauge", [('job="old-exporter",instance="10.0.0.9:9100"',
                                             [(ts, 3) for ts in times if ts < now - 10 * 86400])])
    return "\n".join(out + ["# EOF"]) + "\n"


RULES = """\
groups:
  - name: test
    interval: 5s
    rules:
      - alert: BotQueueBacklogTest
        expr: hux_queue_length > 20
        labels: {severity: warning}
      - alert: QueueIdleTest
        expr: hux_queue_length < 1
        labels: {severity: info}
      - alert: BotDatabaseDownTest
        expr: absent(hux_database_up)
        for: 1h
        labels: {severity: critical}
"""


def write_logs(log_dir: Path, now: datetime) -> None:
    log_dir.mkdir()
    recent = [now - timedelta(hours=h) for h in (1, 2, 3)]
    bot = [json.dumps({"ts": t.isoformat(timespec="milliseconds"), "level": "ERROR", "logger": "hux.bot.enrich",
                       "msg": f"dexscreener request failed: timeout after {s}s to 10.0.0.{i}:443"})
           for i, (t, s) in enumerate(zip(recent, ("3.2", "5.0", "2.75"), strict=True))]
    bot.append(json.dumps({"ts": (now - timedelta(hours=30)).isoformat(), "level": "ERROR", "logger": "hux.bot.enrich",
                           "msg": "old error outside the window"}))
    bot.append(json.dumps({"ts": (now - timedelta(minutes=5)).isoformat(), "level": "CRITICAL", "logger": "hux.bot.store",
                           "msg": "database unreachable"}))
    bot.append(json.dumps({"ts": now.isoformat(), "level": "INFO", "logger": "hux.bot", "msg": "error-free line"}))
    (log_dir / "mr_hux_alpha_bot.log").write_text("\n".join(bot) + "\n")
    stamp = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (log_dir / "prometheus.log").write_text(
        f'ts={stamp} caller=scrape.go:1 level=error component="scrape manager" msg="Error on ingesting samples" '
        f'err="out of order sample at 1700000000123"\n'
        f'ts={stamp} caller=scrape.go:1 level=error component="scrape manager" msg="Error on ingesting samples" '
        f'err="out of order sample at 1700000099999"\n'
        f'ts={stamp} caller=main.go:1 level=warn msg="not an error"\n')
    (log_dir / "mr_hux_alpha_bot.stderr.log").write_text(
        "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: bad token 0xdeadbeef\n"
        f"{now:%Y-%m-%dT%H:%M:%S}+0000 hux-supervisor: bot exited with code 1; restart #1 in 1.0 s\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("maint")
    now = time.time()
    bot, node = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    am = AmProcess(base / "alertmanager.yml", base / "am", base / "am.log")
    am.config.write_text(DEFAULT_AM_CONFIG)
    am.start()
    prom = PromProcess(base / "data", base / "prometheus.yml", base / "prom.log")
    (base / "rules.yml").write_text(RULES)
    prom.config.write_text(
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
        f"rule_files: ['{base / 'rules.yml'}']\n"
        f"alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['127.0.0.1:{am.port}']}}]\n"
        "scrape_configs:\n"
        f"  - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{prom.port}']}}]\n"
        f"  - job_name: bot\n    static_configs: [{{targets: ['{bot}']}}]\n"
        f"  - job_name: node\n    static_configs: [{{targets: ['{node}']}}]\n")
    create_blocks(history(now - 5, bot, node), prom.data_dir, base)
    prom.start()
    log_dir = base / "logs"
    write_logs(log_dir, datetime.fromtimestamp(now, timezone.utc))
    starts = datetime.now(timezone.utc)
    with Alertmanager(am.url) as client:
        client.post_alerts([
            {"labels": {"alertname": "DiskAlmostFull", "severity": "critical", "instance": node},
             "annotations": {"summary": "disk / is 97% full"}},
            {"labels": {"alertname": "Watchdog", "severity": "none"}},
        ])
        client.add_silence({"matchers": [{"name": "alertname", "value": "Noisy", "isRegex": False}],
                            "startsAt": starts.isoformat(), "endsAt": (starts + timedelta(hours=4)).isoformat(),
                            "createdBy": "ops", "comment": "quiet during the upgrade"})
    ctx = MaintenanceContext(prometheus_url=prom.url, alertmanager_url=am.url, log_dir=log_dir,
                             backup_dir=base / "backups", textfile_dir=base / "textfile",
                             prometheus_data_dir=prom.data_dir)
    # wait until the rules have been evaluated once and the targets are known
    with Prometheus(prom.url) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            evaluated = all(not g.get("lastEvaluation", "0001").startswith("0001") for g in client.rules())
            if evaluated and len(client.targets().get("activeTargets", [])) == 3:
                break
            time.sleep(0.2)
    yield ctx, prom, base, bot
    ctx.close()
    prom.stop()
    am.stop()


def table(report, section_title: str, table_title: str) -> Table:
    section = next(s for s in report.sections if s.title.startswith(section_title))
    return next(i for i in section.items if isinstance(i, Table) and i.title.startswith(table_title))


def test_daily_report_shows_alerts_silences_grouped_errors_and_resources(stack, tmp_path: Path) -> None:
    ctx, _, _, _ = stack
    report = daily(ctx)
    alerts = table(report, "Alert status", "Firing alerts")
    assert [row[0] for row in alerts.rows] == ["DiskAlmostFull"] and alerts.row_status == [FAIL]
    assert "disk / is 97% full" in alerts.rows[0][-1]
    silences = table(report, "Alert status", "Silences")
    assert silences.rows[0][2] == "alertname=Noisy" and silences.rows[0][4] == "quiet during the upgrade"
    errors = table(report, "Error logs", "Error and critical lines")
    by_pattern = {(row[0], row[3]): row[2] for row in errors.rows}
    assert by_pattern[("bot (hux.bot.enrich)", "dexscreener request failed: timeout after <n> to <ip>")] == 3
    assert by_pattern[("bot (hux.bot.store)", "database unreachable")] == 1
    assert by_pattern[("prometheus (scrape manager)", "Error on ingesting samples err=out of order sample at <n>")] == 2
    assert by_pattern[("bot", "uncaught exception: ValueError: bad token <hex>")] == 1
    assert by_pattern[("bot (supervisor)", "bot exited with code <n>; restart #<n> in <n> s")] == 1
    assert not any("old error" in row[-1] for row in errors.rows)  # 30 h ago: outside the window
    assert errors.rows[0][1] == "CRITICAL"
    usage = {row[0]: row for row in table(report, "Resource usage", "Usage").rows}
    assert usage["CPU busy"][2] == "50.0%" and usage["memory used"][2] == "75.0%"
    assert report.status == FAIL
    text = render_text(report, width=200)
    assert "Watchdog is firing" in text and "DiskAlmostFull" in text and "quiet during the upgrade" in text
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert not re.search(r'<(script|link|img)\b|src="http', page)  # self-contained


def test_weekly_report_compares_weeks_and_checks_backup_metrics(stack) -> None:
    ctx, prom, base, _ = stack
    backup_prometheus(prometheus_url=prom.url, backup_dir=ctx.backup_dir, data_dir=prom.data_dir)
    report = weekly(ctx)
    key = {row[0]: row for row in table(report, "Dashboard trends", "Key metrics").rows}
    change = int(key["messages received"][3].rstrip("%"))
    assert 90 <= change <= 110  # traffic doubled this week
    # 50 % by construction. A 15 m step of the subquery that falls after the last backfilled sample (the
    # report runs a minute or so after the data was written) sees rate() extrapolate only half a sample
    # interval past that sample: one such point of ~190 lifts the 7-day average by up to 0.1 %.
    assert 50.0 <= float(key["CPU busy (avg)"][1].rstrip("%")) <= 50.2
    assert key["alerts that fired"][1] == "1"
    rules = table(report, "Alert configuration", "Rules Prometheus cannot evaluate")
    assert rules.rows == []
    backups = table(report, "Backup metrics", "As Prometheus scrapes them")
    assert backups.rows[0][:2] == ["prometheus", "never"] and backups.row_status[0] == FAIL
    archives = table(report, "Backup metrics", "Archives in")
    assert archives.rows[0][0] == "prometheus" and archives.rows[0][1] == 1 and archives.rows[0][-1] == "readable"
    page = render_html(report)
    assert page.count("<svg") >= 3 and "this week" in page and "last week" in page


def test_monthly_report_reviews_thresholds_and_cleans_old_targets(stack) -> None:
    ctx, prom, _, bot = stack
    report = monthly(ctx, clean=False)
    stale = table(report, "Clean old metrics", "Targets with stored series")
    assert [(r[0], r[1], r[4]) for r in stale.rows] == [("old-exporter", "10.0.0.9:9100", "would be deleted")]
    assert stale.rows[0][2] == 2  # up and old_exporter_metric
    review = {row[0]: row for row in table(report, "Alert threshold review", "Each threshold").rows}
    queue = review["BotQueueBacklogTest"]
    assert queue[3] == "> 20" and queue[8] == "22.5"
    assert queue[10] == 2 and queue[12] == 2  # two firing episodes, two activations
    held = float(queue[9].rstrip("%"))
    assert 10 < held < 16  # 3 of every 23 values exceed 20
    assert review["QueueIdleTest"][3] == "< 1"
    others = table(report, "Alert threshold review", "Alerts without a numeric threshold")
    assert others.rows[0][0] == "BotDatabaseDownTest"
    storage = dict(table(report, "Retention review", "Storage").rows)
    assert storage["retention time"] == "36500.0d" and "samples" in storage["ingestion"]
    assert table(report, "Performance review", "Key figures").rows
    with Prometheus(prom.url) as client:
        assert client.series(['{job="old-exporter"}'], start=time.time() - 20 * 86400)

    cleaned = monthly(ctx, clean=True)
    rows = table(cleaned, "Clean old metrics", "Targets with stored series").rows
    assert rows[0][4] == "deleted"
    with Prometheus(prom.url) as client:
        assert client.series(['{job="old-exporter"}'], start=time.time() - 20 * 86400) == []
        assert client.series([f'{{job="bot",instance="{bot}"}}'], start=time.time() - 20 * 86400)  # live ones kept
    assert table(monthly(ctx), "Clean old metrics", "Targets with stored series").rows == []
    page = render_html(cleaned)
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        ElementTree.fromstring(svg)  # well-formed: thresholds like "< 1" are escaped


def test_log_patterns_hide_variable_parts() -> None:
    assert pattern_of("timeout after 3.5s talking to 10.1.2.3:9100 (id 9f86d081884c7d65)") == \
        "timeout after <n> talking to <ip> (id <id>)"
    assert pattern_of('token So11111111111111111111111111111111111111112 rejected: "bad"') == \
        "token <address> rejected: <str>"


def test_log_review_reads_rotated_files_in_window(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "alertmanager.log").write_text("")
    line = f'ts={(now - timedelta(hours=1)).isoformat()} level=error component=dispatcher msg="Notify failed" err="x"\n'
    (logs / "alertmanager.log.1").write_text(line * 3)
    review = review_logs(logs, since=now - timedelta(hours=24), until=now)
    assert [(g.component, g.count) for g in review.groups] == [("alertmanager (dispatcher)", 3)]
    assert review.groups[0].level == "ERROR" and WARN != review.groups[0].level
