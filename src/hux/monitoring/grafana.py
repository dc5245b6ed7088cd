"""Grafana provisioning: the Prometheus and Alertmanager datasources (fixed uids) and the dashboard provider."""

from __future__ import annotations

from typing import Any

from hux.monitoring.settings import Settings

DASHBOARD_FOLDER = "Mr Hux Alpha Bot"


def datasource_provisioning(settings: Settings, prometheus_url: str, alertmanager_url: str) -> dict[str, Any]:
    """Grafana's datasources: Prometheus (the default, every panel's queries) and Alertmanager.

    The Alertmanager datasource (``implementation: prometheus``: the Prometheus project's Alertmanager,
    not Grafana's own) gives Grafana's Alerting pages this stack's alerts and silences; the Prometheus
    datasource names it as its Alertmanager, so Grafana shows Prometheus's alert rules beside them.
    Credentials are added by the caller where the components ask for them (native basic auth).
    """
    g = settings.grafana
    return {
        "apiVersion": 1,
        "datasources": [{
            "name": g.datasource_name,
            "uid": g.datasource_uid,
            "type": "prometheus",
            "access": "proxy",
            "url": prometheus_url,
            "isDefault": True,
            "editable": False,
            "jsonData": {
                "timeInterval": settings.prometheus.scrape_interval,
                "httpMethod": "POST",
                "manageAlerts": True,
                "alertmanagerUid": g.alertmanager_datasource_uid,
            },
        }, {
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
        }],
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
