"""The docker path publishes on loopback unless told otherwise; Prometheus's unauthenticated admin and
lifecycle APIs are on only where nothing outside this machine reaches them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from hux.monitoring.compose import compose_document
from hux.monitoring.render import docker_files, docker_secret_refs
from tests.conftest import require_binary

PRIVILEGED = {"--web.enable-admin-api", "--web.enable-lifecycle"}


def document(settings):
    _, needed = docker_secret_refs(settings)
    return compose_document(settings, needed)


def published(doc) -> list[str]:
    return [port for service in doc["services"].values() for port in service.get("ports", [])]


def test_default_publishes_every_port_on_loopback_with_the_admin_api(make_settings):
    doc = document(make_settings())
    assert published(doc) and all(p.startswith("127.0.0.1:") for p in published(doc))
    assert PRIVILEGED <= set(doc["services"]["prometheus"]["command"])


@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.10", "::"])
def test_publishing_beyond_loopback_turns_the_admin_and_lifecycle_apis_off(make_settings, address):
    settings = make_settings(f'[stack]\npublish_address = "{address}"\n')
    doc = document(settings)
    host = f"[{address}]" if ":" in address else address
    assert all(p.startswith(f"{host}:") for p in published(doc)), published(doc)
    assert not PRIVILEGED & set(doc["services"]["prometheus"]["command"])


def test_native_bind_address_does_not_move_the_docker_ports(make_settings):
    doc = document(make_settings('[stack]\nbind_address = "0.0.0.0"\n'))
    assert all(p.startswith("127.0.0.1:") for p in published(doc))


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1\n", "0.0.0.0:80", "eth0"])
def test_publish_address_must_be_an_ip_address(make_settings, address):
    from hux.config import ConfigError

    with pytest.raises(ConfigError, match="stack.publish_address"):
        make_settings(f"[stack]\npublish_address = {json.dumps(address)}\n")


def test_a_published_compose_file_is_valid(make_settings, tmp_path: Path):
    require_binary("docker-compose")
    settings = make_settings('[stack]\npublish_address = "0.0.0.0"\n')
    text = docker_files(settings)["docker-compose.yml"]
    (tmp_path / "docker-compose.yml").write_text(text)
    env = {"PATH": "/usr/bin:/bin", "HUX_GRAFANA_ADMIN_PASSWORD": "x", "HUX_POSTGRES_PASSWORD": "y",
           "HUX_GRAFANA_DB_PASSWORD": "z"}
    for name in ("smtp_password", "slack_api_url", "webhook_url", "heartbeat_url"):
        (tmp_path / "docker" / "secrets").mkdir(parents=True, exist_ok=True)
        (tmp_path / "docker" / "secrets" / name).write_text("x")
    proc = subprocess.run(["docker-compose", "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "0.0.0.0:9090:9090" in yaml.safe_load(text)["services"]["prometheus"]["ports"]
