"""The docker path without an engine: command lines and the committed compose file, validated by docker-compose."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hux.stack import docker
from hux.stack.docker import ComposeProject, DockerUnavailable
from tests.conftest import require_binary
from tests.stack.conftest import ROOT, stack_env

COMPOSE_FILE = ROOT / "docker-compose.yml"


def project() -> ComposeProject:
    return ComposeProject(frontend=("docker-compose",), file=COMPOSE_FILE)


def test_the_same_verbs_become_compose_commands() -> None:
    base = ["docker-compose", "--project-name", "hux", "--file", str(COMPOSE_FILE), "--project-directory", str(ROOT)]
    p = project()
    assert p.up_command() == [*base, "up", "--detach", "--remove-orphans"]
    assert p.down_command() == [*base, "down", "--remove-orphans"]   # keeps the named volumes (the data)
    assert p.status_command() == [*base, "ps"]
    assert p.restart_command(p.check_services(["prometheus"])) == [*base, "restart", "prometheus"]
    assert p.config_check_command() == [*base, "config", "--quiet"]
    v2 = ComposeProject(frontend=("docker", "compose"), file=COMPOSE_FILE)
    assert v2.up_command()[:3] == ["docker", "compose", "--project-name"]


def test_services_and_their_published_ports_come_from_the_committed_file() -> None:
    p = project()
    assert {"prometheus", "alertmanager", "grafana", "node-exporter", "bot"} <= set(p.services())
    assert {"prometheus", "alertmanager", "grafana", "node-exporter"} <= p.published_services()
    with pytest.raises(DockerUnavailable, match="unknown service"):
        p.check_services(["prometheus", "nonsense"])


def test_the_committed_compose_file_is_valid(tmp_path: Path) -> None:
    require_binary("docker-compose")
    secrets = {"HUX_GRAFANA_ADMIN_PASSWORD": tmp_path / "grafana_password",
               "HUX_POSTGRES_PASSWORD": tmp_path / "postgres_password",
               "HUX_GRAFANA_DB_PASSWORD": tmp_path / "grafana_db_password"}
    env = docker.compose_environment(tmp_path, secrets, environ=stack_env(tmp_path))
    for variable, path in secrets.items():
        assert env[variable] == path.read_text().strip() and len(env[variable]) >= 24
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    result = project().run(project().config_check_command(), env=env, capture=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Without the generated passwords compose refuses: there is no default password to fall back to.
    bare = {k: v for k, v in env.items() if k not in secrets}
    refused = project().run(project().config_check_command(), env=bare, capture=True, timeout=60)
    assert refused.returncode != 0 and "HUX_GRAFANA_ADMIN_PASSWORD" in refused.stderr


def test_an_operator_env_file_wins_over_generated_passwords(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HUX_POSTGRES_PASSWORD=from-dotenv\n")
    env = docker.compose_environment(tmp_path, {"HUX_POSTGRES_PASSWORD": tmp_path / "pg"}, environ={})
    assert "HUX_POSTGRES_PASSWORD" not in env and not (tmp_path / "pg").exists()


def test_without_an_engine_the_docker_path_says_what_is_missing(tmp_path: Path) -> None:
    if docker.engine_available():
        assert ComposeProject.detect(COMPOSE_FILE).frontend
        return
    with pytest.raises(DockerUnavailable, match="no Docker engine answers"):
        ComposeProject.detect(COMPOSE_FILE)
    result = subprocess.run([sys.executable, "-m", "hux.cli", "up", "--docker", "--compose-file", str(COMPOSE_FILE)],
                            env=stack_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no Docker engine answers (`docker info` failed)" in result.stderr
    assert "stack.mode = \"native\"" in result.stderr
