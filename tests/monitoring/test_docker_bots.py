"""``bot.instances = N`` on the docker path: N bot services on the compose PostgreSQL, each its own scrape target."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hux.cli import main
from hux.config import ConfigError
from hux.monitoring.compose import REQUIRED_ENV
from hux.monitoring.render import docker_files, render_docker, validate_docker
from hux.monitoring.settings import settings_from_raw
from tests.conftest import require_binary

DOCKER = '[stack]\nmode = "docker"\n'
BOTS = ("bot", "bot-2", "bot-3")


def _compose_config(root: Path) -> subprocess.CompletedProcess[str]:
    """The real `docker-compose config` (no engine needed), as compose resolves the file with the .env values."""
    env = {"PATH": "/usr/bin:/bin", **{name: f"test-value-{i}" for i, name in enumerate(REQUIRED_ENV)}}
    return subprocess.run(["docker-compose", "-f", str(root / "docker-compose.yml"), "config"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)


def _bot_job(prometheus_yml: str) -> dict:
    jobs = yaml.safe_load(prometheus_yml)["scrape_configs"]
    return next(job for job in jobs if job["job_name"] == "bot")


def test_three_instances_render_three_bot_services_that_compose_and_promtool_accept(make_settings, tmp_path: Path):
    require_binary("promtool")
    require_binary("amtool")
    require_binary("docker-compose")
    settings = make_settings(DOCKER + "[bot]\ninstances = 3\n")
    render_docker(settings, tmp_path)   # runs promtool check config and amtool on the rendered tree first
    assert validate_docker(tmp_path) == []
    proc = _compose_config(tmp_path)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    bots = {name: s for name, s in services.items() if s.get("image") == "mr-hux-alpha-bot:local"}
    assert sorted(bots) == sorted(BOTS)
    homes = set()
    for name, service in bots.items():
        env = service["environment"]
        assert env["HUX__BOT__INSTANCES"] == "3", name
        # all on the compose PostgreSQL, its password interpolated from the environment, never written down
        assert env["HUX__BOT__DATABASE_URL"] == "postgresql+psycopg://hux:test-value-1@postgres:5432/hux", name
        assert "ports" not in service, name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert service["mem_limit"], name
        # docker-compose v1 prints the short syntax (source:target:mode)
        homes.add(next(v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == "/var/lib/hux"))
    assert len(homes) == 3   # a spool and logs of its own each
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:") and "ports" not in postgres
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "test-value-1"
    # Prometheus scrapes each of them under its service name: its own, stable `instance` label
    job = _bot_job((tmp_path / "docker/prometheus/prometheus.yml").read_text())
    assert job["static_configs"] == [{"targets": [f"{name}:8000" for name in BOTS]}]
    assert "dns_sd_configs" not in job
    assert job["file_sd_configs"][0]["files"] == ["/etc/hux-targets/bot.json"]   # `hux targets add bot` still works
    for target in job["static_configs"][0]["targets"]:
        host, port = target.split(":")
        assert port in bots[host]["expose"], target


def test_compose_refuses_the_file_without_the_postgres_password(make_settings, tmp_path: Path):
    require_binary("docker-compose")
    text = docker_files(make_settings(DOCKER + "[bot]\ninstances = 2\n"))["docker-compose.yml"]
    (tmp_path / "docker-compose.yml").write_text(text)
    env = {"PATH": "/usr/bin:/bin", **{name: "x" for name in REQUIRED_ENV if name != "HUX_POSTGRES_PASSWORD"}}
    proc = subprocess.run(["docker-compose", "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "set HUX_POSTGRES_PASSWORD in .env" in proc.stderr


def test_one_instance_renders_what_the_default_renders(make_settings):
    default = docker_files(make_settings(DOCKER))
    assert docker_files(make_settings(DOCKER + "[bot]\ninstances = 1\n")) == default
    compose = yaml.safe_load(default["docker-compose.yml"])
    assert [name for name in compose["services"] if name.startswith("bot")] == ["bot"]
    assert "HUX__BOT__INSTANCES" not in compose["services"]["bot"]["environment"]
    job = _bot_job(default["docker/prometheus/prometheus.yml"])
    assert job["dns_sd_configs"][0]["names"] == ["bot"] and "static_configs" not in job


def test_sqlite_with_several_instances_is_refused_with_the_native_message():
    sqlite = {"instances": 3, "database_url": "sqlite:////tmp/hux-bots.db"}
    messages = []
    for mode in ("native", "docker"):
        with pytest.raises(ConfigError) as refused:
            settings_from_raw({"stack": {"mode": mode}, "bot": sqlite}, environ={}, source="hux.toml")
        messages.append(str(refused.value))
    assert messages[0] == messages[1]
    assert "instances = 3 needs bot.database_url on PostgreSQL (postgresql+psycopg://...): SQLite serves one " \
           "instance" in messages[0]


def test_without_a_database_url_only_the_docker_path_runs_several(make_settings):
    with pytest.raises(ConfigError, match="needs bot.database_url on PostgreSQL"):
        make_settings("[bot]\ninstances = 3\n")   # natively: nothing to share but a SQLite file
    assert make_settings(DOCKER + "[bot]\ninstances = 3\n").bot_instances == 3   # the compose PostgreSQL


def test_hux_render_refuses_sqlite_with_several_instances_and_writes_nothing(tmp_path, hux_home, monkeypatch, capsys):
    monkeypatch.setenv("HUX_ENV_FILE", str(tmp_path / "no.env"))
    config = tmp_path / "hux.toml"
    config.write_text(DOCKER + '[bot]\ninstances = 3\ndatabase_url = "sqlite:////tmp/hux-bots.db"\n')
    root = tmp_path / "tree"
    root.mkdir()
    assert main(["--config", str(config), "render", "--docker-only", "--docker-root", str(root)]) != 0
    assert "needs bot.database_url on PostgreSQL" in capsys.readouterr().err
    assert list(root.iterdir()) == []
