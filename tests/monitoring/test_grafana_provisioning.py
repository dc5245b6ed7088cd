"""Grafana's provisioning files: the Prometheus and Alertmanager datasources, and the alert list on System Overview."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hux.config import ConfigError
from hux.monitoring.dashboards import build_dashboards, dashboard_queries
from hux.monitoring.render import docker_files, native_files

REPO = Path(__file__).resolve().parents[2]
#: what Grafana's datasource provisioning needs of every entry (apiVersion 1)
REQUIRED = ("name", "type", "uid", "access", "url", "jsonData")


def _check_schema(doc: dict) -> dict[str, dict]:
    assert doc["apiVersion"] == 1
    sources = doc["datasources"]
    for source in sources:
        for key in REQUIRED:
            assert source.get(key) not in (None, ""), f"{source.get('name')}: {key} missing"
        assert source["access"] == "proxy"
        # every HTTP datasource by URL; the bot database (docker path) by host:port, as Grafana's SQL sources want
        assert source["url"].startswith("http://") or source["type"] == "grafana-postgresql-datasource"
    uids = [s["uid"] for s in sources]
    assert len(uids) == len(set(uids))
    assert sum(bool(s.get("isDefault")) for s in sources) == 1
    return {s["type"]: s for s in sources}


def _panel_datasource_uids(boards) -> set[str]:
    uids = set()
    for board in boards:
        stack = list(board["panels"])
        while stack:
            panel = stack.pop()
            stack += panel.get("panels") or []
            if panel.get("datasource"):
                uids.add(panel["datasource"]["uid"])
            for target in panel.get("targets") or []:
                uids.add(target["datasource"]["uid"])
        for var in board["templating"]["list"]:
            uids.add(var["datasource"]["uid"])
    return uids


def test_native_datasources_prometheus_and_alertmanager_behind_basic_auth(make_settings, tmp_path):
    settings = make_settings()
    password = tmp_path / "auth" / "password"
    files, _ = native_files(settings, tmp_path / "run", auth_password_file=password)
    by_type = _check_schema(yaml.safe_load(files["grafana/provisioning/datasources/hux.yml"]))
    assert set(by_type) == {"prometheus", "alertmanager"}
    am = by_type["alertmanager"]
    assert am["uid"] == "hux-alertmanager" and am["name"] == "Alertmanager"
    assert am["url"] == settings.url("alertmanager")
    assert am["jsonData"]["implementation"] == "prometheus"
    assert by_type["prometheus"]["jsonData"]["alertmanagerUid"] == am["uid"]
    for source in by_type.values():   # the password by file reference only, never the value
        assert source["basicAuth"] is True and source["basicAuthUser"] == "hux"
        assert source["secureJsonData"] == {"basicAuthPassword": f"$__file{{{password}}}"}


def test_docker_datasources_use_the_compose_network(make_settings):
    files = docker_files(make_settings())
    by_type = _check_schema(yaml.safe_load(files["docker/grafana/provisioning/datasources/hux.yml"]))
    assert by_type["alertmanager"]["url"] == "http://alertmanager:9093"
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert not any("basicAuth" in s or "secureJsonData" in s for t, s in by_type.items() if t != "grafana-postgresql-datasource")
    # the bot database's password is read from the environment when Grafana provisions it, never written here
    assert by_type["grafana-postgresql-datasource"]["secureJsonData"] == {"password": "${HUX_GRAFANA_DB_PASSWORD}"}
    # the committed file is that render
    committed = yaml.safe_load((REPO / "docker/grafana/provisioning/datasources/hux.yml").read_text())
    assert committed == yaml.safe_load(files["docker/grafana/provisioning/datasources/hux.yml"])


def test_every_datasource_a_dashboard_names_is_provisioned(make_settings, tmp_path):
    settings = make_settings('[grafana]\nalertmanager_datasource_uid = "am-1"\nalertmanager_datasource_name = "AM"\n')
    files, _ = native_files(settings, tmp_path / "run")
    provisioned = {s["uid"] for s in yaml.safe_load(files["grafana/provisioning/datasources/hux.yml"])["datasources"]}
    boards = [json.loads(text) for rel, text in files.items() if rel.startswith("grafana/dashboards/")]
    assert len(boards) == 3
    assert _panel_datasource_uids(boards) == provisioned == {"hux-prometheus", "am-1"}


def test_system_overview_has_an_alert_list_that_health_does_not_query(make_settings):
    settings = make_settings()
    boards = build_dashboards(settings)
    lists = [p for p in boards["hux-system-overview"]["panels"] if p["type"] == "alertlist"]
    assert len(lists) == 1
    panel = lists[0]
    assert panel["datasource"] == {"type": "alertmanager", "uid": "hux-alertmanager"}
    assert "targets" not in panel or not panel["targets"]
    options = panel["options"]
    assert options["datasource"] == settings.grafana.datasource_name   # the rule source Grafana lists
    assert options["stateFilter"]["firing"] and options["stateFilter"]["pending"]
    assert options["viewMode"] == "list" and options["maxItems"] > 0
    queried = {q.panel for q in dashboard_queries(boards.values(), rate_interval="1m", interval="15s", range_="1h")}
    assert panel["title"] not in queried
    assert len(queried) > 20


def test_the_two_datasources_need_distinct_uids(make_settings):
    with pytest.raises(ConfigError, match="alertmanager_datasource_uid"):
        make_settings('[grafana]\nalertmanager_datasource_uid = "hux-prometheus"\n')
    with pytest.raises(ConfigError, match="alertmanager_datasource_name"):
        make_settings('[grafana]\nalertmanager_datasource_name = "$AM"\n')
