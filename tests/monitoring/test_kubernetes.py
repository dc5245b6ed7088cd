"""`hux render --kubernetes DIR`: what a kube-prometheus-stack user applies, from the same settings.

Every manifest's apiVersion, kind and the fields its CRD or API requires; the PrometheusRule's rules are
the rendered rules, checked with the real `promtool check rules` and `promtool test rules` (the same case
files as `hux check-config`); secrets only as Secret key references."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hux.cli import main
from hux.monitoring import kubernetes as kube
from hux.monitoring import rules
from hux.monitoring.checks import prepare_rule_tests, rule_test_settings
from hux.monitoring.yamlout import dump
from tests.conftest import require_binary

RUNBOOKS = '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n'
EVERY_RECEIVER = RUNBOOKS + (
    '[receivers.email]\nenabled = true\nsmtp_smarthost = "smtp.example.com:587"\nauth_username = "alerts"\n'
    '[receivers.slack]\nenabled = true\n'
    '[receivers.webhook]\nenabled = true\nurl = "https://hooks.example.org/hux-secret-path"\n'
    '[receivers.heartbeat]\nenabled = true\nurl = "https://heartbeat.example.org/ping/secret-token"\n')
SECRETS = {"HUX_SMTP_PASSWORD": "smtp-pass-123", "HUX_SLACK_WEBHOOK_URL": "https://hooks.slack.example/T0/B0/xyz"}
KNOWN = {("monitoring.coreos.com/v1", "PrometheusRule"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
         ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"),
         ("v1", "Service")}


def _load(directory: Path) -> dict[str, list[dict[str, Any]]]:
    return {path.name: [d for d in yaml.safe_load_all(path.read_text()) if d]
            for path in sorted(directory.glob("*.yaml"))}


@pytest.fixture
def rendered(tmp_path: Path, hux_home: Path, monkeypatch) -> dict[str, list[dict[str, Any]]]:
    require_binary("promtool")
    config = tmp_path / "hux.toml"
    config.write_text(EVERY_RECEIVER)
    monkeypatch.setenv("HUX_ENV_FILE", str(tmp_path / "no.env"))
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    assert main(["--config", str(config), "render", "--kubernetes", str(tmp_path / "k8s"), "--namespace", "hux",
                 "--image", "registry.example.org/hux/bot:1.2.3"]) == 0
    return _load(tmp_path / "k8s")


def test_every_manifest_has_its_api_kind_name_and_namespace(rendered):
    kinds = []
    for name, documents in rendered.items():
        if name == "kustomization.yaml":
            (document,) = documents
            assert document["kind"] == "Kustomization" and document["namespace"] == "hux"
            assert sorted(document["resources"]) == sorted(n for n in rendered if n != name)
            continue
        for document in documents:
            assert (document["apiVersion"], document["kind"]) in KNOWN, (name, document["kind"])
            meta = document["metadata"]
            assert meta["name"] and meta["namespace"] == "hux"
            assert meta["labels"]["release"] == "kube-prometheus-stack"
            kinds.append(document["kind"])
    assert sorted(kinds) == sorted(["PrometheusRule", "ServiceMonitor", "AlertmanagerConfig", "ConfigMap",
                                    "ConfigMap", "ConfigMap", "ConfigMap", "Deployment", "Service"])


def test_the_prometheus_rule_holds_the_rendered_groups_and_rules(rendered, make_settings):
    (rule,) = rendered["prometheusrule.yaml"]
    groups = rule["spec"]["groups"]
    expected = [g for document in rules.rule_files(make_settings(EVERY_RECEIVER, environ=SECRETS)).values()
                for g in document["groups"]]
    assert groups == expected
    for group in groups:
        assert group["name"] and group["rules"]
        for r in group["rules"]:
            assert r["expr"] and (("alert" in r) != ("record" in r))


def test_the_service_monitor_selects_the_bot_service_with_the_job_the_rules_use(rendered):
    (monitor,) = rendered["servicemonitor.yaml"]
    deployment, service = rendered["bot.yaml"]
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["labels"][spec["jobLabel"]] == "bot"          # job="bot" as the rules select
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("5s", "3s")  # the paging fast path
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_bot_deployment_is_non_root_probed_and_bounded(rendered):
    deployment, _ = rendered["bot.yaml"]
    spec = deployment["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == kube.BOT_UID
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.org/hux/bot:1.2.3"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    secrets = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    assert {s["key"] for s in secrets} == {"telegram-token", "database-url"}


def test_the_alertmanager_config_routes_like_alertmanager_yml_with_secrets_by_reference(rendered, tmp_path):
    (config,) = rendered["alertmanagerconfig.yaml"]
    spec = config["spec"]
    names = {r["name"] for r in spec["receivers"]}
    assert names == {"blackhole", "heartbeat", "email", "slack", "webhook"}

    def walk(route: dict[str, Any]) -> None:
        assert route["receiver"] in names
        for matcher in route.get("matchers", []):
            assert set(matcher) == {"name", "value", "matchType"} and matcher["matchType"] in {"=", "!=", "=~", "!~"}
        for child in route.get("routes", []):
            walk(child)

    walk(spec["route"])
    assert spec["route"]["receiver"] == "slack"        # warnings and unmatched alerts
    by_name = {r["name"]: r for r in spec["receivers"]}
    secret = kube.ALERTMANAGER_SECRET
    assert by_name["email"]["emailConfigs"][0]["authPassword"] == {"name": secret, "key": "smtp-password"}
    assert by_name["slack"]["slackConfigs"][0]["apiURL"] == {"name": secret, "key": "slack-api-url"}
    assert by_name["webhook"]["webhookConfigs"][0]["urlSecret"] == {"name": secret, "key": "webhook-url"}
    assert by_name["heartbeat"]["webhookConfigs"][0]["urlSecret"] == {"name": secret, "key": "heartbeat-url"}
    assert all(rule["sourceMatch"] and rule["targetMatch"] for rule in spec["inhibitRules"])
    text = "".join(p.read_text() for p in (tmp_path / "k8s").glob("*.yaml"))
    for value in (*SECRETS.values(), "hux-secret-path", "secret-token"):
        assert value not in text, f"a secret value in the manifests: {value}"
    (templates,) = rendered["alertmanager-templates.yaml"]
    assert "hux.tmpl" in templates["data"] and 'define "hux.slack.title"' in templates["data"]["hux.tmpl"]


def test_dashboards_are_configmaps_for_the_grafana_sidecar(rendered):
    boards = rendered["grafana-dashboards.yaml"]
    uids = set()
    for configmap in boards:
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = configmap["data"].items()
        board = json.loads(text)
        assert key == f"{board['uid']}.json"
        uids.add(board["uid"])
        sources = {p["datasource"]["uid"] for p in board["panels"] if p.get("datasource")
                   and p["datasource"].get("type") == "prometheus"}
        assert sources == {"prometheus"}          # kube-prometheus-stack's datasource uid
    assert uids == {"hux-system-overview", "hux-token-monitoring", "hux-risk-monitoring"}


def test_bad_options_are_refused_with_what_to_do(tmp_path: Path, hux_home: Path, monkeypatch, capsys):
    config = tmp_path / "hux.toml"
    config.write_text("")
    monkeypatch.setenv("HUX_ENV_FILE", str(tmp_path / "no.env"))
    for flag, value, says in (("--image", "hux:latest", "is not pinned"), ("--namespace", "Hux_NS", "not a Kubernetes name"),
                              ("--release", "a b", "not a label value")):
        assert main(["--config", str(config), "render", "--kubernetes", str(tmp_path / "k8s"), flag, value]) != 0
        assert says in capsys.readouterr().err
    assert not (tmp_path / "k8s").exists() or not any((tmp_path / "k8s").iterdir())


def test_rules_extracted_from_the_prometheus_rule_pass_promtool_check_and_the_rule_unit_tests(tmp_path: Path):
    promtool = require_binary("promtool")
    settings = rule_test_settings()
    rule = kube.kubernetes_files(settings, kube.KubeOptions())["prometheusrule.yaml"]
    extracted = kube.extracted_rules(rule)
    tests = prepare_rule_tests(tmp_path)
    # replace every rendered rule file with the PrometheusRule's groups of the same names
    by_name = {g["name"]: g for g in extracted["groups"]}
    files = rules.rule_files(settings)
    for name, document in files.items():
        (tmp_path / "rules" / name).write_text(dump({"groups": [by_name.pop(g["name"]) for g in document["groups"]]}))
    assert by_name == {}, "groups of the PrometheusRule that no rule file has"
    check = subprocess.run([promtool, "check", "rules", *(str(tmp_path / "rules" / n) for n in files)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run([promtool, "test", "rules", *(t.name for t in tests)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
