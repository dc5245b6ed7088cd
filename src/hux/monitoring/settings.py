"""The monitoring stack's settings: one validated model over the one settings source.

``load_settings`` reads the merged settings (embedded ``defaults/*.toml``, the
operator's ``hux.toml``, ``HUX__*`` environment overrides, ``.env``) through
``hux.config.load_raw`` and validates the monitoring sections strictly:
``stack``, ``prometheus``, ``alertmanager``, ``alerts``, ``receivers``,
``grafana`` and ``backup``. The ``bot`` section is passed through (the bot
validates it itself). Every interval, threshold and ``for`` duration the rules,
Alertmanager and dashboards use comes from here, so a threshold changes in one
place and one render.

Secrets (SMTP password, Slack webhook URL, webhook URLs) are never stored in
the settings: a receiver names an environment variable or a file, and
``Settings.secret()`` reads it when a native run directory is rendered.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hux import paths
from hux.bot import metric_names as catalogue
from hux.bot.config import BotConfig
from hux.config import ConfigError, env_name, load_raw, single_line, validation_error
from hux.monitoring import grafana_install
from hux.monitoring.durations import duration_seconds

SECTIONS = ("stack", "prometheus", "alertmanager", "alerts", "receivers", "inbox", "grafana", "backup",
            "victoria_metrics")

# Every pattern below is used with fullmatch: "$" would also accept a trailing newline.
_TARGET_RE = re.compile(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}")
#: an image reference: [registry[:port]/]name[:tag][@digest]; nothing compose would interpolate or split
_IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]*(?::\d{1,5}/[A-Za-z0-9._\-/]+)?:[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}"
                       r"(?:@sha256:[0-9a-f]{64})?")
#: Grafana logins that grafana.ini and docker-compose.yml carry as they are (no ; # $ { or whitespace)
_GRAFANA_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]{0,99}")
#: characters grafana.ini cannot carry inside a $__file{...} path (or would expand/cut)
INI_UNSAFE = set("${}\";#`'\\")


def _check_duration(value: str, *, allow_zero: bool = False) -> str:
    seconds = duration_seconds(value)
    if seconds == 0 and not allow_zero:
        raise ValueError(f"{value!r} must be longer than zero, e.g. \"1m\"")
    return value


def no_template(value: str, where: str) -> str:
    """Refuse a Go template opener in a value that {where} expands as a template."""
    if "{{" in value or "}}" in value:
        raise ValueError(f"{value!r} contains '{{{{' or '}}}}', which {where} would run as a template: remove them")
    return value


def http_url(value: str) -> str:
    """An absolute http(s) URL with a host and no whitespace (it is written into alertmanager.yml)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an http(s) URL, e.g. \"https://hooks.example.com/alerts\"")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _single_line(cls, value: Any, info: Any) -> Any:
        if info.field_name == "bot":   # Settings.bot: the bot's own model checks it, naming the exact key
            return value
        return single_line(value)


Duration = str  # a Prometheus duration string, checked by the section validators below


# --- stack -----------------------------------------------------------------


class Ports(_Section):
    prometheus: int = Field(9090, ge=1, le=65535)
    alertmanager: int = Field(9093, ge=1, le=65535)
    node_exporter: int = Field(9100, ge=1, le=65535)
    grafana: int = Field(3000, ge=1, le=65535)
    bot: int = Field(8000, ge=1, le=65535)
    doubles: int = Field(8010, ge=1, le=65535)
    cadvisor: int = Field(8080, ge=1, le=65535)
    #: the local alert inbox (``hux alerts``), native mode
    inbox: int = Field(9097, ge=1, le=65535)
    # topology "ha" only: the second Prometheus, the other two Alertmanagers, every Alertmanager's gossip
    # port (loopback; the single topology runs without one) and VictoriaMetrics
    prometheus_b: int = Field(9091, ge=1, le=65535)
    alertmanager_b: int = Field(9095, ge=1, le=65535)
    alertmanager_c: int = Field(9096, ge=1, le=65535)
    alertmanager_cluster: int = Field(9094, ge=1, le=65535)
    alertmanager_b_cluster: int = Field(9098, ge=1, le=65535)
    alertmanager_c_cluster: int = Field(9099, ge=1, le=65535)
    victoria_metrics: int = Field(8428, ge=1, le=65535)


class Images(_Section):
    """Pinned container images of the docker path (never ``latest``)."""

    prometheus: str = "prom/prometheus:v3.1.0"
    alertmanager: str = "prom/alertmanager:v0.28.0"
    grafana: str = "grafana/grafana:11.4.0"
    node_exporter: str = "prom/node-exporter:v1.8.2"
    cadvisor: str = "gcr.io/cadvisor/cadvisor:v0.49.1"
    postgres: str = "postgres:16.6-alpine"
    python: str = "python:3.11.11-slim-bookworm"
    #: topology "ha" only (the official single-node image)
    victoria_metrics: str = "victoriametrics/victoria-metrics:v1.108.1"

    @field_validator("*")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return pinned_image(value)


def pinned_image(value: str) -> str:
    """An image reference with an exact tag (never ``latest``), else ValueError saying so."""
    name, _, tag = value.partition("@")[0].rpartition(":")
    if not name or not tag or "/" in tag or tag == "latest" or not _IMAGE_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not pinned: give an exact tag, e.g. \"prom/prometheus:v3.1.0\"")
    return value


#: topology "ha": the Prometheus replicas and the Alertmanager cluster members, each with its port settings
#: (``stack.ports.<name>``; the gossip port of an Alertmanager is ``<name>_cluster``). The first of each keeps
#: the single topology's name, so backups, restores and `hux health` talk to it as before.
PROMETHEUS_REPLICAS = {"prometheus": "a", "prometheus_b": "b"}
ALERTMANAGER_MEMBERS = ("alertmanager", "alertmanager_b", "alertmanager_c")


class StackSettings(_Section):
    mode: Literal["native", "docker"] = "native"
    #: "single": one Prometheus, one Alertmanager; "ha": two Prometheus replicas, three Alertmanagers in one
    #: gossip cluster and VictoriaMetrics as the deduplicated long-term store (README, "HA topology")
    topology: Literal["single", "ha"] = "single"
    bind_address: str = "127.0.0.1"
    #: docker path: the host address every published port binds to. Beyond loopback, Prometheus's
    #: unauthenticated admin and lifecycle APIs are left off (see docs/operations.md)
    publish_address: str = "127.0.0.1"
    ports: Ports = Ports()
    #: every bot instance Prometheus scrapes (host:port); scale-out = more entries.
    #: Empty: the one local bot on ``bind_address:ports.bot``.
    bot_targets: list[str] = Field(default_factory=list)
    images: Images = Images()

    @field_validator("bind_address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9.\-]+", value):
                raise ValueError(f"{value!r} is not an IP address or host name, e.g. \"127.0.0.1\"") from None
        return value

    @field_validator("publish_address")
    @classmethod
    def _publish_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address: docker publishes ports on an address, e.g. "
                             "\"127.0.0.1\" (this machine only) or \"0.0.0.0\" (every interface)") from None
        return value

    @field_validator("bot_targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for target in value:
            if not _TARGET_RE.fullmatch(target):
                raise ValueError(f"{target!r} is not host:port, e.g. \"127.0.0.1:8000\"")
        if len(set(value)) != len(value):
            raise ValueError("lists the same target twice; each bot instance once")
        return value

    @property
    def loopback_host(self) -> str:
        """Where local clients connect: the bind address, or loopback when bound to all interfaces."""
        return "127.0.0.1" if self.bind_address in ("0.0.0.0", "::") else self.bind_address

    @property
    def published_host(self) -> str:
        """Where this machine reaches the docker path's published ports: ``publish_address``, or loopback
        when compose publishes on every interface; an IPv6 address in brackets, as a URL wants it."""
        if self.publish_address in ("0.0.0.0", "::"):
            return "127.0.0.1"
        return f"[{self.publish_address}]" if ":" in self.publish_address else self.publish_address

    def resolved_bot_targets(self, instances: int = 1) -> list[str]:
        """``bot_targets``, else the local instances on consecutive ports from ``ports.bot`` (``bot.instances``)."""
        return list(self.bot_targets) or [f"{self.loopback_host}:{self.ports.bot + i}" for i in range(instances)]

    #: the bot's scrape job in prometheus.yml (every bot instance is a target of it)
    bot_job: ClassVar[str] = "bot"
    #: topology "ha": the scrape jobs of the HA layer (every replica / member is a target of its job)
    prometheus_job: ClassVar[str] = "prometheus"
    alertmanager_job: ClassVar[str] = "alertmanager"
    victoria_metrics_job: ClassVar[str] = "victoria_metrics"

    @property
    def ha(self) -> bool:
        return self.topology == "ha"

    def prometheus_replicas(self) -> dict[str, str]:
        """Component name -> its ``replica`` external label (one Prometheus, no label, in the single topology)."""
        return dict(PROMETHEUS_REPLICAS) if self.ha else {"prometheus": ""}

    def alertmanager_members(self) -> tuple[str, ...]:
        return ALERTMANAGER_MEMBERS if self.ha else ALERTMANAGER_MEMBERS[:1]

    @model_validator(mode="after")
    def _distinct_ha_ports(self) -> "StackSettings":
        if not self.ha:
            return self
        used: dict[int, str] = {}
        for name, port in self.ports.model_dump().items():
            if name == "cadvisor":   # the docker path's only
                continue
            if port in used:
                raise ValueError(f"stack.ports.{name} and stack.ports.{used[port]} are both {port}: the HA "
                                 "topology runs every one of them on this machine; give each its own port")
            used[port] = name
        return self

    @property
    def bot_selector(self) -> str:
        """The label matchers that select the bot's series, like a mixin's selector (job equals bot_job)."""
        return f'job="{self.bot_job}"'


# --- prometheus --------------------------------------------------------------


class PrometheusSettings(_Section):
    scrape_interval: Duration = "15s"
    #: empty: the smaller of 10s and scrape_interval
    scrape_timeout: Duration = ""
    evaluation_interval: Duration = "15s"
    #: the paging fast path: the bot job's own scrape interval and timeout (timeout < interval: a frozen bot
    #: shows as down after the timeout) and the interval of the rule group with ServiceDown/BotAbsent for the
    #: bot and BotDatabaseDown (docs/benchmarks.md, "Page latency")
    bot_scrape_interval: Duration = "5s"
    bot_scrape_timeout: Duration = "3s"
    fast_evaluation_interval: Duration = "2s"
    #: how often Prometheus re-reads the target files of ``hux targets`` (it also reacts to their changes at once)
    target_refresh_interval: Duration = "30s"
    retention_time: Duration = "15d"
    #: e.g. "10GB"; empty: no size limit (retention_time alone)
    retention_size: str = ""
    external_labels: dict[str, str] = Field(default_factory=lambda: {"monitor": "hux"})

    @field_validator("scrape_interval", "evaluation_interval", "retention_time", "bot_scrape_interval",
                     "bot_scrape_timeout", "fast_evaluation_interval", "target_refresh_interval")
    @classmethod
    def _durations(cls, value: str) -> str:
        return _check_duration(value)

    @field_validator("scrape_timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        return _check_duration(value) if value else value

    @field_validator("retention_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if value and not re.fullmatch(r"\d+(B|KB|MB|GB|TB|PB|EB)", value):
            raise ValueError(f"{value!r} is not a size: use e.g. \"10GB\", or \"\" for no size limit")
        return value

    @field_validator("external_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) or key.startswith("__"):
                raise ValueError(f"{key!r} is not a valid label name (letters, digits, _; not starting with __)")
        return value

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> "PrometheusSettings":
        if self.scrape_timeout and duration_seconds(self.scrape_timeout) > duration_seconds(self.scrape_interval):
            raise ValueError(
                f"scrape_timeout {self.scrape_timeout} is longer than scrape_interval {self.scrape_interval}: "
                "shorten prometheus.scrape_timeout or leave it empty"
            )
        if duration_seconds(self.bot_scrape_timeout) >= duration_seconds(self.bot_scrape_interval):
            raise ValueError(
                f"bot_scrape_timeout {self.bot_scrape_timeout} is not shorter than bot_scrape_interval "
                f"{self.bot_scrape_interval}: a frozen bot would hold every scrape for the whole interval; "
                "shorten prometheus.bot_scrape_timeout"
            )
        return self

    @property
    def resolved_scrape_timeout(self) -> str:
        if self.scrape_timeout:
            return self.scrape_timeout
        return "10s" if duration_seconds(self.scrape_interval) >= 10 else self.scrape_interval


# --- victoria metrics (topology "ha") -----------------------------------------------


class VictoriaMetricsSettings(_Section):
    """VictoriaMetrics single-node, the HA topology's long-term store (both replicas remote_write to it)."""

    #: -retentionPeriod: a number with h, d, w or y (VictoriaMetrics' own format; a bare number is months)
    retention_period: str = "90d"
    #: -search.latencyOffset: how old a sample must be before queries show it (VictoriaMetrics' default 30s)
    latency_offset: Duration = "30s"

    @field_validator("retention_period")
    @classmethod
    def _retention(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]{0,5}[hdwy]", value):
            raise ValueError(f"{value!r} is not a VictoriaMetrics retention: a number with h, d, w or y, e.g. \"90d\"")
        return value

    @field_validator("latency_offset")
    @classmethod
    def _offset(cls, value: str) -> str:
        return _check_duration(value, allow_zero=True)


# --- alertmanager --------------------------------------------------------------

ReceiverName = Literal["email", "slack", "webhook"]


def _receivers(*names: ReceiverName) -> Callable[[], list[ReceiverName]]:
    """A default_factory for a receiver list (a fresh list per Settings)."""
    return lambda: list(names)


class AlertmanagerSettings(_Section):
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "severity", "job"])
    group_wait: Duration = "30s"
    #: group_wait of the critical routes: pages reach a person sooner, warnings still batch up
    critical_group_wait: Duration = "3s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"
    resolve_timeout: Duration = "5m"
    send_resolved: bool = True
    #: receivers that page for severity=critical (each one that is enabled)
    critical_receivers: list[ReceiverName] = Field(default_factory=_receivers("email", "slack", "webhook"))
    #: receivers for severity=warning, and for anything no other route matches
    warning_receivers: list[ReceiverName] = Field(default_factory=_receivers("slack"))
    #: how often the always-firing Watchdog is re-sent to the heartbeat receiver
    heartbeat_interval: Duration = "1m"
    #: topology "ha": --cluster.peer-timeout, how long each member waits per position in the cluster before it
    #: notifies what the members before it have not (Alertmanager's default)
    peer_timeout: Duration = "15s"

    @field_validator("group_wait", "critical_group_wait", "group_interval", "repeat_interval", "resolve_timeout",
                     "heartbeat_interval", "peer_timeout")
    @classmethod
    def _durations(cls, value: str) -> str:
        return _check_duration(value)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str]) -> list[str]:
        for label in value:
            if label != "..." and not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label):
                raise ValueError(f"{label!r} is not a label name")
        return value


# --- alerts --------------------------------------------------------------------

Ratio = float


class AlertSettings(_Section):
    """Every threshold, window and ``for`` duration of the alert rules (docs/runbooks.md)."""

    #: where the runbook_url annotations point; set your repository's URL of the file
    #: (e.g. "https://git.example.com/hux/blob/main/docs/runbooks.md") so links open from Slack and mail;
    #: an http(s) URL is required once an email, Slack or webhook receiver is enabled (_check_runbook_link)
    runbook_base_url: str = "docs/runbooks.md"

    @field_validator("runbook_base_url")
    @classmethod
    def _runbook(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not a URL or path without spaces, e.g. \"docs/runbooks.md\"")
        return no_template(value, "Prometheus (rule annotations)")

    # windows shared by the rate-based rules
    rate_window: Duration = "5m"          # rate()/increase() window: the alert rules' "in 5m" of the spec
    short_window: Duration = "1m"         # confirmation window: error alerts clear soon after recovery
    error_rate_min_events: float = Field(5.0, ge=0)  # events in rate_window before a ratio counts

    # High error rate (critical) / Increased error rates (warning)
    error_rate_critical: Ratio = Field(0.10, gt=0, le=1)
    error_rate_critical_for: Duration = "2m"
    error_rate_warning: Ratio = Field(0.05, gt=0, le=1)
    error_rate_baseline_window: Duration = "1d"
    error_rate_baseline_factor: float = Field(3.0, ge=1, le=100)
    error_rate_baseline_floor: Ratio = Field(0.02, gt=0, le=1)
    error_rate_warning_for: Duration = "10m"

    # High latency (warning)
    latency_quantile: float = Field(0.95, gt=0, lt=1)
    latency_seconds: float = Field(10.0, gt=0, le=3600)
    latency_for: Duration = "5m"

    # High API usage (warning)
    api_usage_ratio: Ratio = Field(0.80, gt=0, le=1)
    api_usage_for: Duration = "2m"

    # Service down (critical): two failed scrapes in a row at the 15 s interval
    service_down_for: Duration = "15s"
    # The bot down (ServiceDown and BotAbsent of the bot job, the paging fast path): longer than two bot scrape
    # intervals, so one or two lost scrapes (a supervised restart under 10 s) never page
    bot_down_for: Duration = "12s"

    # Memory (critical)
    memory_used_ratio: Ratio = Field(0.90, gt=0, lt=1)
    memory_for: Duration = "5m"

    # Low disk space (warning)
    disk_free_ratio: Ratio = Field(0.10, gt=0, lt=1)
    disk_fill_hours: float = Field(24.0, gt=0, le=24 * 365)
    disk_predict_window: Duration = "6h"
    disk_predict_max_free_ratio: Ratio = Field(0.40, gt=0, le=1)  # only predict for disks already this full
    disk_for: Duration = "10m"
    disk_fstypes_excluded: list[str] = Field(
        default_factory=lambda: [
            "tmpfs", "devtmpfs", "ramfs", "overlay", "squashfs", "nsfs", "fuse.lxcfs", "autofs", "iso9660",
        ]
    )

    # Database connection failures (critical): every probe of the bot (2 s apart) failed for this long
    database_down_for: Duration = "12s"

    # Pipeline stalled (critical), queue backlog (warning), alert delivery (warning)
    pipeline_stall_after: Duration = "5m"
    pipeline_stall_for: Duration = "1m"
    queue_backlog_ratio: Ratio = Field(0.80, gt=0, le=1)
    queue_backlog_for: Duration = "5m"
    alert_delivery_failure_ratio: Ratio = Field(0.20, gt=0, le=1)
    alert_delivery_for: Duration = "5m"
    # Calls tracked (warning): share of calls resolved over call_hit_rate_window that reached 2x within 24 h
    call_hit_rate_floor: Ratio = Field(0.10, gt=0, le=1)
    call_hit_rate_window: Duration = "7d"
    call_hit_rate_min_calls: float = Field(20.0, ge=1)  # fewer resolved calls in the window: too few to judge
    call_hit_rate_for: Duration = "1h"
    # Telegram user account (warning): the share of telegram_flood_wait_window spent waiting out FloodWaits
    telegram_flood_wait_ratio: Ratio = Field(0.50, gt=0, le=1)
    telegram_flood_wait_window: Duration = "15m"
    telegram_flood_wait_for: Duration = "15m"
    # Several bot instances on one PostgreSQL: no leader (critical), instances missing and claims lapsing (warning)
    leader_missing_for: Duration = "1m"
    instances_missing_for: Duration = "5m"
    claims_expired_for: Duration = "1m"

    # Self-monitoring
    config_reload_for: Duration = "5m"
    rule_failures_for: Duration = "5m"
    alertmanager_unreachable_for: Duration = "5m"
    notifications_failing_for: Duration = "2m"

    # Backups (age threshold: backup.max_age)
    backup_too_old_for: Duration = "10m"

    # Host (node-mixin thresholds): inodes, file descriptors, clock, OOM kills, CPU, network, disk I/O
    inodes_free_ratio: Ratio = Field(0.05, gt=0, lt=1)            # HostInodesLow (warning)
    inodes_critical_free_ratio: Ratio = Field(0.03, gt=0, lt=1)   # HostInodesExhausted (critical)
    inodes_fill_hours: float = Field(24.0, gt=0, le=24 * 365)
    inodes_predict_max_free_ratio: Ratio = Field(0.40, gt=0, le=1)
    inodes_for: Duration = "1h"
    filefd_warning_ratio: Ratio = Field(0.70, gt=0, lt=1)
    filefd_critical_ratio: Ratio = Field(0.90, gt=0, le=1)
    filefd_for: Duration = "15m"
    clock_offset_seconds: float = Field(0.05, gt=0, le=3600)
    clock_maxerror_seconds: float = Field(16.0, gt=0, le=3600)
    clock_for: Duration = "10m"
    oom_kill_for: Duration = "0s"
    cpu_used_ratio: Ratio = Field(0.90, gt=0, le=1)
    load_per_core: float = Field(2.0, gt=0, le=1000)
    cpu_for: Duration = "15m"
    network_error_ratio: Ratio = Field(0.01, gt=0, le=1)
    network_errors_for: Duration = "1h"
    disk_io_queue_depth: float = Field(10.0, gt=0, le=100000)
    disk_io_for: Duration = "30m"
    conntrack_used_ratio: Ratio = Field(0.75, gt=0, le=1)
    conntrack_for: Duration = "5m"
    textfile_error_for: Duration = "5m"
    major_page_faults_per_second: float = Field(500.0, gt=0, le=1e9)
    major_page_faults_for: Duration = "15m"
    interface_flap_window: Duration = "2m"
    interface_flap_changes: int = Field(2, ge=1, le=1000)
    interface_flap_for: Duration = "2m"

    # Prometheus / Alertmanager self-monitoring (prometheus-mixin, alertmanager-mixin)
    rule_group_missed_for: Duration = "15m"
    rule_group_slow_for: Duration = "15m"
    tsdb_failure_window: Duration = "3h"
    tsdb_failures_for: Duration = "4h"
    notification_queue_horizon: Duration = "30m"
    notification_queue_for: Duration = "15m"
    alertmanager_send_error_ratio: Ratio = Field(0.01, gt=0, le=1)
    alertmanager_send_errors_for: Duration = "15m"
    target_sync_window: Duration = "30m"
    target_sync_for: Duration = "5m"
    scrape_limit_for: Duration = "15m"
    not_ingesting_for: Duration = "10m"
    alertmanager_cluster_for: Duration = "15m"
    samples_rejected_for: Duration = "10m"
    query_load_ratio: Ratio = Field(0.80, gt=0, le=1)
    query_load_for: Duration = "15m"
    restart_window: Duration = "10m"
    restarts_max: int = Field(4, ge=1, le=1000)
    crashloop_for: Duration = "5m"

    # The HA layer (stack.topology = "ha" only): warnings, the pair or the cluster still works
    replica_down_for: Duration = "1m"              # PrometheusReplicaDown: one replica down, its pair up
    remote_write_lag_seconds: float = Field(120.0, gt=0, le=86400)  # PrometheusRemoteWriteBehind: behind > 2 min
    remote_write_behind_for: Duration = "5m"
    remote_write_failing_for: Duration = "5m"      # PrometheusRemoteWriteFailing: sends retried or failing
    remote_write_dropped_for: Duration = "0s"      # RemoteWriteSamplesDropped: samples lost for good
    alertmanager_member_down_for: Duration = "1m"  # AlertmanagerClusterMembersMissing
    alertmanager_member_send_for: Duration = "5m"  # AlertmanagerMemberNotificationsFailing (its peers succeed)
    victoria_metrics_down_for: Duration = "1m"     # VictoriaMetricsDown
    victoria_metrics_free_bytes: float = Field(1073741824.0, gt=0)  # VictoriaMetricsDiskFilling: < 1 GiB free ...
    victoria_metrics_fill_hours: float = Field(24.0, gt=0, le=24 * 365)  # ... or full within 24 h
    victoria_metrics_disk_for: Duration = "10m"

    # Containers (docker mode, from cAdvisor): ContainerRestarting (warning), ContainerMemoryNearLimit (warning)
    container_restart_window: Duration = "15m"
    container_restarts_max: int = Field(2, ge=1, le=1000)   # more restarts than this in the window fire
    container_restart_for: Duration = "0s"
    container_memory_ratio: Ratio = Field(0.90, gt=0, lt=1)  # working set / memory limit (containers with a limit)
    container_memory_for: Duration = "5m"

    # SLOs and multi-window multi-burn-rate alerts (SRE workbook ch. 5; the windows assume a 30-day budget)
    slo_alerts: bool = True
    slo_decision_success: float = Field(0.999, gt=0, lt=1)  # share of token decisions without a failed stage
    slo_decision_latency: float = Field(0.99, gt=0, lt=1)   # share of messages decided within slo_latency_seconds
    slo_latency_seconds: float = Field(10.0, gt=0)
    slo_page_long_window: Duration = "1h"
    slo_page_short_window: Duration = "5m"
    slo_page_burn_rate: float = Field(14.4, gt=0, le=10000)
    slo_page_slow_long_window: Duration = "6h"
    slo_page_slow_short_window: Duration = "30m"
    slo_page_slow_burn_rate: float = Field(6.0, gt=0, le=10000)
    slo_ticket_long_window: Duration = "1d"
    slo_ticket_short_window: Duration = "2h"
    slo_ticket_burn_rate: float = Field(3.0, gt=0, le=10000)
    slo_ticket_slow_long_window: Duration = "3d"
    slo_ticket_slow_short_window: Duration = "6h"
    slo_ticket_slow_burn_rate: float = Field(1.0, gt=0, le=10000)
    slo_page_for: Duration = "0s"
    slo_ticket_for: Duration = "0s"

    def slo_windows(self) -> list[tuple[str, str, str, float]]:
        """(severity, long window, short window, burn rate) of the four burn-rate conditions, pages first."""
        return [
            ("critical", self.slo_page_long_window, self.slo_page_short_window, self.slo_page_burn_rate),
            ("critical", self.slo_page_slow_long_window, self.slo_page_slow_short_window, self.slo_page_slow_burn_rate),
            ("warning", self.slo_ticket_long_window, self.slo_ticket_short_window, self.slo_ticket_burn_rate),
            ("warning", self.slo_ticket_slow_long_window, self.slo_ticket_slow_short_window,
             self.slo_ticket_slow_burn_rate),
        ]

    def slo_objectives(self) -> dict[str, float]:
        """SLO name (the ``slo`` label) -> objective."""
        return {"decision_success": self.slo_decision_success, "decision_latency": self.slo_decision_latency}

    @field_validator("rate_window", "short_window", "error_rate_baseline_window", "disk_predict_window",
                     "pipeline_stall_after", "tsdb_failure_window", "notification_queue_horizon",
                     "target_sync_window", "interface_flap_window", "restart_window", "container_restart_window",
                     "slo_page_long_window", "slo_page_short_window",
                     "slo_page_slow_long_window", "slo_page_slow_short_window", "slo_ticket_long_window",
                     "slo_ticket_short_window", "slo_ticket_slow_long_window", "slo_ticket_slow_short_window")
    @classmethod
    def _windows(cls, value: str) -> str:
        return _check_duration(value)

    @field_validator("*", mode="after")
    @classmethod
    def _for_durations(cls, value: Any, info: Any) -> Any:
        if info.field_name.endswith("_for"):
            return _check_duration(value, allow_zero=True)
        return value

    @field_validator("disk_fstypes_excluded")
    @classmethod
    def _fstypes(cls, value: list[str]) -> list[str]:
        for fstype in value:
            if not re.fullmatch(r"[A-Za-z0-9_.\-]+", fstype):
                raise ValueError(f"{fstype!r} is not a filesystem type name, e.g. \"tmpfs\"")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "AlertSettings":
        if self.error_rate_warning >= self.error_rate_critical:
            raise ValueError(
                f"error_rate_warning ({self.error_rate_warning}) must be below error_rate_critical "
                f"({self.error_rate_critical}): lower alerts.error_rate_warning"
            )
        if duration_seconds(self.short_window) > duration_seconds(self.rate_window):
            raise ValueError(
                f"short_window ({self.short_window}) must not be longer than rate_window ({self.rate_window})"
            )
        # After an incident the rate_window ratio decays through the warning band; a warning `for` at
        # least that window long keeps the decay from notifying BotErrorRateIncreased.
        if duration_seconds(self.error_rate_warning_for) < duration_seconds(self.rate_window):
            raise ValueError(
                f"error_rate_warning_for ({self.error_rate_warning_for}) must not be shorter than rate_window "
                f"({self.rate_window}): raise alerts.error_rate_warning_for"
            )
        if self.inodes_critical_free_ratio >= self.inodes_free_ratio:
            raise ValueError(
                f"inodes_critical_free_ratio ({self.inodes_critical_free_ratio}) must be below inodes_free_ratio "
                f"({self.inodes_free_ratio}): lower alerts.inodes_critical_free_ratio"
            )
        if self.filefd_warning_ratio >= self.filefd_critical_ratio:
            raise ValueError(
                f"filefd_warning_ratio ({self.filefd_warning_ratio}) must be below filefd_critical_ratio "
                f"({self.filefd_critical_ratio}): lower alerts.filefd_warning_ratio"
            )
        buckets = catalogue.DECISION_LATENCY_BUCKETS
        if self.slo_latency_seconds not in buckets:
            raise ValueError(
                f"slo_latency_seconds ({self.slo_latency_seconds}) must be a bucket edge of "
                f"hux_message_decision_latency_seconds: use one of {', '.join(f'{b:g}' for b in buckets)}"
            )
        prefixes = ("slo_page", "slo_page_slow", "slo_ticket", "slo_ticket_slow")
        for prefix, (_, long, short, burn) in zip(prefixes, self.slo_windows(), strict=True):
            if duration_seconds(short) >= duration_seconds(long):
                raise ValueError(
                    f"{prefix}_short_window ({short}) must be shorter than {prefix}_long_window ({long}): the short "
                    "window only confirms that the burn still goes on"
                )
            for name, objective in self.slo_objectives().items():
                if burn * (1 - objective) >= 1:
                    raise ValueError(
                        f"{prefix}_burn_rate ({burn:g}) times the error budget of slo_{name} ({1 - objective:g}) is "
                        f"1 or more, so that alert could never fire: lower alerts.{prefix}_burn_rate or raise "
                        f"alerts.slo_{name}"
                    )
        return self


# --- receivers -------------------------------------------------------------------


class _SecretSource(_Section):
    def _secret(self, env_name: str, file_name: str, environ: Mapping[str, str]) -> str | None:
        if env_name and environ.get(env_name):
            return environ[env_name]
        if file_name:
            try:
                return Path(file_name).expanduser().read_text(encoding="utf-8").strip() or None
            except OSError:
                return None
        return None


class EmailReceiver(_SecretSource):
    enabled: bool = False
    smtp_smarthost: str = "localhost:25"
    from_: str = Field("hux-alerts@localhost", alias="from")
    to: str = "ops@localhost"
    auth_username: str = ""
    auth_password_env: str = "HUX_SMTP_PASSWORD"
    auth_password_file: str = ""
    require_tls: bool = True

    @field_validator("smtp_smarthost")
    @classmethod
    def _smarthost(cls, value: str) -> str:
        if not _TARGET_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not host:port, e.g. \"smtp.example.com:587\"")
        return value

    @field_validator("from_", "to")
    @classmethod
    def _address(cls, value: str) -> str:
        for part in value.split(","):
            if not re.fullmatch(r"[^@\s,]+@[^@\s,]+", part.strip()):
                raise ValueError(f"{value!r} is not an e-mail address (several: comma-separated)")
        return no_template(value, "Alertmanager")

    @field_validator("auth_password_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return env_name(value)

    def password(self, environ: Mapping[str, str]) -> str | None:
        return self._secret(self.auth_password_env, self.auth_password_file, environ)


class SlackReceiver(_SecretSource):
    enabled: bool = False
    api_url_env: str = "HUX_SLACK_WEBHOOK_URL"
    api_url_file: str = ""
    channel: str = "#hux-alerts"

    @field_validator("api_url_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return env_name(value)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return no_template(value, "Alertmanager")

    def api_url(self, environ: Mapping[str, str]) -> str | None:
        return self._secret(self.api_url_env, self.api_url_file, environ)


class WebhookReceiver(_SecretSource):
    enabled: bool = False
    #: a URL that is not secret (e.g. a local receiver); otherwise use url_env / url_file
    url: str = ""
    url_env: str = "HUX_ALERT_WEBHOOK_URL"
    url_file: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value) if value else value

    @field_validator("url_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return env_name(value)

    def resolved_url(self, environ: Mapping[str, str]) -> str | None:
        return self._secret(self.url_env, self.url_file, environ) or self.url or None


class HeartbeatReceiver(WebhookReceiver):
    url_env: str = "HUX_HEARTBEAT_URL"


class Receivers(_Section):
    email: EmailReceiver = EmailReceiver()
    slack: SlackReceiver = SlackReceiver()
    webhook: WebhookReceiver = WebhookReceiver()
    #: dead man's switch: receives the always-firing Watchdog
    heartbeat: HeartbeatReceiver = HeartbeatReceiver()


class InboxSettings(_Section):
    """The local alert inbox: every notification Alertmanager sends, kept on disk for ``hux alerts``."""

    #: native mode: a receiver on every route beside the external ones; the docker path has none (README)
    enabled: bool = True
    #: logs/alerts.log (JSON lines) rotates at this size, keeping ``log_keep`` older files
    log_max_bytes: int = Field(10 * 1024 * 1024, ge=4096, le=1 << 34)
    log_keep: int = Field(5, ge=1, le=100)
    #: the index (data/inbox/index.sqlite3) keeps at most this many entries, none older than ``index_retention``
    index_max_entries: int = Field(100_000, ge=100, le=10_000_000)
    index_retention: Duration = "30d"
    #: a webhook body larger than this is refused with HTTP 400 (and counted)
    max_payload_bytes: int = Field(1 << 20, ge=1024, le=64 << 20)

    @field_validator("index_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        return _check_duration(value)


# --- grafana / backup ------------------------------------------------------------


class GrafanaSettings(_Section):
    #: native mode: "auto" runs (and scrapes) Grafana when a grafana binary is on PATH
    enabled: bool | Literal["auto"] = "auto"
    admin_user: str = "admin"
    #: empty: the stack generates one at first start (data/grafana/admin_password; paths.Layout)
    admin_password_file: str = ""
    datasource_uid: str = "hux-prometheus"
    datasource_name: str = "Prometheus"
    dashboard_refresh: Duration = "30s"
    dashboard_time_from: str = "now-3h"
    #: the Alertmanager datasource (Grafana's alert and silence views, the alert list on System Overview)
    alertmanager_datasource_uid: str = "hux-alertmanager"
    alertmanager_datasource_name: str = "Alertmanager"
    #: scripts/setup_monitoring.py as root on Debian/Ubuntu installs Grafana OSS from this APT repository when
    #: no Grafana is found (false, or --no-grafana: never); the key is stored as a signed-by keyring
    install: bool = True
    apt_repository: str = "https://apt.grafana.com"
    apt_key_url: str = "https://apt.grafana.com/gpg.key"
    #: the `grafana` package version installed (pinned; the docker image is stack.images.grafana)
    apt_version: str = "11.4.0"
    #: each network step of the installation (key download, apt-get update) gives up after this long
    apt_timeout: Duration = "20s"

    @field_validator("admin_user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not _GRAFANA_USER_RE.fullmatch(value):
            raise ValueError(f"{value!r} cannot be written into grafana.ini and docker-compose.yml as it is: use "
                             "letters, digits and . _ @ + - (at most 100, starting with a letter or digit)")
        return value

    @field_validator("admin_password_file")
    @classmethod
    def _password_file(cls, value: str) -> str:
        bad = sorted(INI_UNSAFE & set(value))
        if bad:
            raise ValueError(f"{value!r} holds {' '.join(bad)}, which grafana.ini cannot carry in $__file{{...}}: "
                             "move the file to a path without them")
        return value

    @field_validator("datasource_name", "alertmanager_datasource_name")
    @classmethod
    def _datasource_name(cls, value: str) -> str:
        if not value or "$" in value:
            raise ValueError(f"{value!r}: Grafana expands $NAME in provisioning files; give a name without '$'")
        return value

    @field_validator("datasource_uid", "alertmanager_datasource_uid")
    @classmethod
    def _uid(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,40}", value):
            raise ValueError(f"{value!r} is not a Grafana uid (letters, digits, - and _, at most 40)")
        return value

    @field_validator("dashboard_refresh", "apt_timeout")
    @classmethod
    def _refresh(cls, value: str) -> str:
        return _check_duration(value)

    @field_validator("apt_repository", "apt_key_url")
    @classmethod
    def _apt_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("apt_version")
    @classmethod
    def _apt_version(cls, value: str) -> str:
        # a Debian version (it goes on apt-get's command line as grafana=<version>); never an option
        if not re.fullmatch(r"[0-9][A-Za-z0-9.+~:-]{0,63}", value):
            raise ValueError(f"{value!r} is not a Debian package version, e.g. \"11.4.0\"")
        return value

    @model_validator(mode="after")
    def _distinct_uids(self) -> "GrafanaSettings":
        if self.datasource_uid == self.alertmanager_datasource_uid:
            raise ValueError(f"datasource_uid and alertmanager_datasource_uid are both {self.datasource_uid!r}: "
                             "give grafana.alertmanager_datasource_uid another value")
        return self

    def native_enabled(self) -> bool:
        """Whether natively rendered configs include Grafana (``grafana_install``: the one decision).

        grafana.enabled = true counts even when Grafana is missing: `hux up` then refuses to start.
        """
        decision = grafana_install.native_decision(self.enabled)
        return decision.run or bool(decision.error)


class BackupSettings(_Section):
    dir: str = paths.Layout.DEFAULT_BACKUP_DIR
    keep: int = Field(7, ge=1, le=1000)
    keep_days: int = Field(30, ge=1, le=3650)
    #: the BackupTooOld alert fires when the last successful backup is older
    max_age: Duration = "26h"
    #: authenticated archives: a 0600 file with a key of at least 32 bytes; empty = off
    hmac_key_file: str = Field("", max_length=4096)

    @field_validator("max_age")
    @classmethod
    def _age(cls, value: str) -> str:
        return _check_duration(value)


# --- the whole -------------------------------------------------------------------


class Settings(_Section):
    bot: dict[str, Any] = Field(default_factory=dict)
    stack: StackSettings = StackSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    alerts: AlertSettings = AlertSettings()
    receivers: Receivers = Receivers()
    inbox: InboxSettings = InboxSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    backup: BackupSettings = BackupSettings()
    victoria_metrics: VictoriaMetricsSettings = VictoriaMetricsSettings()

    def url(self, component: str) -> str:
        """Where a local client reaches a component, e.g. ``url("prometheus")`` -> ``http://127.0.0.1:9090``."""
        try:
            port = getattr(self.stack.ports, component)
        except AttributeError:
            known = ", ".join(Ports.model_fields)
            raise KeyError(f"unknown component {component!r}; known: {known}") from None
        return f"http://{self.stack.loopback_host}:{port}"

    def published_url(self, component: str) -> str:
        """Where a client on this machine reaches a component the docker path publishes (``stack.ports`` are
        its host ports), e.g. ``published_url("prometheus_b")`` -> ``http://127.0.0.1:9091``."""
        self.url(component)   # the same unknown-component error
        return f"http://{self.stack.published_host}:{getattr(self.stack.ports, component)}"

    def with_topology(self, topology: Literal["single", "ha"]) -> "Settings":
        """These settings with another ``stack.topology`` (the rule tests and docs render the HA layer too)."""
        return self.model_copy(update={"stack": self.stack.model_copy(update={"topology": topology})})

    def enabled_receivers(self) -> list[str]:
        return [name for name in ("email", "slack", "webhook") if getattr(self.receivers, name).enabled]

    @property
    def bot_instances(self) -> int:
        """``bot.instances``: the local bot instances `hux up` runs (the bot's own model validates the value)."""
        value = self.bot.get("instances", 1)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1

    def bot_targets(self) -> list[str]:
        """Every bot instance Prometheus scrapes: ``stack.bot_targets``, else the local ``bot.instances``."""
        return self.stack.resolved_bot_targets(self.bot_instances)

    @model_validator(mode="after")
    def _bot_instances_have_free_ports(self) -> "Settings":
        ports = self.stack.ports
        others = {getattr(ports, name): name for name in Ports.model_fields if name != "bot"}
        for index in range(1, self.bot_instances):
            if ports.bot + index in others:
                raise ValueError(
                    f"bot.instances = {self.bot_instances} runs bots on ports {ports.bot}-{ports.bot + self.bot_instances - 1}, "
                    f"which takes stack.ports.{others[ports.bot + index]} ({ports.bot + index}): move stack.ports.bot "
                    "or that port")
        return self

    @model_validator(mode="after")
    def _members_notify_within_a_group_interval(self) -> "Settings":
        # The last member waits (members - 1) x peer_timeout before it checks what the others sent; a group that
        # resolves meanwhile makes it send the firing state it saw before (a stale notification after the
        # resolved one), so every member's wait must end within one group interval.
        am = self.alertmanager
        wait = duration_seconds(am.peer_timeout) * (len(self.stack.alertmanager_members()) - 1)
        if self.stack.ha and wait >= duration_seconds(am.group_interval):
            raise ValueError(
                f"alertmanager.peer_timeout ({am.peer_timeout}) x {len(self.stack.alertmanager_members()) - 1} is "
                f"not shorter than alertmanager.group_interval ({am.group_interval}): the last cluster member "
                "would notify a firing group after it resolved; shorten alertmanager.peer_timeout or lengthen "
                "alertmanager.group_interval"
            )
        return self

    @model_validator(mode="after")
    def _bot_down_outlasts_a_lost_scrape(self) -> "Settings":
        # One lost scrape leaves up == 0 visible for one scrape interval: a shorter `for` pages on it every time
        # (equal to it pages when the evaluations fall on both ends; the default is two intervals).
        if duration_seconds(self.alerts.bot_down_for) < duration_seconds(self.prometheus.bot_scrape_interval):
            raise ValueError(
                f"alerts.bot_down_for ({self.alerts.bot_down_for}) is shorter than prometheus.bot_scrape_interval "
                f"({self.prometheus.bot_scrape_interval}): one lost scrape would page; raise alerts.bot_down_for "
                "(two scrape intervals or more)"
            )
        return self


def _check_receiver_secrets(settings: Settings, environ: Mapping[str, str]) -> None:
    """An enabled receiver must find its secret now, not when the first page is due."""
    problems = []
    email = settings.receivers.email
    if email.enabled and email.auth_username and not email.password(environ):
        problems.append(
            "receivers.email is enabled with auth_username but no password: set the environment variable "
            f"{email.auth_password_env or '(receivers.email.auth_password_env)'} (e.g. in .env) or "
            "receivers.email.auth_password_file"
        )
    slack = settings.receivers.slack
    if slack.enabled and not slack.api_url(environ):
        problems.append(
            "receivers.slack is enabled but has no webhook URL: set the environment variable "
            f"{slack.api_url_env or '(receivers.slack.api_url_env)'} (e.g. in .env) or receivers.slack.api_url_file"
        )
    for name in ("webhook", "heartbeat"):
        hook = getattr(settings.receivers, name)
        if hook.enabled and not hook.resolved_url(environ):
            problems.append(
                f"receivers.{name} is enabled but has no URL: set receivers.{name}.url, the environment variable "
                f"{hook.url_env or f'(receivers.{name}.url_env)'}, or receivers.{name}.url_file"
            )
    for name in ("email", "slack", "webhook"):
        in_routes = name in settings.alertmanager.critical_receivers or name in settings.alertmanager.warning_receivers
        if getattr(settings.receivers, name).enabled and not in_routes:
            problems.append(
                f"receivers.{name} is enabled but no route uses it: add \"{name}\" to "
                "alertmanager.critical_receivers or alertmanager.warning_receivers"
            )
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def is_web_url(value: str) -> bool:
    """An http(s) URL with a host: a link that opens from Slack or a mail client on a phone."""
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. "http://[" (an unclosed IPv6 host)
        return False


def _check_runbook_link(settings: Settings) -> None:
    """Notifications link the runbook: with a person's receiver enabled, the link must open from a phone.

    Both modes: the docker tree wires the same receivers. With no external receiver a relative base is fine
    (the links are read beside the repository, e.g. by `hux alerts`).
    """
    base = settings.alerts.runbook_base_url
    enabled = settings.enabled_receivers()
    if enabled and not is_web_url(base):
        raise ConfigError(
            f"invalid configuration:\n  alerts.runbook_base_url is {base!r}, which opens nowhere from a "
            f"notification, and receivers.{enabled[0]} is enabled: set alerts.runbook_base_url in hux.toml to "
            "the https:// URL of docs/runbooks.md where your team can open it (e.g. "
            "\"https://github.com/<you>/<repo>/blob/main/docs/runbooks.md\"); the first steps are sent inline "
            "either way")


def settings_from_raw(raw: Mapping[str, Any], *, environ: Mapping[str, str] | None = None,
                      source: str = "settings") -> Settings:
    """Validate an already merged settings dict (see ``load_settings``)."""
    environ = os.environ if environ is None else environ
    data = {key: raw[key] for key in ("bot", *SECTIONS) if key in raw}
    for key, value in data.items():
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a table ([{key}]); fix the settings file")
    # The stack scrapes the bot where the bot listens, unless told otherwise.
    bot_port = data.get("bot", {}).get("port")
    stack = dict(data.get("stack", {}))
    ports = stack.get("ports", {})
    if not isinstance(ports, Mapping):
        raise ConfigError(f"config key 'stack.ports' must be a table ([stack.ports]), got {ports!r}; fix the settings file")
    ports = dict(ports)
    if "bot" not in ports and isinstance(bot_port, int) and not isinstance(bot_port, bool) and bot_port > 0:
        ports["bot"] = bot_port
        stack["ports"] = ports
        data["stack"] = stack
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source=source) from None
    check_bot_section(settings, settings.stack.mode, source)
    if settings.stack.mode == "native":
        # The docker path reads receiver secrets from docker/secrets/ files, not from this environment.
        _check_receiver_secrets(settings, environ)
    _check_runbook_link(settings)
    return settings


#: the database of the docker path's bots when bot.database_url is not given: the compose PostgreSQL service
#: (hux.monitoring.compose puts the password in from .env)
DOCKER_BOT_DATABASE = {"user": "hux", "host": "postgres", "port": 5432, "database": "hux"}


def docker_bot_database_url(password: str = "") -> str:
    db = DOCKER_BOT_DATABASE
    login = f"{db['user']}:{password}" if password else str(db["user"])
    return f"postgresql+psycopg://{login}@{db['host']}:{db['port']}/{db['database']}"


def check_bot_section(settings: Settings, mode: str, source: str = "settings") -> None:
    """The bot validates its own section (``BotConfig``), as it runs in ``mode``: on the docker path without
    ``bot.database_url`` the bots use the compose PostgreSQL, so ``bot.instances > 1`` is fine there; a given URL
    (SQLite too) is checked as it is, with the message the native path gives."""
    section = dict(settings.bot)
    if mode == "docker" and not section.get("database_url"):
        section["database_url"] = docker_bot_database_url()
    try:
        BotConfig.model_validate(section)
    except ValidationError as exc:
        raise validation_error(exc, section="bot", source=source) from None


def load_settings(path: str | os.PathLike[str] | None = None, *,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """The validated settings; ``ConfigError`` naming the bad key and the fix otherwise.

    ``environ`` replaces ``os.environ`` (and ``.env``) for overrides and secrets,
    which keeps tests independent of the caller's environment.
    """
    raw = load_raw(path, environ=environ)
    return settings_from_raw(raw, environ=environ, source=str(path) if path else "settings")
