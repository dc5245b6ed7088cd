"""Which notification receivers a rendered Alertmanager config wires, per mode, and why the others are not.

A receiver is wired only when it is enabled and complete *where Alertmanager runs*:

* natively, an enabled receiver is complete once its secret is found (the
  settings refuse to load otherwise), so every enabled receiver is wired;
* in docker, Alertmanager runs in its own container: an address on loopback
  (``localhost:25``, ``http://127.0.0.1/...``) is that container itself, so a
  receiver pointing there is not wired; secrets come from docker secret files
  (``docker/secrets/``), which the operator fills.

``render`` wires what :func:`wired_receivers` says; ``hux check-config`` prints
:func:`receiver_wiring` as one line per receiver and mode.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from hux.monitoring.settings import Settings

#: the receivers a person can be reached by, in routing order
RECEIVERS = ("email", "slack", "webhook")
#: the docker secret file (under docker/secrets/) each receiver reads, when it reads one
DOCKER_SECRET_FILES = {"email": "smtp_password", "slack": "slack_api_url", "webhook": "webhook_url",
                       "heartbeat": "heartbeat_url"}
MODES = ("native", "docker")


@dataclass(frozen=True)
class Wiring:
    receiver: str
    mode: str
    wired: bool
    #: not wired: why and what to do; wired: what it sends to (never a secret)
    detail: str

    @property
    def line(self) -> str:
        state = "wired" if self.wired else "not wired"
        return f"receiver {self.receiver} ({self.mode}): {state}: {self.detail}"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` (and its subdomains) and loopback addresses: the container itself in docker."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _smarthost_host(smarthost: str) -> str:
    host, _, _ = smarthost.rpartition(":")
    return host or smarthost


def _hook_target(name: str, settings: Settings, mode: str) -> Wiring:
    hook = getattr(settings.receivers, name)
    if not hook.enabled:
        return Wiring(name, mode, False, f"receivers.{name}.enabled is false (set it to true to use it)")
    if hook.url:
        host = urlsplit(hook.url).hostname or ""
        if mode == "docker" and is_loopback_host(host):
            return Wiring(name, mode, False,
                          f"receivers.{name}.url points at {host}, which inside the Alertmanager container is the "
                          f"container itself: give an address the container reaches (a compose service name or a "
                          f"host name), or leave url empty and put the URL in docker/secrets/"
                          f"{DOCKER_SECRET_FILES[name]}")
        return Wiring(name, mode, True, f"posts to {urlsplit(hook.url).scheme}://{host}/…")
    if mode == "docker":
        return Wiring(name, mode, True, f"URL from docker/secrets/{DOCKER_SECRET_FILES[name]}")
    return Wiring(name, mode, True, f"URL from {hook.url_file or hook.url_env}")


def _wiring(name: str, settings: Settings, mode: str) -> Wiring:
    r = settings.receivers
    if name == "email":
        email = r.email
        if not email.enabled:
            return Wiring(name, mode, False, "receivers.email.enabled is false (set it to true, with "
                                             "smtp_smarthost, from and to, to send e-mail)")
        host = _smarthost_host(email.smtp_smarthost)
        if mode == "docker" and is_loopback_host(host):
            return Wiring(name, mode, False,
                          f"receivers.email.smtp_smarthost is {email.smtp_smarthost}, which inside the Alertmanager "
                          "container is the container itself (no mail server there): set it to a mail relay the "
                          "container reaches, e.g. \"smtp.example.com:587\"")
        login = ""
        if email.auth_username:
            login = (f", password from docker/secrets/{DOCKER_SECRET_FILES['email']}" if mode == "docker"
                     else f", password from {email.auth_password_file or email.auth_password_env}")
        return Wiring(name, mode, True, f"to {email.to} via {email.smtp_smarthost}{login}")
    if name == "slack":
        slack = r.slack
        if not slack.enabled:
            return Wiring(name, mode, False, "receivers.slack.enabled is false (set it to true, with the "
                                             f"webhook URL in {slack.api_url_env} or api_url_file)")
        source = (f"docker/secrets/{DOCKER_SECRET_FILES['slack']}" if mode == "docker"
                  else slack.api_url_file or slack.api_url_env)
        return Wiring(name, mode, True, f"to {slack.channel}, webhook URL from {source}")
    return _hook_target(name, settings, mode)


def receiver_wiring(settings: Settings, mode: str, names: tuple[str, ...] = (*RECEIVERS, "heartbeat")
                    ) -> list[Wiring]:
    """One :class:`Wiring` per receiver (email, Slack, webhook, heartbeat) for ``mode`` (native or docker)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return [_wiring(name, settings, mode) for name in names]


def wired_receivers(settings: Settings, mode: str) -> tuple[str, ...]:
    """The person-reaching receivers (email, Slack, webhook) that ``mode``'s Alertmanager config wires."""
    return tuple(w.receiver for w in receiver_wiring(settings, mode, RECEIVERS) if w.wired)


def heartbeat_wired(settings: Settings, mode: str) -> bool:
    return receiver_wiring(settings, mode, ("heartbeat",))[0].wired
