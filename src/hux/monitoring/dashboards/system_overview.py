"""System Overview: host resources, health and resource use of every component, key metrics.

Resource use per component is chosen at build time from ``stack.mode``: in
docker mode from cAdvisor, per compose service (CPU, memory against its limit,
restarts, network); natively, where there is no cAdvisor, from each job's own
``process_*`` metrics (network: the host's, there is no per-process counter),
so every panel has data on a native stack too. The docker tree's dashboards
are always rendered in docker mode.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from hux.monitoring.dashboards.common import GREEN, RED, YELLOW, Context, to_json, up_down_mappings
from hux.monitoring.durations import duration_seconds
from hux.monitoring.rules import COMPOSE_SERVICE

UID = "hux-system-overview"
RATE = "$__rate_interval"
#: cAdvisor series of the compose services (the cAdvisor root and system cgroups have no service label)
SERVICE = f'{COMPOSE_SERVICE}=~".+"'
BY_SERVICE = f"sum by ({COMPOSE_SERVICE})"
SERVICE_LEGEND = "{{" + COMPOSE_SERVICE + "}}"


def _container_panels(ctx: Context) -> list[Builder[Panel]]:
    """Docker mode: resource use per compose service from cAdvisor."""
    a = ctx.settings.alerts
    q = ctx.query
    return [
        ctx.timeseries("CPU per container", [q(
            f"{BY_SERVICE} (rate(container_cpu_usage_seconds_total{{{SERVICE}}}[{RATE}]))", SERVICE_LEGEND)],
            unit="percentunit", minimum=0, width=8, description="CPU seconds per second per compose service "
                                                                   "(1 = one core), from cAdvisor."),
        ctx.timeseries("Memory per container (share of its limit)", [q(
            f"{BY_SERVICE} (container_memory_working_set_bytes{{{SERVICE}}}) / "
            f"{BY_SERVICE} (container_spec_memory_limit_bytes{{{SERVICE}}} > 0)", SERVICE_LEGEND)],
            unit="percentunit", minimum=0, maximum=1, width=8,
            thresholds=[(0, GREEN), (a.container_memory_ratio, RED)],
            description="Working set / memory limit (mem_limit in docker-compose.yml); dashed: "
                        "ContainerMemoryNearLimit. Containers without a limit are left out."),
        ctx.timeseries("Memory per container", [q(
            f"{BY_SERVICE} (container_memory_working_set_bytes{{{SERVICE}}})", SERVICE_LEGEND)],
            unit="bytes", minimum=0, width=8, description="Working set (what the kernel's limit counts)."),
        ctx.timeseries("Container restarts", [q(
            f"{BY_SERVICE} (changes(container_start_time_seconds{{{SERVICE}}}[{a.container_restart_window}]))",
            SERVICE_LEGEND)], unit="short", minimum=0, width=8,
            thresholds=[(0, GREEN), (a.container_restarts_max + 1, RED)],
            description=f"Starts per compose service within {a.container_restart_window} (cAdvisor has no restart "
                        "counter: a new container_start_time_seconds is a start); dashed: ContainerRestarting."),
        ctx.timeseries("Network per container", [
            q(f"{BY_SERVICE} (rate(container_network_receive_bytes_total{{{SERVICE}}}[{RATE}]))",
              SERVICE_LEGEND + " in"),
            q(f"{BY_SERVICE} (rate(container_network_transmit_bytes_total{{{SERVICE}}}[{RATE}]))",
              SERVICE_LEGEND + " out", ref="B"),
        ], unit="Bps", minimum=0, width=8),
    ]


def _process_panels(ctx: Context, comp: str) -> list[Builder[Panel]]:
    """Native mode: the same questions from each job's own process metrics (no cAdvisor)."""
    a = ctx.settings.alerts
    q = ctx.query
    return [
        ctx.timeseries("CPU per component", [q(
            f"rate(process_cpu_seconds_total{{{comp}}}[{RATE}])", "{{job}} {{instance}}")],
            unit="percentunit", minimum=0, width=8, description="CPU seconds per second (1 = one core)."),
        ctx.timeseries("Resident memory per component", [q(
            f"process_resident_memory_bytes{{{comp}}}", "{{job}} {{instance}}")], unit="bytes", minimum=0, width=8),
        ctx.timeseries("Restarts per component", [q(
            f"changes(process_start_time_seconds{{{comp}}}[{a.restart_window}])", "{{job}} {{instance}}")],
            unit="short", minimum=0, width=8, thresholds=[(0, GREEN), (a.restarts_max + 1, RED)],
            description=f"Process starts within {a.restart_window}; dashed: ServiceCrashlooping."),
        ctx.timeseries("Network (host)", [
            q(f'sum by (instance) (rate(node_network_receive_bytes_total{{instance=~"$node", device!="lo"}}[{RATE}]))',
              "{{instance}} in"),
            q(f'sum by (instance) (rate(node_network_transmit_bytes_total{{instance=~"$node", device!="lo"}}[{RATE}]))',
              "{{instance}} out", ref="B"),
        ], unit="Bps", minimum=0, width=8,
            description="Natively there is no per-process network counter: the host's traffic (docker mode: "
                        "per container)."),
    ]


def build(ctx: Context) -> dict[str, Any]:
    a = ctx.settings.alerts
    n = ctx.names
    fs = '|'.join(a.disk_fstypes_excluded)
    node = f'instance=~"$node", fstype!~"{fs}"' if fs else 'instance=~"$node"'
    comp = 'job=~"$job", instance=~"$instance"'
    q = ctx.query

    board = ctx.dashboard(UID, "System Overview",
                          "Host resources, health and resource use of each component, and the bot's key numbers.")
    board = (
        board
        .with_variable(ctx.host_variable())
        .with_variable(ctx.query_variable("job", "Component", "label_values(up, job)"))
        .with_variable(ctx.query_variable("instance", "Instance", 'label_values(up{job=~"$job"}, instance)'))
    )

    # --- key metrics --------------------------------------------------------------------
    board = board.with_row(ctx.row("Key metrics (all bot instances)"))
    panel: Builder[Panel]   # stat and time series panels alike
    for panel in (
        ctx.stat("Targets up", q("sum(up) / count(up)"), unit="percentunit",
                 thresholds=[(0, RED), (1, GREEN)], width=3,
                 description="Share of scrape targets Prometheus reaches (ServiceDown fires for any target down)."),
        ctx.stat("Firing alerts", q('count(ALERTS{alertstate="firing", alertname!="Watchdog"}) or vector(0)'),
                 unit="none", thresholds=[(0, GREEN), (1, RED)], width=3,
                 description="Alerts firing now, the always-on Watchdog left out."),
        ctx.stat("Messages / s", q(f"sum(rate(hux_messages_received_total[{RATE}]))"), unit="suffix: msg/s",
                 width=3),
        ctx.stat("Token decisions / min", q(f"sum({n.token_rate}) * 60"), unit="suffix: /min", width=3),
        ctx.stat("Worst stage error rate", q(f"max({n.stage_failure_ratio()})"), unit="percentunit",
                 thresholds=[(0, GREEN), (a.error_rate_warning, YELLOW), (a.error_rate_critical, RED)], width=3,
                 description=f"Highest failed/total ratio of any pipeline stage over {a.rate_window}."),
        ctx.stat(f"p{a.latency_quantile * 100:g} decision latency", q(f"max({n.decision_latency})"), unit="s",
                 thresholds=[(0, GREEN), (a.latency_seconds, RED)], width=3,
                 description="Message accepted to decision on its last token (BotHighLatency line)."),
        ctx.stat("Host memory used", q(f'max({n.memory_utilisation}{{instance=~"$node"}})'), unit="percentunit",
                 thresholds=[(0, GREEN), (a.memory_used_ratio, RED)], width=3),
        ctx.stat("Bot database", q("min(hux_database_up)"), unit="none", mappings=up_down_mappings(),
                 thresholds=[(0, RED), (1, GREEN)], width=3),
    ):
        board = board.with_panel(panel)
    board = board.with_panel(ctx.alert_list(
        "Alerts firing and pending", description="Prometheus's alerts as Grafana's Alerting sees them (silences: "
        "Alerting > Silences, Alertmanager datasource); the Watchdog is always firing by design."))

    # --- host --------------------------------------------------------------------------------
    board = board.with_row(ctx.row("Host resources"))
    for panel in (
        ctx.timeseries("CPU busy by mode", [q(
            f'avg by (instance, mode) (rate(node_cpu_seconds_total{{instance=~"$node", mode!="idle"}}[{RATE}]))',
            "{{instance}} {{mode}}")], unit="percentunit", stacked=True, minimum=0, width=8),
        ctx.timeseries("Load and CPUs", [
            q('node_load1{instance=~"$node"}', "{{instance}} load 1m"),
            q('node_load5{instance=~"$node"}', "{{instance}} load 5m", ref="B"),
            q('count by (instance) (node_cpu_seconds_total{instance=~"$node", mode="idle"})',
              "{{instance}} CPUs", ref="C"),
        ], unit="short", minimum=0, width=8),
        ctx.timeseries("Memory used", [q(f'{n.memory_utilisation}{{instance=~"$node"}}', "{{instance}}")],
                       unit="percentunit", minimum=0, maximum=1, width=8,
                       thresholds=[(0, GREEN), (a.memory_used_ratio, RED)],
                       description="1 - MemAvailable / MemTotal; the dashed line is HostMemoryHigh."),
        ctx.timeseries("Filesystem space free", [q(
            f"node_filesystem_avail_bytes{{{node}}} / node_filesystem_size_bytes{{{node}}}",
            "{{instance}} {{mountpoint}}")], unit="percentunit", minimum=0, maximum=1, width=8,
            thresholds=[(0, RED), (a.disk_free_ratio, GREEN)],
            description="Free share per filesystem (tmpfs/overlay and the like left out); dashed: HostDiskSpaceLow."),
        ctx.timeseries("Disk I/O", [
            q(f'rate(node_disk_read_bytes_total{{instance=~"$node"}}[{RATE}])', "{{device}} read"),
            q(f'rate(node_disk_written_bytes_total{{instance=~"$node"}}[{RATE}])', "{{device}} written", ref="B"),
        ], unit="Bps", minimum=0, width=8),
        ctx.timeseries("Network traffic", [
            q(f'rate(node_network_receive_bytes_total{{instance=~"$node", device!="lo"}}[{RATE}])',
              "{{device}} in"),
            q(f'rate(node_network_transmit_bytes_total{{instance=~"$node", device!="lo"}}[{RATE}])',
              "{{device}} out", ref="B"),
        ], unit="Bps", minimum=0, width=8),
    ):
        board = board.with_panel(panel)

    # --- components --------------------------------------------------------------------------
    board = board.with_row(ctx.row("Component health and resources"))
    for panel in (
        ctx.stat("Component up", q(f"up{{{comp}}}", "{{job}} {{instance}}"), unit="none",
                 mappings=up_down_mappings(), thresholds=[(0, RED), (1, GREEN)], width=24, height=4,
                 description="Every scrape target: Prometheus, Alertmanager, node_exporter, Grafana, "
                             "cAdvisor (docker) and each bot instance."),
        *(_container_panels(ctx) if ctx.settings.stack.mode == "docker" else _process_panels(ctx, comp)),
        ctx.timeseries("File descriptors in use", [q(
            f"process_open_fds{{{comp}}} / process_max_fds{{{comp}}}", "{{job}} {{instance}}")],
            unit="percentunit", minimum=0, width=8),
        ctx.timeseries("Scrape duration", [q(f"scrape_duration_seconds{{{comp}}}", "{{job}} {{instance}}")],
                       unit="s", minimum=0, width=8),
        ctx.timeseries("Uptime", [q(f"time() - process_start_time_seconds{{{comp}}}", "{{job}} {{instance}}")],
                       unit="s", minimum=0, width=8),
        ctx.timeseries("Samples scraped per target", [q(f"scrape_samples_scraped{{{comp}}}", "{{job}} {{instance}}")],
                       unit="short", minimum=0, width=8),
    ):
        board = board.with_panel(panel)

    # --- the monitoring stack itself ---------------------------------------------------------
    board = board.with_row(ctx.row("Monitoring stack"))
    for panel in (
        ctx.timeseries("Prometheus samples ingested / s", [q(
            f"rate(prometheus_tsdb_head_samples_appended_total[{RATE}])", "{{instance}}")], unit="short",
            minimum=0, width=6),
        ctx.timeseries("Prometheus head series", [q("prometheus_tsdb_head_series", "{{instance}}")],
                       unit="short", minimum=0, width=6),
        ctx.timeseries("Rule group evaluation time", [q(
            "prometheus_rule_group_last_duration_seconds", "{{rule_group}}")], unit="s", minimum=0, width=6),
        ctx.timeseries("Alertmanager notifications / s", [
            q(f"sum by (integration) (rate(alertmanager_notifications_total[{RATE}]))", "{{integration}} sent"),
            q(f"sum by (integration) (rate(alertmanager_notifications_failed_total[{RATE}]))",
              "{{integration}} failed", ref="B"),
        ], unit="short", minimum=0, width=6),
        ctx.timeseries("Time since last successful backup", [q(
            "time() - hux_backup_last_success_timestamp_seconds", "{{kind}}")], unit="s", minimum=0, width=24,
            height=6, thresholds=[(0, GREEN), (duration_seconds(ctx.settings.backup.max_age), RED)],
            description="From the backup tool's textfile metrics; dashed: BackupTooOld."),
    ):
        board = board.with_panel(panel)
    return to_json(board)
