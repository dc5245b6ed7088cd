"""Risk Monitoring: error rates, latency spikes, API usage against limits, bottlenecks, firing alerts.

The dashed lines are the alert thresholds from the settings, so what crosses a
line here is what pages.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dash_models
from grafana_foundation_sdk.models import prometheus as prom_models

from hux.bot.metric_names import API_ERROR_OUTCOMES
from hux.monitoring.dashboards.common import GREEN, RED, YELLOW, Context, to_json, up_down_mappings

UID = "hux-risk-monitoring"
RATE = "$__rate_interval"
SEL = 'job=~"$job", instance=~"$instance"'


def _circuit_mappings() -> list[dash_models.ValueMapping]:
    return [dash_models.ValueMap(options={
        "0": dash_models.ValueMappingResult(text="closed", color=GREEN, index=0),
        "1": dash_models.ValueMappingResult(text="half-open", color=YELLOW, index=1),
        "2": dash_models.ValueMappingResult(text="open", color=RED, index=2),
    })]


def build(ctx: Context) -> dict[str, Any]:
    a = ctx.settings.alerts
    n = ctx.names
    q = ctx.query
    panel: Builder[dash_models.Panel]  # the loops below mix panel kinds
    error_steps = [(0, GREEN), (a.error_rate_warning, YELLOW), (a.error_rate_critical, RED)]
    api_sent = f'hux_api_requests_total{{{SEL}, outcome!="circuit_open"}}'
    api_errors = "|".join(API_ERROR_OUTCOMES)

    board = (
        ctx.dashboard(UID, "Risk Monitoring",
                      "Where the bot is failing or about to: error rates, latency spikes, API limits, "
                      "bottlenecks, and the alerts firing now.")
        .with_variable(ctx.query_variable("job", "Job", "label_values(hux_build_info, job)"))
        .with_variable(ctx.query_variable("instance", "Instance", 'label_values(hux_build_info{job=~"$job"}, instance)'))
        .with_variable(ctx.host_variable())
    )

    # --- firing alerts ------------------------------------------------------------------------------
    board = board.with_row(ctx.row("Alerts"))
    for panel in (
        ctx.table("Firing alerts", q('ALERTS{alertstate="firing"}', instant=True,
                                     fmt=prom_models.PromQueryFormat.TABLE),
                  width=16, height=8, hide_columns=("Time", "Value", "__name__", "alertstate"),
                  description="Every alert Prometheus has firing now (the Watchdog always is)."),
        ctx.timeseries("Firing alerts by severity", [q(
            'count by (severity) (ALERTS{alertstate="firing"})', "{{severity}}")], unit="none", minimum=0,
            width=8, height=8),
    ):
        board = board.with_panel(panel)

    # --- error rates ------------------------------------------------------------------------------------
    board = board.with_row(ctx.row("Error rates"))
    for panel in (
        ctx.timeseries("Pipeline error rate by stage", [q(
            f"{n.stage_failure_ratio()}{{{SEL}}}", "{{instance}} {{stage}}")], unit="percentunit", minimum=0,
            width=12, thresholds=error_steps,
            description=f"Failed / total over {a.rate_window}. Dashed: BotErrorRateIncreased and BotHighErrorRate."),
        ctx.timeseries("API error rate by API", [q(
            f"{n.api_error_ratio()}{{{SEL}}}", "{{instance}} {{api}}")], unit="percentunit", minimum=0,
            width=12, thresholds=error_steps,
            description="Errors (4xx other than 429, 5xx, timeouts, connection errors, bad bodies) over requests sent."),
        ctx.timeseries("API failures by outcome", [q(
            f'sum by (api, outcome) (rate(hux_api_requests_total{{{SEL}, outcome=~"{api_errors}|rate_limited|circuit_open"}}[{RATE}])) '
            f"or sum by (api) (rate({api_sent}[{RATE}])) * 0", "{{api}} {{outcome}}")],
            unit="reqps", minimum=0, width=12, stacked=True),
        ctx.timeseries("Database", [
            q(f"hux_database_up{{{SEL}}}", "{{instance}} up"),
            q(f"hux_database_pending_writes{{{SEL}}}", "{{instance}} writes held", ref="B"),
            q(f"sum by (instance) (rate(hux_database_errors_total{{{SEL}}}[{RATE}]))", "{{instance}} errors/s",
              ref="C"),
        ], unit="short", minimum=0, width=12,
            description="up 0 is BotDatabaseDown; held writes are flushed when the database returns."),
    ):
        board = board.with_panel(panel)

    # --- latency --------------------------------------------------------------------------------------
    board = board.with_row(ctx.row("Latency spikes"))
    for panel in (
        ctx.timeseries("Message to decision latency", [
            q(f"histogram_quantile(0.5, sum by (le) (rate(hux_message_decision_latency_seconds_bucket{{{SEL}}}[{RATE}])))",
              "p50"),
            q(f"histogram_quantile({a.latency_quantile}, sum by (le) (rate(hux_message_decision_latency_seconds_bucket{{{SEL}}}[{RATE}])))",
              f"p{a.latency_quantile * 100:g}", ref="B"),
            q(f"histogram_quantile(0.99, sum by (le) (rate(hux_message_decision_latency_seconds_bucket{{{SEL}}}[{RATE}])))",
              "p99", ref="C"),
        ], unit="s", minimum=0, width=12, thresholds=[(0, GREEN), (a.latency_seconds, RED)],
            description=f"Dashed: the {a.latency_seconds:g} s BotHighLatency line."),
        ctx.timeseries("API request latency (p95)", [q(
            f"histogram_quantile(0.95, sum by (api, le) (rate(hux_api_request_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
            "{{api}}")], unit="s", minimum=0, width=12),
        ctx.timeseries("Database probe latency (p95)", [q(
            f"histogram_quantile(0.95, sum by (instance, le) (rate(hux_database_probe_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
            "{{instance}}")], unit="s", minimum=0, width=12),
        ctx.stat(f"Worst p{a.latency_quantile * 100:g} decision latency", q(f"max({n.decision_latency}{{{SEL}}})"),
                 unit="s", thresholds=[(0, GREEN), (a.latency_seconds, RED)], width=12, height=8),
    ):
        board = board.with_panel(panel)

    # --- API usage -------------------------------------------------------------------------------------
    board = board.with_row(ctx.row("API usage against limits"))
    for panel in (
        ctx.timeseries("API usage of the rate limit", [q(f"{n.api_usage_ratio}{{{SEL}}}", "{{instance}} {{api}}")],
                       unit="percentunit", minimum=0, width=12,
                       thresholds=[(0, GREEN), (a.api_usage_ratio, RED)],
                       description="Requests sent / the provider's documented limit. Dashed: BotHighApiUsage."),
        ctx.timeseries("Requests and limits", [
            q(f"sum by (api) (rate({api_sent}[{RATE}]))", "{{api}} requests/s"),
            q(f"max by (api) (hux_api_rate_limit_requests_per_second{{{SEL}}})", "{{api}} limit", ref="B"),
        ], unit="reqps", minimum=0, width=12),
        ctx.timeseries("HTTP 429 responses", [q(
            f'sum by (api) (increase(hux_api_requests_total{{{SEL}, outcome="rate_limited"}}[{RATE}])) '
            f"or sum by (api) (hux_api_rate_limit_requests_per_second{{{SEL}}}) * 0", "{{api}}")],
            unit="none", minimum=0, width=8, description="Any 429 fires BotHighApiUsage."),
        ctx.timeseries("Retries", [q(
            f"sum by (api, reason) (rate(hux_api_retries_total{{{SEL}}}[{RATE}])) "
            f"or sum by (api) (rate({api_sent}[{RATE}])) * 0", "{{api}} {{reason}}")],
            unit="reqps", minimum=0, width=8),
        ctx.stat("Circuit breakers", q(f"max by (api) (hux_api_circuit_state{{{SEL}}})", "{{api}}"), unit="none",
                 mappings=_circuit_mappings(), thresholds=[(0, GREEN), (1, YELLOW), (2, RED)], width=8, height=8),
    ):
        board = board.with_panel(panel)

    # --- bottlenecks -----------------------------------------------------------------------------------
    board = board.with_row(ctx.row("Resource bottlenecks"))
    fs = "|".join(a.disk_fstypes_excluded)
    host = 'instance=~"$node"'
    fs_sel = f'{{{host}, fstype!~"{fs}"}}' if fs else f"{{{host}}}"
    for panel in (
        ctx.timeseries("Intake queue use", [q(f"{n.queue_utilisation}{{{SEL}}}", "{{instance}}")],
                       unit="percentunit", minimum=0, maximum=1, width=8,
                       thresholds=[(0, GREEN), (a.queue_backlog_ratio, RED)], description="Dashed: BotQueueBacklog."),
        ctx.timeseries("Workers busy", [q(f"hux_workers_busy{{{SEL}}} / hux_workers{{{SEL}}}", "{{instance}}")],
                       unit="percentunit", minimum=0, maximum=1, width=8),
        ctx.timeseries("Back-pressure", [q(f"rate(hux_queue_blocked_seconds_total{{{SEL}}}[{RATE}])", "{{instance}}")],
                       unit="percentunit", minimum=0, width=8,
                       description="Share of time sources waited for room in the queue."),
        ctx.timeseries("Host CPU and memory", [
            q(f"{n.cpu_utilisation}{{{host}}}", "{{instance}} CPU"),
            q(f"{n.memory_utilisation}{{{host}}}", "{{instance}} memory", ref="B"),
        ], unit="percentunit", minimum=0, maximum=1, width=8,
            thresholds=[(0, GREEN), (a.memory_used_ratio, RED)], description="Dashed: HostMemoryHigh."),
        ctx.timeseries("Lowest free filesystem share", [q(
            f"min by (instance) (node_filesystem_avail_bytes{fs_sel} / node_filesystem_size_bytes{fs_sel})",
            "{{instance}}")], unit="percentunit", minimum=0, maximum=1, width=8,
            thresholds=[(0, RED), (a.disk_free_ratio, GREEN)], description="Dashed: HostDiskSpaceLow."),
        ctx.timeseries("Bot process CPU", [
            q(f"rate(process_cpu_seconds_total{{{SEL}}}[{RATE}])", "{{instance}} CPU (cores)"),
        ], unit="percentunit", minimum=0, width=8),
        ctx.timeseries("Token alert delivery failures", [q(
            f"{n.alert_delivery_failure_ratio}{{{SEL}}}", "{{instance}} {{channel}}")], unit="percentunit",
            minimum=0, maximum=1, width=12, thresholds=[(0, GREEN), (a.alert_delivery_failure_ratio, RED)],
            description="Dashed: BotAlertDeliveryFailing."),
        ctx.stat("Bot targets", q(f"up{{{ctx.settings.stack.bot_selector}}}", "{{instance}}"), unit="none", mappings=up_down_mappings(),
                 thresholds=[(0, RED), (1, GREEN)], width=12, height=8),
    ):
        board = board.with_panel(panel)
    return to_json(board)
