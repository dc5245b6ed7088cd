"""The committed docker tree: up to date with a fresh render, valid, and free of secrets."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from hux.cli import main
from hux.monitoring.compose import REQUIRED_ENV
from hux.monitoring.render import check_docker, docker_files, render_docker, validate_docker
from tests.conftest import require_binary

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_settings(make_settings):
    return make_settings()


def test_committed_docker_tree_matches_a_fresh_render(default_settings):
    problems = check_docker(default_settings, REPO)
    assert problems == [], "run `hux render --docker-only` and commit:\n" + "\n".join(problems)


def test_hux_render_check_reports_a_stale_tree(default_settings, tmp_path, hux_home, monkeypatch, capsys):
    require_binary("promtool")
    require_binary("amtool")
    render_docker(default_settings, tmp_path)
    monkeypatch.setenv("HUX_ENV_FILE", str(tmp_path / "no.env"))
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert main(["--config", str(empty), "render", "--check", "--docker-only", "--docker-root", str(tmp_path)]) == 0
    rules = tmp_path / "docker/prometheus/rules/bot-alerts.yml"
    rules.write_text(rules.read_text().replace("> 0.1\n", "> 0.2\n"))
    (tmp_path / "docker/prometheus/rules/old.yml").write_text("groups: []\n")
    assert main(["--config", str(empty), "render", "--check", "--docker-only", "--docker-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docker/prometheus/rules/bot-alerts.yml: differs from a fresh render" in err
    assert "docker/prometheus/rules/old.yml: no longer rendered" in err
    render_docker(default_settings, tmp_path)  # rendering repairs both
    assert check_docker(default_settings, tmp_path) == []


def test_docker_configs_pass_promtool_and_amtool(default_settings, tmp_path):
    require_binary("promtool")
    require_binary("amtool")
    for rel, text in docker_files(default_settings).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert validate_docker(tmp_path) == []


def test_docker_compose_config_is_valid():
    require_binary("docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")}
    env.update({name: "dummy-test-value" for name in REQUIRED_ENV})  # the test environment only
    proc = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    missing = {k: v for k, v in env.items() if k not in REQUIRED_ENV}
    proc = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
                          cwd=REPO, env=missing, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "set HUX_" in proc.stderr  # no default passwords


def test_compose_services_are_pinned_healthchecked_and_persistent():
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    assert set(services) == {"prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor", "postgres", "bot"}
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service["restart"] == "unless-stopped", name
        image = service["image"]
        if name != "bot":
            assert re.search(r":v?\d+(\.\d+)+", image) and not image.endswith(":latest"), image
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    assert re.match(r"prom/prometheus:v3\.", services["prometheus"]["image"])
    assert services["bot"]["build"]["context"] == "."
    assert set(doc["volumes"]) >= {"prometheus_data", "alertmanager_data", "grafana_data", "postgres_data"}
    assert any(arg.startswith("--storage.tsdb.retention.time=") for arg in services["prometheus"]["command"])
    assert "--rules.alert.resend-delay=30s" in services["prometheus"]["command"]


def test_no_secret_values_in_the_docker_tree():
    text = "\n".join(p.read_text() for p in (REPO / "docker").rglob("*") if p.is_file())
    text += (REPO / "docker-compose.yml").read_text()
    assert not re.search(r"hooks\.slack\.com/services/T[A-Z0-9]+/B", text)
    for line in text.splitlines():
        if re.search(r"(?i)password\w*\s*:\s*\S", line) and "DATABASE_URL" not in line:
            # a reference: compose's ${HUX_...}, a *_file, or a psql variable (:'pw', set from the environment)
            assert "${HUX_" in line or "_file:" in line or re.search(r":'\w+'", line), f"a literal secret? {line.strip()}"
    database_url = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["bot"]["environment"][
        "HUX__BOT__DATABASE_URL"]
    assert "${HUX_POSTGRES_PASSWORD:?" in database_url
    # the committed tree wires no receiver (all are off by default); when one is, its secret is a file
    # (tests/monitoring/test_receiver_wiring.py)
    am = yaml.safe_load((REPO / "docker/alertmanager/alertmanager.yml").read_text())
    assert {r["name"] for r in am["receivers"]} == {"blackhole", "heartbeat"}
    assert (REPO / "docker/secrets/.gitignore").read_text().startswith("*\n")


def test_dockerfile_and_env_example():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim", dockerfile)
    assert "USER hux" in dockerfile and 'CMD ["hux", "bot", "run"]' in dockerfile
    example = (REPO / ".env.example").read_text()
    for name in ("HUX_SMTP_PASSWORD", "HUX_SLACK_WEBHOOK_URL", "HUX_ALERT_WEBHOOK_URL", *REQUIRED_ENV):
        assert re.search(rf"^{name}=$", example, re.M), f"{name} missing or has a value"
