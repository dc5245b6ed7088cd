"""Rendering the native run directory: files, permissions, all-or-nothing, settings flowing through."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
import yaml

from hux.config import ConfigError
from hux.monitoring.render import render_native, validate_native
from hux.monitoring.rules import ALERTS, ha_alerts, rule_files
from tests.conftest import require_binary


@pytest.fixture(autouse=True)
def _tools():
    for name in ("promtool", "amtool"):
        require_binary(name)


def _all_rules(run_dir: Path) -> list[dict]:
    out = []
    for path in sorted((run_dir / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += group["rules"]
    return out


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_native_render_writes_a_checked_run_directory(make_settings, tmp_path):
    settings = make_settings()
    rendered = render_native(settings, tmp_path / "data" / "run", data_dir=tmp_path / "data",
                             grafana_enabled=False, environ={})
    run = rendered.run_dir
    for rel in ("prometheus.yml", "alertmanager.yml", "templates/hux.tmpl",
                "rules/bot-alerts.yml", "rules/host-alerts.yml", "rules/stack-alerts.yml",
                "grafana/provisioning/datasources/hux.yml", "grafana/provisioning/dashboards/hux.yml",
                "grafana/dashboards/hux-system-overview.json", "grafana/dashboards/hux-token-monitoring.json",
                "grafana/dashboards/hux-risk-monitoring.json"):
        assert (run / rel).is_file(), rel
    assert validate_native(run) == []
    assert _mode(run / "alertmanager.yml") == 0o600
    assert _mode(run / "secrets") == 0o700
    assert "--storage.tsdb.retention.time=15d" in rendered.prometheus_args
    # the first heartbeat within a minute of start: Prometheus re-sends what its first evaluation dropped in 30s
    assert "--rules.alert.resend-delay=30s" in rendered.prometheus_args
    assert f"--config.file={run / 'prometheus.yml'}" in rendered.prometheus_args
    assert "--cluster.listen-address=" in rendered.alertmanager_args
    # every alert of the catalogue is defined, each with the annotations operators rely on
    alerts = [r for r in _all_rules(run) if "alert" in r]
    # ... but the HA layer's, which only the HA topology renders
    ha_only = {r["alert"] for r in ha_alerts(settings.with_topology("ha"))}
    assert {r["alert"] for r in alerts} == set(ALERTS) - ha_only
    for rule in alerts:
        assert rule["labels"]["severity"] == ALERTS[rule["alert"]]
        assert rule["labels"]["alert_family"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url", "first_steps"}
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{rule['alert'].lower()}"
    live_value = [r["alert"] for r in alerts if "$value" not in r["annotations"]["description"]]
    assert sorted(set(live_value)) == ["AlertmanagerConfigReloadFailed", "BotAbsent", "BotDatabaseDown",
                                        "PrometheusConfigReloadFailed", "ServiceDown", "Watchdog"]


def test_scrape_jobs_and_every_bot_instance(make_settings, tmp_path):
    settings = make_settings('[stack]\nbot_targets = ["127.0.0.1:18001", "127.0.0.1:18002"]\n')
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ={})
    config = yaml.safe_load(rendered.prometheus_config.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # no Grafana without a grafana binary; the local alert inbox natively
    assert set(jobs) == {"prometheus", "alertmanager", "node", "inbox", "bot"}
    assert jobs["bot"]["static_configs"][0]["targets"] == ["127.0.0.1:18001", "127.0.0.1:18002"]
    assert config["rule_files"] == ["rules/*.yml"]
    text = rendered.prometheus_config.read_text()
    assert "scrape_protocols" not in text and "retention" not in text  # loads on Prometheus 2.42 and 3.x

    with_grafana = render_native(settings, tmp_path / "run2", data_dir=tmp_path, grafana_enabled=True, environ={})
    jobs = {j["job_name"] for j in yaml.safe_load(with_grafana.prometheus_config.read_text())["scrape_configs"]}
    assert "grafana" in jobs


def test_a_threshold_change_is_one_edit(make_settings, tmp_path):
    settings = make_settings("[alerts]\nerror_rate_critical = 0.25\nerror_rate_critical_for = \"30s\"\n"
                             "rate_window = \"20s\"\nshort_window = \"10s\"\n")
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ={})
    critical = [r for r in _all_rules(rendered.run_dir) if r.get("alert") == "BotHighErrorRate"]
    assert all("> 0.25" in r["expr"] and r["for"] == "30s" for r in critical)
    assert all("ratio_rate20s" in r["expr"] and "ratio_rate10s" in r["expr"] for r in critical)
    risk = json.loads((rendered.grafana_dashboards_dir / "hux-risk-monitoring.json").read_text())
    steps = [p["fieldConfig"]["defaults"]["thresholds"]["steps"] for p in risk["panels"]
             if p.get("title") == "Pipeline error rate by stage"][0]
    assert [s["value"] for s in steps] == [None, 0.05, 0.25]


def test_receivers_and_secret_files(make_settings, tmp_path):
    env = {"HUX_SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/T000/B000/secret",
           "HUX_SMTP_PASSWORD": "smtp-secret", "HUX_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook-secret"}
    settings = make_settings(
        "[receivers.email]\nenabled = true\nauth_username = \"alerts\"\n"
        "[receivers.slack]\nenabled = true\n[receivers.webhook]\nenabled = true\n"
        '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n', environ=env)
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ=env)
    secrets = rendered.secrets_dir
    assert (secrets / "slack_api_url").read_text().strip() == env["HUX_SLACK_WEBHOOK_URL"]
    assert (secrets / "smtp_auth_password").read_text().strip() == "smtp-secret"
    assert _mode(secrets / "slack_api_url") == 0o600 and _mode(secrets / "smtp_auth_password") == 0o600
    am_text = rendered.alertmanager_config.read_text()
    # Alertmanager 0.25 reads SMTP password and Slack URL from files ...
    assert "smtp-secret" not in am_text and "T000/B000" not in am_text
    assert f"api_url_file: {secrets / 'slack_api_url'}" in am_text
    # ... but has no webhook url_file: that URL sits in the 0600 config itself.
    assert "hook-secret" in am_text and _mode(rendered.alertmanager_config) == 0o600
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "staging directory left behind"


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_is_all_or_nothing_when_the_checks_cannot_run(make_settings, tmp_path, monkeypatch):
    settings = make_settings()
    run_dir = tmp_path / "run"
    render_native(settings, run_dir, data_dir=tmp_path, grafana_enabled=False, environ={})
    changed = make_settings("[alerts]\nerror_rate_critical = 0.3\n")
    before = _snapshot(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # promtool and amtool unavailable
    with pytest.raises(ConfigError, match="promtool is not installed"):
        render_native(changed, run_dir, data_dir=tmp_path, grafana_enabled=False, environ={})
    assert _snapshot(tmp_path) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rule_files_load_in_promtool_for_test_intervals(make_settings, tmp_path):
    """The end-to-end suite renders with second-long windows; those rules must load too."""
    settings = make_settings(
        "[prometheus]\nscrape_interval = \"1s\"\nevaluation_interval = \"1s\"\nbot_scrape_interval = \"1s\"\n"
        "bot_scrape_timeout = \"900ms\"\nfast_evaluation_interval = \"1s\"\n"
        "[alerts]\nrate_window = \"10s\"\nshort_window = \"5s\"\nerror_rate_critical_for = \"5s\"\n"
        "latency_for = \"5s\"\nservice_down_for = \"5s\"\nbot_down_for = \"2s\"\nerror_rate_baseline_window = \"1m\"\n"
        "disk_predict_window = \"30s\"\npipeline_stall_after = \"10s\"\n"
        "[alertmanager]\ngroup_wait = \"1s\"\ngroup_interval = \"1s\"\nrepeat_interval = \"1m\"\n")
    docs = rule_files(settings)
    assert {doc["groups"][0]["interval"] for doc in docs.values()} == {"1s"}
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ={})
    assert validate_native(rendered.run_dir) == []
