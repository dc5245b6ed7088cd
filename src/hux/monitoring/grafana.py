"""Grafana provisioning: the Prometheus and Alertmanager datasources (fixed uids) and the dashboard provider."""

from __future__ import annotations

from typing import Any

from hux.bot.config import READER_ROLE
from hux.monitoring.settings import Settings

DASHBOARD_FOLDER = "Mr Hux Alpha Bot"
#: The docker path's bot database (PostgreSQL) as a Grafana datasource: Token Monitoring's "latest calls" table.
BOT_DB_DATASOURCE_UID = "hux-bot-db"
BOT_DB_DATASOURCE_TYPE = "grafana-postgresql-datasource"
BOT_DB_PASSWORD_ENV = "HUX_GRAFANA_DB_PASSWORD"


def bot_database_datasource(host: str, database: str) -> dict[str, Any]:
    """Grafana's read-only view of the bot database: the ``READER_ROLE`` (SELECT on tokens, decisions and
    call checks only), its password from the environment at provisioning time, never in the file."""
    return {
        "name": "Bot database",
        "uid": BOT_DB_DATASOURCE_UID,
        "type": BOT_DB_DATASOURCE_TYPE,
        "access": "proxy",
        "url": host,
        "user": READER_ROLE,
        "isDefault": False,
        "editable": False,
        "jsonData": {"database": database, "sslmode": "disable", "postgresVersion": 1600, "maxOpenConns": 2,
                     "timescaledb": False},
        "secureJsonData": {"password": "${" + BOT_DB_PASSWORD_ENV + "}"},
    }


#: the HA topology's default datasource (VictoriaMetrics speaks the Prometheus query API)
VICTORIA_METRICS_NAME = "VictoriaMetrics"


def datasource_provisioning(settings: Settings, prometheus_url: str, alertmanager_url: str, *,
                            victoria_metrics_url: str | None = None,
                            replica_urls: dict[str, str] | None = None,
                            bot_database: dict[str, Any] | None = None) -> dict[str, Any]:
    """Grafana's datasources: Prometheus (the default, every panel's queries) and Alertmanager; on the docker
    path also ``bot_database`` (``bot_database_datasource``).

    The Alertmanager datasource (``implementation: prometheus``: the Prometheus project's Alertmanager,
    not Grafana's own) gives Grafana's Alerting pages this stack's alerts and silences; the Prometheus
    datasource names it as its Alertmanager, so Grafana shows Prometheus's alert rules beside them.
    Credentials are added by the caller where the components ask for them (native basic auth).
    """
    g = settings.grafana

    def prometheus_source(name: str, uid: str, url: str, *, default: bool) -> dict[str, Any]:
        return {
            "name": name,
            "uid": uid,
            "type": "prometheus",
            "access": "proxy",
            "url": url,
            "isDefault": default,
            "editable": False,
            "jsonData": {
                "timeInterval": settings.prometheus.scrape_interval,
                "httpMethod": "POST",
                "manageAlerts": default,
                "alertmanagerUid": g.alertmanager_datasource_uid,
            },
        }

    if victoria_metrics_url:
        # HA: the dashboards' datasource (its uid) reads VictoriaMetrics, the one deduplicated view; each
        # replica is a datasource of its own ("<name> a", "<name> b") for looking at one of them
        sources = [prometheus_source(VICTORIA_METRICS_NAME, g.datasource_uid, victoria_metrics_url, default=True)]
        sources += [prometheus_source(f"{g.datasource_name} {replica}", f"{g.datasource_uid[:38]}-{replica}", url,
                                      default=False) for replica, url in (replica_urls or {}).items()]
    else:
        sources = [prometheus_source(g.datasource_name, g.datasource_uid, prometheus_url, default=True)]
    return {
        "apiVersion": 1,
        "datasources": [*sources, {
            "name": g.alertmanager_datasource_name,
            "uid": g.alertmanager_datasource_uid,
            "type": "alertmanager",
            "access": "proxy",
            "url": alertmanager_url,
            "isDefault": False,
            "editable": False,
            "jsonData": {
                "implementation": "prometheus",
                # the alerts come from Prometheus's rules; Grafana sends none of its own here
                "handleGrafanaManagedAlerts": False,
            },
        }] + ([bot_database] if bot_database else []),
    }


def dashboard_provisioning(dashboards_path: str) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [{
            "name": "hux",
            "folder": DASHBOARD_FOLDER,
            "type": "file",
            "disableDeletion": True,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 30,
            "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
        }],
    }
