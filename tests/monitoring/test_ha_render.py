"""The HA topology as rendered: two replicas, three Alertmanagers in one loopback cluster, VictoriaMetrics."""

from __future__ import annotations

import pytest
import yaml

from hux.config import ConfigError
from hux.monitoring.render import render_native
from hux.monitoring.rules import HA_RULE_FILE, ha_alerts, rule_files
from tests.conftest import require_binary

HA = '[stack]\ntopology = "ha"\n'


@pytest.fixture(autouse=True)
def _tools():
    require_binary("promtool")
    require_binary("amtool")


def test_the_single_topology_renders_no_ha_part(make_settings, tmp_path):
    settings = make_settings()
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ={})
    assert rendered.ha_args == {}
    assert not (rendered.run_dir / "prometheus_b.yml").exists()
    assert HA_RULE_FILE not in rule_files(settings)
    config = yaml.safe_load(rendered.prometheus_config.read_text())
    assert "remote_write" not in config and "alert_relabel_configs" not in config["alerting"]
    assert "replica" not in config["global"]["external_labels"]
    assert "--cluster.listen-address=" in rendered.alertmanager_args


def test_two_replicas_differ_only_in_their_replica_label(make_settings, tmp_path):
    settings = make_settings(HA)
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ={})
    a = yaml.safe_load((rendered.run_dir / "prometheus.yml").read_text())
    b = yaml.safe_load((rendered.run_dir / "prometheus_b.yml").read_text())
    assert a["global"]["external_labels"] == {"monitor": "hux", "replica": "a"}
    assert b["global"]["external_labels"] == {"monitor": "hux", "replica": "b"}
    b["global"]["external_labels"]["replica"] = "a"
    assert a == b
    # both send to all three Alertmanagers, with the replica label dropped so Alertmanager sees one alert
    ports = settings.stack.ports
    members = [f"127.0.0.1:{p}" for p in (ports.alertmanager, ports.alertmanager_b, ports.alertmanager_c)]
    assert a["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": members}]
    assert a["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
    assert a["remote_write"] == [{"url": f"http://127.0.0.1:{ports.victoria_metrics}/api/v1/write",
                                  "name": "victoria_metrics"}]
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in a["scrape_configs"]}
    assert jobs["prometheus"] == [f"127.0.0.1:{ports.prometheus}", f"127.0.0.1:{ports.prometheus_b}"]
    assert jobs["alertmanager"] == members
    assert jobs["victoria_metrics"] == [f"127.0.0.1:{ports.victoria_metrics}"]
    text = (rendered.run_dir / "prometheus_b.yml").read_text()
    assert "scrape_protocols" not in text and "retention" not in text  # loads on Prometheus 2.42 and 3.x
    # the HA rule group is rendered and checked (promtool ran in render_native)
    assert (rendered.rules_dir / HA_RULE_FILE).is_file()
    names = {rule["alert"] for rule in ha_alerts(settings)}
    assert all(rule["labels"]["severity"] == "warning" for rule in ha_alerts(settings))
    assert {"PrometheusReplicaDown", "VictoriaMetricsDown", "AlertmanagerClusterMembersMissing"} <= names


def test_the_cluster_gossips_on_loopback_only(make_settings, tmp_path):
    settings = make_settings(HA + '\nbind_address = "0.0.0.0"\n')
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ={})
    ports = settings.stack.ports
    flags = {"alertmanager": rendered.alertmanager_args, **rendered.ha_args}
    for member, own, peers in (("alertmanager", ports.alertmanager_cluster,
                                (ports.alertmanager_b_cluster, ports.alertmanager_c_cluster)),
                               ("alertmanager_b", ports.alertmanager_b_cluster,
                                (ports.alertmanager_cluster, ports.alertmanager_c_cluster)),
                               ("alertmanager_c", ports.alertmanager_c_cluster,
                                (ports.alertmanager_cluster, ports.alertmanager_b_cluster))):
        args = flags[member]
        assert f"--cluster.listen-address=127.0.0.1:{own}" in args
        assert sorted(a for a in args if a.startswith("--cluster.peer=")) == \
            sorted(f"--cluster.peer=127.0.0.1:{p}" for p in peers)
        assert not any("0.0.0.0" in a for a in args if a.startswith("--cluster"))
        assert f"--storage.path={tmp_path / member}" in args
        assert "--cluster.peer-timeout=15s" in args
    vm = rendered.ha_args["victoria_metrics"]
    assert "-dedup.minScrapeInterval=5s" in vm      # the shortest scrape interval: the bot's
    assert "-retentionPeriod=90d" in vm
    assert f"-relabelConfig={rendered.run_dir / 'victoria-metrics-relabel.yml'}" in vm
    assert f"--config.file={rendered.run_dir / 'prometheus_b.yml'}" in rendered.ha_args["prometheus_b"]
    # a bounded remote-write flush on the way down (VictoriaMetrics may stop at the same time)
    assert "--storage.remote.flush-deadline=10s" in rendered.ha_args["prometheus_b"]
    assert "--storage.remote.flush-deadline=10s" in rendered.prometheus_args


def test_grafana_reads_victoria_metrics_by_default_and_each_replica_too(make_settings, tmp_path):
    settings = make_settings(HA)
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ={})
    provisioning = yaml.safe_load((rendered.grafana_provisioning_dir / "datasources" / "hux.yml").read_text())
    sources = {s["name"]: s for s in provisioning["datasources"]}
    ports = settings.stack.ports
    vm = sources["VictoriaMetrics"]
    assert vm["isDefault"] and vm["uid"] == settings.grafana.datasource_uid   # the dashboards' datasource
    assert vm["url"] == f"http://127.0.0.1:{ports.victoria_metrics}" and "basicAuth" not in vm
    assert sources["Prometheus a"]["url"] == f"http://127.0.0.1:{ports.prometheus}"
    assert sources["Prometheus b"]["url"] == f"http://127.0.0.1:{ports.prometheus_b}"
    assert sources["Prometheus b"]["uid"] == "hux-prometheus-b" and sources["Prometheus b"]["basicAuth"]
    assert [s["name"] for s in provisioning["datasources"] if s["isDefault"]] == ["VictoriaMetrics"]


def test_ha_ports_must_differ(make_settings):
    with pytest.raises(ConfigError, match="prometheus_b.*prometheus|prometheus.*prometheus_b"):
        make_settings(HA + "[stack.ports]\nprometheus = 19090\nprometheus_b = 19090\n")
    with pytest.raises(ConfigError, match="retention"):
        make_settings(HA + '[victoria_metrics]\nretention_period = "forever"\n')
    # the last member's wait (2 x peer_timeout) ends within a group interval: no stale firing after a resolved
    with pytest.raises(ConfigError, match="peer_timeout"):
        make_settings(HA + '[alertmanager]\npeer_timeout = "15s"\ngroup_interval = "30s"\n')
    make_settings(HA + '[alertmanager]\npeer_timeout = "500ms"\ngroup_interval = "2s300ms"\n')
    # the single topology leaves the HA ports alone
    make_settings("[stack.ports]\nprometheus = 19090\nprometheus_b = 19090\n")
