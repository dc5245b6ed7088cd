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
* anything else -> the root receiver (the first warning receiver);
* before all of these, natively, ``inbox``: the local alert inbox
  (``hux.monitoring.inbox``, ``hux alerts``) gets every notification, firing and
  resolved, through two routes with ``continue`` (the Watchdog re-sent every
  ``heartbeat_interval``, everything else), so it never takes an alert from
  another receiver. It is the floor, not a person: see ``who_is_paged``.

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

import re
from dataclasses import dataclass
from typing import Any, Callable

from hux.monitoring.durations import duration_or, duration_seconds
from hux.monitoring.settings import Settings

RECEIVER_ORDER = ("email", "slack", "webhook")
BLACKHOLE = "blackhole"
HEARTBEAT = "heartbeat"
INBOX = "inbox"
#: receivers that reach no person: nothing, the dead man's switch, the local inbox
NOT_A_PERSON = (BLACKHOLE, HEARTBEAT, INBOX)
#: where the inbox takes Alertmanager's webhook posts (``hux.monitoring.inbox.server``)
INBOX_PATH = "/webhook"
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
    inbox_url: str | None = None                # the local alert inbox (native); None: not wired


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
    critical: list[str] = [name for name in am.critical_receivers if name in wired]
    warning: list[str] = [name for name in am.warning_receivers if name in wired] or critical
    return critical or [BLACKHOLE], warning or [BLACKHOLE]


def inbox_url(settings: Settings) -> str | None:
    """The inbox's webhook URL when the native stack runs one (``inbox.enabled``), else None."""
    return settings.url("inbox") + INBOX_PATH if settings.inbox.enabled else None


def _heartbeat_timing(settings: Settings) -> dict[str, str]:
    """Send the Watchdog every ``heartbeat_interval``: a flush every interval, and a repeat interval below it.

    With ``repeat_interval`` equal to ``group_interval`` Alertmanager skipped every second flush (the last send
    is logged just after a flush begins, so one interval later it is not yet "due"): a 1m heartbeat arrived
    every 2 minutes.
    """
    interval = settings.alertmanager.heartbeat_interval
    half_ms = max(round(duration_seconds(interval) * 500), 1000)    # Prometheus durations are whole units
    repeat = f"{half_ms // 1000}s" if half_ms % 1000 == 0 else f"{half_ms}ms"
    return {"group_interval": interval, "repeat_interval": repeat}


def _inbox_routes(settings: Settings) -> list[dict[str, Any]]:
    """The inbox gets everything and lets every alert go on to its receivers (``continue``)."""
    am = settings.alertmanager
    return [
        {"receiver": INBOX, "matchers": ['alertname="Watchdog"'], "group_by": ["alertname"], "group_wait": "0s",
         **_heartbeat_timing(settings), "continue": True},
        {"receiver": INBOX, "matchers": ['alertname!="Watchdog"'], "group_wait": am.critical_group_wait,
         "continue": True},
    ]


#: one matcher of a route's ``matchers`` list, e.g. ``severity=~"critical|page"``
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$')


def _matchers(route: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = [(k, "=", str(v)) for k, v in (route.get("match") or {}).items()]
    found += [(k, "=~", str(v)) for k, v in (route.get("match_re") or {}).items()]
    for text in route.get("matchers") or []:
        for part in str(text).strip("{}").split(","):
            match = _MATCHER.match(part)
            if match:
                value = match.group(3) if match.group(3) is not None else match.group(4)
                found.append((match.group(1), match.group(2), value.replace('\\"', '"')))
    return found


def route_matchers(route: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A route's (or an inhibit side's) matchers as (label, operator, value), whichever way they are written."""
    return _matchers(route)


def route_matches(route: dict[str, Any], labels: dict[str, str]) -> bool:
    for name, op, value in _matchers(route):
        actual = labels.get(name, "")
        if op == "=" and actual != value:
            return False
        if op == "!=" and actual == value:
            return False
        if op == "=~" and not re.fullmatch(value, actual):
            return False
        if op == "!~" and re.fullmatch(value, actual):
            return False
    return True


def route_receivers(route: dict[str, Any], labels: dict[str, str]) -> list[tuple[str, float]]:
    """(receiver, group_wait seconds) pairs an alert with ``labels`` is sent to, as Alertmanager routes it."""

    def walk(node: dict[str, Any], receiver: str, group_wait: float) -> list[tuple[str, float]]:
        receiver = node.get("receiver") or receiver
        group_wait = duration_or(node.get("group_wait"), group_wait)
        results: list[tuple[str, float]] = []
        for child in node.get("routes") or []:
            if route_matches(child, labels):
                results += walk(child, receiver, group_wait)
                if not child.get("continue", False):
                    break
        return results or [(receiver, group_wait)]

    return walk(route, route.get("receiver", ""), duration_or(route.get("group_wait"), 30.0))


def receiver_integrations(receiver: dict[str, Any]) -> dict[str, int]:
    """``{"email": 1, "webhook": 2}`` for a receiver's ``*_configs``."""
    return {key[: -len("_configs")]: len(value or []) for key, value in receiver.items()
            if key.endswith("_configs") and value}


@dataclass(frozen=True)
class Paging:
    """Who gets critical and warning alerts: the person-reaching receivers of a rendered config."""

    critical: tuple[str, ...]
    warning: tuple[str, ...]
    inbox: bool

    @property
    def nobody(self) -> bool:
        return not self.critical and not self.warning

    def sentence(self) -> str:
        """One plain sentence for `hux up`, `hux status`, `hux health` and `hux notify-test`."""
        where = "alerts go only to the local inbox (hux alerts)" if self.inbox else "alerts reach no receiver"
        if self.nobody:
            return (f"No one is paged: {where}. To page a person, enable receivers.email or "
                    "receivers.slack in hux.toml (README: Configuration).")
        also = " (and to the local inbox: hux alerts)" if self.inbox else ""
        return (f"Critical alerts page {', '.join(self.critical) or 'no one'}; warnings go to "
                f"{', '.join(self.warning) or 'no one'}{also}.")

    def to_dict(self) -> dict[str, Any]:
        return {"critical": list(self.critical), "warning": list(self.warning), "inbox": self.inbox,
                "nobody_paged": self.nobody, "sentence": self.sentence()}


def who_is_paged(config: dict[str, Any]) -> Paging:
    """Which receivers reaching a person get a critical and a warning alert under a rendered (or running)
    Alertmanager config: its own routing, walked as Alertmanager walks it (``route_receivers``)."""
    receivers = {r.get("name"): r for r in config.get("receivers") or [] if isinstance(r, dict)}
    route = config.get("route") or {}

    def people(severity: str) -> tuple[str, ...]:
        labels = {"alertname": f"HuxPaging{severity.capitalize()}", "severity": severity}
        names = [name for name, _ in route_receivers(route, labels)]
        return tuple(dict.fromkeys(n for n in names if n not in NOT_A_PERSON
                                   and receiver_integrations(receivers.get(n, {}))))

    inbox = INBOX in receivers and any(n == INBOX for n, _ in route_receivers(route, {"severity": "critical"}))
    return Paging(people("critical"), people("warning"), inbox)


def native_paging(settings: Settings) -> Paging:
    """Who is paged under these settings natively: the routing `hux render` writes (no secret needed for it)."""
    refs = ReceiverSecrets(receivers=tuple(settings.enabled_receivers()), inbox_url=inbox_url(settings))
    return who_is_paged(alertmanager_config(settings, refs))


def alertmanager_config(settings: Settings, secrets: ReceiverSecrets) -> dict[str, Any]:
    am = settings.alertmanager
    wired = [name for name in RECEIVER_ORDER if name in secrets.receivers]

    receivers: list[dict[str, Any]] = [{"name": BLACKHOLE}]
    heartbeat: dict[str, Any] = {"name": HEARTBEAT}
    if secrets.heartbeat_url or secrets.heartbeat_url_file:
        heartbeat["webhook_configs"] = [_webhook(secrets.heartbeat_url, secrets.heartbeat_url_file, False)]
    receivers.append(heartbeat)
    if secrets.inbox_url:
        receivers.append({"name": INBOX, "webhook_configs": [_webhook(secrets.inbox_url, None, True)]})
    for name in wired:
        if name == "email":
            receivers.append({"name": "email", "email_configs": [_email(settings, secrets)]})
        elif name == "slack":
            receivers.append({"name": "slack", "slack_configs": [_slack(settings, secrets)]})
        else:
            receivers.append({"name": "webhook", "webhook_configs": [
                _webhook(secrets.webhook_url, secrets.webhook_url_file, am.send_resolved)]})

    critical, warning = severity_receivers(settings, wired)
    routes: list[dict[str, Any]] = _inbox_routes(settings) if secrets.inbox_url else []
    routes.append({
        "receiver": HEARTBEAT,
        "matchers": ['alertname="Watchdog"'],
        "group_by": ["alertname"],
        "group_wait": "0s",
        **_heartbeat_timing(settings),
    })
    for severity, names in (("critical", critical), ("warning", warning)):
        for index, name in enumerate(names):
            route: dict[str, Any] = {"receiver": name, "matchers": [f'severity="{severity}"']}
            if severity == "critical":
                route["group_wait"] = am.critical_group_wait
            if index < len(names) - 1:
                route["continue"] = True  # every receiver of this severity gets it
            routes.append(route)

    root_receiver = warning[0]
    if secrets.inbox_url:
        # An alert no route above matches went to the root receiver; the inbox route matched it, so
        # Alertmanager would not fall back any more: say it explicitly.
        routes.append({"receiver": root_receiver})
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
                       listen: str | None = None, member: str = "alertmanager") -> list[str]:
    """Native command line: loopback listener; no cluster gossip port in the single topology, and in the
    HA one this member's gossip port and its peers', always on loopback (gossip has no authentication)."""
    stack = settings.stack
    listen = listen or f"{stack.bind_address}:{getattr(stack.ports, member)}"
    flags = [
        f"--config.file={config_file}",
        f"--storage.path={storage_dir}",
        f"--web.listen-address={listen}",
    ]
    if not stack.ha:
        return [*flags, "--cluster.listen-address="]

    def gossip(name: str) -> str:
        return f"127.0.0.1:{getattr(stack.ports, name + '_cluster')}"

    return [*flags, f"--cluster.listen-address={gossip(member)}", f"--cluster.advertise-address={gossip(member)}",
            *cluster_peer_flags(settings, member, gossip)]


def cluster_peer_flags(settings: Settings, member: str, gossip: Callable[[str], str]) -> list[str]:
    """Topology "ha": the peer timeout and every other member's gossip address (``gossip(member name)``)."""
    return [f"--cluster.peer-timeout={settings.alertmanager.peer_timeout}",
            *(f"--cluster.peer={gossip(peer)}" for peer in settings.stack.alertmanager_members() if peer != member)]
