"""The Alertmanager configuration: routing by severity, inhibition, receivers, templates.

Routing (``alertmanager.*`` settings):

* ``alertname="Watchdog"`` -> ``heartbeat`` (a dead man's switch, re-sent every
  ``heartbeat_interval``; a receiver without configs when no heartbeat URL is set);
* ``severity="critical"`` -> every enabled receiver in ``critical_receivers``
  (email, Slack and webhook by default), one route each with ``continue`` so
  the routing tests can prove each one is reached, waiting ``critical_group_wait``
  (10 s) rather than ``group_wait`` (30 s) before a new group's first message;
* ``severity="warning"`` -> ``warning_receivers`` (Slack by default; the
  critical receivers when none of these is enabled);
* anything else -> the root receiver (the first warning receiver).

A critical alert inhibits the warning alert of the same ``alert_family`` on the
same job/instance (and stage/api/component/slo), e.g. ``BotHighErrorRate`` mutes
``BotErrorRateIncreased`` for the same stage. ``BotDatabaseDown`` also mutes the
error-rate alerts of the ``persist`` stage on the same bot: one fault, one page.
The burn-rate page ``BotErrorBudgetBurning`` mutes the threshold alerts of the
same bot that measure its SLO: the error-rate alerts (``slo="decision_success"``)
or ``BotHighLatency`` (``slo="decision_latency"``).

Secrets: Alertmanager 0.25 (Debian) reads the SMTP password
(``auth_password_file``) and the Slack URL (``api_url_file``) from files, but
its webhook config has no ``url_file`` (that arrived in a later release). The
native renderer therefore writes the webhook URL into ``alertmanager.yml``
itself, which it creates with mode 0600; the docker tree (Alertmanager 0.28)
uses ``url_file`` with docker secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hux.monitoring.settings import Settings

RECEIVER_ORDER = ("email", "slack", "webhook")
BLACKHOLE = "blackhole"
HEARTBEAT = "heartbeat"
INHIBIT_EQUAL = ["alert_family", "job", "instance", "component", "stage", "api", "slo"]
TEMPLATE_FILES = ("hux.tmpl",)


@dataclass(frozen=True)
class ReceiverSecrets:
    """How the rendered config refers to each receiver's secret (file path or inline value)."""

    receivers: tuple[str, ...]                 # which of email/slack/webhook to wire
    smtp_password_file: str | None = None
    slack_api_url_file: str | None = None
    webhook_url: str | None = None
    webhook_url_file: str | None = None
    heartbeat_url: str | None = None
    heartbeat_url_file: str | None = None


def _email(settings: Settings, secrets: ReceiverSecrets) -> dict[str, Any]:
    email = settings.receivers.email
    cfg: dict[str, Any] = {
        "to": email.to,
        "from": email.from_,
        "smarthost": email.smtp_smarthost,
        "require_tls": email.require_tls,
        "send_resolved": settings.alertmanager.send_resolved,
        "headers": {"Subject": '{{ template "hux.email.subject" . }}'},
        "html": '{{ template "hux.email.html" . }}',
        "text": '{{ template "hux.email.text" . }}',
    }
    if email.auth_username:
        cfg["auth_username"] = email.auth_username
        if secrets.smtp_password_file:
            cfg["auth_password_file"] = secrets.smtp_password_file
    return cfg


def _slack(settings: Settings, secrets: ReceiverSecrets) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if secrets.slack_api_url_file:
        cfg["api_url_file"] = secrets.slack_api_url_file
    cfg.update({
        "channel": settings.receivers.slack.channel,
        "send_resolved": settings.alertmanager.send_resolved,
        "username": "Mr Hux Alertmanager",
        "color": '{{ template "hux.slack.color" . }}',
        "title": '{{ template "hux.slack.title" . }}',
        "text": '{{ template "hux.slack.text" . }}',
        "fallback": '{{ template "hux.title" . }}',
    })
    return cfg


def _webhook(url: str | None, url_file: str | None, send_resolved: bool) -> dict[str, Any]:
    cfg: dict[str, Any] = {"url_file": url_file} if url_file else {"url": url}
    cfg.update({"send_resolved": send_resolved, "max_alerts": 0})
    return cfg


def severity_receivers(settings: Settings, wired: list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(critical, warning) receiver names among the wired ones.

    Warnings fall back to the critical receivers when none of their own is
    wired, rather than being dropped; with no receiver at all both go to the
    blackhole (the stack still runs, and `hux check-config` shows it).
    """
    am = settings.alertmanager
    critical = [name for name in am.critical_receivers if name in wired]
    warning = [name for name in am.warning_receivers if name in wired] or critical
    return critical or [BLACKHOLE], warning or [BLACKHOLE]


def alertmanager_config(settings: Settings, secrets: ReceiverSecrets) -> dict[str, Any]:
    am = settings.alertmanager
    wired = [name for name in RECEIVER_ORDER if name in secrets.receivers]

    receivers: list[dict[str, Any]] = [{"name": BLACKHOLE}]
    heartbeat: dict[str, Any] = {"name": HEARTBEAT}
    if secrets.heartbeat_url or secrets.heartbeat_url_file:
        heartbeat["webhook_configs"] = [_webhook(secrets.heartbeat_url, secrets.heartbeat_url_file, False)]
    receivers.append(heartbeat)
    for name in wired:
        if name == "email":
            receivers.append({"name": "email", "email_configs": [_email(settings, secrets)]})
        elif name == "slack":
            receivers.append({"name": "slack", "slack_configs": [_slack(settings, secrets)]})
        else:
            receivers.append({"name": "webhook", "webhook_configs": [
                _webhook(secrets.webhook_url, secrets.webhook_url_file, am.send_resolved)]})

    critical, warning = severity_receivers(settings, wired)
    routes: list[dict[str, Any]] = [{
        "receiver": HEARTBEAT,
        "matchers": ['alertname="Watchdog"'],
        "group_by": ["alertname"],
        "group_wait": "0s",
        "group_interval": am.heartbeat_interval,
        "repeat_interval": am.heartbeat_interval,
    }]
    for severity, names in (("critical", critical), ("warning", warning)):
        for index, name in enumerate(names):
            route: dict[str, Any] = {"receiver": name, "matchers": [f'severity="{severity}"']}
            if severity == "critical":
                route["group_wait"] = am.critical_group_wait
            if index < len(names) - 1:
                route["continue"] = True  # every receiver of this severity gets it
            routes.append(route)

    root_receiver = warning[0]
    return {
        "global": {"resolve_timeout": am.resolve_timeout},
        "templates": [f"templates/{name}" for name in TEMPLATE_FILES],
        "route": {
            "receiver": root_receiver,
            "group_by": list(am.group_by),
            "group_wait": am.group_wait,
            "group_interval": am.group_interval,
            "repeat_interval": am.repeat_interval,
            "routes": routes,
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": list(INHIBIT_EQUAL),
            },
            # One fault, one page: with the database down, a failing persist stage is its symptom.
            {
                "source_matchers": ['alertname="BotDatabaseDown"'],
                "target_matchers": ['alert_family="error_rate"', 'stage="persist"'],
                "equal": ["job", "instance"],
            },
            # A burn-rate page of an SLO is the incident; the spec's threshold alerts of the same bot that
            # measure the same thing (error rates, latency) are its symptoms while it fires.
            {
                "source_matchers": ['alertname="BotErrorBudgetBurning"', 'slo="decision_success"'],
                "target_matchers": ['alert_family="error_rate"'],
                "equal": ["job", "instance"],
            },
            {
                "source_matchers": ['alertname="BotErrorBudgetBurning"', 'slo="decision_latency"'],
                "target_matchers": ['alert_family="latency"'],
                "equal": ["job", "instance"],
            },
        ],
        "receivers": receivers,
    }


def alertmanager_flags(settings: Settings, config_file: str, storage_dir: str, *,
                       listen: str | None = None) -> list[str]:
    """Native command line: loopback listener, no cluster gossip port."""
    listen = listen or f"{settings.stack.bind_address}:{settings.stack.ports.alertmanager}"
    return [
        f"--config.file={config_file}",
        f"--storage.path={storage_dir}",
        f"--web.listen-address={listen}",
        "--cluster.listen-address=",
    ]
