"""The docker tree wires a receiver only when it is enabled and complete inside a container; check-config says which."""

from __future__ import annotations

import yaml

from hux.monitoring.checks import receiver_checks
from hux.monitoring.render import docker_files, native_files

SLACK_ENV = {"HUX_SLACK_WEBHOOK_URL": "https://hooks.example.test/services/x"}
#: an enabled receiver needs runbook links that open from a phone
RUNBOOKS = '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n'


def _docker_am(settings) -> tuple[dict, dict]:
    files = docker_files(settings)
    am = yaml.safe_load(files["docker/alertmanager/alertmanager.yml"])
    compose = yaml.safe_load(files["docker-compose.yml"])
    return {r["name"]: r for r in am["receivers"]}, compose


def test_default_docker_tree_wires_no_receiver_and_no_secret(make_settings):
    receivers, compose = _docker_am(make_settings())
    assert set(receivers) == {"blackhole", "heartbeat"}
    assert "secrets" not in compose["services"]["alertmanager"]
    assert "secrets" not in compose


def test_email_to_localhost_is_not_wired_in_docker_but_a_relay_is(make_settings):
    local = make_settings("[receivers.email]\nenabled = true\n[stack]\nmode = \"docker\"\n" + RUNBOOKS)
    receivers, _ = _docker_am(local)
    assert "email" not in receivers
    lines = {r.name: r for r in receiver_checks(local)}
    docker_line = next(r for name, r in lines.items() if name.startswith("receiver email (docker)"))
    assert not docker_line.ok and "localhost:25" in docker_line.name and "mail relay" in docker_line.name
    # natively the same settings are complete (a local MTA is a real option there)
    native_line = next(r for name, r in lines.items() if name.startswith("receiver email (native)"))
    assert native_line.ok and ": wired: to ops@localhost via localhost:25" in native_line.name

    relay = make_settings('[receivers.email]\nenabled = true\nsmtp_smarthost = "smtp.example.com:587"\n'
                          'auth_username = "alerts"\n[stack]\nmode = "docker"\n' + RUNBOOKS)
    receivers, compose = _docker_am(relay)
    cfg = receivers["email"]["email_configs"][0]
    assert cfg["smarthost"] == "smtp.example.com:587"
    assert cfg["auth_password_file"] == "/run/secrets/hux_smtp_password"
    assert compose["services"]["alertmanager"]["secrets"] == ["hux_smtp_password"]
    assert set(compose["secrets"]) == {"hux_smtp_password"}
    assert all(r.ok for r in receiver_checks(relay))


def test_slack_and_webhook_secrets_only_when_enabled(make_settings):
    settings = make_settings("[receivers.slack]\nenabled = true\n[receivers.webhook]\nenabled = true\n"
                             "[stack]\nmode = \"docker\"\n" + RUNBOOKS)
    receivers, compose = _docker_am(settings)
    assert receivers["slack"]["slack_configs"][0]["api_url_file"] == "/run/secrets/hux_slack_api_url"
    assert receivers["webhook"]["webhook_configs"][0]["url_file"] == "/run/secrets/hux_webhook_url"
    assert compose["services"]["alertmanager"]["secrets"] == ["hux_slack_api_url", "hux_webhook_url"]
    assert "email" not in receivers


def test_webhook_on_loopback_is_wired_natively_not_in_docker(make_settings, tmp_path):
    toml = '[receivers.webhook]\nenabled = true\nurl = "http://127.0.0.1:9999/hook"\n' + RUNBOOKS
    native = make_settings(toml)
    files, _ = native_files(native, tmp_path / "run")
    am = yaml.safe_load(files["alertmanager.yml"])
    assert any(r["name"] == "webhook" for r in am["receivers"])
    receivers, compose = _docker_am(native)
    assert "webhook" not in receivers and "secrets" not in compose
    # a non-loopback URL from the settings is not a secret: docker wires it as it is
    remote = make_settings('[receivers.webhook]\nenabled = true\nurl = "http://hooks.internal:8080/hux"\n' + RUNBOOKS)
    receivers, compose = _docker_am(remote)
    assert receivers["webhook"]["webhook_configs"][0]["url"] == "http://hooks.internal:8080/hux"
    assert "secrets" not in compose
    lines = [r.name for r in receiver_checks(native)]
    assert any(line.startswith("receiver webhook (docker): not wired: receivers.webhook.url points at 127.0.0.1")
               for line in lines)
    # native mode: the docker line is information, not a failure
    assert all(r.ok for r in receiver_checks(native))


def test_every_receiver_has_a_line_per_mode(make_settings):
    results = receiver_checks(make_settings("[receivers.slack]\nenabled = true\n" + RUNBOOKS, environ=SLACK_ENV))
    names = [r.name for r in results]
    assert len(names) == 8
    for mode in ("native", "docker"):
        for receiver in ("email", "slack", "webhook", "heartbeat"):
            assert sum(n.startswith(f"receiver {receiver} ({mode}): ") for n in names) == 1
    assert "receiver slack (native): wired: to #hux-alerts, webhook URL from HUX_SLACK_WEBHOOK_URL" in names
    assert ("receiver email (native): not wired: receivers.email.enabled is false (set it to true, with "
            "smtp_smarthost, from and to, to send e-mail)") in names
    assert all(r.ok for r in results)
