"""Recording and alerting rules, built from the settings.

Rules live in three groups, ``hux-bot``, ``hux-host`` and ``hux-stack``, plus
the paging fast path ``hux-bot-fast`` (the bot down and its database down,
evaluated every ``prometheus.fast_evaluation_interval``). The
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
instance in Alertmanager), a ``summary`` ending in the live value (the
description's ``$value``, or the ``value`` phrase given), a ``description``,
a ``runbook_url`` pointing at its section of ``docs/runbooks.md`` and, as
``first_steps``, that section's first steps (``hux.monitoring.runbooks``: one
text, shown inline by every notification and carried in the webhook payload).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hux.bot import metric_names as catalogue
from hux.monitoring import runbooks
from hux.monitoring.durations import duration_seconds
from hux.monitoring.settings import AlertSettings, Settings

#: the rule group of the paging fast path (``fast_alerts``) and the alerts it holds
FAST_GROUP = "hux-bot-fast"
FAST_ALERTS = ("BotAbsent", "BotDatabaseDown", "ServiceDown")

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
    "CallHitRateLow": "warning",
    "TelegramUserFloodWait": "warning",
    "BotNoLeader": "critical",
    "BotInstancesMissing": "warning",
    "BotClaimsExpiring": "warning",
    "BackupTooOld": "warning",
    "PrometheusConfigReloadFailed": "warning",
    "PrometheusRuleEvaluationFailures": "warning",
    "PrometheusAlertmanagerUnreachable": "critical",
    "AlertmanagerNotificationsFailing": "critical",
    "AlertmanagerConfigReloadFailed": "warning",
    "Watchdog": "none",
    # SLO burn rates (SRE workbook): a page, and a ticket for the slow burns
    "BotErrorBudgetBurning": "critical",
    "BotErrorBudgetBurningSlowly": "warning",
    # host (node-mixin): severities as the mixin chooses them; its "info" CPU alert is a warning here
    "HostInodesLow": "warning",
    "HostInodesExhausted": "critical",
    "FileDescriptorsNearLimit": "warning",
    "FileDescriptorsExhausted": "critical",
    "HostClockSkew": "warning",
    "HostClockNotSynchronising": "warning",
    "HostOomKill": "warning",
    "HostCpuSaturated": "warning",
    "HostNetworkErrors": "warning",
    "HostDiskIoSaturated": "warning",
    "HostConntrackNearLimit": "warning",
    "HostTextfileCollectorError": "warning",
    "HostMemoryMajorPageFaults": "warning",
    "HostNetworkInterfaceFlapping": "warning",
    "ServiceCrashlooping": "critical",
    # docker mode (cAdvisor)
    "ContainerRestarting": "warning",
    "ContainerMemoryNearLimit": "warning",
    # Prometheus / Alertmanager self-monitoring (prometheus-mixin, alertmanager-mixin)
    "PrometheusMissingRuleEvaluations": "warning",
    "PrometheusRuleGroupSlow": "warning",
    "PrometheusTsdbFailing": "warning",
    "PrometheusTsdbWalCorrupted": "warning",
    "PrometheusNotificationQueueFull": "warning",
    "PrometheusErrorSendingAlerts": "warning",
    "PrometheusTargetSyncFailing": "critical",
    "PrometheusScrapeLimitHit": "warning",
    "PrometheusNotIngestingSamples": "warning",
    "AlertmanagerClusterInconsistent": "critical",
    "PrometheusScrapeSamplesRejected": "warning",
    "PrometheusHighQueryLoad": "warning",
    # the HA layer (stack.topology = "ha"): warnings, the pair or the cluster still delivers
    "PrometheusReplicaDown": "warning",
    "PrometheusRemoteWriteBehind": "warning",
    "PrometheusRemoteWriteFailing": "warning",
    "RemoteWriteSamplesDropped": "warning",
    "AlertmanagerClusterMembersMissing": "warning",
    "AlertmanagerMemberNotificationsFailing": "warning",
    "VictoriaMetricsDown": "warning",
    "VictoriaMetricsDiskFilling": "warning",
}

#: the rule group and file of the HA layer, rendered only when stack.topology is "ha"
HA_GROUP = "hux-ha"
HA_RULE_FILE = "ha-alerts.yml"

#: the SLOs of the bot (settings ``alerts.slo_*``): the ``slo`` label value -> what a bad event is
SLOS = {
    "decision_success": "token decisions ended with a failed stage",
    "decision_latency": "messages were not decided within [[latency]]s",
}


#: the label cAdvisor gives a container from its compose service (docker label com.docker.compose.service)
COMPOSE_SERVICE = "container_label_com_docker_compose_service"


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

    @staticmethod
    def call_hit_ratio(window: str) -> str:
        return f"instance:hux_calls_hit:ratio_increase{window}"

    @property
    def memory_utilisation(self) -> str:
        return "instance:node_memory_utilisation:ratio"

    @property
    def cpu_utilisation(self) -> str:
        return f"instance:node_cpu_utilisation:rate{self.window}"

    @staticmethod
    def slo_error_ratio(window: str) -> str:
        """Share of bad events of an SLO (label ``slo``) over ``window`` (Sloth's ``slo:sli_error:ratio_rate<w>``)."""
        return f"instance_slo:hux_sli_error:ratio_rate{window}"


def recording_names(settings: Settings) -> RecordingNames:
    a = settings.alerts
    return RecordingNames(a.rate_window, a.short_window, a.latency_quantile)


# --- helpers ---------------------------------------------------------------------


def _regex_alternatives(values: tuple[str, ...] | list[str]) -> str:
    return "|".join(values)


def _le_matcher(edge: float) -> str:
    """``le`` regex matching a bucket edge as clients write it (``10.0``) and as Prometheus 3 normalises it (``10``)."""
    forms = dict.fromkeys((_num(edge), repr(float(edge))))
    return "|".join(form.replace(".", "\\\\.") for form in forms)


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
                 labels: dict[str, str] | None = None, keep_firing_for: str | None = None,
                 value: str | None = None) -> dict[str, Any]:
        """One alerting rule. ``value``: the live value as the summary ends in it (default: the
        description's first ``{{ $value … }}``; ``""`` when the value says nothing, e.g. ``up == 0``)."""
        rule: dict[str, Any] = {"alert": name, "expr": _dedent(expr)}
        if duration_seconds(for_) > 0:
            rule["for"] = for_
        if keep_firing_for and duration_seconds(keep_firing_for) > 0:
            rule["keep_firing_for"] = keep_firing_for
        rule["labels"] = {"severity": ALERTS[name], "alert_family": family, **(labels or {})}
        if value is None:
            found = None if "$value" in summary else _LIVE_VALUE.search(description)
            value = found.group(0) if found else ""
        rule["annotations"] = {
            "summary": f"{summary}: {value}" if value else summary,
            "description": description,
            "runbook_url": f"{self.runbook_base}#{runbook_anchor(name)}",
        }
        steps = runbooks.first_steps_text(name)
        if steps:
            rule["annotations"]["first_steps"] = steps
        return rule


#: the live value in an annotation: ``{{ $value }}`` or ``{{ $value | humanize… }}``
_LIVE_VALUE = re.compile(r"\{\{ \$value(?: \| \w+)? \}\}")


def _dedent(expr: str) -> str:
    lines = [line.rstrip() for line in expr.strip("\n").splitlines()]
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines)


# --- recording rules ----------------------------------------------------------------


def recording_rules(settings: Settings) -> list[dict[str, Any]]:
    """Every recording rule: the bot's (``hux_*``) then the host's (``node_*``)."""
    return bot_recording_rules(settings) + slo_recording_rules(settings) + host_recording_rules(settings)


def slo_windows(settings: Settings) -> list[str]:
    """Every window a burn-rate condition reads, once each, shortest first."""
    windows = {w for _, long, short, _ in settings.alerts.slo_windows() for w in (long, short)}
    return sorted(windows, key=duration_seconds)


def _slo_events(slo: str, window: str, settings: Settings) -> tuple[str, str]:
    """(bad events rate, all events rate) of an SLO over ``window``, by job and instance."""
    a = settings.alerts
    if slo == "decision_success":
        decided = 'hux_tokens_processed_total{outcome!="cooldown"}'
        failed = 'hux_tokens_processed_total{outcome="failed"}'
        return (f"sum by (job, instance) (rate({failed}[{window}]))",
                f"sum by (job, instance) (rate({decided}[{window}]))")
    fast = f'hux_message_decision_latency_seconds_bucket{{le=~"{_le_matcher(a.slo_latency_seconds)}"}}'
    total = f"sum by (job, instance) (rate(hux_message_decision_latency_seconds_count[{window}]))"
    return f"({total} - sum by (job, instance) (rate({fast}[{window}])))", total


def slo_recording_rules(settings: Settings) -> list[dict[str, Any]]:
    """The error ratio of each SLO over each burn-rate window (none when ``alerts.slo_alerts`` is off)."""
    if not settings.alerts.slo_alerts:
        return []
    rules = []
    for window in slo_windows(settings):
        for slo in SLOS:
            bad, total = _slo_events(slo, window, settings)
            if slo == "decision_success":
                # "or ... * 0": no failed decision yet is a ratio of 0, not a missing series
                bad = f"(\n  {bad}\n  or\n  {total} * 0\n)"
            rules.append({
                "record": RecordingNames.slo_error_ratio(window),
                "expr": f"{bad}\n/\n{total}",
                "labels": {"slo": slo},
            })
    return rules


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
            # This instance's queue, or with several instances the inbox they share: both bounded by bot.queue_capacity.
            "expr": _dedent("""
                max by (job, instance) ({__name__=~"hux_queue_length|hux_bot_inbox_pending"})
                / on (job, instance) (hux_queue_capacity > 0)
            """),
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
        {
            "record": n.call_hit_ratio(a.call_hit_rate_window),
            "expr": _dedent(f"""
                (
                  sum by (job, instance) (increase(hux_calls_resolved_total{{result="hit"}}[{a.call_hit_rate_window}]))
                  or
                  sum by (job, instance) (increase(hux_calls_resolved_total[{a.call_hit_rate_window}])) * 0
                )
                /
                sum by (job, instance) (increase(hux_calls_resolved_total[{a.call_hit_rate_window}]))
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
    for component, _label, ratio, short_ratio, volume, what, events in scopes:
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
            value=f"p{_num(a.latency_quantile * 100)} {{{{ $value | humanizeDuration }}}}",
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
            value="{{ $value | humanize }} HTTP 429s",
            description=_fill(
                "{{ $labels.api }} answered HTTP 429 to about {{ $value | humanize }} requests over the last [[w]].",
                w=a.rate_window,
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
            value="last finished {{ $value | humanizeDuration }} ago",
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
                "The intake queue (several instances: the inbox they share) is {{ $value | humanizePercentage }} "
                "full (warning above [[t]]); sources will soon wait for the workers.", t=f"{a.queue_backlog_ratio:.0%}",
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
        alert(
            "CallHitRateLow",
            f"""
            {n.call_hit_ratio(a.call_hit_rate_window)} < {_num(a.call_hit_rate_floor)}
            and on (job, instance)
            sum by (job, instance) (increase(hux_calls_resolved_total[{a.call_hit_rate_window}])) >= {_num(a.call_hit_rate_min_calls)}
            """,
            for_=a.call_hit_rate_for, family="call_hit_rate",
            summary="Calls of bot {{ $labels.instance }} rarely reach 2x",
            description=_fill(
                "Only {{ $value | humanizePercentage }} of the calls resolved over the last [[w]] reached 2x within "
                "24 h (warning under [[t]]): the score lets poor tokens through.",
                w=a.call_hit_rate_window, t=f"{a.call_hit_rate_floor:.0%}",
            ),
        ),
        alert(
            "TelegramUserFloodWait",
            f"""
            sum by (job, instance) (rate(hux_telegram_flood_wait_seconds_total{{source="telegram_user"}}[{a.telegram_flood_wait_window}]))
            > {_num(a.telegram_flood_wait_ratio)}
            """,
            for_=a.telegram_flood_wait_for, family="telegram_user",
            summary="The Telegram user account of bot {{ $labels.instance }} mostly waits out FloodWaits",
            description=_fill(
                "The account spent {{ $value | humanizePercentage }} of the last [[w]] waiting out Telegram's "
                "FloodWaits (warning above [[t]]): it reads nothing meanwhile, so its chats' messages arrive late.",
                w=a.telegram_flood_wait_window, t=f"{a.telegram_flood_wait_ratio:.0%}",
            ),
        ),
    ]
    return rules + cluster_alerts(settings)


def cluster_alerts(settings: Settings) -> list[dict[str, Any]]:
    """Several bot instances on one PostgreSQL (hux.bot.cluster): the leader, the live instances, lapsed claims."""
    a = settings.alerts
    alert = _AlertFactory(settings)
    sel = "{" + settings.stack.bot_selector + "}"
    return [
        alert(
            "BotNoLeader",
            f"sum by (job) (hux_bot_leader{sel}) == 0",
            for_=a.leader_missing_for, family="bot_leader",
            summary="No bot instance leads: nobody reads Telegram",
            value="{{ $value }} leaders",
            description=_fill(
                "Bot instances answer, but {{ $value }} of them hold the leader lease, for [[for]]: no instance "
                "polls Telegram or replays the feed, so no new message arrives.", **{"for": a.leader_missing_for},
            ),
        ),
        alert(
            "BotInstancesMissing",
            f"""
            max by (job) (hux_bot_instances_live{sel}) < max by (job) (hux_bot_instances_configured{sel})
            """,
            for_=a.instances_missing_for, family="bot_instances",
            summary="Fewer bot instances are live than configured",
            value="{{ $value }} live",
            description=_fill(
                "Only {{ $value }} bot instances have a heartbeat in the database, fewer than bot.instances, for "
                "[[for]]: the others stopped or cannot reach the database; the rest carry their work.",
                **{"for": a.instances_missing_for},
            ),
        ),
        alert(
            "BotClaimsExpiring",
            f"sum by (job) (increase(hux_bot_claims_expired_total{sel}[{a.rate_window}])) > 0",
            for_=a.claims_expired_for, family="bot_claims",
            summary="Bot instances take over work whose claim lapsed",
            value="{{ $value | humanize }} messages",
            description=_fill(
                "About {{ $value | humanize }} messages were taken over in the last [[w]] after their instance's "
                "claim lapsed: an instance stopped or lost the database mid-work (its alerts may be counted in "
                "hux_alerts_unconfirmed_total).", w=a.rate_window,
            ),
        ),
    ]


def slo_alerts(settings: Settings) -> list[dict[str, Any]]:
    """Multi-window, multi-burn-rate alerts: a page (critical) and a ticket (warning) per SLO.

    A condition holds when the SLO's error ratio exceeds burn rate x error budget over both its long
    window (how much budget is gone) and its short window (the burn still goes on, so the alert
    resolves soon after recovery). Sloth's shape: one alert per severity, its conditions joined by ``or``.
    """
    a = settings.alerts
    if not a.slo_alerts:
        return []
    alert = _AlertFactory(settings)
    out = []
    for severity, name, for_ in (("critical", "BotErrorBudgetBurning", a.slo_page_for),
                                 ("warning", "BotErrorBudgetBurningSlowly", a.slo_ticket_for)):
        windows = [(long, short, burn) for sev, long, short, burn in a.slo_windows() if sev == severity]
        for slo, objective in a.slo_objectives().items():
            budget = 1 - objective
            sel = f'{{slo="{slo}"}}'
            conditions = []
            for long, short, burn in windows:
                limit = _num(round(burn * budget, 12))
                conditions.append(
                    f"(\n  {RecordingNames.slo_error_ratio(short)}{sel} > {limit}\n  and\n"
                    f"  {RecordingNames.slo_error_ratio(long)}{sel} > {limit}\n)"
                )
            _, events = _slo_events(slo, windows[0][1], settings)
            first_short = windows[0][1]
            # fewer events than error_rate_min_events in the first short window: no ratio counts
            body = "\nor\n".join(conditions).replace("\n", "\n  ")
            expr = (
                f"(\n  {body}\n)\nand on (job, instance)\n"
                f"{events} * {_seconds(first_short)} >= {_num(a.error_rate_min_events)}"
            )
            rates = " or ".join(f"{_num(burn)}x over [[{i}l]] and [[{i}s]]" for i, (_, _, burn) in enumerate(windows))
            shorts = " or ".join(f"[[{i}s]]" for i in range(len(windows)))
            text = _fill(
                "{{ $value | humanizePercentage }} of [[what]] over the last " + shorts + "; the SLO allows "
                "[[budget]]. The error budget burns faster than " + rates + ".",
                what=_fill(SLOS[slo], latency=_num(a.slo_latency_seconds)),
                budget=_num(round(budget * 100, 6)) + "%",
                **{f"{i}l": long for i, (long, _, _) in enumerate(windows)},
                **{f"{i}s": short for i, (_, short, _) in enumerate(windows)},
            )
            out.append(alert(
                name, expr, for_=for_, family="slo", labels={"slo": slo},
                summary=("Bot {{ $labels.instance }} burns its " + slo.replace("_", " ") + " error budget"
                         + (" fast" if severity == "critical" else "")),
                description=text,
            ))
    return out


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
            value="{{ $value | humanizePercentage }} free",
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
            value="{{ $value | humanizePercentage }} free",
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
        # The bot's ServiceDown is on the fast path (fast_alerts); every other job is scraped every scrape_interval.
        # In the HA topology one replica, member or the store down is a warning of ha_alerts, not a page.
        _service_down(alert, _service_down_selector(settings), a.service_down_for),
        alert(
            "BackupTooOld",
            f"time() - hux_backup_last_success_timestamp_seconds > {_seconds(max_age)}",
            for_=a.backup_too_old_for, family="backup",
            summary="The last {{ $labels.kind }} backup is too old",
            value="finished {{ $value | humanizeDuration }} ago",
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
            value="{{ $value | humanize }} failed",
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
            value="",
            description="Prometheus has discovered {{ $value }} Alertmanagers: alerts fire but nobody is notified.",
        ),
        alert(
            "PrometheusAlertmanagerUnreachable",
            # Critical only when every Alertmanager fails: errors to some of them are PrometheusErrorSendingAlerts.
            f"""
            min by (job, instance) (
              sum by (job, instance, alertmanager) (increase(prometheus_notifications_errors_total[{a.rate_window}]))
            ) > 0
            """,
            for_=a.alertmanager_unreachable_for, family="alertmanager_delivery", labels={"reason": "send_errors"},
            summary="Prometheus {{ $labels.instance }} cannot send alerts to Alertmanager",
            value="{{ $value | humanize }} failed",
            description=_fill(
                "Alert batches to every Alertmanager failed over the last [[w]] (at least {{ $value | humanize }} to "
                "each).", w=a.rate_window,
            ),
        ),
        alert(
            "AlertmanagerNotificationsFailing",
            # HA: critical when every member fails that integration; one member alone is a warning (ha_alerts)
            f"min by (job, integration) ({_am_failed(a.rate_window)}) > 0" if settings.stack.ha else
            f"{_am_failed(a.rate_window)} > 0",
            for_=a.notifications_failing_for, family="notifications",
            summary=("No Alertmanager of the cluster can deliver {{ $labels.integration }} notifications"
                     if settings.stack.ha else
                     "Alertmanager {{ $labels.instance }} cannot deliver {{ $labels.integration }} notifications"),
            value="{{ $value | humanize }} failed",
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


def _am_failed(window: str) -> str:
    return f"sum by (job, instance, integration) (increase(alertmanager_notifications_failed_total[{window}]))"


def _service_down_selector(settings: Settings) -> str:
    stack = settings.stack
    if not stack.ha:
        return f'job!="{stack.bot_job}"'
    jobs = (stack.bot_job, stack.prometheus_job, stack.alertmanager_job, stack.victoria_metrics_job)
    return f'job!~"{_regex_alternatives(jobs)}"'


def _service_down(alert: _AlertFactory, selector: str, for_: str) -> dict[str, Any]:
    return alert(
        "ServiceDown",
        f"up{{{selector}}} == 0",
        for_=for_, family="service_down",
        summary="{{ $labels.job }} at {{ $labels.instance }} is down",
        description=_fill(
            "Prometheus has failed to scrape {{ $labels.job }} at {{ $labels.instance }} for at least [[for]].",
            **{"for": for_},
        ),
    )


def fast_alerts(settings: Settings) -> list[dict[str, Any]]:
    """The paging fast path: the bot down and its database down, in a group of their own.

    The group runs every ``prometheus.fast_evaluation_interval`` over the bot job, which is scraped every
    ``prometheus.bot_scrape_interval``; its ``for`` (``alerts.bot_down_for``, ``database_down_for``) outlasts
    two bot scrapes, so one or two lost scrapes (a supervised restart under 10 s) do not page. Keeping these
    rules out of the other groups keeps the rest of the rules at the slower, cheaper interval.
    """
    a = settings.alerts
    alert = _AlertFactory(settings)
    return [
        _service_down(alert, settings.stack.bot_selector, a.bot_down_for),
        alert(
            "BotAbsent",
            f"absent(up{{{settings.stack.bot_selector}}})",
            for_=a.bot_down_for, family="service_down",
            summary="No bot instance is being scraped",
            description=_fill(
                "Prometheus has had no bot target at all for at least [[for]]: the bot job is missing from the "
                "scrape config or service discovery finds no instance.", **{"for": a.bot_down_for},
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
    ]


def rule_files(settings: Settings) -> dict[str, dict[str, Any]]:
    """File name -> rule file document."""
    interval = settings.prometheus.evaluation_interval
    return {
        "bot-fast-alerts.yml": {"groups": [{"name": FAST_GROUP,
                                            "interval": settings.prometheus.fast_evaluation_interval,
                                            "rules": fast_alerts(settings)}]},
        "bot-alerts.yml": {"groups": [{"name": "hux-bot", "interval": interval,
                                       "rules": bot_recording_rules(settings) + slo_recording_rules(settings)
                                       + bot_alerts(settings) + slo_alerts(settings)}]},
        "host-alerts.yml": {"groups": [{"name": "hux-host", "interval": interval,
                                        "rules": host_recording_rules(settings) + host_alerts(settings)
                                        + host_resource_alerts(settings)}]},
        "stack-alerts.yml": {"groups": [{"name": "hux-stack", "interval": interval,
                                         "rules": stack_alerts(settings) + self_monitoring_alerts(settings)}]},
        **({HA_RULE_FILE: {"groups": [{"name": HA_GROUP, "interval": interval, "rules": ha_alerts(settings)}]}}
           if settings.stack.ha else {}),
    }


def ha_alerts(settings: Settings) -> list[dict[str, Any]]:
    """The HA layer watching itself (prometheus-mixin's remote-write alerts, alertmanager-mixin's cluster ones).

    Every one is a warning: a replica, a member or the store down leaves the pair, the cluster and the
    Prometheus TSDBs working, so nobody is paged; the whole layer down is the Watchdog's silence.
    """
    a = settings.alerts
    stack = settings.stack
    alert = _AlertFactory(settings)
    w = a.short_window
    prom, am, vm = stack.prometheus_job, stack.alertmanager_job, stack.victoria_metrics_job
    members = len(stack.alertmanager_members())
    remote = "job, instance, remote_name, url"
    return [
        alert(
            "PrometheusReplicaDown",
            f'up{{job="{prom}"}} == 0 and on () (max(up{{job="{prom}"}}) == 1)',
            for_=a.replica_down_for, family="prometheus_replica",
            summary="Prometheus replica {{ $labels.instance }} is down; its pair still runs",
            value="",
            description=_fill(
                "The other replica has failed to scrape {{ $labels.instance }} for at least [[for]]. Alerts still "
                "fire from the pair and VictoriaMetrics still gets its samples; restart the replica before the "
                "pair is the only one.", **{"for": a.replica_down_for},
            ),
        ),
        alert(
            "PrometheusRemoteWriteBehind",
            f"""
            max_over_time(prometheus_remote_storage_highest_timestamp_in_seconds{{job="{prom}"}}[{w}])
            - ignoring (remote_name, url) group_right
            max_over_time(prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{job="{prom}"}}[{w}])
            > {_num(a.remote_write_lag_seconds)}
            """,
            for_=a.remote_write_behind_for, family="remote_write",
            summary="Prometheus {{ $labels.instance }} is behind in remote write to {{ $labels.remote_name }}",
            value="{{ $value | humanizeDuration }} behind",
            description=_fill(
                "The newest sample sent to {{ $labels.url }} is {{ $value | humanizeDuration }} older than the newest "
                "one ingested (warning above [[lag]] s): the long-term store and Grafana's default view lag "
                "behind.", lag=_num(a.remote_write_lag_seconds),
            ),
        ),
        alert(
            "PrometheusRemoteWriteFailing",
            f"""
            sum by ({remote}) (rate(prometheus_remote_storage_samples_retried_total{{job="{prom}"}}[{w}]))
            > 0
            """,
            for_=a.remote_write_failing_for, family="remote_write",
            summary="Prometheus {{ $labels.instance }} cannot write to {{ $labels.remote_name }}",
            value="{{ $value | humanize }} samples/s retried",
            description=_fill(
                "Sends to {{ $labels.url }} have failed and been retried ({{ $value | humanize }} samples/s over the "
                "last [[w]]); Prometheus keeps the samples in its write-ahead log and sends them once the store "
                "answers.", w=w,
            ),
        ),
        alert(
            "RemoteWriteSamplesDropped",
            f"""
            sum by ({remote}) (
              increase(prometheus_remote_storage_samples_failed_total{{job="{prom}"}}[{w}])
              + increase(prometheus_remote_storage_samples_dropped_total{{job="{prom}"}}[{w}])
            ) > 0
            """,
            for_=a.remote_write_dropped_for, family="remote_write", labels={"component": "prometheus"},
            summary="Prometheus {{ $labels.instance }} dropped samples bound for {{ $labels.remote_name }}",
            value="{{ $value | humanize }} lost",
            description=_fill(
                "{{ $value | humanize }} samples were refused for good or dropped on the way to {{ $labels.url }} "
                "over the last [[w]]; the long-term store lacks them (the replicas still hold them).", w=w,
            ),
        ),
        alert(
            "RemoteWriteSamplesDropped",
            f'sum by (job, instance, reason) (increase(vm_rows_ignored_total{{job="{vm}"}}[{w}])) > 0',
            # VictoriaMetrics' own reason label stays
            for_=a.remote_write_dropped_for, family="remote_write", labels={"component": "victoria_metrics"},
            summary="VictoriaMetrics {{ $labels.instance }} ignored incoming samples",
            value="{{ $value | humanize }} ignored",
            description=_fill(
                "{{ $value | humanize }} incoming rows were ignored over the last [[w]] (VictoriaMetrics' "
                "reason: {{ $labels.reason }}); the long-term store lacks them.", w=w,
            ),
        ),
        alert(
            "AlertmanagerClusterMembersMissing",
            f'up{{job="{am}"}} == 0 and on () (max(up{{job="{am}"}}) == 1)',
            for_=a.alertmanager_member_down_for, family="alertmanager_cluster", labels={"reason": "down"},
            summary="Alertmanager {{ $labels.instance }} is down; the rest of the cluster notifies",
            value="",
            description=_fill(
                "Prometheus has failed to reach cluster member {{ $labels.instance }} for at least [[for]]. The "
                "other members notify and keep the silences; restart it before it is the last one.",
                **{"for": a.alertmanager_member_down_for},
            ),
        ),
        alert(
            "AlertmanagerClusterMembersMissing",
            f'alertmanager_cluster_members{{job="{am}"}} < {members}',
            for_=a.alertmanager_member_down_for, family="alertmanager_cluster", labels={"reason": "members"},
            summary="Alertmanager {{ $labels.instance }} sees fewer cluster members than configured",
            value="sees {{ $value }}",
            description=_fill(
                "It sees {{ $value }} of the [[n]] members in its gossip cluster: a member is down or cannot be "
                "reached on its cluster port, so silences and notification state may not reach it.", n=members,
            ),
        ),
        alert(
            "AlertmanagerMemberNotificationsFailing",
            f"""
            {_am_failed(a.rate_window)} > 0
            unless on (job, integration)
            (min by (job, integration) ({_am_failed(a.rate_window)}) > 0)
            """,
            for_=a.alertmanager_member_send_for, family="notifications",
            summary="Alertmanager {{ $labels.instance }} fails {{ $labels.integration }} notifications; its peers do not",
            value="{{ $value | humanize }} failed",
            description=_fill(
                "{{ $value | humanize }} {{ $labels.integration }} notifications from this member failed over the "
                "last [[w]] while another member's did not: the next member sends after its peer timeout, so "
                "notifications are late, not lost. Check this member's network and secret files.", w=a.rate_window,
            ),
        ),
        alert(
            "VictoriaMetricsDown",
            f'up{{job="{vm}"}} == 0',
            for_=a.victoria_metrics_down_for, family="victoria_metrics",
            summary="VictoriaMetrics at {{ $labels.instance }} is down",
            value="",
            description=_fill(
                "Prometheus has failed to scrape VictoriaMetrics for at least [[for]]. Grafana's default view has "
                "no new data; both replicas keep the samples in their write-ahead logs and send them once it is "
                "back.", **{"for": a.victoria_metrics_down_for},
            ),
        ),
        alert(
            "VictoriaMetricsDiskFilling",
            f'vm_free_disk_space_bytes{{job="{vm}"}} < {_num(a.victoria_metrics_free_bytes)}',
            for_=a.victoria_metrics_disk_for, family="victoria_metrics", labels={"reason": "low"},
            summary="VictoriaMetrics {{ $labels.instance }} is running out of disk",
            value="{{ $value | humanize1024 }}B free",
            description=_fill(
                "{{ $value | humanize1024 }}B are free under {{ $labels.path }} (warning below [[min]]B); "
                "VictoriaMetrics stops accepting samples when the disk is full.",
                min=_num(a.victoria_metrics_free_bytes),
            ),
        ),
        alert(
            "VictoriaMetricsDiskFilling",
            f"""
            predict_linear(vm_free_disk_space_bytes{{job="{vm}"}}[{a.disk_predict_window}],
                           {_num(a.victoria_metrics_fill_hours * 3600)}) < 0
            """,
            for_=a.victoria_metrics_disk_for, family="victoria_metrics", labels={"reason": "predicted"},
            summary="VictoriaMetrics {{ $labels.instance }} will run out of disk soon",
            value="",
            description=_fill(
                "At the trend of the last [[win]] the disk under {{ $labels.path }} is full within [[h]] hours; "
                "lower victoria_metrics.retention_period or give it more disk.",
                win=a.disk_predict_window, h=_num(a.victoria_metrics_fill_hours),
            ),
        ),
    ]


def host_resource_alerts(settings: Settings) -> list[dict[str, Any]]:
    """node-mixin parity: inodes, file descriptors, clock, OOM kills, CPU, network, disk I/O, conntrack, textfile."""
    a = settings.alerts
    n = recording_names(settings)
    alert = _AlertFactory(settings)
    fs = f'fstype!~"{_regex_alternatives(a.disk_fstypes_excluded)}"' if a.disk_fstypes_excluded else ""
    sel = "{" + fs + "}"
    # a filesystem that reports no inodes (vfat, btrfs) has no inode ratio
    inodes_free = f"node_filesystem_files_free{sel} / (node_filesystem_files{sel} > 0)"
    writable = f"node_filesystem_readonly{sel} == 0"
    rules = [
        alert(
            "HostInodesLow",
            f"""
            {inodes_free} < {_num(a.inodes_free_ratio)}
            and
            {writable}
            """,
            for_=a.inodes_for, family="inodes", labels={"reason": "low_free_inodes"},
            summary="Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} is almost out of inodes",
            value="{{ $value | humanizePercentage }} free",
            description=_fill(
                "Only {{ $value | humanizePercentage }} of the inodes of {{ $labels.mountpoint }} "
                "({{ $labels.device }}) are free (warning below [[t]]); new files fail even with bytes free.",
                t=f"{a.inodes_free_ratio:.0%}",
            ),
        ),
        alert(
            "HostInodesLow",
            f"""
            {inodes_free} < {_num(a.inodes_predict_max_free_ratio)}
            and
            predict_linear(node_filesystem_files_free{sel}[{a.disk_predict_window}], {_num(a.inodes_fill_hours * 3600)}) < 0
            and
            {writable}
            """,
            for_=a.inodes_for, family="inodes", labels={"reason": "predicted_exhausted"},
            summary="Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} will run out of inodes soon",
            value="{{ $value | humanizePercentage }} free",
            description=_fill(
                "{{ $labels.mountpoint }} ({{ $labels.device }}) has {{ $value | humanizePercentage }} of its inodes "
                "free and, at the rate of the last [[win]], runs out within [[h]] hours.",
                win=a.disk_predict_window, h=_num(a.inodes_fill_hours),
            ),
        ),
        alert(
            "HostInodesExhausted",
            f"""
            {inodes_free} < {_num(a.inodes_critical_free_ratio)}
            and
            {writable}
            """,
            for_=a.inodes_for, family="inodes",
            summary="Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} is out of inodes",
            value="{{ $value | humanizePercentage }} free",
            description=_fill(
                "Only {{ $value | humanizePercentage }} of the inodes of {{ $labels.mountpoint }} "
                "({{ $labels.device }}) are free (critical below [[t]]): creating files is about to fail.",
                t=f"{a.inodes_critical_free_ratio:.0%}",
            ),
        ),
    ]
    fd_scopes = (
        ("host", "node_filefd_allocated / (node_filefd_maximum > 0)",
         "Host {{ $labels.instance }}", "of the kernel's file handles are allocated"),
        ("process", "process_open_fds / (process_max_fds > 0)",
         "{{ $labels.job }} at {{ $labels.instance }}", "of the process's file descriptor limit is in use"),
    )
    for name, ratio_key in (("FileDescriptorsNearLimit", "filefd_warning_ratio"),
                            ("FileDescriptorsExhausted", "filefd_critical_ratio")):
        threshold = getattr(a, ratio_key)
        for scope, ratio, who, what in fd_scopes:
            rules.append(alert(
                name, f"{ratio} > {_num(threshold)}",
                for_=a.filefd_for, family="file_descriptors", labels={"scope": scope},
                summary=f"{who} is {'near' if name.endswith('NearLimit') else 'at'} its file descriptor limit",
                description=_fill(
                    "{{ $value | humanizePercentage }} [[what]] ([[sev]] above [[t]]); new connections and files "
                    "fail at the limit.", what=what, t=f"{threshold:.0%}",
                    sev="warning" if name.endswith("NearLimit") else "critical",
                ),
            ))
    offset = "node_timex_offset_seconds"
    rules += [
        alert(
            "HostClockSkew",
            f"""
            (
              {offset} > {_num(a.clock_offset_seconds)}
              and
              deriv({offset}[{a.rate_window}]) >= 0
            )
            or
            (
              {offset} < -{_num(a.clock_offset_seconds)}
              and
              deriv({offset}[{a.rate_window}]) <= 0
            )
            """,
            for_=a.clock_for, family="clock",
            summary="Clock of {{ $labels.instance }} is off and not getting better",
            value="{{ $value | humanizeDuration }} off",
            description=_fill(
                "The clock is {{ $value | humanizeDuration }} off its time source (warning beyond [[t]]s) and the "
                "offset is not shrinking; TLS to the market APIs and the timestamps of alerts go wrong.",
                t=_num(a.clock_offset_seconds),
            ),
        ),
        alert(
            "HostClockNotSynchronising",
            f"""
            node_timex_maxerror_seconds >= {_num(a.clock_maxerror_seconds)}
            and
            min_over_time(node_timex_sync_status[{a.rate_window}]) == 0
            """,
            for_=a.clock_for, family="clock",
            summary="Clock of {{ $labels.instance }} is not synchronising",
            value="maximum error {{ $value | humanizeDuration }}",
            description=_fill(
                "The kernel reports the clock unsynchronised for [[w]], with a maximum error of "
                "{{ $value | humanizeDuration }} (warning from [[t]]s): NTP/chrony is not running or cannot "
                "reach a server.", w=a.rate_window, t=_num(a.clock_maxerror_seconds),
            ),
        ),
        alert(
            "HostOomKill",
            f"increase(node_vmstat_oom_kill[{a.rate_window}]) > 0",
            for_=a.oom_kill_for, family="oom_kill",
            summary="The kernel on {{ $labels.instance }} killed a process for lack of memory",
            value="{{ $value | humanize }} killed",
            description=_fill(
                "{{ $value | humanize }} processes were OOM-killed over the last [[w]]; `dmesg` names them "
                "(the bot, Prometheus or Alertmanager restart under the supervisor).", w=a.rate_window,
            ),
        ),
        alert(
            "HostCpuSaturated",
            f"{n.cpu_utilisation} > {_num(a.cpu_used_ratio)}",
            for_=a.cpu_for, family="cpu", labels={"reason": "cpu_busy"},
            summary="CPU of {{ $labels.instance }} has been busy for a long time",
            description=_fill(
                "The CPUs were {{ $value | humanizePercentage }} busy over the last [[w]] (warning above [[t]]); "
                "scrapes, rule evaluations and the bot's decisions slow down.",
                w=a.rate_window, t=f"{a.cpu_used_ratio:.0%}",
            ),
        ),
        alert(
            "HostCpuSaturated",
            f"""
            node_load1
            / on (job, instance)
            count by (job, instance) (node_cpu_seconds_total{{mode="idle"}})
            > {_num(a.load_per_core)}
            """,
            for_=a.cpu_for, family="cpu", labels={"reason": "load"},
            summary="Load on {{ $labels.instance }} is high for its CPUs",
            value="{{ $value | humanize }} per CPU",
            description=_fill(
                "The 1-minute load is {{ $value | humanize }} per CPU (warning above [[t]]): runnable tasks wait "
                "for a CPU (or for I/O, which Linux counts as load too).", t=_num(a.load_per_core),
            ),
        ),
    ]
    for direction in ("receive", "transmit"):
        rules.append(alert(
            "HostNetworkErrors",
            f"""
            rate(node_network_{direction}_errs_total[{a.rate_window}])
            /
            (rate(node_network_{direction}_packets_total[{a.rate_window}]) > 0)
            > {_num(a.network_error_ratio)}
            """,
            for_=a.network_errors_for, family="network", labels={"direction": direction},
            summary=f"Interface {{{{ $labels.device }}}} on {{{{ $labels.instance }}}} has {direction} errors",
            description=_fill(
                "{{ $value | humanizePercentage }} of the packets [[d]] on {{ $labels.device }} over the last [[w]] "
                "were errors (warning above [[t]]).",
                d="received" if direction == "receive" else "sent", w=a.rate_window,
                t=f"{a.network_error_ratio:.0%}",
            ),
        ))
    rules += [
        alert(
            "HostDiskIoSaturated",
            f"rate(node_disk_io_time_weighted_seconds_total[{a.rate_window}]) > {_num(a.disk_io_queue_depth)}",
            for_=a.disk_io_for, family="disk_io",
            summary="Disk {{ $labels.device }} on {{ $labels.instance }} is saturated",
            value="{{ $value | humanize }} requests in flight",
            description=_fill(
                "{{ $labels.device }} had {{ $value | humanize }} I/O requests in flight on average over the last "
                "[[w]] (warning above [[t]]); writes of the TSDB and the bot's database queue up.",
                w=a.rate_window, t=_num(a.disk_io_queue_depth),
            ),
        ),
        alert(
            "HostConntrackNearLimit",
            f"node_nf_conntrack_entries / (node_nf_conntrack_entries_limit > 0) > {_num(a.conntrack_used_ratio)}",
            for_=a.conntrack_for, family="conntrack",
            summary="Connection tracking table of {{ $labels.instance }} is filling up",
            description=_fill(
                "The conntrack table is {{ $value | humanizePercentage }} full (warning above [[t]]); when full the "
                "kernel drops new connections.", t=f"{a.conntrack_used_ratio:.0%}",
            ),
        ),
        alert(
            "HostTextfileCollectorError",
            "node_textfile_scrape_error == 1",
            for_=a.textfile_error_for, family="textfile",
            summary="node_exporter on {{ $labels.instance }} cannot read a textfile",
            value="",
            description="node_textfile_scrape_error is {{ $value }}: a *.prom file in the textfile directory is "
                        "unreadable or malformed, so series written there (backup status) are missing.",
        ),
        alert(
            "HostMemoryMajorPageFaults",
            f"rate(node_vmstat_pgmajfault[{a.rate_window}]) > {_num(a.major_page_faults_per_second)}",
            for_=a.major_page_faults_for, family="memory_pressure",
            summary="Host {{ $labels.instance }} keeps reading memory pages back from disk",
            value="{{ $value | humanize }} faults/s",
            description=_fill(
                "{{ $value | humanize }} major page faults per second over the last [[w]] (warning above [[t]]): "
                "memory is short, processes wait for the disk.", w=a.rate_window,
                t=_num(a.major_page_faults_per_second),
            ),
        ),
        alert(
            "HostNetworkInterfaceFlapping",
            f'changes(node_network_up{{device!~"veth.+"}}[{a.interface_flap_window}]) > {a.interface_flap_changes}',
            for_=a.interface_flap_for, family="network",
            summary="Interface {{ $labels.device }} on {{ $labels.instance }} keeps going up and down",
            value=_fill("{{ $value }} changes in [[w]]", w=a.interface_flap_window),
            description=_fill(
                "{{ $labels.device }} changed state {{ $value }} times in [[w]] (warning above [[n]]); connections "
                "to the market APIs and to Telegram break each time.",
                w=a.interface_flap_window, n=a.interface_flap_changes,
            ),
        ),
        alert(
            "ServiceCrashlooping",
            f"changes(process_start_time_seconds[{a.restart_window}]) > {a.restarts_max}",
            for_=a.crashloop_for, family="crashloop",
            summary="{{ $labels.job }} at {{ $labels.instance }} keeps restarting",
            value=_fill("{{ $value }} starts in [[w]]", w=a.restart_window),
            description=_fill(
                "The process started {{ $value }} times in [[w]] (critical above [[n]]); each restart is short "
                "enough to escape ServiceDown.", w=a.restart_window, n=a.restarts_max,
            ),
        ),
        # Docker mode: cAdvisor has no restart counter; a restarted container keeps its name and gets a new
        # container_start_time_seconds, so changes() over the window counts its starts. Natively there is no
        # cAdvisor and these never fire (ServiceCrashlooping covers the processes).
        alert(
            "ContainerRestarting",
            f"max by (name, {COMPOSE_SERVICE}) "
            f'(changes(container_start_time_seconds{{name=~".+"}}[{a.container_restart_window}])) '
            f"> {a.container_restarts_max}",
            for_=a.container_restart_for, family="container_restart",
            summary="Container {{ $labels.name }} keeps restarting",
            description=_fill(
                "Container {{ $labels.name }} (compose service {{ $labels." + COMPOSE_SERVICE + " }}) started "
                "{{ $value }} times in [[w]] (warning above [[n]]); docker restarts it after each exit or OOM kill.",
                w=a.container_restart_window, n=a.container_restarts_max,
            ),
        ),
        alert(
            "ContainerMemoryNearLimit",
            f"max by (name, {COMPOSE_SERVICE}) ("
            f'container_memory_working_set_bytes{{name=~".+"}} / (container_spec_memory_limit_bytes{{name=~".+"}} > 0)'
            f") > {_num(a.container_memory_ratio)}",
            for_=a.container_memory_for, family="container_memory",
            summary="Container {{ $labels.name }} uses {{ $value | humanizePercentage }} of its memory limit",
            description=_fill(
                "The working set of {{ $labels.name }} is {{ $value | humanizePercentage }} of its memory limit, "
                "above [[r]] for [[f]]; at the limit "
                "the kernel kills it and docker restarts it (ContainerRestarting). Containers without a limit "
                "(container_spec_memory_limit_bytes 0) are left out.",
                r=f"{a.container_memory_ratio:.0%}", f=a.container_memory_for,
            ),
        ),
    ]
    return rules


def self_monitoring_alerts(settings: Settings) -> list[dict[str, Any]]:
    """prometheus-mixin and alertmanager-mixin parity (outside Kubernetes, without remote write)."""
    a = settings.alerts
    alert = _AlertFactory(settings)
    w = a.rate_window
    rules = [
        alert(
            "PrometheusMissingRuleEvaluations",
            f"sum by (job, instance, rule_group) (increase(prometheus_rule_group_iterations_missed_total[{w}])) > 0",
            for_=a.rule_group_missed_for, family="rule_evaluation",
            summary="Prometheus {{ $labels.instance }} skips rule evaluations",
            value="{{ $value | humanize }} missed",
            description=_fill(
                "Group {{ $labels.rule_group }} missed {{ $value | humanize }} evaluations over the last [[w]]: "
                "its alerts fire late or not at all.", w=w,
            ),
        ),
        alert(
            "PrometheusRuleGroupSlow",
            "prometheus_rule_group_last_duration_seconds > prometheus_rule_group_interval_seconds",
            for_=a.rule_group_slow_for, family="rule_evaluation",
            summary="Prometheus {{ $labels.instance }} evaluates a rule group slower than its interval",
            value="took {{ $value | humanizeDuration }}",
            description="Group {{ $labels.rule_group }} took {{ $value | humanizeDuration }} to evaluate, longer "
                        "than its interval; the next evaluations are skipped.",
        ),
    ]
    tsdb = (
        ("compaction", "prometheus_tsdb_compactions_failed_total", "compactions"),
        ("head_truncation", "prometheus_tsdb_head_truncations_failed_total", "head truncations"),
        ("reload", "prometheus_tsdb_reloads_failures_total", "block reloads"),
        ("wal_truncation", "prometheus_tsdb_wal_truncations_failed_total", "WAL truncations"),
        ("checkpoint", "prometheus_tsdb_checkpoint_creations_failed_total", "WAL checkpoints"),
    )
    for reason, metric, what in tsdb:
        rules.append(alert(
            "PrometheusTsdbFailing",
            f"increase({metric}[{a.tsdb_failure_window}]) > 0",
            for_=a.tsdb_failures_for, family="tsdb", labels={"reason": reason},
            summary=f"Prometheus {{{{ $labels.instance }}}} fails TSDB {what}",
            value="{{ $value | humanize }} failed",
            description=_fill(
                "{{ $value | humanize }} [[what]] failed over the last [[w]]; the disk fills and memory grows "
                "until they succeed.", what=what, w=a.tsdb_failure_window,
            ),
        ))
    rules += [
        alert(
            "PrometheusTsdbWalCorrupted",
            f"increase(prometheus_tsdb_wal_corruptions_total[{a.tsdb_failure_window}]) > 0",
            for_="0s", family="tsdb",
            summary="Prometheus {{ $labels.instance }} found a corrupted write-ahead log",
            value="{{ $value | humanize }} corruptions",
            description=_fill(
                "{{ $value | humanize }} WAL corruptions over the last [[w]]: samples after the corruption were "
                "dropped at replay.", w=a.tsdb_failure_window,
            ),
        ),
        alert(
            "PrometheusNotificationQueueFull",
            f"""
            predict_linear(prometheus_notifications_queue_length[{w}], {_seconds(a.notification_queue_horizon)})
            >
            min_over_time(prometheus_notifications_queue_capacity[{w}])
            """,
            for_=a.notification_queue_for, family="alertmanager_delivery",
            summary="Alert notification queue of Prometheus {{ $labels.instance }} is running full",
            value="{{ $value | humanize }} queued at this trend",
            description=_fill(
                "At the trend of the last [[w]] the queue of alerts for Alertmanager holds {{ $value | humanize }} "
                "within [[h]], more than its capacity: alerts will be dropped.",
                w=w, h=a.notification_queue_horizon,
            ),
        ),
        alert(
            "PrometheusErrorSendingAlerts",
            f"""
            sum by (job, instance, alertmanager) (rate(prometheus_notifications_errors_total[{w}]))
            /
            sum by (job, instance, alertmanager) (rate(prometheus_notifications_sent_total[{w}]))
            > {_num(a.alertmanager_send_error_ratio)}
            """,
            for_=a.alertmanager_send_errors_for, family="alertmanager_delivery",
            summary="Prometheus {{ $labels.instance }} fails to send alerts to {{ $labels.alertmanager }}",
            description=_fill(
                "{{ $value | humanizePercentage }} of alert sends to {{ $labels.alertmanager }} failed over the last "
                "[[w]] (warning above [[t]]); the other Alertmanagers still get them.",
                w=w, t=f"{a.alertmanager_send_error_ratio:.0%}",
            ),
        ),
        alert(
            "PrometheusTargetSyncFailing",
            f"sum by (job, instance, scrape_job) (increase(prometheus_target_sync_failed_total[{a.target_sync_window}])) > 0",
            for_=a.target_sync_for, family="scrape",
            summary="Prometheus {{ $labels.instance }} cannot build the targets of {{ $labels.scrape_job }}",
            value="{{ $value | humanize }} failed",
            description=_fill(
                "{{ $value | humanize }} target syncs of scrape job {{ $labels.scrape_job }} failed over the last "
                "[[w]]: its targets are not scraped, so their alerts cannot fire.", w=a.target_sync_window,
            ),
        ),
    ]
    limits = (
        ("body_size", "prometheus_target_scrapes_exceeded_body_size_limit_total", "scrapes over the body size limit"),
        ("sample_limit", "prometheus_target_scrapes_exceeded_sample_limit_total", "scrapes over the sample limit"),
        ("target_limit", "prometheus_target_scrape_pool_exceeded_target_limit_total",
         "scrape pool syncs over the target limit"),
        ("label_limit", "prometheus_target_scrape_pool_exceeded_label_limits_total", "scrapes over a label limit"),
    )
    for reason, metric, what in limits:
        rules.append(alert(
            "PrometheusScrapeLimitHit",
            f"sum by (job, instance) (increase({metric}[{w}])) > 0",
            for_=a.scrape_limit_for, family="scrape", labels={"reason": reason},
            summary="Prometheus {{ $labels.instance }} drops scrapes at a configured limit",
            value="{{ $value | humanize }} dropped",
            description=_fill(
                "{{ $value | humanize }} [[what]] over the last [[w]]; those scrapes were discarded whole.",
                what=what, w=w,
            ),
        ))
    rules += [
        alert(
            "PrometheusNotIngestingSamples",
            f"""
            sum by (job, instance) (rate(prometheus_tsdb_head_samples_appended_total[{w}])) <= 0
            and on (job, instance)
            (
              sum by (job, instance) (prometheus_target_metadata_cache_entries) > 0
              or
              sum by (job, instance) (prometheus_rule_group_rules) > 0
            )
            """,
            for_=a.not_ingesting_for, family="ingestion",
            summary="Prometheus {{ $labels.instance }} is not ingesting samples",
            value="",
            description=_fill(
                "Prometheus appended {{ $value }} samples per second over the last [[w]] although it has targets "
                "or rules: dashboards go flat and alerts see no new data.", w=w,
            ),
        ),
        alert(
            "AlertmanagerClusterInconsistent",
            f"""
            max_over_time(alertmanager_cluster_members[{w}])
            < on (job) group_left
            count by (job) (max_over_time(alertmanager_cluster_members[{w}]))
            """,
            for_=a.alertmanager_cluster_for, family="alertmanager_cluster", labels={"reason": "members"},
            summary="Alertmanager {{ $labels.instance }} does not see every cluster member",
            value="sees {{ $value }}",
            description="It sees {{ $value }} members, fewer than the cluster has: alerts may be notified twice "
                        "or silences not shared.",
        ),
        alert(
            "AlertmanagerClusterInconsistent",
            'count by (job) (count_values by (job) ("config_hash", alertmanager_config_hash)) > 1',
            for_=a.alertmanager_cluster_for, family="alertmanager_cluster", labels={"reason": "config"},
            summary="Alertmanagers of job {{ $labels.job }} run different configurations",
            value="{{ $value }} configurations",
            description="{{ $value }} different configurations are loaded in one cluster: routing and inhibition "
                        "depend on which member notifies.",
        ),
    ]
    for reason, metric, what in (
        ("duplicate_timestamp", "prometheus_target_scrapes_sample_duplicate_timestamp_total",
         "samples with a duplicate timestamp and another value"),
        ("out_of_order", "prometheus_target_scrapes_sample_out_of_order_total", "samples out of order"),
    ):
        rules.append(alert(
            "PrometheusScrapeSamplesRejected",
            f"sum by (job, instance) (rate({metric}[{w}])) > 0",
            for_=a.samples_rejected_for, family="scrape", labels={"reason": reason},
            summary="Prometheus {{ $labels.instance }} drops scraped samples",
            value="{{ $value | humanize }}/s",
            description=_fill(
                "{{ $value | humanize }} [[what]] per second were dropped over the last [[w]]: an exporter exposes "
                "the same series twice or with timestamps.", what=what, w=w,
            ),
        ))
    rules.append(alert(
        "PrometheusHighQueryLoad",
        f"""
        avg_over_time(prometheus_engine_queries[{w}])
        /
        max_over_time(prometheus_engine_queries_concurrent_max[{w}])
        > {_num(a.query_load_ratio)}
        """,
        for_=a.query_load_for, family="query_load",
        summary="Prometheus {{ $labels.instance }} is at its query concurrency limit",
        description=_fill(
            "Queries in flight used {{ $value | humanizePercentage }} of the engine's concurrency limit over the "
            "last [[w]] (warning above [[t]]); dashboards and rule evaluations wait.",
            w=w, t=f"{a.query_load_ratio:.0%}",
        ),
    ))
    return rules
