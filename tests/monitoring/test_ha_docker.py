"""The HA topology on the docker path: the same replicas, cluster and VictoriaMetrics as natively, in compose."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hux.monitoring.compose import REQUIRED_ENV
from hux.monitoring.prometheus_config import dedup_interval
from hux.monitoring.render import docker_files, render_docker, validate_docker
from hux.monitoring.rules import HA_RULE_FILE
from tests.conftest import require_binary

HA = '[stack]\ntopology = "ha"\n'
#: a receiver wired in a container, so the members carry docker secrets like the single path's Alertmanager
SLACK = ('[alerts]\nrunbook_base_url = "https://runbooks.example/docs/runbooks.md"\n'
         '[receivers.slack]\nenabled = true\n')
SLACK_ENV = {"HUX_SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/x"}
MEMBERS = ("alertmanager", "alertmanager-b", "alertmanager-c")
REPLICAS = {"prometheus": "prometheus.yml", "prometheus-b": "prometheus_b.yml"}


@pytest.fixture
def files(make_settings) -> dict[str, str]:
    return docker_files(make_settings(HA + SLACK, environ=SLACK_ENV))


def _flag(command: list[str], name: str) -> list[str]:
    return [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}=")]


def test_compose_runs_two_replicas_three_members_and_victoria_metrics(files, make_settings):
    services = yaml.safe_load(files["docker-compose.yml"])["services"]
    assert {*REPLICAS, *MEMBERS, "victoriametrics"} <= set(services)
    for name, config in REPLICAS.items():
        assert f"--config.file=/etc/prometheus/{config}" in services[name]["command"]
        # both replicas read the target files `hux targets` edits
        assert any(volume.endswith(":/etc/hux-targets:ro") for volume in services[name]["volumes"]), name
    assert services["prometheus"]["volumes"][-1] != services["prometheus-b"]["volumes"][-1]   # own TSDB each
    for member in MEMBERS:
        command = services[member]["command"]
        peers = _flag(command, "--cluster.peer")
        assert sorted(peers) == sorted(f"{other}:9094" for other in MEMBERS if other != member)
        assert _flag(command, "--cluster.listen-address") == ["0.0.0.0:9094"]
        assert not any(":9094" in port for port in services[member].get("ports", []))   # gossip stays inside
        assert services[member]["secrets"] == ["hux_slack_api_url"]
    vm = services["victoriametrics"]
    assert vm["image"].startswith("victoriametrics/victoria-metrics:v")
    assert _flag(vm["command"], "-dedup.minScrapeInterval") == [dedup_interval(make_settings(HA))]
    assert _flag(vm["command"], "-retentionPeriod") == ["90d"]
    assert any(volume.endswith(":/storage") for volume in vm["volumes"])
    for name, service in services.items():
        assert service["mem_limit"], name
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", [])), name
    ports = [port for service in services.values() for port in service.get("ports", [])]
    assert {"127.0.0.1:9091:9090", "127.0.0.1:9095:9093", "127.0.0.1:9096:9093", "127.0.0.1:8428:8428"} <= set(ports)
    assert len(ports) == len(set(ports))


def test_replicas_label_themselves_write_to_victoria_metrics_and_alert_all_members(files):
    for replica, config in (("a", "prometheus.yml"), ("b", "prometheus_b.yml")):
        doc = yaml.safe_load(files[f"docker/prometheus/{config}"])
        assert doc["global"]["external_labels"]["replica"] == replica
        assert doc["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
        assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
            f"{member}:9093" for member in MEMBERS]
        assert [w["url"] for w in doc["remote_write"]] == ["http://victoriametrics:8428/api/v1/write"]
    assert f"docker/prometheus/rules/{HA_RULE_FILE}" in files   # the hux-ha alerts, as natively


def test_grafana_reads_victoria_metrics_by_default(files):
    sources = yaml.safe_load(files["docker/grafana/provisioning/datasources/hux.yml"])["datasources"]
    default = [s for s in sources if s["isDefault"]]
    assert [s["url"] for s in default] == ["http://victoriametrics:8428"]
    assert {s["url"] for s in sources if s["type"] == "prometheus"} == {
        "http://victoriametrics:8428", "http://prometheus:9090", "http://prometheus-b:9090"}


def test_the_ha_tree_passes_promtool_amtool_and_docker_compose(make_settings, tmp_path: Path):
    require_binary("promtool")
    require_binary("amtool")
    require_binary("docker-compose")
    settings = make_settings(HA + SLACK, environ=SLACK_ENV)
    render_docker(settings, tmp_path)   # checks each replica's config with promtool, then amtool
    assert validate_docker(tmp_path) == []
    (tmp_path / "docker/secrets/slack_api_url").write_text("https://hooks.slack.invalid/x")
    env = {"PATH": "/usr/bin:/bin", **{name: "dummy-test-value" for name in REQUIRED_ENV}}
    proc = subprocess.run(["docker-compose", "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_broken_replica_config_is_caught(make_settings, tmp_path: Path):
    require_binary("promtool")
    require_binary("amtool")
    for rel, text in docker_files(make_settings(HA)).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "docker/prometheus/prometheus_b.yml").write_text("global: {scrape_interval: soon}\n")
    problems = validate_docker(tmp_path)
    assert len(problems) == 1 and "prometheus_b.yml" in problems[0]
