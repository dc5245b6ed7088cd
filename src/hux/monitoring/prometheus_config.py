"""The Prometheus configuration: global intervals, Alertmanager, rule files and scrape jobs.

The same builder serves both modes; only the addresses differ (``Targets``).
The output loads on Prometheus 2.42 (Debian) and 3.x (images): no
``scrape_protocols``, no retention in the file (retention is a command-line
flag, see ``prometheus_flags``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hux.monitoring.settings import Settings

#: container-internal ports of the docker services (host ports come from stack.ports)
DOCKER_PORTS = {"prometheus": 9090, "alertmanager": 9093, "node_exporter": 9100, "grafana": 3000,
                "cadvisor": 8080, "bot": 8000}
#: docker-compose service names
DOCKER_SERVICES = {"prometheus": "prometheus", "alertmanager": "alertmanager", "node_exporter": "node-exporter",
                   "grafana": "grafana", "cadvisor": "cadvisor", "bot": "bot"}

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
    #: docker: the bot service name resolved through DNS (one A record per replica)
    bot_dns: tuple[str, int] | None = None
    #: the local alert inbox (native, ``inbox.enabled``); the docker path has none
    inbox: str | None = None
    #: where the target files of ``hux targets`` (``<kind>.json``) are, as Prometheus sees the directory
    file_sd_dir: str | None = None

    @classmethod
    def native(cls, settings: Settings, *, grafana: bool | None = None,
               file_sd_dir: Path | None = None) -> "Targets":
        host = settings.stack.loopback_host
        ports = settings.stack.ports
        with_grafana = settings.grafana.native_enabled() if grafana is None else grafana
        return cls(
            prometheus=f"{host}:{ports.prometheus}",
            alertmanager=f"{host}:{ports.alertmanager}",
            node=f"{host}:{ports.node_exporter}",
            grafana=f"{host}:{ports.grafana}" if with_grafana else None,
            cadvisor=None,
            bot_static=settings.stack.resolved_bot_targets(),
            inbox=f"{host}:{ports.inbox}" if settings.inbox.enabled else None,
            file_sd_dir=str(file_sd_dir) if file_sd_dir else None,
        )

    @classmethod
    def docker(cls) -> "Targets":
        def at(name: str) -> str:
            return f"{DOCKER_SERVICES[name]}:{DOCKER_PORTS[name]}"

        return cls(
            prometheus=at("prometheus"),
            alertmanager=at("alertmanager"),
            node=at("node_exporter"),
            grafana=at("grafana"),
            cadvisor=at("cadvisor"),
            bot_dns=(DOCKER_SERVICES["bot"], DOCKER_PORTS["bot"]),
            file_sd_dir=DOCKER_TARGETS_DIR,
        )


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


def prometheus_config(settings: Settings, targets: Targets, *, auth: dict[str, str] | None = None) -> dict[str, Any]:
    """``auth`` (see ``basic_auth``): credentials for Prometheus itself, Alertmanager and node_exporter,
    the components behind a web config natively; the bot, Grafana and cAdvisor never get them."""
    p = settings.prometheus
    global_: dict[str, Any] = {
        "scrape_interval": p.scrape_interval,
        "scrape_timeout": p.resolved_scrape_timeout,
        "evaluation_interval": p.evaluation_interval,
    }
    if p.external_labels:
        global_["external_labels"] = dict(p.external_labels)
    jobs = [
        _static_job("prometheus", [targets.prometheus], auth),
        _static_job("alertmanager", [targets.alertmanager], auth),
        _with_file_sd(_static_job("node", [targets.node], auth), settings, targets, "node"),
    ]
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
    alertmanager["static_configs"] = [{"targets": [targets.alertmanager]}]
    return {
        "global": global_,
        "alerting": {"alertmanagers": [alertmanager]},
        # Relative to this file's directory, so a config checked in a staging directory checks its own rules.
        "rule_files": ["rules/*.yml"],
        "scrape_configs": jobs,
    }


#: Prometheus drops the alerts of its first evaluation when its Alertmanager is not discovered yet (a race at
#: start-up, counted in prometheus_notifications_dropped_total) and re-sends a firing alert only every
#: resend delay (1m by default, rounded up to the group's interval): the first Watchdog heartbeat came 75 s after
#: start. 30s brings it within about 45 s; an alert's end time (4 x the delay) stays 2 minutes, so a silent
#: Prometheus does not make Alertmanager resolve what is firing within one missed send.
RESEND_DELAY_FLAG = "--rules.alert.resend-delay=30s"


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
    return flags
