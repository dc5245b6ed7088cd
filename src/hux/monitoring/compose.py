"""``docker-compose.yml``: the docker path of the stack (Compose Specification, no ``version`` key).

Services: prometheus, alertmanager, grafana, node-exporter, cadvisor, the bot
(built from the repository's Dockerfile; ``bot.instances = N`` adds ``bot-2``
.. ``bot-N``, ``_add_bot_instances``) and PostgreSQL for the bot. Every
service has a pinned image, a healthcheck and a restart policy; state lives
in named volumes; host ports are published on ``stack.publish_address`` only
(127.0.0.1 by default: this machine). Topology "ha" adds the second Prometheus replica, two more
Alertmanagers gossiping over the compose network and VictoriaMetrics (``_add_ha_services``).

Prometheus's admin API (TSDB snapshots for ``hux backup``) and lifecycle API
(``POST /-/reload``) have no authentication. They are enabled only while the
Prometheus port is published on loopback; published beyond it they stay off,
and a reload is ``docker compose kill -s SIGHUP prometheus`` (see
docs/operations.md).

Secrets never appear in the file:

* the Grafana admin password and the PostgreSQL password come from ``.env``
  (``HUX_GRAFANA_ADMIN_PASSWORD``, ``HUX_POSTGRES_PASSWORD``; compose refuses
  to start without them, there is no default);
* Alertmanager reads the SMTP password, Slack URL and webhook URLs from docker
  secrets (files under ``docker/secrets/``, never committed), which its
  ``*_file`` settings point at.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from hux.bot.config import READER_ROLE
from hux.monitoring import alertmanager as am
from hux.monitoring.prometheus_config import (
    DOCKER_CLUSTER_PORT,
    DOCKER_PORTS,
    DOCKER_SERVICES,
    DOCKER_TARGETS_DIR,
    REMOTE_FLUSH_DEADLINE,
    RESEND_DELAY_FLAG,
    VM_RELABEL_FILE,
    docker_bot_services,
    victoria_metrics_flags,
)
from hux.monitoring.settings import Settings, docker_bot_database_url

#: docker secret name -> file under docker/secrets/ (see .env.example)
ALERTMANAGER_SECRETS = {
    "hux_smtp_password": "smtp_password",
    "hux_slack_api_url": "slack_api_url",
    "hux_webhook_url": "webhook_url",
    "hux_heartbeat_url": "heartbeat_url",
}
REQUIRED_ENV = ("HUX_GRAFANA_ADMIN_PASSWORD", "HUX_POSTGRES_PASSWORD", "HUX_GRAFANA_DB_PASSWORD")
#: PostgreSQL runs this once, on an empty data volume: Grafana's read-only role (hux.bot.store.READER_ROLE).
READER_INIT_SCRIPT = "docker/postgres/initdb/10-grafana-reader.sh"


def reader_init_script() -> str:
    """Creates the read-only role Grafana logs in with; the bot's migration grants it SELECT on its three tables."""
    return f"""#!/bin/sh
# Rendered by `hux render`. Run by the postgres image on an empty data volume only: the role Grafana's
# "Bot database" datasource logs in with. It can read tokens, decisions and call_checks (the bot grants that
# when it migrates) and nothing else: no chat texts. On an existing volume, run these lines by hand.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$HUX_GRAFANA_DB_PASSWORD" -v db="$POSTGRES_DB" -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<'SQL'
CREATE ROLE {READER_ROLE} LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE :"db" TO {READER_ROLE};
GRANT USAGE ON SCHEMA public TO {READER_ROLE};
SQL
"""
#: every service's memory limit (compose ``mem_limit``): a runaway container is killed and restarted
#: rather than starving the host, and ContainerMemoryNearLimit (working set / limit) has a limit to measure
MEMORY_LIMITS = {"prometheus": "2g", "alertmanager": "256m", "grafana": "512m", "node-exporter": "128m",
                 "cadvisor": "512m", "postgres": "1g", "bot": "512m"}
#: topology "ha": VictoriaMetrics (the replicas and members take their first's limit)
HA_MEMORY_LIMITS = {"victoriametrics": "1g"}


def secret_path(name: str) -> str:
    return f"/run/secrets/{name}"


def _wget_health(url: str) -> dict[str, Any]:
    return {"test": ["CMD", "wget", "-q", "--spider", url], "interval": "30s", "timeout": "5s", "retries": 3,
            "start_period": "20s"}


def published_on_loopback(settings: Settings) -> bool:
    """True when nothing but this machine reaches the published ports."""
    return ipaddress.ip_address(settings.stack.publish_address).is_loopback


def _publish(settings: Settings, component: str) -> list[str]:
    host_port = getattr(settings.stack.ports, component)
    address = settings.stack.publish_address
    host = f"[{address}]" if ":" in address else address
    return [f"{host}:{host_port}:{DOCKER_PORTS[component]}"]


def _prometheus_api_flags(settings: Settings) -> list[str]:
    """Lifecycle (reload) and admin (snapshots) APIs: unauthenticated, so only behind loopback."""
    if not published_on_loopback(settings):
        return []
    return ["--web.enable-lifecycle", "--web.enable-admin-api"]


def _required(var: str) -> str:
    return f"${{{var}:?set {var} in .env (see .env.example)}}"


def compose_document(settings: Settings, alertmanager_secrets: list[str]) -> dict[str, Any]:
    images = settings.stack.images
    prom = settings.prometheus
    retention = [f"--storage.tsdb.retention.time={prom.retention_time}"]
    if prom.retention_size:
        retention.append(f"--storage.tsdb.retention.size={prom.retention_size}")
    services: dict[str, Any] = {
        "prometheus": {
            "image": images.prometheus,
            "command": [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                *retention,
                RESEND_DELAY_FLAG,
                *_prometheus_api_flags(settings),
            ],
            # data/targets: the target files `hux targets` edits on the host (re-read without a restart)
            "volumes": ["./docker/prometheus:/etc/prometheus:ro", f"./data/targets:{DOCKER_TARGETS_DIR}:ro",
                        "prometheus_data:/prometheus"],
            "ports": _publish(settings, "prometheus"),
            "healthcheck": _wget_health("http://localhost:9090/-/healthy"),
            "restart": "unless-stopped",
        },
        "alertmanager": {
            "image": images.alertmanager,
            "command": [
                "--config.file=/etc/alertmanager/alertmanager.yml",
                "--storage.path=/alertmanager",
                "--cluster.listen-address=",
            ],
            "volumes": ["./docker/alertmanager:/etc/alertmanager:ro", "alertmanager_data:/alertmanager"],
            "ports": _publish(settings, "alertmanager"),
            "healthcheck": _wget_health("http://localhost:9093/-/healthy"),
            "restart": "unless-stopped",
        },
        "grafana": {
            "image": images.grafana,
            "environment": {
                "GF_SECURITY_ADMIN_USER": settings.grafana.admin_user,
                "GF_SECURITY_ADMIN_PASSWORD": _required("HUX_GRAFANA_ADMIN_PASSWORD"),
                "GF_USERS_ALLOW_SIGN_UP": "false",
                "GF_AUTH_ANONYMOUS_ENABLED": "false",
                "GF_ANALYTICS_REPORTING_ENABLED": "false",
                "GF_PATHS_PROVISIONING": "/etc/grafana/provisioning",
                "HUX_GRAFANA_DB_PASSWORD": _required("HUX_GRAFANA_DB_PASSWORD"),  # the bot database's read-only role
            },
            "volumes": [
                "./docker/grafana/provisioning:/etc/grafana/provisioning:ro",
                "./docker/grafana/dashboards:/var/lib/grafana/dashboards:ro",
                "grafana_data:/var/lib/grafana",
            ],
            "ports": _publish(settings, "grafana"),
            "depends_on": {"prometheus": {"condition": "service_healthy"}},
            "healthcheck": _wget_health("http://localhost:3000/api/health"),
            "restart": "unless-stopped",
        },
        "node-exporter": {
            "image": images.node_exporter,
            "command": [
                "--path.rootfs=/host",
                "--collector.textfile.directory=/textfile",
            ],
            "pid": "host",
            "volumes": ["/:/host:ro,rslave", "./data/node_exporter/textfile:/textfile:ro"],
            "ports": _publish(settings, "node_exporter"),
            "healthcheck": _wget_health("http://localhost:9100/metrics"),
            "restart": "unless-stopped",
        },
        "cadvisor": {
            "image": images.cadvisor,
            "privileged": True,
            "devices": ["/dev/kmsg"],
            "volumes": [
                "/:/rootfs:ro",
                "/var/run:/var/run:ro",
                "/sys:/sys:ro",
                "/var/lib/docker/:/var/lib/docker:ro",
                "/dev/disk/:/dev/disk:ro",
            ],
            "ports": _publish(settings, "cadvisor"),
            "healthcheck": _wget_health("http://localhost:8080/healthz"),
            "restart": "unless-stopped",
        },
        "postgres": {
            "image": images.postgres,
            "environment": {
                "POSTGRES_USER": "hux",
                "POSTGRES_DB": "hux",
                "POSTGRES_PASSWORD": _required("HUX_POSTGRES_PASSWORD"),
                "HUX_GRAFANA_DB_PASSWORD": _required("HUX_GRAFANA_DB_PASSWORD"),
            },
            "volumes": ["postgres_data:/var/lib/postgresql/data", "./docker/postgres/initdb:/docker-entrypoint-initdb.d:ro"],
            "healthcheck": {"test": ["CMD", "pg_isready", "-U", "hux", "-d", "hux"], "interval": "10s",
                            "timeout": "5s", "retries": 5},
            "restart": "unless-stopped",
        },
        "bot": {
            "build": {"context": ".", "args": {"PYTHON_IMAGE": images.python}},
            "image": "mr-hux-alpha-bot:local",
            "environment": {
                "HUX__BOT__HOST": "0.0.0.0",
                "HUX__BOT__PORT": str(DOCKER_PORTS["bot"]),
                "HUX__BOT__DATABASE_URL": docker_bot_database_url(_required("HUX_POSTGRES_PASSWORD")),
                "HUX_TELEGRAM_TOKEN": "${HUX_TELEGRAM_TOKEN:-}",
            },
            "volumes": ["bot_home:/var/lib/hux"],
            # No host port: replicas (`docker compose up --scale bot=3`) or the bot-N services of
            # bot.instances would collide. Use `docker compose exec bot ...` to reach one.
            "expose": [str(DOCKER_PORTS["bot"])],
            "depends_on": {"postgres": {"condition": "service_healthy"}},
            "healthcheck": {
                "test": ["CMD", "python", "-c",
                         "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=3)"],
                "interval": "30s", "timeout": "5s", "retries": 3, "start_period": "20s",
            },
            "restart": "unless-stopped",
        },
    }
    for name, service in services.items():
        service["mem_limit"] = MEMORY_LIMITS[name]
    document: dict[str, Any] = {
        "services": services,
        "volumes": {name: {} for name in ("prometheus_data", "alertmanager_data", "grafana_data", "postgres_data",
                                          "bot_home")},
    }
    if settings.bot_instances > 1:
        _add_bot_instances(settings.bot_instances, document)
    if alertmanager_secrets:   # only the wired receivers' secrets (hux.monitoring.wiring); none: no secrets at all
        services["alertmanager"]["secrets"] = list(alertmanager_secrets)
        document["secrets"] = {name: {"file": f"./docker/secrets/{ALERTMANAGER_SECRETS[name]}"}
                               for name in alertmanager_secrets}
    if settings.stack.ha:
        _add_ha_services(settings, document)
    return document


def _add_bot_instances(instances: int, document: dict[str, Any]) -> None:
    """``bot.instances = N``: services ``bot-2`` .. ``bot-N``, copies of ``bot`` with a home volume each (their
    spools and logs stay apart), all on the compose PostgreSQL. Separate services rather than ``deploy.replicas``
    with DNS discovery: each is a static target under its own name, so Prometheus's ``instance`` label of an
    instance survives a container restart, which a replica's new IP would not. No host port on any of them, as
    for ``bot``."""
    services, volumes = document["services"], document["volumes"]
    first = services[DOCKER_SERVICES["bot"]]
    # every instance reports bot.instances (hux_bot_instances_configured, which BotInstancesMissing compares with)
    first["environment"]["HUX__BOT__INSTANCES"] = str(instances)
    for service in docker_bot_services(instances)[1:]:
        volume = f"{service.replace('-', '_')}_home"
        # each keeps `build`: without it compose would try to pull the local-only image before `bot` built it
        services[service] = {**copy.deepcopy(first), "volumes": [f"{volume}:/var/lib/hux"]}
        volumes[volume] = {}


def _add_ha_services(settings: Settings, document: dict[str, Any]) -> None:
    """Topology "ha" (README, "HA topology"): the second replica and the other two members are copies of the
    first with their own config, data volume and host port; every member gossips with the others on the compose
    network only; VictoriaMetrics takes both replicas' remote_write (the flags of the native run)."""
    services, volumes = document["services"], document["volumes"]
    flush = f"--storage.remote.flush-deadline={REMOTE_FLUSH_DEADLINE}"
    prometheus, alertmanager = services["prometheus"], services["alertmanager"]   # the single topology's
    for name in settings.stack.prometheus_replicas():
        service = DOCKER_SERVICES[name]
        services[service] = {**copy.deepcopy(prometheus), "ports": _publish(settings, name)}
        command = services[service]["command"]
        command[0] = f"--config.file=/etc/prometheus/{name}.yml"
        command.insert(command.index(RESEND_DELAY_FLAG), flush)
        services[service]["volumes"][-1] = f"{service.replace('-', '_')}_data:/prometheus"
        volumes[f"{service.replace('-', '_')}_data"] = {}

    def gossip(member: str) -> str:
        return f"{DOCKER_SERVICES[member]}:{DOCKER_CLUSTER_PORT}"

    for member in settings.stack.alertmanager_members():
        service = DOCKER_SERVICES[member]
        services[service] = {**copy.deepcopy(alertmanager), "ports": _publish(settings, member)}
        command = services[service]["command"]
        command[command.index("--cluster.listen-address=")] = f"--cluster.listen-address=0.0.0.0:{DOCKER_CLUSTER_PORT}"
        command += am.cluster_peer_flags(settings, member, gossip)
        services[service]["volumes"][-1] = f"{service.replace('-', '_')}_data:/alertmanager"
        volumes[f"{service.replace('-', '_')}_data"] = {}
    vm_port = DOCKER_PORTS["victoria_metrics"]
    services[DOCKER_SERVICES["victoria_metrics"]] = {
        "image": settings.stack.images.victoria_metrics,
        "command": victoria_metrics_flags(settings, "/storage", f"/etc/victoria-metrics/{VM_RELABEL_FILE}",
                                          listen=f":{vm_port}"),
        "volumes": ["./docker/victoriametrics:/etc/victoria-metrics:ro", "victoriametrics_data:/storage"],
        "ports": _publish(settings, "victoria_metrics"),
        "healthcheck": _wget_health(f"http://localhost:{vm_port}/health"),
        "restart": "unless-stopped",
        "mem_limit": HA_MEMORY_LIMITS["victoriametrics"],
    }
    volumes["victoriametrics_data"] = {}
    services["grafana"]["depends_on"]["victoriametrics"] = {"condition": "service_healthy"}


#: the exporters' compose file for each additional host (``hux render`` writes it under docker/exporters/)
EXPORTERS_ADDRESS_ENV = "HUX_EXPORTER_ADDRESS"


def exporters_document(settings: Settings) -> dict[str, Any]:
    """node_exporter alone, for another host that the monitoring host scrapes (``hux targets add node``).

    Published on the address ``HUX_EXPORTER_ADDRESS`` names (no default: the operator says which network
    reaches it) and behind the same basic auth as the native stack's node_exporter: ``web.yml`` next to this
    file is a copy of the monitoring host's data/auth/web.yml (the hash only). cAdvisor is not included: it
    has no authentication of its own, so it is not published beyond a host's loopback.
    """
    address = f"${{{EXPORTERS_ADDRESS_ENV}:?set {EXPORTERS_ADDRESS_ENV} to this host's address the monitoring " \
              "Prometheus reaches, e.g. 10.0.0.5}"
    port = DOCKER_PORTS["node_exporter"]
    return {"services": {"node-exporter": {
        "image": settings.stack.images.node_exporter,
        "command": ["--path.rootfs=/host", "--web.config.file=/etc/node_exporter/web.yml"],
        "pid": "host",
        "volumes": ["/:/host:ro,rslave", "./web.yml:/etc/node_exporter/web.yml:ro"],
        "ports": [f"{address}:{port}:{port}"],
        # healthy = serving and asking for the login (a 401 without credentials; the password stays off this host)
        "healthcheck": {**_wget_health(f"http://localhost:{port}/metrics"),
                        "test": ["CMD-SHELL", f"wget -q --spider http://localhost:{port}/metrics 2>&1 | grep -q 401"]},
        "restart": "unless-stopped",
        "mem_limit": MEMORY_LIMITS["node-exporter"],
    }}}
