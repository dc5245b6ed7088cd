"""Kubernetes manifests from the same settings: what a kube-prometheus-stack user applies.

``hux render --kubernetes DIR`` writes, from the builders the native and docker
paths use (rules, Alertmanager routing, dashboards):

* ``prometheusrule.yaml``: one ``PrometheusRule`` (monitoring.coreos.com/v1) with the
  same groups and rules as ``rules/*.yml``;
* ``servicemonitor.yaml``: the bot's ``ServiceMonitor`` (its scrape interval and timeout,
  the ``job`` label the rules select);
* ``alertmanagerconfig.yaml``: an ``AlertmanagerConfig`` (v1alpha1) with the routes,
  receivers and inhibitions; every secret is a ``Secret`` key reference, never a value;
* ``alertmanager-templates.yaml``: the notification templates the receivers name, as a ConfigMap;
* ``grafana-dashboards.yaml``: one ConfigMap per dashboard, labelled for Grafana's sidecar;
* ``bot.yaml``: the bot's Deployment and Service (non-root, read-only root filesystem, probes, resources);
* ``kustomization.yaml``: all of it, in one namespace (``kubectl apply -k DIR``).

The alert inbox is a native component and has no manifest; host alerts need node_exporter
series with ``job="node"`` (docs/scaling.md says how with kube-prometheus-stack).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hux import __version__
from hux.config import ConfigError
from hux.monitoring import alertmanager as am
from hux.monitoring import rules
from hux.monitoring.compose import MEMORY_LIMITS
from hux.monitoring.render import TEMPLATES_DIR, run_check
from hux.monitoring.settings import Settings, pinned_image
from hux.monitoring.yamlout import GENERATED, dump

API_MONITORING = "monitoring.coreos.com/v1"
API_ALERTMANAGER_CONFIG = "monitoring.coreos.com/v1alpha1"
NAME = "hux"
BOT_NAME = "hux-bot"
#: the Secret the AlertmanagerConfig reads (``kubectl create secret generic hux-alertmanager --from-file=...``)
ALERTMANAGER_SECRET = "hux-alertmanager"
#: receiver -> the key of ALERTMANAGER_SECRET holding its secret
SECRET_KEYS = {"email": "smtp-password", "slack": "slack-api-url", "webhook": "webhook-url",
               am.HEARTBEAT: "heartbeat-url"}
#: the bot's own Secret: Telegram token and database URL, both optional (demo mode, SQLite)
BOT_SECRET = "hux-bot"
#: the Service label whose value becomes the scraped series' ``job`` (the bot job the rules select)
JOB_LABEL = "hux-job"
TEMPLATES_CONFIGMAP = "hux-alertmanager-templates"
#: the user id of the image's ``hux`` user (Dockerfile)
BOT_UID = 10001
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


@dataclass(frozen=True)
class KubeOptions:
    """Where and how the manifests run: the namespace, the label kube-prometheus-stack selects by, the image."""

    namespace: str = "monitoring"
    #: kube-prometheus-stack's Prometheus and Alertmanager pick up objects labelled ``release: <its release>``
    release: str = "kube-prometheus-stack"
    image: str = f"mr-hux-alpha-bot:{__version__}"
    #: kube-prometheus-stack's Grafana provisions its datasources with these uids
    datasource_uid: str = "prometheus"
    alertmanager_datasource_uid: str = "alertmanager"

    def __post_init__(self) -> None:
        if not _DNS_LABEL.fullmatch(self.namespace):
            raise ConfigError(f"namespace {self.namespace!r} is not a Kubernetes name (lower-case letters, digits "
                              "and '-', at most 63), e.g. monitoring")
        if not self.release or not _LABEL_VALUE.fullmatch(self.release) or len(self.release) > 63:
            raise ConfigError(f"release {self.release!r} is not a label value: give the Helm release name of "
                              "kube-prometheus-stack, e.g. kube-prometheus-stack")
        try:
            pinned_image(self.image)
        except ValueError as exc:
            raise ConfigError(f"image: {exc}") from None


def _meta(name: str, options: KubeOptions, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace,
            "labels": {"app.kubernetes.io/part-of": NAME, "release": options.release, **labels}}


def prometheus_rule(settings: Settings, options: KubeOptions) -> dict[str, Any]:
    groups = [group for document in rules.rule_files(settings).values() for group in document["groups"]]
    return {"apiVersion": API_MONITORING, "kind": "PrometheusRule",
            "metadata": _meta(NAME, options), "spec": {"groups": groups}}


def service_monitor(settings: Settings, options: KubeOptions) -> dict[str, Any]:
    p = settings.prometheus
    return {
        "apiVersion": API_MONITORING, "kind": "ServiceMonitor",
        "metadata": _meta(BOT_NAME, options),
        "spec": {
            "jobLabel": JOB_LABEL,
            "selector": {"matchLabels": {"app.kubernetes.io/name": BOT_NAME}},
            "namespaceSelector": {"matchNames": [options.namespace]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": p.bot_scrape_interval,
                           "scrapeTimeout": p.bot_scrape_timeout}],
        },
    }


def _secret_ref(receiver: str) -> dict[str, str]:
    return {"name": ALERTMANAGER_SECRET, "key": SECRET_KEYS[receiver]}


def _crd_matchers(matchers: list[str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value, "matchType": op}
            for name, op, value in am.route_matchers({"matchers": matchers})]


def _crd_route(route: dict[str, Any]) -> dict[str, Any]:
    keys = {"receiver": "receiver", "group_by": "groupBy", "group_wait": "groupWait",
            "group_interval": "groupInterval", "repeat_interval": "repeatInterval", "continue": "continue"}
    out: dict[str, Any] = {crd: route[key] for key, crd in keys.items() if key in route}
    if route.get("matchers"):
        out["matchers"] = _crd_matchers(route["matchers"])
    if route.get("routes"):
        out["routes"] = [_crd_route(child) for child in route["routes"]]
    return out


def _crd_receiver(receiver: dict[str, Any]) -> dict[str, Any]:
    name = receiver["name"]
    out: dict[str, Any] = {"name": name}
    for cfg in receiver.get("email_configs") or []:
        email = {"to": cfg["to"], "from": cfg["from"], "smarthost": cfg["smarthost"],
                 "requireTLS": cfg["require_tls"], "sendResolved": cfg["send_resolved"],
                 "headers": [{"key": k, "value": v} for k, v in cfg.get("headers", {}).items()],
                 "html": cfg["html"], "text": cfg["text"]}
        if cfg.get("auth_username"):
            email.update(authUsername=cfg["auth_username"], authPassword=_secret_ref("email"))
        out.setdefault("emailConfigs", []).append(email)
    for cfg in receiver.get("slack_configs") or []:
        out.setdefault("slackConfigs", []).append({
            "apiURL": _secret_ref("slack"), "channel": cfg["channel"], "sendResolved": cfg["send_resolved"],
            "username": cfg["username"], "color": cfg["color"], "title": cfg["title"], "text": cfg["text"],
            "fallback": cfg["fallback"]})
    for cfg in receiver.get("webhook_configs") or []:
        out.setdefault("webhookConfigs", []).append({
            "urlSecret": _secret_ref(name), "sendResolved": cfg["send_resolved"], "maxAlerts": cfg["max_alerts"]})
    return out


def alertmanager_config(settings: Settings, options: KubeOptions) -> dict[str, Any]:
    """The routing of ``alertmanager.yml`` (without the native inbox), every secret a Secret key reference."""
    r = settings.receivers
    enabled = tuple(settings.enabled_receivers())
    marker = "from-a-kubernetes-secret"   # only says "wired": each becomes a Secret reference below
    refs = am.ReceiverSecrets(
        receivers=enabled,
        smtp_password_file=marker if "email" in enabled and r.email.auth_username else None,
        slack_api_url_file=marker if "slack" in enabled else None,
        webhook_url_file=marker if "webhook" in enabled else None,
        heartbeat_url_file=marker if r.heartbeat.enabled else None,
    )
    config = am.alertmanager_config(settings, refs)
    inhibit = [{"sourceMatch": _crd_matchers(rule["source_matchers"]),
                "targetMatch": _crd_matchers(rule["target_matchers"]), "equal": rule["equal"]}
               for rule in config["inhibit_rules"]]
    return {
        "apiVersion": API_ALERTMANAGER_CONFIG, "kind": "AlertmanagerConfig",
        "metadata": _meta(NAME, options, alertmanagerConfig=NAME),
        "spec": {"route": _crd_route(config["route"]),
                 "receivers": [_crd_receiver(receiver) for receiver in config["receivers"]],
                 "inhibitRules": inhibit},
    }


def templates_configmap(options: KubeOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(TEMPLATES_CONFIGMAP, options),
            "data": {name: (TEMPLATES_DIR / name).read_text(encoding="utf-8") for name in am.TEMPLATE_FILES}}


def dashboard_configmaps(settings: Settings, options: KubeOptions) -> list[dict[str, Any]]:
    """One ConfigMap per dashboard, labelled ``grafana_dashboard: "1"`` (kube-prometheus-stack's sidecar label)."""
    from hux.monitoring.dashboards import build_dashboards  # the SDK import is slow; only when rendering

    grafana = settings.grafana.model_copy(update={"datasource_uid": options.datasource_uid,
                                                  "alertmanager_datasource_uid": options.alertmanager_datasource_uid})
    native = settings.model_copy(update={"grafana": grafana,
                                         "stack": settings.stack.model_copy(update={"mode": "native"})})
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": _meta(f"hux-dashboard-{uid.removeprefix('hux-')}", options, grafana_dashboard="1"),
             "data": {f"{uid}.json": json.dumps(board, indent=2) + "\n"}}
            for uid, board in build_dashboards(native).items()]


def bot_workload(settings: Settings, options: KubeOptions) -> list[dict[str, Any]]:
    """The bot's Deployment and Service: non-root, read-only root filesystem, probes, requests and limits."""
    port = settings.stack.ports.bot

    def labels() -> dict[str, str]:   # a fresh dict per use: the YAML stays free of anchors
        return {"app.kubernetes.io/name": BOT_NAME}

    def optional_secret(env: str, key: str) -> dict[str, Any]:
        return {"name": env, "valueFrom": {"secretKeyRef": {"name": BOT_SECRET, "key": key, "optional": True}}}

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "metrics"}, "periodSeconds": period, "timeoutSeconds": 3,
                "failureThreshold": failures}

    container = {
        "name": "bot", "image": options.image, "imagePullPolicy": "IfNotPresent",
        "args": ["hux", "bot", "run"],
        "env": [{"name": "HUX__BOT__HOST", "value": "0.0.0.0"}, {"name": "HUX__BOT__PORT", "value": str(port)},
                optional_secret("HUX_TELEGRAM_TOKEN", "telegram-token"),
                optional_secret("HUX__BOT__DATABASE_URL", "database-url")],
        "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
        "startupProbe": probe("/health", 2, 30),
        "livenessProbe": probe("/health", 10, 3),
        "readinessProbe": probe("/ready", 5, 2),
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"memory": MEMORY_LIMITS["bot"].replace("m", "Mi")}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        # HUX_HOME (data/, logs/: SQLite without a database-url) and /tmp are the only writable paths
        "volumeMounts": [{"name": "home", "mountPath": "/var/lib/hux"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(BOT_NAME, options, **labels()),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels()},
            "template": {
                "metadata": {"labels": labels()},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": BOT_UID, "runAsGroup": BOT_UID,
                                        "fsGroup": BOT_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(BOT_NAME, options, **labels(), **{JOB_LABEL: settings.stack.bot_job}),
        "spec": {"selector": labels(), "ports": [{"name": "metrics", "port": port, "targetPort": "metrics"}]},
    }
    return [deployment, service]


def _documents(*documents: dict[str, Any]) -> str:
    return GENERATED + "---\n".join(dump(document) for document in documents)


def kubernetes_files(settings: Settings, options: KubeOptions) -> dict[str, str]:
    """File name -> text of the manifests (see the module's docstring)."""
    files = {
        "prometheusrule.yaml": _documents(prometheus_rule(settings, options)),
        "servicemonitor.yaml": _documents(service_monitor(settings, options)),
        "alertmanagerconfig.yaml": _documents(alertmanager_config(settings, options)),
        "alertmanager-templates.yaml": _documents(templates_configmap(options)),
        "grafana-dashboards.yaml": _documents(*dashboard_configmaps(settings, options)),
        "bot.yaml": _documents(*bot_workload(settings, options)),
    }
    files["kustomization.yaml"] = GENERATED + dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": options.namespace, "resources": sorted(files)})
    return files


def extracted_rules(prometheus_rule_text: str) -> dict[str, Any]:
    """The rule file a PrometheusRule holds (its ``spec``: ``groups``), as promtool reads one."""
    document = yaml.safe_load(prometheus_rule_text)
    return {"groups": document["spec"]["groups"]}


def render_kubernetes(settings: Settings, options: KubeOptions, directory: Path) -> list[Path]:
    """Write the manifests into ``directory``; the PrometheusRule's rules pass ``promtool check rules`` first
    (ConfigError and nothing written otherwise)."""
    directory = Path(directory).resolve()
    files = kubernetes_files(settings, options)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".hux-kubernetes-", dir=directory))
    try:
        rule_file = staging / "rules.check.yml"
        rule_file.write_text(dump(extracted_rules(files["prometheusrule.yaml"])), encoding="utf-8")
        problem = run_check(["promtool", "check", "rules", str(rule_file)])
        if problem:
            raise ConfigError(f"the PrometheusRule's rules do not pass promtool, nothing was written:\n  {problem}")
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
            os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [directory / name for name in files]
