"""The settings source: defaults, overrides, and bad input refused with the key and the fix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hux.cli import main
from hux.config import ConfigError
from hux.monitoring.settings import duration_seconds

#: an enabled receiver needs runbook links that open from a phone
RUNBOOKS = '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n'


def test_defaults_are_the_seed_values(make_settings):
    s = make_settings()
    assert s.alerts.error_rate_critical == 0.10
    assert s.alerts.rate_window == "5m"
    assert s.alerts.latency_seconds == 10.0
    assert s.alerts.memory_used_ratio == 0.90
    assert s.stack.bind_address == "127.0.0.1"
    assert (s.stack.ports.prometheus, s.stack.ports.alertmanager, s.stack.ports.grafana) == (9090, 9093, 3000)
    assert s.stack.resolved_bot_targets() == ["127.0.0.1:8000"]
    assert s.url("prometheus") == "http://127.0.0.1:9090"
    assert s.enabled_receivers() == []


def test_file_and_environment_override_the_defaults(make_settings):
    s = make_settings(
        '[alerts]\nerror_rate_critical = 0.2\n[stack]\nbot_targets = ["10.0.0.5:8000", "10.0.0.6:8000"]\n',
        environ={"HUX__PROMETHEUS__SCRAPE_INTERVAL": "1s", "HUX__BOT__PORT": "8123"},
    )
    assert s.alerts.error_rate_critical == 0.2
    assert s.prometheus.scrape_interval == "1s"
    assert s.prometheus.resolved_scrape_timeout == "1s"  # never longer than the interval
    assert s.stack.resolved_bot_targets() == ["10.0.0.5:8000", "10.0.0.6:8000"]
    assert s.stack.ports.bot == 8123  # follows bot.port unless stack.ports.bot is set


def test_duration_parsing():
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("1d") == 86400
    assert duration_seconds("250ms") == 0.25
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("5 minutes")


@pytest.mark.parametrize(
    ("toml", "environ", "key", "fix"),
    [
        ("[alerts]\nerror_rate_critcal = 0.2\n", {}, "alerts.error_rate_critcal", "Check its spelling"),
        ('[alerts]\nerror_rate_critical = "high"\n', {}, "alerts.error_rate_critical", "must be a number"),
        ("[alerts]\nerror_rate_critical = 1.5\n", {}, "alerts.error_rate_critical", "less than or equal to 1"),
        ('[alerts]\nlatency_for = "5 minutes"\n', {}, "alerts.latency_for", 'such as "30s"'),
        ("[stack.ports]\nprometheus = 70000\n", {}, "stack.ports.prometheus", "less than or equal to 65535"),
        ('[stack]\nbot_targets = ["bot-without-port"]\n', {}, "stack.bot_targets", "host:port"),
        ("[alerts]\nerror_rate_warning = 0.2\n", {}, "error_rate_warning", "lower alerts.error_rate_warning"),
        ('[alerts]\nerror_rate_warning_for = "2m"\n', {}, "error_rate_warning_for",
         "raise alerts.error_rate_warning_for"),
        ('[stack.images]\ngrafana = "grafana/grafana:latest"\n', {}, "stack.images.grafana", "exact tag"),
        ("[receivers.slack]\nenabled = true\n", {}, "receivers.slack", "HUX_SLACK_WEBHOOK_URL"),
        ("[receivers.email]\nenabled = true\nauth_username = \"alerts\"\n", {}, "receivers.email",
         "HUX_SMTP_PASSWORD"),
        ("[receivers.webhook]\nenabled = true\n", {}, "receivers.webhook", "receivers.webhook.url"),
        ("[receivers.email]\nenabled = true\n[alertmanager]\ncritical_receivers = [\"slack\"]\n"
         "warning_receivers = [\"slack\"]\n", {}, "receivers.email", "critical_receivers"),
    ],
    ids=["unknown-key", "wrong-type", "out-of-range", "bad-duration", "bad-port", "bad-target",
         "warning-above-critical", "warning-for-shorter-than-window", "unpinned-image", "slack-without-url", "email-without-password",
         "webhook-without-url", "receiver-without-route"],
)
def test_bad_input_names_the_key_and_the_fix(make_settings, toml, environ, key, fix):
    with pytest.raises(ConfigError) as err:
        make_settings(toml, environ)
    message = str(err.value)
    assert key in message
    assert fix in message


def test_receiver_secret_from_environment_or_file(make_settings, tmp_path):
    s = make_settings(f"[receivers.slack]\nenabled = true\n{RUNBOOKS}",
                      environ={"HUX_SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/T/B/x"})
    assert s.enabled_receivers() == ["slack"]
    secret = tmp_path / "slack_url"
    secret.write_text("https://hooks.slack.invalid/T/B/y\n")
    s = make_settings(f'[receivers.slack]\nenabled = true\napi_url_file = "{secret}"\n{RUNBOOKS}')
    assert s.receivers.slack.api_url({}) == "https://hooks.slack.invalid/T/B/y"


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("toml", [
    "[alerts]\nbogus = 1\n",
    '[alerts]\nmemory_used_ratio = "ninety"\n',
    "[alerts]\nmemory_used_ratio = 1.2\n",
    "[receivers.slack]\nenabled = true\napi_url_env = \"HUX_TEST_UNSET_SLACK\"\n",
], ids=["unknown-key", "wrong-type", "out-of-range", "receiver-without-secret"])
def test_hux_render_refuses_bad_settings_and_writes_nothing(tmp_path, hux_home, capsys, monkeypatch, toml):
    monkeypatch.setenv("HUX_ENV_FILE", str(tmp_path / "no.env"))  # never an operator's .env
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "prometheus.yml").write_text("# the previous, working config\n")
    docker_root = tmp_path / "repo"
    (docker_root / "docker").mkdir(parents=True)
    (docker_root / "docker-compose.yml").write_text("# previous\n")
    before = _snapshot(tmp_path)
    config = tmp_path / "hux.toml"
    config.write_text(toml)
    code = main(["--config", str(config), "render", "--native-dir", str(run_dir), "--docker-root", str(docker_root)])
    assert code == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and ("alerts." in err or "receivers.slack" in err)
    after = _snapshot(tmp_path)
    after.pop("hux.toml")
    before.pop("hux.toml", None)
    assert after == before


def test_docker_mode_takes_receiver_secrets_from_docker_secrets(make_settings):
    """On the docker path Alertmanager reads docker/secrets/ files: no environment secret is demanded."""
    s = make_settings(f'[stack]\nmode = "docker"\n[receivers.slack]\nenabled = true\n{RUNBOOKS}')
    assert s.stack.mode == "docker" and s.enabled_receivers() == ["slack"]
