"""Grafana provisioning: the Prometheus datasource (fixed uid) and the dashboard provider."""

from __future__ import annotations

from typing import Any

from hux.monitoring.settings import Settings

DASHBOARD_FOLDER = "Mr Hux Alpha Bot"


def datasource_provisioning(settings: Settings, prometheus_url: str) -> dict[str, Any]:
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
