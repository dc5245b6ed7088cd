"""Recording and alerting rules, built from the settings.

Rules live in three groups, ``hux-bot``, ``hux-host`` and ``hux-stack``. The
recording rules (the ratios and quantiles alerts and dashboards share; names
follow ``level:metric:operations``, the window from the settings) open the
group whose alerts read them: Prometheus runs a group's rules in order at one
timestamp, so an alert sees this evaluation's ratio, not the last one's (a
separate recording group would add up to one evaluation interval to every
alert that reads a ratio).

Every threshold, window and ``for`` duration comes from ``settings.alerts``;
nothing numeric is hard-coded in rule text, so the test suite can render the
same rules with second-long intervals. Every alert carries ``severity``,
``alert_family`` (a critical alert inhibits the warning of the same family and
instance in Alertmanager), a ``summary``, a ``description`` with the live value
and a ``runbook_url`` pointing at its section of ``docs/runbooks.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hux.bot import metrics as catalogue
from hux.monitoring.settings import AlertSettings, Settings, duration_seconds

#: every alert the rules define, with its severity (docs/runbooks.md has one section each)
ALERTS: dict[str, str] = {
    "BotHighErrorRate": "critical",
    "BotErrorRateIncreased": "warning",
    "ServiceDown": "critical",
    "BotAbsent": "critical",
    "HostMemoryHigh": "critical",
    "BotDatabaseDown": "critical",
    "BotHighLatency": "warning",
    "BotHighApiUsage": "warning",
    "HostDiskSpaceLow": "warning",
    "BotPipelineStalled": "critical",
    "BotQueueBacklog": "warning",
    "BotAlertDeliveryFailing": "warning",
    "BackupTooOld": "warning",
    "PrometheusConfigReloadFailed": "warning",
    "PrometheusRuleEvaluationFailures": "warning",
    "PrometheusAlertmanagerUnreachable": "critical",
    "AlertmanagerNotificationsFailing": "critical",
    "AlertmanagerConfigReloadFailed": "warning",
    "Watchdog": "none",
}


def runbook_anchor(alertname: str) -> str:
    """The anchor GitHub-style Markdown gives the heading ``## <alertname>``."""
    return alertname.lower()


def _num(value: float) -> str:
    """A threshold as PromQL text: ``0.1`` not ``0.10000000000000001``, ``10`` not ``10.0``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _quantile_name(q: float) -> str:
    return "p" + _num(q * 100).replace(".", "_")


def _seconds(duration: str) -> str:
    return _num(duration_seconds(duration))


@dataclass(frozen=True)
class RecordingNames:
    """Names of the recording rules, derived from the configured windows."""

    window: str
    short: str
    quantile: float

    @property
    def stage_rate(self) -> str:
        return f"instance_stage:hux_pipeline_stage:rate{self.window}"

    def stage_failure_ratio(self, window: str | None = None) -> str:
        return f"instance_stage:hux_pipeline_stage_failures:ratio_rate{window or self.window}"

    @property
    def api_rate(self) -> str:
        return f"instance_api:hux_api_requests:rate{self.window}"

    def api_error_ratio(self, window: str | None = None) -> str:
        return f"instance_api:hux_api_request_errors:ratio_rate{window or self.window}"

    @property
    def api_usage_ratio(self) -> str:
        return f"instance_api:hux_api_usage:ratio_rate{self.window}"

    @property
    def decision_latency(self) -> str:
        return f"instance:hux_message_decision_latency_seconds:{_quantile_name(self.quantile)}_rate{self.window}"

    @property
    def token_rate(self) -> str:
        return f"instance_outcome:hux_tokens_processed:rate{self.window}"

    @property
    def queue_utilisation(self) -> str:
        return "instance:hux_queue_utilisation:ratio"

    @property
    def alert_delivery_failure_ratio(self) -> str:
        return f"instance_channel:hux_alerts_sent_failures:ratio_rate{self.window}"

    @property
    def memory_utilisation(self) -> str:
        return "instance:node_memory_utilisation:ratio"

    @property
    def cpu_utilisation(self) -> str:
        return f"instance:node_cpu_utilisation:rate{self.window}"


def recording_names(settings: Settings) -> RecordingNames:
    a = settings.alerts
    return RecordingNames(a.rate_window, a.short_window, a.latency_quantile)


# --- helpers ---------------------------------------------------------------------


def _regex_alternatives(values: tuple[str, ...] | list[str]) -> str:
    return "|".join(values)


def _fill(text: str, **values: Any) -> str:
    """Substitute ``[[name]]`` placeholders; Go template braces in the text stay as they are."""
    for key, value in values.items():
        text = text.replace(f"[[{key}]]", str(value))
    return text


class _AlertFactory:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runbook_base = settings.alerts.runbook_base_url

    def __call__(self, name: str, expr: str, *, for_: str, family: str, summary: str, description: str,
                 labels: dict[str, str] | None = None, keep_firing_for: str | None = None) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": name, "expr": _dedent(expr)}
        if duration_seconds(for_) > 0:
            rule["for"] = for_
        if keep_firing_for and duration_seconds(keep_firing_for) > 0:
            rule["keep_firing_for"] = keep_firing_for
        rule["labels"] = {"severity": ALERTS[name], "alert_family": family, **(labels or {})}
        rule["annotations"] = {
            "summary": summary,
            "description": description,
            "runbook_url": f"{self.runbook_base}#{runbook_anchor(name)}",
        }
        return rule


def _dedent(expr: str) -> str:
    lines = [line.rstrip() for line in expr.strip("\n").splitlines()]
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines)


# --- recording rules ----------------------------------------------------------------


def recording_rules(settings: Settings) -> list[dict[str, Any]]:
    """Every recording rule: the bot's (``hux_*``) then the host's (``node_*``)."""
    return bot_recording_rules(settings) + host_recording_rules(settings)


def host_recording_rules(settings: Settings) -> list[dict[str, Any]]:
    n = recording_names(settings)
    return [
        {
            "record": n.memory_utilisation,
            "expr": "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
        },
        {
            "record": n.cpu_utilisation,
            "expr": f'1 - avg by (job, instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{settings.alerts.rate_window}]))',
        },
    ]


def bot_recording_rules(settings: Settings) -> list[dict[str, Any]]:
    a = settings.alerts
    n = recording_names(settings)
    api_errors = _regex_alternatives(catalogue.API_ERROR_OUTCOMES)
    rules: list[dict[str, Any]] = [
        {"record": n.stage_rate, "expr": f"sum by (job, instance, stage) (rate(hux_pipeline_stage_total[{a.rate_window}]))"},
    ]
    for window in dict.fromkeys((a.rate_window, a.short_window)):
        # "or ... * 0": a stage that never failed has no failure series; its ratio is 0, not missing.
        rules.append({
            "record": n.stage_failure_ratio(window),
            "expr": _dedent(f"""
                (
                  sum by (job, instance, stage) (rate(hux_pipeline_stage_total{{outcome="failure"}}[{window}]))
                  or
                  sum by (job, instance, stage) (rate(hux_pipeline_stage_total[{window}])) * 0
                )
                /
                sum by (job, instance, stage) (rate(hux_pipeline_stage_total[{window}]))
            """),
        })
    rules.append({
        "record": n.api_rate,
        "expr": f'sum by (job, instance, api) (rate(hux_api_requests_total{{outcome!="circuit_open"}}[{a.rate_window}]))',
    })
    for window in dict.fromkeys((a.rate_window, a.short_window)):
        rules.append({
            "record": n.api_error_ratio(window),
            "expr": _dedent(f"""
                (
                  sum by (job, instance, api) (rate(hux_api_requests_total{{outcome=~"{api_errors}"}}[{window}]))
                  or
                  sum by (job, instance, api) (rate(hux_api_requests_total{{outcome!="circuit_open"}}[{window}])) * 0
                )
                /
                sum by (job, instance, api) (rate(hux_api_requests_total{{outcome!="circuit_open"}}[{window}]))
            """),
        })
    rules += [
        {
            "record": n.api_usage_ratio,
            "expr": _dedent(f"""
                {n.api_rate}
                / on (job, instance, api)
                (hux_api_rate_limit_requests_per_second > 0)
            """),
        },
        {
            "record": n.decision_latency,
            "expr": _dedent(f"""
                histogram_quantile({_num(a.latency_quantile)},
                  sum by (job, instance, le) (rate(hux_message_decision_latency_seconds_bucket[{a.rate_window}]))
                )
            """),
        },
        {
            "record": n.token_rate,
            "expr": f"sum by (job, instance, outcome) (rate(hux_tokens_processed_total[{a.rate_window}]))",
        },
        {
            "record": n.queue_utilisation,
            "expr": "hux_queue_length / on (job, instance) (hux_queue_capacity > 0)",
        },
        {
            "record": n.alert_delivery_failure_ratio,
            "expr": _dedent(f"""
                (
                  sum by (job, instance, channel) (rate(hux_alerts_sent_total{{outcome="failure"}}[{a.rate_window}]))
                  or
                  sum by (job, instance, channel) (rate(hux_alerts_sent_total[{a.rate_window}])) * 0
                )
                /
                sum by (job, instance, channel) (rate(hux_alerts_sent_total[{a.rate_window}]))
            """),
        },
    ]
    return rules


# --- alerting rules -------------------------------------------------------------------


def _error_rate_alerts(settings: Settings, alert: _AlertFactory) -> list[dict[str, Any]]:
    a: AlertSettings = settings.alerts
    n = recording_names(settings)
    window_seconds = _seconds(a.rate_window)
    out = []
    scopes = (
        ("pipeline", "stage", n.stage_failure_ratio(), n.stage_failure_ratio(a.short_window), n.stage_rate,
         "stage {{ $labels.stage }}", "executions of pipeline stage {{ $labels.stage }}"),
        ("api", "api", n.api_error_ratio(), n.api_error_ratio(a.short_window), n.api_rate,
         "API {{ $labels.api }}", "requests to the {{ $labels.api }} API"),
    )
    for component, label, ratio, short_ratio, volume, what, events in scopes:
        enough = f"{volume} * {window_seconds} >= {_num(a.error_rate_min_events)}"
        # The warning comes first in the group, so that when both clear in one evaluation its
        # "resolved" reaches Alertmanager no later than the critical's.
        #
        # After an incident the rate_window ratio decays through the warning band long after the
        # recent (short_window) ratio is clean. The warning stands down as soon as the recent window
        # is back under the warning threshold while the long ratio is still above the critical one,
        # and the critical keeps firing one short_window longer than its condition: the warning has
        # resolved while the critical still inhibits it, so nothing is notified after recovery.
        # Later, the long ratio passes the warning band in less than rate_window / 2, shorter than the
        # warning's `for` (which the settings keep >= rate_window).
        out.append(alert(
            "BotErrorRateIncreased",
            f"""
            (
              (
                {ratio} > {_num(a.error_rate_warning)}
                or
                (
                  {ratio} > {_num(a.error_rate_baseline_factor)} * avg_over_time({ratio}[{a.error_rate_baseline_window}])
                  and
                  {ratio} > {_num(a.error_rate_baseline_floor)}
                )
              )
              and
              {enough}
            )
            unless
            ({ratio} > {_num(a.error_rate_critical)} unless {short_ratio} > {_num(a.error_rate_warning)})
            """,
            for_=a.error_rate_warning_for, family="error_rate", labels={"component": component},
            summary=f"Increased error rate on {what} of bot {{{{ $labels.instance }}}}",
            description=_fill(
                "{{ $value | humanizePercentage }} of [[events]] failed over the last [[w]]: above [[t]], or above "
                "[[f]]x its [[b]] average (and at least [[floor]]).",
                events=events, w=a.rate_window, t=f"{a.error_rate_warning:.0%}", f=_num(a.error_rate_baseline_factor),
                b=a.error_rate_baseline_window, floor=f"{a.error_rate_baseline_floor:.0%}",
            ),
        ))
        out.append(alert(
            "BotHighErrorRate",
            f"""
            {ratio} > {_num(a.error_rate_critical)}
            and
            {short_ratio} > {_num(a.error_rate_critical)}
            and
            {enough}
            """,
            for_=a.error_rate_critical_for, family="error_rate", labels={"component": component},
            keep_firing_for=a.short_window,
            summary=f"High error rate on {what} of bot {{{{ $labels.instance }}}}",
            description=_fill(
                "{{ $value | humanizePercentage }} of [[events]] failed over the last [[w]] "
                "(critical above [[t]], still failing over the last [[s]]).",
                events=events, w=a.rate_window, s=a.short_window, t=f"{a.error_rate_critical:.0%}",
            ),
        ))
    return out


def bot_alerts(settings: Settings) -> list[dict[str, Any]]:
    a = settings.alerts
    n = recording_names(settings)
    alert = _AlertFactory(settings)
    rules = _error_rate_alerts(settings, alert)
    rules += [
        alert(
            "BotHighLatency",
            f"{n.decision_latency} > {_num(a.latency_seconds)}",
            for_=a.latency_for, family="latency",
            summary="Bot {{ $labels.instance }} takes long to decide on messages",
            description=_fill(
                "[[q]] of messages waited {{ $value | humanizeDuration }} or more from intake to decision over the "
                "last [[w]] (warning above [[t]]s).",
                q=f"p{_num(a.latency_quantile * 100)}", w=a.rate_window, t=_num(a.latency_seconds),
            ),
        ),
        alert(
            "BotHighApiUsage",
            f"{n.api_usage_ratio} > {_num(a.api_usage_ratio)}",
            for_=a.api_usage_for, family="api_usage", labels={"reason": "near_limit"},
            summary="Bot {{ $labels.instance }} is close to the {{ $labels.api }} rate limit",
            description=_fill(
                "Requests to {{ $labels.api }} run at {{ $value | humanizePercentage }} of the provider's limit "
                "over the last [[w]] (warning above [[t]]).",
                w=a.rate_window, t=f"{a.api_usage_ratio:.0%}",
            ),
        ),
        alert(
            "BotHighApiUsage",
            f"""
            sum by (job, instance, api) (increase(hux_api_requests_total{{outcome="rate_limited"}}[{a.rate_window}])) > 0
            """,
            for_=a.api_usage_for, family="api_usage", labels={"reason": "rate_limited"},
            summary="Bot {{ $labels.instance }} is being rate limited by {{ $labels.api }}",
            description=_fill(
                "{{ $labels.api }} answered HTTP 429 to about {{ $value | humanize }} requests over the last [[w]].",
                w=a.rate_window,
            ),
        ),
        alert(
            "BotDatabaseDown",
            "hux_database_up == 0",
            for_=a.database_down_for, family="database",
            summary="Bot {{ $labels.instance }} cannot reach its database",
            description=_fill(
                "The bot's database probe has failed for at least [[for]]; results are held in memory "
                "until the database is back.", **{"for": a.database_down_for},
            ),
        ),
        alert(
            "BotPipelineStalled",
            f"""
            time() - max by (job, instance) (hux_last_message_processed_timestamp_seconds) > {_seconds(a.pipeline_stall_after)}
            and on (job, instance)
            sum by (job, instance) (increase(hux_messages_received_total[{a.pipeline_stall_after}])) > 0
            """,
            for_=a.pipeline_stall_for, family="pipeline_stalled",
            summary="Bot {{ $labels.instance }} receives messages but finishes none",
            description=_fill(
                "Messages keep arriving, but the last message was finished {{ $value | humanizeDuration }} ago "
                "(critical after [[after]]).", after=a.pipeline_stall_after,
            ),
        ),
        alert(
            "BotQueueBacklog",
            f"{n.queue_utilisation} > {_num(a.queue_backlog_ratio)}",
            for_=a.queue_backlog_for, family="queue_backlog",
            summary="Intake queue of bot {{ $labels.instance }} is filling up",
            description=_fill(
                "The intake queue is {{ $value | humanizePercentage }} full (warning above [[t]]); sources will "
                "soon wait for the workers.", t=f"{a.queue_backlog_ratio:.0%}",
            ),
        ),
        alert(
            "BotAlertDeliveryFailing",
            f"{n.alert_delivery_failure_ratio} > {_num(a.alert_delivery_failure_ratio)}",
            for_=a.alert_delivery_for, family="alert_delivery",
            summary="Token alerts to {{ $labels.channel }} are failing on bot {{ $labels.instance }}",
            description=_fill(
                "{{ $value | humanizePercentage }} of token alerts to {{ $labels.channel }} were not delivered over "
                "the last [[w]] (warning above [[t]]).",
                w=a.rate_window, t=f"{a.alert_delivery_failure_ratio:.0%}",
            ),
        ),
    ]
    return rules


def host_alerts(settings: Settings) -> list[dict[str, Any]]:
    a = settings.alerts
    n = recording_names(settings)
    alert = _AlertFactory(settings)
    fs = f'fstype!~"{_regex_alternatives(a.disk_fstypes_excluded)}"' if a.disk_fstypes_excluded else ""
    sel = "{" + fs + "}"
    free_ratio = f"node_filesystem_avail_bytes{sel} / node_filesystem_size_bytes{sel}"
    writable = f"node_filesystem_readonly{sel} == 0"
    return [
        alert(
            "HostMemoryHigh",
            f"{n.memory_utilisation} > {_num(a.memory_used_ratio)}",
            for_=a.memory_for, family="memory",
            summary="Host {{ $labels.instance }} is running out of memory",
            description=_fill(
                "{{ $value | humanizePercentage }} of memory is in use (MemAvailable counted as free; critical "
                "above [[t]]).", t=f"{a.memory_used_ratio:.0%}",
            ),
        ),
        alert(
            "HostDiskSpaceLow",
            f"""
            {free_ratio} < {_num(a.disk_free_ratio)}
            and
            {writable}
            """,
            for_=a.disk_for, family="disk", labels={"reason": "low_free_space"},
            summary="Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} is almost full",
            description=_fill(
                "Only {{ $value | humanizePercentage }} of {{ $labels.mountpoint }} ({{ $labels.device }}) is free "
                "(warning below [[t]]).", t=f"{a.disk_free_ratio:.0%}",
            ),
        ),
        alert(
            "HostDiskSpaceLow",
            f"""
            {free_ratio} < {_num(a.disk_predict_max_free_ratio)}
            and
            predict_linear(node_filesystem_avail_bytes{sel}[{a.disk_predict_window}], {_num(a.disk_fill_hours * 3600)}) < 0
            and
            {writable}
            """,
            for_=a.disk_for, family="disk", labels={"reason": "predicted_full"},
            summary="Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} will be full soon",
            description=_fill(
                "{{ $labels.mountpoint }} ({{ $labels.device }}) has {{ $value | humanizePercentage }} free and, at the "
                "rate of the last [[win]], will be full within [[h]] hours.",
                win=a.disk_predict_window, h=_num(a.disk_fill_hours),
            ),
        ),
    ]


def stack_alerts(settings: Settings) -> list[dict[str, Any]]:
    a = settings.alerts
    alert = _AlertFactory(settings)
    max_age = settings.backup.max_age
    return [
        alert(
            "ServiceDown",
            "up == 0",
            for_=a.service_down_for, family="service_down",
            summary="{{ $labels.job }} at {{ $labels.instance }} is down",
            description=_fill(
                "Prometheus has failed to scrape {{ $labels.job }} at {{ $labels.instance }} for at least [[for]].",
                **{"for": a.service_down_for},
            ),
        ),
        alert(
            "BotAbsent",
            'absent(up{job="bot"})',
            for_=a.service_down_for, family="service_down",
            summary="No bot instance is being scraped",
            description=_fill(
                "Prometheus has had no bot target at all for at least [[for]]: the bot job is missing from the "
                "scrape config or service discovery finds no instance.", **{"for": a.service_down_for},
            ),
        ),
        alert(
            "BackupTooOld",
            f"time() - hux_backup_last_success_timestamp_seconds > {_seconds(max_age)}",
            for_=a.backup_too_old_for, family="backup",
            summary="The last {{ $labels.kind }} backup is too old",
            description=_fill(
                "The last successful {{ $labels.kind }} backup finished {{ $value | humanizeDuration }} ago "
                "(warning after [[age]]).", age=max_age,
            ),
        ),
        alert(
            "PrometheusConfigReloadFailed",
            "prometheus_config_last_reload_successful == 0",
            for_=a.config_reload_for, family="prometheus_config",
            summary="Prometheus {{ $labels.instance }} failed to reload its configuration",
            description="The last configuration reload failed; Prometheus keeps running the previous configuration. "
                        "Run `hux check-config` to see why.",
        ),
        alert(
            "PrometheusRuleEvaluationFailures",
            f"sum by (job, instance, rule_group) (increase(prometheus_rule_evaluation_failures_total[{a.rate_window}])) > 0",
            for_=a.rule_failures_for, family="rule_evaluation",
            summary="Prometheus {{ $labels.instance }} fails to evaluate rules",
            description=_fill(
                "{{ $value | humanize }} rule evaluations failed in group {{ $labels.rule_group }} over the last [[w]]; "
                "alerts of that group may not fire.", w=a.rate_window,
            ),
        ),
        alert(
            "PrometheusAlertmanagerUnreachable",
            "prometheus_notifications_alertmanagers_discovered < 1",
            for_=a.alertmanager_unreachable_for, family="alertmanager_delivery", labels={"reason": "none_discovered"},
            summary="Prometheus {{ $labels.instance }} knows no Alertmanager",
            description="Prometheus has discovered {{ $value }} Alertmanagers: alerts fire but nobody is notified.",
        ),
        alert(
            "PrometheusAlertmanagerUnreachable",
            f"""
            sum by (job, instance, alertmanager) (increase(prometheus_notifications_errors_total[{a.rate_window}])) > 0
            """,
            for_=a.alertmanager_unreachable_for, family="alertmanager_delivery", labels={"reason": "send_errors"},
            summary="Prometheus {{ $labels.instance }} cannot send alerts to Alertmanager",
            description=_fill(
                "{{ $value | humanize }} alert batches to {{ $labels.alertmanager }} failed over the last [[w]].",
                w=a.rate_window,
            ),
        ),
        alert(
            "AlertmanagerNotificationsFailing",
            f"sum by (job, instance, integration) (increase(alertmanager_notifications_failed_total[{a.rate_window}])) > 0",
            for_=a.notifications_failing_for, family="notifications",
            summary="Alertmanager {{ $labels.instance }} cannot deliver {{ $labels.integration }} notifications",
            description=_fill(
                "{{ $value | humanize }} {{ $labels.integration }} notifications failed over the last [[w]]; check that "
                "receiver's address and secret.", w=a.rate_window,
            ),
        ),
        alert(
            "AlertmanagerConfigReloadFailed",
            "alertmanager_config_last_reload_successful == 0",
            for_=a.config_reload_for, family="alertmanager_config",
            summary="Alertmanager {{ $labels.instance }} failed to reload its configuration",
            description="The last configuration reload failed; Alertmanager keeps the previous configuration. "
                        "Run `hux check-config` to see why.",
        ),
        alert(
            "Watchdog",
            "vector(1)",
            for_="0s", family="watchdog",
            summary="Alerting pipeline heartbeat",
            description="Always firing. If the heartbeat receiver stops getting this alert, Prometheus, "
                        "Alertmanager or the path between them is broken.",
        ),
    ]


def rule_files(settings: Settings) -> dict[str, dict[str, Any]]:
    """File name -> rule file document."""
    interval = settings.prometheus.evaluation_interval
    return {
        "bot-alerts.yml": {"groups": [{"name": "hux-bot", "interval": interval,
                                       "rules": bot_recording_rules(settings) + bot_alerts(settings)}]},
        "host-alerts.yml": {"groups": [{"name": "hux-host", "interval": interval,
                                        "rules": host_recording_rules(settings) + host_alerts(settings)}]},
        "stack-alerts.yml": {"groups": [{"name": "hux-stack", "interval": interval, "rules": stack_alerts(settings)}]},
    }
