"""The Prometheus configuration: global intervals, Alertmanager, rule files and scrape jobs.

The same builder serves both modes; only the addresses differ (``Targets``).
The output loads on Prometheus 2.42 (Debian) and 3.x (images): no
``scrape_protocols``, no retention in the file (retention is a command-line
flag, see ``prometheus_flags``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hux.monitoring.durations import duration_seconds
from hux.monitoring.settings import Settings, StackSettings

#: container-internal ports of the docker services (host ports come from stack.ports); topology "ha": the
#: second replica and the other members listen where the first does, each in its own container
DOCKER_PORTS = {"prometheus": 9090, "alertmanager": 9093, "node_exporter": 9100, "grafana": 3000,
                "cadvisor": 8080, "bot": 8000, "prometheus_b": 9090, "alertmanager_b": 9093, "alertmanager_c": 9093,
                "victoria_metrics": 8428}
#: docker-compose service names (the HA ones too: the first replica and member keep the single topology's
#: names, as natively, so backups, reloads and `hux health` reach them as before)
DOCKER_SERVICES = {"prometheus": "prometheus", "alertmanager": "alertmanager", "node_exporter": "node-exporter",
                   "grafana": "grafana", "cadvisor": "cadvisor", "bot": "bot", "prometheus_b": "prometheus-b",
                   "alertmanager_b": "alertmanager-b", "alertmanager_c": "alertmanager-c",
                   "victoria_metrics": "victoriametrics"}


def docker_bot_services(instances: int) -> list[str]:
    """The compose services of ``bot.instances``: ``bot``, then ``bot-2`` .. ``bot-N`` (natively ``bot``, ``bot_2``,
    ...). The first keeps its name, volume and spool when N grows, and ``docker compose exec bot`` still works."""
    return [DOCKER_SERVICES["bot"], *(f"{DOCKER_SERVICES['bot']}-{index}" for index in range(2, instances + 1))]


#: the gossip port of every Alertmanager container (Alertmanager's default; never published)
DOCKER_CLUSTER_PORT = 9094

#: where the docker Prometheus sees data/targets (mounted read-only by docker-compose.yml)
DOCKER_TARGETS_DIR = "/etc/hux-targets"


@dataclass(frozen=True)
class Targets:
    """Where Prometheus finds each component in one deployment mode."""

    prometheus: str
    alertmanager: str
    node: str
    grafana: str | None
    cadvisor: str | None
    bot_static: list[str] = field(default_factory=list)
    #: docker with one bot service: its name resolved through DNS (one A record per `--scale` replica)
    bot_dns: tuple[str, int] | None = None
    #: the local alert inbox (native, ``inbox.enabled``); the docker path has none
    inbox: str | None = None
    #: where the target files of ``hux targets`` (``<kind>.json``) are, as Prometheus sees the directory
    file_sd_dir: str | None = None
    #: topology "ha": the other Prometheus replica and Alertmanager members (scraped in the same jobs; every
    #: Prometheus sends to every Alertmanager) and VictoriaMetrics (remote_write target, scraped)
    prometheus_peers: tuple[str, ...] = ()
    alertmanager_peers: tuple[str, ...] = ()
    victoria_metrics: str | None = None

    @classmethod
    def native(cls, settings: Settings, *, grafana: bool | None = None,
               file_sd_dir: Path | None = None) -> "Targets":
        host = settings.stack.loopback_host
        ports = settings.stack.ports
        with_grafana = settings.grafana.native_enabled() if grafana is None else grafana
        stack = settings.stack

        def at(component: str) -> str:
            return f"{host}:{getattr(ports, component)}"

        return cls(
            prometheus=at("prometheus"),
            alertmanager=at("alertmanager"),
            node=at("node_exporter"),
            grafana=at("grafana") if with_grafana else None,
            cadvisor=None,
            bot_static=settings.bot_targets(),
            inbox=at("inbox") if settings.inbox.enabled else None,
            file_sd_dir=str(file_sd_dir) if file_sd_dir else None,
            **_ha_targets(stack, at),
        )

    @classmethod
    def docker(cls, settings: Settings | None = None) -> "Targets":
        """The compose services; with HA ``settings``, the other replica, the other members and VictoriaMetrics."""
        def at(name: str) -> str:
            return f"{DOCKER_SERVICES[name]}:{DOCKER_PORTS[name]}"

        instances = settings.bot_instances if settings else 1
        # bot.instances > 1: one compose service per instance, each a static target named after its service, so
        # its `instance` label stays the same across container restarts (DNS answers a new container IP each time)
        bots = [f"{service}:{DOCKER_PORTS['bot']}" for service in docker_bot_services(instances)]
        return cls(
            prometheus=at("prometheus"),
            alertmanager=at("alertmanager"),
            node=at("node_exporter"),
            grafana=at("grafana"),
            cadvisor=at("cadvisor"),
            bot_static=bots if instances > 1 else [],
            bot_dns=(DOCKER_SERVICES["bot"], DOCKER_PORTS["bot"]) if instances == 1 else None,
            file_sd_dir=DOCKER_TARGETS_DIR,
            **(_ha_targets(settings.stack, at) if settings else {}),
        )


def _ha_targets(stack: StackSettings, at: Callable[[str], str]) -> dict[str, Any]:
    """Topology "ha": the other replica, the other members and VictoriaMetrics, each where ``at`` puts it."""
    return {
        "prometheus_peers": tuple(at(name) for name in stack.prometheus_replicas() if name != "prometheus"),
        "alertmanager_peers": tuple(at(name) for name in stack.alertmanager_members()[1:]),
        "victoria_metrics": at("victoria_metrics") if stack.ha else None,
    }


def _static_job(name: str, targets: list[str], basic_auth: dict[str, str] | None = None) -> dict[str, Any]:
    job: dict[str, Any] = {"job_name": name}
    if basic_auth:
        job["basic_auth"] = dict(basic_auth)
    job["static_configs"] = [{"targets": targets}]
    return job


def static_targets(settings: Settings) -> dict[str, list[str]]:
    """job -> the native static targets of the jobs ``hux targets`` adds to (the local node_exporter, the bots)."""
    targets = Targets.native(settings, grafana=False)
    return {"node": [targets.node], settings.stack.bot_job: list(targets.bot_static)}


def _with_file_sd(job: dict[str, Any], settings: Settings, targets: Targets, kind: str) -> dict[str, Any]:
    """The job also scrapes what ``hux targets`` lists in ``<kind>.json`` (re-read without a restart)."""
    if targets.file_sd_dir:
        job["file_sd_configs"] = [{"files": [f"{targets.file_sd_dir}/{kind}.json"],
                                   "refresh_interval": settings.prometheus.target_refresh_interval}]
    return job


def basic_auth(username: str, password_file: Path | str) -> dict[str, str]:
    """The ``basic_auth`` block of a scrape or alerting config (Prometheus 2.42 and 3.x): the password by file."""
    return {"username": username, "password_file": str(password_file)}


#: topology "ha": the external label telling the replicas apart; dropped from the alerts they send (Alertmanager
#: then sees one alert, not two) and from the samples VictoriaMetrics stores (its dedup then keeps one)
REPLICA_LABEL = "replica"


def dedup_interval(settings: Settings) -> str:
    """VictoriaMetrics' ``-dedup.minScrapeInterval``: the scrape interval, the shortest one (the bot's fast path),
    so dedup drops the other replica's copy of a sample and never one of the bot's own samples."""
    p = settings.prometheus
    return min(p.scrape_interval, p.bot_scrape_interval, key=duration_seconds)


def prometheus_config(settings: Settings, targets: Targets, *, auth: dict[str, str] | None = None,
                      replica: str = "") -> dict[str, Any]:
    """``auth`` (see ``basic_auth``): credentials for Prometheus itself, Alertmanager and node_exporter,
    the components behind a web config natively; the bot, Grafana and cAdvisor never get them.
    ``replica``: the HA topology's ``replica`` external label of this replica (same config otherwise)."""
    p = settings.prometheus
    global_: dict[str, Any] = {
        "scrape_interval": p.scrape_interval,
        "scrape_timeout": p.resolved_scrape_timeout,
        "evaluation_interval": p.evaluation_interval,
    }
    labels = {**p.external_labels, **({REPLICA_LABEL: replica} if replica else {})}
    if labels:
        global_["external_labels"] = labels
    alertmanagers = [targets.alertmanager, *targets.alertmanager_peers]
    jobs = [
        _static_job(settings.stack.prometheus_job, [targets.prometheus, *targets.prometheus_peers], auth),
        _static_job(settings.stack.alertmanager_job, alertmanagers, auth),
        _with_file_sd(_static_job("node", [targets.node], auth), settings, targets, "node"),
    ]
    if targets.victoria_metrics:
        jobs.append(_static_job(settings.stack.victoria_metrics_job, [targets.victoria_metrics]))
    if targets.cadvisor:
        jobs.append(_static_job("cadvisor", [targets.cadvisor]))
    if targets.grafana:
        jobs.append(_static_job("grafana", [targets.grafana]))
    if targets.inbox:
        jobs.append(_static_job("inbox", [targets.inbox]))
    # The paging fast path: the bot job on its own interval and timeout (per-job keys, Prometheus 2.42 and 3.x).
    bot_timing = {"scrape_interval": p.bot_scrape_interval, "scrape_timeout": p.bot_scrape_timeout}
    if targets.bot_dns:
        name, port = targets.bot_dns
        # One A record per replica: `docker compose up --scale bot=3` adds targets, each its own instance.
        jobs.append(_with_file_sd({
            "job_name": settings.stack.bot_job, **bot_timing,
            "dns_sd_configs": [{"names": [name], "type": "A", "port": port, "refresh_interval": "30s"}],
        }, settings, targets, "bot"))
    else:
        jobs.append(_with_file_sd({**_static_job(settings.stack.bot_job, list(targets.bot_static)), **bot_timing},
                                  settings, targets, "bot"))
    alertmanager: dict[str, Any] = {"basic_auth": dict(auth)} if auth else {}
    alertmanager["static_configs"] = [{"targets": list(alertmanagers)}]   # a copy: no YAML alias
    alerting: dict[str, Any] = {"alertmanagers": [alertmanager]}
    if replica:
        alerting = {"alert_relabel_configs": [{"action": "labeldrop", "regex": REPLICA_LABEL}], **alerting}
    config: dict[str, Any] = {
        "global": global_,
        "alerting": alerting,
        # Relative to this file's directory, so a config checked in a staging directory checks its own rules.
        "rule_files": ["rules/*.yml"],
        "scrape_configs": jobs,
    }
    if targets.victoria_metrics:
        config["remote_write"] = [{"url": f"http://{targets.victoria_metrics}/api/v1/write",
                                   "name": settings.stack.victoria_metrics_job}]
    return config


#: Prometheus drops the alerts of its first evaluation when its Alertmanager is not discovered yet (a race at
#: start-up, counted in prometheus_notifications_dropped_total) and re-sends a firing alert only every
#: resend delay (1m by default, rounded up to the group's interval): the first Watchdog heartbeat came 75 s after
#: start. 30s brings it within about 45 s; an alert's end time (4 x the delay) stays 2 minutes, so a silent
#: Prometheus does not make Alertmanager resolve what is firing within one missed send.
RESEND_DELAY_FLAG = "--rules.alert.resend-delay=30s"
#: topology "ha": VictoriaMetrics' -relabelConfig (drops the replica label at ingestion)
VM_RELABEL_FILE = "victoria-metrics-relabel.yml"
#: topology "ha": --storage.remote.flush-deadline (see prometheus_flags)
REMOTE_FLUSH_DEADLINE = "10s"


def prometheus_flags(settings: Settings, config_file: Path | str, storage_dir: Path | str, *,
                     listen: str | None = None) -> list[str]:
    """Command-line flags that belong with the rendered config (retention is a flag, not a config key)."""
    p = settings.prometheus
    listen = listen or f"{settings.stack.bind_address}:{settings.stack.ports.prometheus}"
    flags = [
        f"--config.file={config_file}",
        f"--storage.tsdb.path={storage_dir}",
        f"--storage.tsdb.retention.time={p.retention_time}",
        f"--web.listen-address={listen}",
        RESEND_DELAY_FLAG,
        "--web.enable-lifecycle",
        "--web.enable-admin-api",
    ]
    if p.retention_size:
        flags.append(f"--storage.tsdb.retention.size={p.retention_size}")
    if settings.stack.ha:
        # On the way down Prometheus flushes its remote-write queue for at most this long (1m by default,
        # longer than the supervisor's stop timeout when VictoriaMetrics stops at the same time)
        flags.append(f"--storage.remote.flush-deadline={REMOTE_FLUSH_DEADLINE}")
    return flags


def victoria_metrics_flags(settings: Settings, storage_dir: Path | str, relabel_file: Path | str, *,
                           listen: str | None = None) -> list[str]:
    """VictoriaMetrics single-node: its own retention, dedup of the two replicas (``dedup_interval``; the
    ``replica`` label dropped at ingestion by ``relabel_file``, see ``victoria_metrics_relabel``)."""
    vm = settings.victoria_metrics
    listen = listen or f"{settings.stack.bind_address}:{settings.stack.ports.victoria_metrics}"
    return [
        f"-httpListenAddr={listen}",
        f"-storageDataPath={storage_dir}",
        f"-retentionPeriod={vm.retention_period}",
        f"-dedup.minScrapeInterval={dedup_interval(settings)}",
        f"-search.latencyOffset={vm.latency_offset}",
        f"-relabelConfig={relabel_file}",
    ]


def victoria_metrics_relabel() -> list[dict[str, Any]]:
    """What VictoriaMetrics does to every ingested series: drop ``replica`` so the pair's copies are one series."""
    return [{"action": "labeldrop", "regex": REPLICA_LABEL}]
